"""SmallBench speed and memory on real data, side by side in one run.

    python scripts/smallbench_check.py --data-dir ../shared/data [--checkpoint PATH] [--max-samples N]

For each task: (a) the engine against the naive one-forward-per-choice scorer
(batch 1, the original design's approach), both timed here, with the largest
log-likelihood difference and whether accuracies agree; (b) the engine's tokens
per second against the model's raw forward throughput over exactly the batch
shapes the engine used (random ids, padding counted for the raw pass only), the two
timed alternately ``--repeats`` times (medians); ``--speed-only`` leaves out (a).
Then peak RSS of a fresh process scoring SST-2 and BoolQ at the same budget.
Targets: (a) >= 3x, (b) >= 0.8, BoolQ RSS <= 1.5x SST-2 RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from lmeval_fixtures.engine.scoring import Request, score_requests_naively
from lmeval_fixtures.evaluation.settings import REFERENCE_DIR
from lmeval_fixtures.models.discovery import discover_checkpoints
from lmeval_fixtures.models.loading import load_checkpoint
from lmeval_fixtures.suite.smallbench import evaluate_task
from lmeval_fixtures.suite.task_rows import load_task_rows
from lmeval_fixtures.suite.tasks import TASKS


@torch.inference_mode()
def raw_forward_seconds(model, shapes, vocab: int) -> float:
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, vocab, shape, generator=generator) for shape in shapes]
    model(batches[-1])  # warm-up
    start = time.perf_counter()
    for ids in batches:
        model(ids)
    return time.perf_counter() - start


def rss_child(args: argparse.Namespace, task_name: str) -> int:
    ckpt = load_checkpoint(discover_checkpoints([args.checkpoint or REFERENCE_DIR])[0])
    rows, _ = load_task_rows(TASKS[task_name], "validation", args.data_dir)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    evaluate_task(ckpt.model, ckpt.tokenizer, TASKS[task_name], rows, ckpt.max_seq_len,
                  batch_tokens=args.batch_tokens, max_samples=args.max_samples)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kb": before, "peak_kb": after}))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--checkpoint", default=None, help="default: the first reference checkpoint")
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--prompts", default="smallbench")
    parser.add_argument("--repeats", type=int, default=1,
                        help="engine and raw forward timed alternately this many times per task; medians (default 1)")
    parser.add_argument("--speed-only", action="store_true",
                        help="only the engine against the raw forward: no naive scorer, no memory readings")
    parser.add_argument("--rss-task", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_task:
        sys.exit(rss_child(args, args.rss_task))

    ckpt = load_checkpoint(discover_checkpoints([args.checkpoint or REFERENCE_DIR])[0])
    print(f"checkpoint {ckpt.name} ({ckpt.allocation.total_params:,} params), context {ckpt.max_seq_len}, "
          f"batch budget {args.batch_tokens} tokens, torch threads {torch.get_num_threads()}, prompts {args.prompts}")
    header = (f"{'task':6} {'rows':>5} {'engine s':>9} {'naive s':>9} {'speed-up':>8} {'max |dLL|':>10} "
              f"{'acc eq':>6} {'engine tok/s':>12} {'raw tok/s':>10} {'ratio':>6}")
    print(header)
    totals = {"engine": 0.0, "naive": 0.0, "raw": 0.0, "tokens": 0, "padded": 0}
    for name, task in TASKS.items():
        rows, _ = load_task_rows(task, "validation", args.data_dir)
        rows = rows[: args.max_samples] if args.max_samples else rows
        # warm-up (first calls allocate and pick kernels), then the timed runs
        evaluate_task(ckpt.model, ckpt.tokenizer, task, rows[:64], ckpt.max_seq_len, prompt_set=args.prompts,
                      batch_tokens=args.batch_tokens)
        # engine and raw forward alternately, each repetition over the same batch shapes; medians
        engine_runs, raw_runs = [], []
        for _ in range(args.repeats):
            result = evaluate_task(ckpt.model, ckpt.tokenizer, task, rows, ckpt.max_seq_len,
                                   prompt_set=args.prompts, batch_tokens=args.batch_tokens)
            engine_runs.append(result.seconds)
            raw_runs.append(raw_forward_seconds(ckpt.model, result.stats.batch_shapes, ckpt.allocation.vocab_size))
        engine_s, raw_s = statistics.median(engine_runs), statistics.median(raw_runs)
        naive_s, diff, agree = float("nan"), float("nan"), "-"
        if not args.speed_only:
            prompt = task.prompts[args.prompts]
            requests = [Request(prompt.context(r), c) for r in rows for c in prompt.continuations()]
            start = time.perf_counter()
            naive = score_requests_naively(ckpt.model, ckpt.tokenizer, requests, ckpt.max_seq_len)
            naive_s = time.perf_counter() - start
            k = len(prompt.choices)
            diff = max(abs(ll - naive[i * k + j].logprob) for i, row in enumerate(result.rows)
                       for j, ll in enumerate(row.loglikelihoods))
            naive_correct = sum(
                max(range(k), key=lambda j, i=i: (naive[i * k + j].logprob, -j)) == row["label"]
                for i, row in enumerate(rows))
            agree = str(naive_correct == result.correct)
        engine_rate = result.stats.input_tokens / engine_s
        raw_rate = result.stats.padded_tokens / raw_s
        totals["engine"] += engine_s
        totals["naive"] += naive_s
        totals["raw"] += raw_s
        totals["tokens"] += result.stats.input_tokens
        totals["padded"] += result.stats.padded_tokens
        print(f"{name:6} {len(rows):5d} {engine_s:9.2f} {naive_s:9.2f} {naive_s / engine_s:7.1f}x "
              f"{diff:10.2e} {agree:>6} {engine_rate:12,.0f} {raw_rate:10,.0f} "
              f"{engine_rate / raw_rate:6.3f}")
    engine_rate = totals["tokens"] / totals["engine"]
    raw_rate = totals["padded"] / totals["raw"]
    print(f"{'all':6} {'':5} {totals['engine']:9.2f} {totals['naive']:9.2f} "
          f"{totals['naive'] / totals['engine']:7.1f}x {'':10} {'':6} {engine_rate:12,.0f} {raw_rate:10,.0f} "
          f"{engine_rate / raw_rate:6.3f}")
    print("targets: speed-up >= 3x, ratio >= 0.8")
    if args.speed_only:
        return

    peaks = {}
    for name in ("sst2", "boolq"):
        command = [sys.executable, __file__, "--rss-task", name, "--data-dir", str(args.data_dir),
                   "--batch-tokens", str(args.batch_tokens)]
        command += ["--checkpoint", args.checkpoint] if args.checkpoint else []
        command += ["--max-samples", str(args.max_samples)] if args.max_samples else []
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        peaks[name] = json.loads(out)["peak_kb"] / 1024
    print(f"peak RSS at batch budget {args.batch_tokens}: sst2 {peaks['sst2']:.0f} MiB, "
          f"boolq {peaks['boolq']:.0f} MiB, ratio {peaks['boolq'] / peaks['sst2']:.2f} (bound 1.5)")


if __name__ == "__main__":
    main()
