"""Command line: ``lmeval-fixtures`` (also ``python -m lmeval_fixtures``).

    run [PYTEST_ARGS...]      the benchmark items shipped in the package, from any folder:
                              pytest -p lmeval_fixtures.plugin --pyargs lmeval_fixtures.benchmarks ...
    merge OUT SHARD_DIR...    join shard reports (same run, same data) into OUT
    compare RECORD_OR_DIR...  comparison.md (and .png) for records of earlier runs; records
                              measured with other settings or data are grouped apart, not ranked
    export-hf CHECKPOINT OUT_DIR
                              a Hugging Face Llama folder with the same weights (needs the hf extra)
    history [--checkpoint NAME] [--metric KEY]
                              trend of a figure over the runs in reports/history.jsonl that were
                              measured as the latest was
    watch DIR [--interval S] [--metric KEY] [--families F,...] [--set KEY=VALUE]
                              evaluate each new checkpoint in DIR as training writes it; Ctrl-C stops
    export-lmeval RECORD_OR_DIR... [--out DIR]
                              each record (and its --log-samples samples) in lm-evaluation-harness's
                              layout: DIR/<checkpoint>/results_<date>.json, samples_<task>_<date>.jsonl
    track RECORD_OR_DIR... --to wandb|tensorboard[:DIR]
                              each record of earlier runs logged as one run of an experiment
                              tracker (the track extra; WANDB_MODE=offline logs offline)
    list [--json] [--task-file FILE] [--corpus NAME=SOURCE]
                              tasks (prompt sets, figure keys, the names each is accepted by),
                              corpora and splits, families, reference checkpoints and their paths
    fetch-data DIR [--overwrite]
                              the local data layout (what --data-dir reads), from the Hugging Face hub

Exit status: 0 done; 2 the input's fault (an error of the suite's family, ``LmevalError``,
or the operating system's ``OSError``: one line naming the file or option; or a record that
compare, export-lmeval or track could not read, left out and named while the others were done); 3 a bug in
lmeval-fixtures (any other exception: its traceback, as pytest's "internal error" is 3).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from ..core.errors import CommandError, LmevalError
from ..core.formatting import visible
from ..core.names import closest_name

# Only the option table (no torch) is imported here: `--help` and `--version` answer at once,
# and each command imports what it needs when it runs.
from ..evaluation.options import Range, default

DISTRIBUTION = "lmeval-fixtures"
# the numeric options of the commands, checked before a command starts (as a run's options are)
PREVIOUS = Range(1, 10**6)
INTERVAL = Range(0, 86400, whole=False, open_low=True)


def package_version() -> str:
    """The installed distribution's version: a source tree that was never installed says so
    instead of failing, since ``--version`` is what one asks when something seems off."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "(version unknown: not installed; pip install -e .)"


def merge(out: Path, shards: list[Path], compare_by: str = default("compare_by")) -> list[Path]:
    """Join shard reports of one run into ``out``, through the same ``Run.finish`` as a pytest run.
    One run is measured one way: a record not measured alike with every record before it
    (``alike.differences``, the rule of record merge, comparison and history) is refused."""
    from ..core.errors import RecordMergeError
    from ..evaluation.run import Run
    from ..records.alike import differences, refusal
    from ..records.record import shard_coverage
    from ..records.store import find_records, read_samples, run_folder_problem
    from ..suite.registry import Registry

    problem = run_folder_problem(out)
    if problem:
        raise CommandError(f"OUT {problem}")
    found = find_records(shards)
    run_ids = sorted({str(record.get("run_id")) for _, record in found})
    if len(run_ids) > 1:
        raise CommandError(f"shards of different runs ({', '.join(run_ids)}): give every shard the same --run-id")
    coverage = shard_coverage([record for _, record in found])
    run = Run({}, Registry.default())
    for index, (file, record) in enumerate(found):
        for earlier_file, earlier in found[:index]:
            why = differences(earlier, record)
            if why:
                raise CommandError(f"{file}: refused: " + refusal(why, str(earlier_file), other=str(file),
                                                                  reference_data=f"the data of {earlier_file}"))
        try:
            run.adopt(record, read_samples(file.parent))
        except RecordMergeError as exc:
            raise CommandError(f"{file}: refused: {exc}") from None
    for name, (record, samples) in list(run.earlier.items()) if coverage else []:
        # figures kept, and said not to be the whole run
        run.earlier[name] = (record | {"complete": False, "errors": [*record.get("errors", []), f"merge: {coverage}"]},
                             samples)
    done = run.finish(out, history=None, compare_by=compare_by, run_id=run_ids[0])
    for warning in done.warnings:
        print(warning, file=sys.stderr)
    if done.errors:
        raise CommandError("; ".join(done.errors))
    if coverage:
        raise CommandError(f"merged into {out} with complete: false: {coverage}")
    return done.paths


def compare(paths: list[Path], out: Path, compare_by: str, left_out: list[str]) -> list[Path]:
    """comparison.md for records of earlier runs; ``write_comparison`` keeps records measured
    otherwise in groups of their own. A record (or its samples) that cannot be read is left out and
    named in ``left_out``; the others are compared."""
    from ..records.comparison import row_labels, write_comparison
    from ..records.store import find_readable_records
    from ..suite.registry import Registry

    found = find_readable_records(paths, left_out)
    records = [record for _, record, _ in found]
    samples = {label: rows for label, (_, _, rows) in zip(row_labels(records), found, strict=True)}
    return write_comparison(records, out, Registry.default().figure_table(records), compare_by, samples)


def show_history(path: Path, checkpoints: list[str] | None, metric: str, previous: int) -> int:
    """Print each checkpoint's trend of ``metric``: the runs measured as its latest, a note on
    the runs left out (other settings or data), and the verdict on the latest value."""
    from ..records.history import metrics_in, read_history, trend

    if not path.exists() and not path.is_symlink():  # a dangling link is named as one by read_history
        raise CommandError(f"{path}: no history yet (every pytest benchmarks run appends to it)")
    from ..suite.figures import resolve_figure_key
    from ..suite.registry import Registry

    lines = read_history(path)
    held = metrics_in(lines)
    # one name per figure: a task's other names (smallbench_sst2_acc, SST-2) mean its key
    metric = metric if metric in held else resolve_figure_key(metric, Registry.default().figure_table()) or metric
    if metric not in held:
        raise CommandError(f"--metric {metric}: {path} holds {', '.join(held) or 'no figures'}")
    names = checkpoints or sorted({line["checkpoint"] for line in lines})
    for name in names:
        found = trend(lines, name, metric, previous)
        print(visible(f"== {name}: {metric}"))  # names and notes from a file: shown, never acting on the terminal
        for row in found.rows:
            print("  " + visible(row))
        for note in found.notes:
            print(visible(note))
        print(visible(found.verdict))
    return 0


def export_lmeval(paths: list[Path], out: Path, left_out: list[str]) -> list[Path]:
    """Records of earlier runs in lm-evaluation-harness's results and samples layout (``records.lmeval_export``);
    one that cannot be read (record or samples) is left out and named in ``left_out``."""
    from ..records.lmeval_export import export_lmeval as export_one
    from ..records.store import find_readable_records

    written = []
    for _, record, samples in find_readable_records(paths, left_out):
        written += export_one(record, samples, out)
    return written


def track(paths: list[Path], to: str, left_out: list[str]) -> list[str]:
    """Records of earlier runs, each logged as one run of the tracker ``to`` names (``records.tracking``);
    one that cannot be read is left out and named in ``left_out``."""
    from ..records.store import find_readable_records
    from ..records.tracking import TrackSpec, track_records
    from ..suite.registry import Registry

    spec = TrackSpec.parse(to, "--to")
    records = [record for _, record, _ in find_readable_records(paths, left_out, samples=False)]
    try:
        return track_records(records, Registry.default().figure_table(records), spec)
    except LmevalError:
        raise
    except Exception as exc:  # the tracker's own failures (no login, no network), in one line
        raise CommandError(f"--to {to}: could not log the run: {type(exc).__name__}: {exc}") from None


def show_listing(task_files: list[Path], corpora: list[str], as_json: bool) -> int:
    import json

    from .listing import list_suite, render_listing

    found = list_suite(task_files, corpora)
    print(json.dumps(found, indent=2) if as_json else render_listing(found), end="\n" if as_json else "")
    return 0


def fetch(dest: Path, overwrite: bool) -> list[Path]:
    """The data layout under ``dest`` from the hub (``fetch_data.fetch_data``); each step on stderr,
    so that stdout holds only the files written."""
    from ..suite.fetch_data import fetch_data

    return fetch_data(dest, overwrite=overwrite, progress=lambda line: print(line, file=sys.stderr))


def export(checkpoint: Path, out: Path, force: bool) -> list[Path]:
    from ..models.hf_export import export_hf

    return [export_hf(checkpoint, out, force=force)]


# The failures a command reports in one line: the suite's own family, and the operating
# system's (a folder that cannot be written, a disk that is full). Nothing else: a ValueError
# or ImportError from the code itself is a bug, and must not read as the user's mistake.
USER_ERRORS: tuple[type[BaseException], ...] = (LmevalError, OSError)
INTERNAL_ERROR = 3  # as pytest's ExitCode.INTERNAL_ERROR


class DeprecatedAlias(argparse.Action):
    """An option's old name: still accepted, hidden from ``--help``, and a note on stderr names the new one."""

    def __init__(self, option_strings: list[str], dest: str, new_name: str, **kwargs: Any) -> None:
        self.new_name = new_name
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: {option_string} is deprecated; use {self.new_name}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_compare_by(command: argparse.ArgumentParser) -> None:
    """``--compare-by``, named as the pytest option it mirrors; ``--sort-by``, its old name, still works."""
    command.add_argument("--compare-by", default=default("compare_by"), metavar="KEY",
                         help="figure key comparison.md is sorted by, as pytest's --compare-by "
                              "(default: %(default)s)")
    command.add_argument("--sort-by", dest="compare_by", action=DeprecatedAlias, new_name="--compare-by")


RUN_PREFIX = ("-p", "lmeval_fixtures.plugin", "-p", "no:cacheprovider", "--pyargs", "lmeval_fixtures.benchmarks")


def run_suite(pytest_args: list[str]) -> int:
    """The packaged items under pytest, with every pytest and suite option passed through; the
    reports go to ./reports (the installed package is never written to, nor its .pytest_cache).
    The rootdir is this folder unless ``--rootdir`` is given: pytest would otherwise guess it from
    the values of the suite's options (``--checkpoint /abs/x`` makes it ``/``)."""
    import pytest

    if any(arg in ("-h", "--help") for arg in pytest_args):
        print(suite_options_help())
    rootdir = [] if any(str(a).startswith("--rootdir") for a in pytest_args) else [f"--rootdir={Path.cwd()}"]
    return int(pytest.main([*RUN_PREFIX, *rootdir, *pytest_args]))


def suite_options_help() -> str:
    """The suite's options, shown before pytest's own help (which runs to hundreds of lines)."""
    from ..evaluation.options import OPTIONS

    parser = argparse.ArgumentParser(
        prog="lmeval-fixtures run", add_help=False, usage="%(prog)s [SUITE OPTIONS] [PYTEST OPTIONS]",
        description="The benchmark items shipped in the package, under pytest. The suite's options come first; "
                    "pytest's own follow (reports go to ./reports unless --report-dir is given).")
    group = parser.add_argument_group("suite options (each is also --lmeval-NAME)")
    for option in OPTIONS:
        group.add_argument(option.flag, **{k: v for k, v in option.argparse_kwargs().items() if k != "type"})
    return parser.format_help() + "\npytest's options:\n"


# what --set may not name: watch decides these itself, or has an option of its own for them
WATCH_OWN = {"checkpoint": "watch evaluates each checkpoint that appears in DIR",
             "run_id": "use watch's --run-id", "shard": "watch evaluates every item of each checkpoint"}
ON = ("true", "1", "yes", "on")
OFF = ("false", "0", "no", "off")


def set_options(pairs: list[str], given: dict[str, Any]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as the options ``evaluate`` takes, read as the command line reads
    them: every option by its name (``max_eval_tokens`` or ``max-eval-tokens``); an on/off option
    by ``true``/``false`` (``on``/``off``, ``yes``/``no``, ``1``/``0``); a repeatable option
    (``corpus``, ``task_file``) by repeating it; ``--log-samples`` alone as ``log_samples=``. The
    values are then checked as a run checks them (``watch_settings``)."""
    from ..evaluation.options import OPTIONS

    declared = {option.dest: option for option in OPTIONS}
    options = dict(given)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().removeprefix("--").replace("-", "_")
        if not sep or not key:
            raise CommandError(f"--set {pair!r}: expected KEY=VALUE, e.g. max_eval_tokens=20000")
        if key in WATCH_OWN:
            raise CommandError(f"--set {key}: {WATCH_OWN[key]}")
        option = declared.get(key)
        if option is None:
            known = sorted(set(declared) - set(WATCH_OWN))
            close = closest_name(key, known)
            raise CommandError(f"--set {key}: no such option; " + (f"did you mean {close}?" if close else
                                                                   f"known: {', '.join(known)}"))
        if key in given or (key in options and option.action != "append"):
            raise CommandError(f"--set {key}: given twice (watch's --{key.replace('_', '-')} or an earlier --set)")
        if option.action == "store_true":
            if value.lower() not in ON + OFF:
                raise CommandError(f"--set {key}={value}: {option.flag} is on or off; give {key}=true or {key}=false")
            options[key] = value.lower() in ON
        elif option.action == "append":
            options.setdefault(key, []).append(value)
        elif option.nargs == "?" and value == "":
            options[key] = option.const
        else:
            options[key] = value
    return options


def watch_settings(options: dict[str, Any], run_id: str | None) -> None:
    """Check every option of a watch as a run checks them, before the first poll: a bad value is
    one line now, not a failure at the first checkpoint an hour into training."""
    from ..evaluation.options import option_values
    from ..evaluation.settings import REFERENCE_DIR, settings_from_options

    values = option_values(**{k: v for k, v in options.items() if k != "families"})
    values.checkpoint = [str(REFERENCE_DIR)]  # stands in for the checkpoints that will appear
    values.run_id = run_id
    settings_from_options(values, [], None, Path.cwd())


def watch_folder(args: argparse.Namespace) -> int:
    import signal
    import time

    from .watch import watch

    given: dict[str, Any] = {key: getattr(args, key) for key in ("data_dir", "report_dir") if getattr(args, key)}
    options = set_options(args.set or [], given)
    families = [f for f in args.families.split(",") if f]
    from ..api import FAMILIES

    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        raise CommandError(f"--families {args.families}: choose among {', '.join(FAMILIES)}")
    watch_settings(options, args.run_id)
    options["families"] = families

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        watcher = watch(args.dir, run_id=args.run_id or time.strftime("watch-%Y%m%dT%H%M%SZ", time.gmtime()),
                        metric=args.metric, interval=args.interval, options=options)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 2 if watcher.gone else 0


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; building it imports nothing heavy."""
    parser = argparse.ArgumentParser(prog="lmeval-fixtures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", add_help=False, help="run the benchmark items shipped in the package (any pytest "
                        "or suite option after it; `run --help` lists the suite's options, then pytest's)")
    merge_cmd = commands.add_parser("merge", help="join shard reports into one")
    merge_cmd.add_argument("out", type=Path, metavar="OUT", help="run folder to write (or to fold the shards into)")
    merge_cmd.add_argument("shards", type=Path, nargs="+", metavar="SHARD_DIR",
                           help="a shard's run folder (reports/<run_id> of its --report-dir), or a metrics.json")
    add_compare_by(merge_cmd)
    compare_cmd = commands.add_parser("compare", help="compare records of earlier runs")
    compare_cmd.add_argument("records", type=Path, nargs="+", metavar="RECORD_OR_DIR",
                             help="a metrics.json, or a folder holding them (a run folder, or a checkpoint's)")
    compare_cmd.add_argument("--out", type=Path, default=Path("."), help="folder for comparison.md (default: .)")
    add_compare_by(compare_cmd)
    export_cmd = commands.add_parser("export-hf", help="write a Hugging Face Llama folder")
    export_cmd.add_argument("checkpoint", type=Path, metavar="CHECKPOINT",
                            help="a native checkpoint (.safetensors with config.json beside it, or .pt)")
    export_cmd.add_argument("out", type=Path, metavar="OUT_DIR", help="new or empty folder for the Llama export")
    export_cmd.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    history_cmd = commands.add_parser("history", help="trend of a figure across runs measured alike")
    history_cmd.add_argument("--file", type=Path, default=Path("reports/history.jsonl"),
                             help="the history file (default: %(default)s)")
    history_cmd.add_argument("--checkpoint", action="append", metavar="NAME",
                             help="checkpoint name; repeatable (default: all)")
    history_cmd.add_argument("--metric", default=default("compare_by"), metavar="KEY",
                             help="a figure of the history file (default: %(default)s)")
    history_cmd.add_argument("--previous", type=int, default=5, metavar="N",
                             help=f"runs the latest is compared with, {PREVIOUS.text()} (default: %(default)s)")
    watch_cmd = commands.add_parser("watch", help="evaluate each new checkpoint in a folder as training writes it")
    watch_cmd.add_argument("dir", type=Path, metavar="DIR", help="the folder training saves checkpoints into")
    watch_cmd.add_argument("--interval", type=float, default=30.0, metavar="S",
                           help=f"seconds between polls, {INTERVAL.text()}; a checkpoint is read once unchanged for "
                                "one (default: 30)")
    watch_cmd.add_argument("--metric", default=default("compare_by"), metavar="KEY",
                           help="figure of trend.md / trend.png against training step (default: %(default)s)")
    watch_cmd.add_argument("--families", default="perplexity,smallbench", metavar="F,...",
                           help="which families to run (default: %(default)s)")
    watch_cmd.add_argument("--run-id", metavar="ID", help="the run folder every checkpoint goes into "
                           "(default: watch-<UTC time>); the same id again continues it")
    watch_cmd.add_argument("--data-dir", metavar="DIR", help="as the pytest option")
    watch_cmd.add_argument("--report-dir", metavar="DIR", help="as the pytest option (default: reports)")
    watch_cmd.add_argument("--set", action="append", metavar="KEY=VALUE",
                           help="any other option by its name, e.g. --set max_eval_tokens=20000; repeatable")
    lmeval_cmd = commands.add_parser("export-lmeval", help="write records in lm-evaluation-harness's results and "
                                     "samples layout")
    lmeval_cmd.add_argument("records", type=Path, nargs="+", metavar="RECORD_OR_DIR",
                            help="a metrics.json, or a folder holding them (a run folder, or a checkpoint's)")
    lmeval_cmd.add_argument("--out", type=Path, default=Path("lmeval-results"),
                            help="folder for <checkpoint>/results_<date>.json (default: %(default)s)")
    track_cmd = commands.add_parser("track", help="log records of earlier runs to W&B or TensorBoard")
    track_cmd.add_argument("records", type=Path, nargs="+", metavar="RECORD_OR_DIR",
                           help="a metrics.json, or a folder holding them (a run folder, or a checkpoint's)")
    track_cmd.add_argument("--to", required=True, metavar="BACKEND[:DIR]",
                           help="wandb or tensorboard, optionally :DIR for its files (default: wandb's ./wandb, "
                                "tensorboard's ./runs)")
    list_cmd = commands.add_parser("list", help="tasks, corpora, families and reference checkpoints (as "
                                   "lm_eval --tasks list)")
    list_cmd.add_argument("--json", action="store_true", help="the listing as one JSON object")
    list_cmd.add_argument("--task-file", type=Path, action="append", default=[], metavar="FILE",
                          help="a task file declared as the pytest option declares it; repeatable")
    list_cmd.add_argument("--corpus", action="append", default=[], metavar="NAME=SOURCE",
                          help="a corpus declared as the pytest option declares it; repeatable")
    fetch_cmd = commands.add_parser("fetch-data", help="write the local data layout from the Hugging Face hub")
    fetch_cmd.add_argument("dest", type=Path, metavar="DIR",
                           help="folder to write the data layout into (then pass it as --data-dir)")
    fetch_cmd.add_argument("--overwrite", action="store_true",
                           help="replace files already there (default: refuse to)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # everything after it is pytest's, options included
        return run_suite(argv[1:])
    args = build_parser().parse_args(argv)
    left_out: list[str] = []  # records (or samples) a command could not read: named, the others still done
    try:
        if args.command == "watch":
            INTERVAL.check("--interval", args.interval)
            return watch_folder(args)
        if args.command == "list":
            return show_listing(args.task_file, args.corpus, args.json)
        if args.command == "history":
            PREVIOUS.check("--previous", args.previous)
            return show_history(args.file, args.checkpoint, args.metric, args.previous)
        if args.command == "export-hf":
            written = export(args.checkpoint, args.out, args.force)
        elif args.command == "merge":
            written = merge(args.out, args.shards, args.compare_by)
        elif args.command == "export-lmeval":
            written = export_lmeval(args.records, args.out, left_out)
        elif args.command == "track":
            written = track(args.records, args.to, left_out)
        elif args.command == "fetch-data":
            written = fetch(args.dest, args.overwrite)
        else:
            written = compare(args.records, args.out, args.compare_by, left_out)
    except USER_ERRORS as exc:
        print(f"lmeval-fixtures {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print(f"lmeval-fixtures {args.command}: internal error (a bug in lmeval-fixtures, not in your input); "
              "please report it with the traceback above", file=sys.stderr)
        return INTERNAL_ERROR
    for path in written:
        print(path)
    for line in left_out:
        print(f"lmeval-fixtures {args.command}: {line}", file=sys.stderr)
    return 2 if left_out else 0


if __name__ == "__main__":
    sys.exit(main())
