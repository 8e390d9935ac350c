"""The vocabulary projection's chunk rule, quiet and with a competing process on the cores.

    python scripts/projection_chunks.py [--conditions quiet,loaded] [--vocabularies 4096,32000]

Times ``lm_interface.target_logprobs`` (with ranks, as perplexity scores) on 16384
rows of 256 features for vocabularies 4096 and 32000, for both forms of head: a
``torch.nn.Linear`` (what the native and Hugging Face models give; projected a
vocabulary block at a time) and a function that returns whole logits. Three ways
each: the smallest and the largest chunk the chooser may pick (``chunk_candidates``),
held fixed, and the measuring ``ChunkChooser`` (the default). "loaded" runs a second
process beside it, a one-thread matrix-multiply loop, as another job on a shared CI
runner. Medians of five calls after a warm-up; the chooser keeps what it learned
between calls, as it does in a run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speed_models import COMPETITOR  # noqa: E402

from lmeval_fixtures.engine import projection as lm_interface
from lmeval_fixtures.engine import projection_threads
from lmeval_fixtures.engine.vocab_blocks import BlockedProjection

ROWS, WIDTH, REPEATS = 16384, 256, 5


def problem(vocab: int) -> tuple[torch.nn.Linear, torch.Tensor, torch.Tensor]:
    """A random linear head of ``vocab`` outputs, 16384 rows of features and their targets."""
    generator = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(WIDTH, vocab, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(vocab, WIDTH, generator=generator) * 0.05)
    return (layer, torch.randn(ROWS, WIDTH, generator=generator),
            torch.randint(0, vocab, (ROWS,), generator=generator))


def median_seconds(run: Callable[[], object]) -> float:
    """Median of ``REPEATS`` timed calls after one warm-up."""
    with torch.inference_mode():
        run()
        times = []
        for _ in range(REPEATS):
            began = time.perf_counter()
            run()
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def seconds(vocab: int, linear: bool, chunk: int | None, caches: lm_interface.EngineCaches) -> float:
    layer, features, targets = problem(vocab)
    head = layer if linear else (lambda f: f @ layer.weight.T)
    return median_seconds(lambda: lm_interface.target_logprobs(head, features, targets, with_rank=True, chunk=chunk,
                                                               caches=caches))


def intra_op_seconds(vocab: int, rows: int) -> float:
    """The linear head as it ran before ``projection_threads``: chunks of ``rows`` scored one after
    another in this thread, each operation spread over torch's intra-op threads (the baseline)."""
    layer, features, targets = problem(vocab)
    projection = BlockedProjection(layer, rows)

    def run() -> None:
        start = 0
        while start < ROWS:
            stop = lm_interface.chunk_bounds(start, rows, ROWS)
            projection.score(features[start:stop], targets[start:stop], with_greedy=False, with_rank=True)
            start = stop

    return median_seconds(run)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conditions", default="quiet,loaded")
    parser.add_argument("--vocabularies", default="4096,32000")
    args = parser.parse_args()
    workers = projection_threads.worker_count()
    print(f"torch threads {torch.get_num_threads()}; seconds per 16384 rows (median of 5); a linear head's "
          f"slices on {workers} one-core threads; 'before': one thread after another, intra-op threads")
    print(f"{'condition':<9}{'vocab':>7} {'head':<13}{'smallest':>14}{'largest':>14}{'chooser':>9}  chooser picked"
          f"{'before (rows)':>22}{'chooser/before':>16}")
    for condition in args.conditions.split(","):
        competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR]) if condition == "loaded" else None
        try:
            time.sleep(1.0 if competitor else 0.0)
            for vocab in map(int, args.vocabularies.split(",")):
                for linear in (True, False):
                    caches = lm_interface.EngineCaches()  # learn afresh under this condition
                    candidates = lm_interface.chunk_candidates(vocab, blocked=linear, workers=workers)
                    small, large = candidates[0], candidates[-1]
                    fixed_small = seconds(vocab, linear, small, caches)
                    fixed_large = seconds(vocab, linear, large, caches)
                    chosen = seconds(vocab, linear, None, caches)
                    chooser = caches.chooser(vocab, blocked=linear, workers=workers)
                    best = min(chooser.candidates, key=lambda c: chooser.seconds_per_row.get(c, float("inf")))
                    form = "linear" if linear else "whole logits"
                    before = ""
                    if linear:  # the largest chunk of the former rule, 2^24 logits, its fastest in most conditions
                        rows = lm_interface.chunk_candidates(vocab, blocked=True, workers=1)[-1]
                        former = intra_op_seconds(vocab, rows)
                        before = f"{former:>15.3f} ({rows:>4}){chosen / former:>16.2f}"
                    print(f"{condition:<9}{vocab:>7} {form:<13}{fixed_small:>8.3f} ({small:>4}){fixed_large:>8.3f} "
                          f"({large:>4}){chosen:>9.3f}  {best:>4} rows{before}", flush=True)
        finally:
            if competitor is not None:
                competitor.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
