"""`--dtype bfloat16` against float32 on this CPU: throughput and how far the figures move.

    python scripts/cpu_dtypes.py --data-dir ../shared/data [--checkpoint PATH ...] [--max-eval-tokens 40000]

Runs the suite itself twice (`pytest benchmarks -m "perplexity or throughput"`,
WikiText-2 validation and the 32x512 throughput item, `--no-cache`), once per dtype,
on the reference checkpoints and any `--checkpoint` given (for example an
8k-vocabulary Hugging Face folder made by `scripts/speed_models.py`), and prints per
checkpoint: tokens per second at 32x512 in each dtype and the speed-up, perplexity
scoring tokens per second in each, and validation bits per byte in each with the
relative change. The first lines say what the CPU offers for bfloat16 (AVX-512 BF16,
AMX), since that decides whether bfloat16 can be faster at all: without them the
matrix products convert to float32 and back, and bfloat16 is slower.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ("float32", "bfloat16")


def cpu_bf16_support() -> str:
    """The CPU's model name and its bfloat16 instruction-set flags, as /proc/cpuinfo and torch say."""
    import torch

    flags, model = set(), "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    wanted = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    found = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in wanted)
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{model}; {found}; torch CPU capability {capability}"


def run_suite(dtype: str, args: argparse.Namespace, out: Path) -> Path:
    command = [sys.executable, "-m", "pytest", "benchmarks", "-p", "no:xdist", "-q", "--no-header",
               "-m", "perplexity or throughput", "-k", "validation or test_throughput",
               "--data-dir", str(args.data_dir), "--dtype", dtype, "--no-cache",
               "--max-eval-tokens", str(args.max_eval_tokens), "--report-dir", str(out), "--run-id", dtype]
    for checkpoint in args.checkpoint:
        command += ["--checkpoint", checkpoint]
    if args.checkpoint:
        command += ["--checkpoint", str(ROOT / "lmeval_fixtures" / "reference")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the {dtype} run failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return out / dtype


def figures(run: Path) -> dict[str, dict[str, float]]:
    found = {}
    for metrics in sorted(run.glob("*/metrics.json")):
        record = json.loads(metrics.read_text())
        validation = record["perplexity"]["validation"]
        found[metrics.parent.name] = {"throughput": record["throughput"]["tokens_per_sec"],
                                      "scoring": validation["tokens_per_second"],
                                      "bits_per_byte": validation["bits_per_byte"]}
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="a checkpoint besides the reference ones (repeatable)")
    parser.add_argument("--max-eval-tokens", type=int, default=40000,
                        help="validation tokens scored per checkpoint (default: 40000)")
    args = parser.parse_args()
    args.data_dir = args.data_dir.resolve()
    print(f"CPU: {cpu_bf16_support()}")
    with tempfile.TemporaryDirectory(prefix="cpu-dtypes-") as tmp:
        runs = {dtype: figures(run_suite(dtype, args, Path(tmp))) for dtype in DTYPES}
    print(f"{'checkpoint':<12} {'32x512 tok/s f32':>17} {'bf16':>9} {'speed-up':>8} {'scoring tok/s f32':>18} "
          f"{'bf16':>9} {'val bits/byte f32':>18} {'bf16':>10} {'rel change':>10}")
    for name, f32 in runs["float32"].items():
        bf16 = runs["bfloat16"][name]
        change = (bf16["bits_per_byte"] - f32["bits_per_byte"]) / f32["bits_per_byte"]
        print(f"{name:<12} {f32['throughput']:>17,.0f} {bf16['throughput']:>9,.0f} "
              f"{bf16['throughput'] / f32['throughput']:>7.2f}x {f32['scoring']:>18,.0f} {bf16['scoring']:>9,.0f} "
              f"{f32['bits_per_byte']:>18.6f} {bf16['bits_per_byte']:>10.6f} {change:>+10.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
