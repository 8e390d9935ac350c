"""Command line: ``python -m lmeval_fixtures merge|compare`` (also the ``lmeval-fixtures`` script).

    merge OUT SHARD_DIR...    join shard reports (same run, same data) into OUT
    compare RECORD_OR_DIR...  comparison.md (and .png) for records of earlier runs
    export-hf CHECKPOINT OUT_DIR
                              a Hugging Face Llama folder with the same weights (needs the hf extra)
    history [--checkpoint NAME] [--metric KEY]
                              trend of a figure over the runs in reports/history.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .checkpoints import CheckpointError
from .comparison import LOWER_IS_BETTER_SORT, write_comparison
from .hf_export import export_hf
from .history import HEADLINE_FIELDS, read_history, trend
from .metrics import RecordMergeError, merge_records
from .report import read_samples, write_checkpoint_report


class CommandError(Exception):
    """A usage problem worth one line on stderr and exit status 2."""


def read_records(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every metrics.json named, or found one or two levels under a folder named."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(path.glob("metrics.json")) + sorted(path.glob("*/metrics.json"))
        else:
            raise CommandError(f"{path}: no such file or folder")
    if not found:
        raise CommandError(f"no metrics.json under {', '.join(map(str, paths))}")
    records = []
    for file in found:
        try:
            records.append((file, json.loads(file.read_text(encoding="utf-8"))))
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"{file}: not a readable metrics.json ({exc})") from None
    return records


def merge(out: Path, shards: list[Path]) -> list[Path]:
    by_checkpoint: dict[str, dict[str, Any]] = {}
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
    run_ids = set()
    seen_data: dict[str, tuple[str, Path]] = {}
    for file, record in read_records(shards):
        run_ids.add(record.get("run_id"))
        for data_name, sha in record.get("data_fingerprints", {}).items():
            earlier = seen_data.setdefault(data_name, (sha, file))
            if earlier[0] != sha:
                raise CommandError(f"{file}: refused: {data_name} differs from the data of {earlier[1]}")
        name = record["checkpoint"]["name"]
        samples.setdefault(name, {}).update(read_samples(file.parent))
        try:
            by_checkpoint[name] = merge_records(by_checkpoint[name], record) if name in by_checkpoint else record
        except RecordMergeError as exc:
            raise CommandError(f"{file}: refused: {exc}") from None
    if len(run_ids) > 1:
        raise CommandError(f"shards of different runs ({', '.join(sorted(map(str, run_ids)))}): give every shard "
                           "the same --run-id")
    written: list[Path] = []
    for name, record in sorted(by_checkpoint.items()):
        written += write_checkpoint_report(record, out / name, comparison=len(by_checkpoint) > 1,
                                           samples=samples.get(name))
    if len(by_checkpoint) > 1:
        written += write_comparison(list(by_checkpoint.values()), out, samples=samples)
    return written


def show_history(path: Path, checkpoints: list[str] | None, metric: str, previous: int) -> int:
    if not path.is_file():
        raise CommandError(f"{path}: no history yet (every pytest benchmarks run appends to it)")
    lines = read_history(path)
    names = checkpoints or sorted({line["checkpoint"] for line in lines})
    for name in names:
        rows, verdict = trend(lines, name, metric, previous)
        print(f"== {name}: {metric}")
        for row in rows:
            print("  " + row)
        print(verdict)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lmeval-fixtures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    merge_cmd = commands.add_parser("merge", help="join shard reports into one")
    merge_cmd.add_argument("out", type=Path)
    merge_cmd.add_argument("shards", type=Path, nargs="+")
    compare_cmd = commands.add_parser("compare", help="compare records of earlier runs")
    compare_cmd.add_argument("records", type=Path, nargs="+")
    compare_cmd.add_argument("--out", type=Path, default=Path("."), help="folder for comparison.md (default: .)")
    compare_cmd.add_argument("--sort-by", default="val_bits_per_byte", choices=sorted(LOWER_IS_BETTER_SORT))
    export_cmd = commands.add_parser("export-hf", help="write a Hugging Face Llama folder")
    export_cmd.add_argument("checkpoint", type=Path)
    export_cmd.add_argument("out", type=Path)
    history_cmd = commands.add_parser("history", help="trend of a figure across runs")
    history_cmd.add_argument("--file", type=Path, default=Path("reports/history.jsonl"))
    history_cmd.add_argument("--checkpoint", action="append", help="checkpoint name (default: all)")
    history_cmd.add_argument("--metric", default="val_bits_per_byte", choices=HEADLINE_FIELDS)
    history_cmd.add_argument("--previous", type=int, default=5, help="runs the latest is compared with")
    args = parser.parse_args(argv)
    try:
        if args.command == "export-hf":
            written = [export_hf(args.checkpoint, args.out)]
        elif args.command == "history":
            return show_history(args.file, args.checkpoint, args.metric, args.previous)
        elif args.command == "merge":
            written = merge(args.out, args.shards)
        else:
            found = read_records(args.records)
            records = [record for _, record in found]
            samples = {record["checkpoint"]["name"]: read_samples(file.parent) for file, record in found}
            written = write_comparison(records, args.out, args.sort_by, samples)
    except (CommandError, OSError, ValueError, ImportError, CheckpointError) as exc:
        print(f"lmeval-fixtures {args.command}: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
