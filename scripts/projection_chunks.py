"""The vocabulary projection's chunk rule, quiet and with a competing process on the cores.

    python scripts/projection_chunks.py

Times ``lm_interface.target_logprobs`` (with ranks, as perplexity scores) on 16384
rows of 256 features for vocabularies 4096 and 32000, three ways: fixed 128-row
chunks (the old rule's smallest), one call over every row, and the measuring
``ChunkChooser`` (the default). "loaded" runs a second process beside it, a
one-thread matrix-multiply loop, as another job on a shared CI runner. Medians of
five calls after a warm-up; the chooser keeps what it learned between calls, as it
does in a run.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speed_models import COMPETITOR  # noqa: E402

from lmeval_fixtures import lm_interface  # noqa: E402


def seconds(vocab: int, chunk: int | None, rows: int = 16384, width: int = 256, repeats: int = 5) -> float:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(vocab, width, generator=generator) * 0.05
    features = torch.randn(rows, width, generator=generator)
    targets = torch.randint(0, vocab, (rows,), generator=generator)
    head = lambda f: f @ weight.T  # noqa: E731
    lm_interface.target_logprobs(head, features, targets, with_rank=True, chunk=chunk)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        lm_interface.target_logprobs(head, features, targets, with_rank=True, chunk=chunk)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    print(f"torch threads {torch.get_num_threads()}; seconds per 16384 rows (median of 5)")
    print(f"{'condition':<9}{'vocab':>7}{'128-row chunks':>16}{'one call':>10}{'chooser':>9}  chooser picked")
    for condition in ("quiet", "loaded"):
        competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR]) if condition == "loaded" else None
        try:
            time.sleep(1.0 if competitor else 0.0)
            for vocab in (4096, 32000):
                lm_interface._CHOOSERS.clear()  # learn afresh under this condition
                fixed, whole, chosen = seconds(vocab, 128), seconds(vocab, 16384), seconds(vocab, None)
                chooser = lm_interface.chunk_chooser(vocab)
                best = min(chooser.candidates, key=lambda c: chooser.seconds_per_row.get(c, float("inf")))
                print(f"{condition:<9}{vocab:>7}{fixed:>16.3f}{whole:>10.3f}{chosen:>9.3f}  {best} rows", flush=True)
        finally:
            if competitor is not None:
                competitor.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
