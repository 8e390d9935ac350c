"""The main job against its forward floor: how close ``pytest benchmarks`` runs to the model's own speed.

    python scripts/main_job_floor.py --data-dir ../shared/data [-- extra pytest args]

Runs the default main job (``pytest benchmarks --data-dir DIR``, every family, the
embedded reference checkpoints) as a subprocess and takes its wall time. Then, in
the same run, times the raw forward pass of each checkpoint (``model(ids)`` under
``torch.inference_mode``, random ids, after a warm-up) at the shapes the job used:
evaluation items at a 16384-token batch (32x512 for perplexity, the SmallBench
rows' mean padded length for SmallBench), timed items at their own shapes and
round counts (read from the records). The floor is the time those forward passes
alone would take; the script prints the main job's wall time, the floor, their
ratio, and the breakdown per family (items' own durations against their floors,
and what lies outside the items: start-up, loading, report writing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lmeval_fixtures.evaluation.settings import REFERENCE_DIR  # noqa: E402
from lmeval_fixtures.models.loading import load_checkpoint  # noqa: E402

BATCH_TOKENS = 16384


@torch.inference_mode()
def forward_seconds(model: torch.nn.Module, vocab: int, batch: int, seq: int, repeats: int = 3) -> float:
    """Median seconds of one raw forward at (batch, seq), after one warm-up."""
    ids = torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(0))
    model(ids)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(ids)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rate(model: torch.nn.Module, vocab: int, seq: int) -> float:
    """Raw tokens per second at a ``BATCH_TOKENS`` batch of rows of ``seq`` tokens."""
    batch = max(1, BATCH_TOKENS // seq)
    return batch * seq / forward_seconds(model, vocab, batch, seq)


def item_seconds(record: dict, family: str) -> float:
    return sum(item.get("duration_s") or 0.0 for node, item in record["items"].items()
               if f"test_{family}" in node)


def floors(record: dict, checkpoint: Path) -> dict[str, float]:
    """Seconds the raw forward passes of each family would take on this checkpoint."""
    loaded = load_checkpoint(checkpoint)
    model, vocab = loaded.model, loaded.allocation.vocab_size
    context = loaded.max_seq_len
    out = {}
    ppl_tokens = sum(split["tokens"] for split in (record.get("perplexity") or {}).values())
    out["perplexity"] = ppl_tokens / rate(model, vocab, context) if ppl_tokens else 0.0
    smallbench = 0.0
    for task in (record.get("smallbench") or {}).values():
        row_length = max(1, round(task["padded_tokens"] / max(1, task["contexts"])))
        smallbench += task["padded_tokens"] / rate(model, vocab, min(context, row_length))
    out["smallbench"] = smallbench
    timed = 0.0
    for entry in (record.get("latency") or {}).values():
        if entry.get("timing") == "taken":
            timed += (entry["rounds"] + entry["warmup_rounds"]) * entry["mean_ms"] / 1000
    throughput = record.get("throughput") or {}
    if throughput.get("timing") == "taken":
        timed += (throughput["rounds"] + 1) * throughput["mean_ms"] / 1000
    for point in (record.get("batch_scaling") or {}).get("points", []):
        timed += (point["rounds"] + 1) * point["mean_ms"] / 1000
    out["latency"] = timed  # timed items are forward passes: their floor is their own rounds
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--records", type=Path, help="a finished main job's run folder (reports/<run_id>) instead of "
                        "running one; give its wall time with --wall")
    parser.add_argument("--wall", type=float, help="wall seconds of the run given with --records")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = parser.parse_args()
    if args.records is not None:
        folder, wall = args.records, args.wall
        if wall is None:
            parser.error("--records needs --wall")
    else:
        out = Path(tempfile.mkdtemp(prefix="main-job-"))
        command = [sys.executable, "-m", "pytest", "benchmarks", "--data-dir", args.data_dir, "--report-dir",
                   str(out), "--run-id", "floor", "-q", "-p", "no:cacheprovider", "--no-cache", *args.pytest_args]
        print("$", " ".join(command[2:]), flush=True)
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:])
            return 1
        folder = out / "floor"
    records = {p.parent.name: json.loads(p.read_text()) for p in sorted(folder.glob("*/metrics.json"))}
    families = ("perplexity", "smallbench", "latency")
    spent = {f: 0.0 for f in families}
    floor = {f: 0.0 for f in families}
    for name, record in records.items():
        checkpoint = Path(record["checkpoint"]["path"])
        for family, seconds in floors(record, checkpoint if checkpoint.exists() else REFERENCE_DIR / name).items():
            floor[family] += seconds
        spent["perplexity"] += item_seconds(record, "perplexity")
        spent["smallbench"] += item_seconds(record, "smallbench")
        spent["latency"] += item_seconds(record, "latency")  # test_latency.py: latency, throughput, scaling
    outside = wall - sum(spent.values())
    print(f"{len(records)} checkpoints, torch threads {torch.get_num_threads()}")
    print(f"{'part':<28}{'wall s':>9}{'floor s':>9}{'ratio':>7}")
    for family in families:
        label = {"latency": "timed items (all)"}.get(family, family)
        ratio = spent[family] / floor[family] if floor[family] else float("nan")
        print(f"{label:<28}{spent[family]:>9.1f}{floor[family]:>9.1f}{ratio:>7.2f}")
    print(f"{'outside items (start, load, write)':<28}{outside:>9.1f}{0:>9.1f}")
    total_floor = sum(floor.values())
    print(f"{'main job':<28}{wall:>9.1f}{total_floor:>9.1f}{wall / total_floor:>7.2f}   (target <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
