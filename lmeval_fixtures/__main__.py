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
import sys
from pathlib import Path

from .checkpoints import CheckpointError
from .comparison import row_labels, write_comparison
from .figures import figure_table
from .hf_export import export_hf
from .history import metrics_in, read_history, trend
from .record import RecordMergeError
from .registry import Registry
from .report import RecordsNotFound, find_records, read_samples
from .run import Run
from .settings import default


class CommandError(Exception):
    """A usage problem worth one line on stderr and exit status 2."""


def merge(out: Path, shards: list[Path], sort_by: str = default("compare_by")) -> list[Path]:
    """Join shard reports of one run into ``out``, through the same ``Run.finish`` as a pytest run."""
    found = find_records(shards)
    run_ids = sorted({str(record.get("run_id")) for _, record in found})
    if len(run_ids) > 1:
        raise CommandError(f"shards of different runs ({', '.join(run_ids)}): give every shard the same --run-id")
    seen_data: dict[str, tuple[str, Path]] = {}
    run = Run({}, Registry.default())
    for file, record in found:
        for data_name, sha in record.get("data_fingerprints", {}).items():
            earlier = seen_data.setdefault(data_name, (sha, file))
            if earlier[0] != sha:
                raise CommandError(f"{file}: refused: {data_name} differs from the data of {earlier[1]}")
        try:
            run.adopt(record, read_samples(file.parent))
        except RecordMergeError as exc:
            raise CommandError(f"{file}: refused: {exc}") from None
    done = run.finish(out, history=None, compare_by=sort_by, run_id=run_ids[0])
    if done.errors:
        raise CommandError("; ".join(done.errors))
    return done.paths


def show_history(path: Path, checkpoints: list[str] | None, metric: str, previous: int) -> int:
    if not path.exists():
        raise CommandError(f"{path}: no history yet (every pytest benchmarks run appends to it)")
    lines = read_history(path)
    if metric not in metrics_in(lines):
        raise CommandError(f"--metric {metric}: {path} holds {', '.join(metrics_in(lines)) or 'no figures'}")
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
    merge_cmd.add_argument("--sort-by", default=default("compare_by"),
                           help="figure key comparison.md is sorted by (default: %(default)s)")
    compare_cmd = commands.add_parser("compare", help="compare records of earlier runs")
    compare_cmd.add_argument("records", type=Path, nargs="+")
    compare_cmd.add_argument("--out", type=Path, default=Path("."), help="folder for comparison.md (default: .)")
    compare_cmd.add_argument("--sort-by", default=default("compare_by"),
                             help="figure key to sort by (default: %(default)s)")
    export_cmd = commands.add_parser("export-hf", help="write a Hugging Face Llama folder")
    export_cmd.add_argument("checkpoint", type=Path)
    export_cmd.add_argument("out", type=Path)
    export_cmd.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    history_cmd = commands.add_parser("history", help="trend of a figure across runs")
    history_cmd.add_argument("--file", type=Path, default=Path("reports/history.jsonl"))
    history_cmd.add_argument("--checkpoint", action="append", help="checkpoint name (default: all)")
    history_cmd.add_argument("--metric", default=default("compare_by"),
                             help="a figure of the history file (default: %(default)s)")
    history_cmd.add_argument("--previous", type=int, default=5, help="runs the latest is compared with")
    args = parser.parse_args(argv)
    try:
        if args.command == "export-hf":
            written = [export_hf(args.checkpoint, args.out, force=args.force)]
        elif args.command == "history":
            return show_history(args.file, args.checkpoint, args.metric, args.previous)
        elif args.command == "merge":
            written = merge(args.out, args.shards, args.sort_by)
        else:
            found = find_records(args.records)
            records = [record for _, record in found]
            samples = {label: read_samples(file.parent)
                       for label, (file, _) in zip(row_labels(records), found, strict=True)}
            written = write_comparison(records, args.out, figure_table(Registry.default(), records), args.sort_by,
                                       samples)
    except (CommandError, RecordsNotFound, OSError, ValueError, ImportError, CheckpointError) as exc:
        print(f"lmeval-fixtures {args.command}: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
