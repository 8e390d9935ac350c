"""Compare two runs' records field by field, timings, run identity and code version aside.

    python scripts/compare_records.py reports/BEFORE reports/AFTER

For every checkpoint in either run folder, every leaf of metrics.json is compared
exactly; fields that differ between any two runs by nature (timings, run id,
timestamps, code version, the checkout's location, the command line) are left out,
and the script says which it left out. Exit status 1 when anything else differs
(a field missing on one side included), so it can gate a refactoring.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

# Leaves that differ between two runs of the same code on the same inputs.
IGNORED = [
    r"run_id", r"timestamp", r"git_commit", r"invocations(\..*)?",
    r"environment\.(cpu_threads|workers(\..*)?)",
    r"checkpoint\.path",  # where the checkout lies
    r"latency(\..*)?", r"throughput(\..*)?", r"batch_scaling(\..*)?",
    r"latency_batch\d+_seq\d+", r"throughput_tokens_per_sec", r"memory_(allocated|reserved)_mb",
    r"(perplexity|corpora\.[^.]+)\.[^.]+\.(seconds|tokens_per_second)",
    r"smallbench\.[^.]+\.seconds",
    r"items\..*\.duration_s",
    r"cache(\..*)?",  # which items came from the result cache, and from which run
]
IGNORED_RE = re.compile("|".join(f"(?:{p})" for p in IGNORED))


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        found: dict[str, Any] = {}
        for key, inner in value.items():
            found.update(leaves(inner, f"{path}.{key}" if path else str(key)))
        return found
    return {path: value}


def compare(before: dict[str, Any], after: dict[str, Any]) -> tuple[list[str], int]:
    """Differences (one line each) and how many leaves were compared."""
    a, b = leaves(before), leaves(after)
    differences, compared = [], 0
    for key in sorted(a.keys() | b.keys()):
        if IGNORED_RE.fullmatch(key):
            continue
        compared += 1
        if key not in a:
            differences.append(f"{key}: only after ({b[key]!r})")
        elif key not in b:
            differences.append(f"{key}: only before ({a[key]!r})")
        elif a[key] != b[key] or type(a[key]) is not type(b[key]):
            differences.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return differences, compared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="report folder of a run (reports/<run_id>)")
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    names = sorted({p.parent.name for folder in (args.before, args.after) for p in folder.glob("*/metrics.json")})
    if not names:
        print(f"no */metrics.json under {args.before} or {args.after}", file=sys.stderr)
        return 2
    failed = False
    for name in names:
        files = [folder / name / "metrics.json" for folder in (args.before, args.after)]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            print(f"{name}: missing {', '.join(missing)}")
            failed = True
            continue
        differences, compared = compare(*(json.loads(f.read_text(encoding="utf-8")) for f in files))
        print(f"{name}: {compared} fields compared, {len(differences)} differ")
        for line in differences:
            print(f"  {line}")
        failed = failed or bool(differences)
    print("left out (differ between runs by nature): " + ", ".join(IGNORED))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
