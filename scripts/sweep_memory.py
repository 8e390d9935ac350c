"""Peak memory of a checkpoint sweep: 1, 5 and 20 checkpoints in one run.

    python scripts/sweep_memory.py --data-dir ../shared/data [-n 2]

Writes N random native checkpoints (about 4.7M parameters, 19 MB in float32 each,
sharing the reference tokenizer) into a temporary folder, runs
``pytest benchmarks -m perplexity`` over them with a token cap, and prints the
peak resident set size of the largest pytest process (controller or worker).
Memory stays bounded when a process releases each checkpoint as it moves on.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer

from lmeval_fixtures.evaluation.settings import REFERENCE_DIR
from lmeval_fixtures.models.model import ModelConfig, Transformer
from lmeval_fixtures.models.native import save_checkpoint


def write_sweep(folder: Path, count: int) -> None:
    tokenizer = Tokenizer.from_file(str(next(REFERENCE_DIR.glob("*/tokenizer.json"))))
    config = ModelConfig(vocab_size=4096, d_model=256, n_layers=6, n_heads=8, glu_expansion=8 / 3)
    for i in range(count):
        model = Transformer(config)
        model.init_weights(i)
        save_checkpoint(model, folder / f"sweep{i:02d}", tokenizer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("-n", default="0", help="pytest-xdist workers (default: 0)")
    parser.add_argument("--counts", default="1,5,20")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"{'checkpoints':>11} {'peak RSS of the largest pytest process':>40}")
    for count in (int(c) for c in args.counts.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            write_sweep(Path(tmp) / "sweep", count)
            command = [sys.executable, "-m", "pytest", "benchmarks", "-m", "perplexity", "-q", "-p", "no:cacheprovider",
                       "--checkpoint", str(Path(tmp) / "sweep"), "--data-dir", str(args.data_dir),
                       "--max-eval-tokens", "2000", "--report-dir", str(Path(tmp) / "reports"), "-n", args.n]
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            done = subprocess.run(command, capture_output=True, text=True)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            status = "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stdout[-300:]}"
            # ru_maxrss of children only grows: a smaller run after a larger one would show the larger peak
            print(f"{count:11d} {peak / 1024:37.0f} MiB  {status}" + ("" if peak > before else " (not above the "
                                                                        "previous run's peak)"))


if __name__ == "__main__":
    main()
