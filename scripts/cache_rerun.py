"""The reference sweep twice with a shared result cache: the second run, with nothing changed, reuses every figure.

    python scripts/cache_rerun.py --data-dir ../shared/data [-- extra pytest args]

Runs ``pytest benchmarks -m "perplexity or smallbench"`` (timings are never cached,
so the timed families would only add the same seconds to both runs) twice into
one fresh report folder and cache, prints both wall times and their ratio (target:
at most 0.05), and whether the two runs' records are equal field by field, apart
from what differs between runs by nature (run ids, times, the ``cache`` provenance:
``scripts/compare_records.py``'s list).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from compare_records import main as compare_records  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="cache-rerun-"))
    walls = []
    for run_id in ("first", "second"):
        command = [sys.executable, "-m", "pytest", "benchmarks", "-m", "perplexity or smallbench", "-q",
                   "--data-dir", args.data_dir, "--report-dir", str(out), "--run-id", run_id,
                   "-p", "no:cacheprovider", *args.pytest_args]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:])
            return 1
        print(f"{run_id}: {walls[-1]:.1f} s   ({done.stdout.strip().splitlines()[-1]})")
    print(f"ratio second / first: {walls[1] / walls[0]:.3f}   (target <= 0.05)")
    differs = compare_records([str(out / "first"), str(out / "second")])
    print("records equal (timings, run ids and cache provenance aside):", "NO" if differs else "yes")
    return differs


if __name__ == "__main__":
    sys.exit(main())
