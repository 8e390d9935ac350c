"""The run folder as files: a checkpoint's metrics.json, summary.md and samples written, records read back.

Every file is written atomically (``core.files.write_atomic``), so an interrupted run never
leaves a half-written file and earlier reports stay intact; every record read back is
refused in one line unless it parses and validates (``read_record``), so ``compare``,
``merge`` and ``--merge-into`` never fold in a file they cannot trust.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from ..core.errors import RecordsNotFound
from ..core.files import (
    REPORT_FILE_LIMIT_BYTES,
    json_lines,
    read_json_object,
    read_regular_text,
    special_file_message,
    write_atomic,
)
from ..core.schema import validate_record
from ..suite.figures import Figure
from ..suite.registry import Registry
from .plots import plot_batch_scaling
from .summary import render_summary


def write_samples(samples: dict[str, list[dict[str, Any]]], folder: Path) -> dict[str, str]:
    """``samples-<set>.jsonl`` per example set, atomically; returns each file's sha256 for the record."""
    fingerprints = {}
    for name, rows in sorted(samples.items()):
        text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        write_atomic(folder / f"samples-{name}.jsonl", text)
        fingerprints[f"samples-{name}.jsonl"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return fingerprints


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _flags(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, bool) for v in value)


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(_number(v) for v in value)


# What a row of each kind of example set holds, as the suite writes it and its readers (comparison.md's
# paired tests, export-lmeval) take it: a row without one of these is refused by line, never a KeyError later.
SAMPLE_FIELDS: dict[str, dict[str, Any]] = {
    "perplexity-": {"document": _count, "nll": _number, "tokens": _count, "bytes": _count, "words": _count},
    "smallbench-": {"idx": lambda v: v is not None, "label": _count, "loglikelihoods": _numbers, "greedy": _flags,
                    "correct": lambda v: isinstance(v, bool), "correct_norm": lambda v: isinstance(v, bool)},
}


def _sample_problem(fields: dict[str, Any], row: Any) -> str | None:
    """What keeps ``row`` from being a sample of its set (None when nothing)."""
    if not isinstance(row, dict):
        return f"not a sample (a JSON {type(row).__name__})"
    bad = [name for name, fits in fields.items() if not fits(row.get(name))]
    if bad:
        return f"not a sample ({bad[0]} is {row.get(bad[0])!r})"
    if "greedy" in fields and len(row["greedy"]) != len(row["loglikelihoods"]):
        return "not a sample (greedy and loglikelihoods differ in length)"
    return None


def read_samples(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The per-example sets written beside a metrics.json (empty when none were logged). A file
    that cannot be read as one (a FIFO, refused unopened; no permission; not UTF-8; a line that is
    not a sample of its set, ``SAMPLE_FIELDS``; over the bound) is ``RecordsNotFound`` naming it (and
    the line): its checkpoint's problem alone. A ``samples-*.jsonl`` of a set the suite never writes
    is not the suite's, and is not read."""
    found = {}
    for path in sorted(folder.glob("samples-*.jsonl")):
        name = path.stem.removeprefix("samples-")
        fields = next((f for prefix, f in SAMPLE_FIELDS.items() if name.startswith(prefix)), None)
        if fields is None:
            continue
        text = read_regular_text(path, RecordsNotFound, "samples file", REPORT_FILE_LIMIT_BYTES)
        rows = []
        for number, row in json_lines(text, path, RecordsNotFound):
            problem = _sample_problem(fields, row)
            if problem:
                raise RecordsNotFound(f"{path}:{number}: {problem}")
            rows.append(row)
        found[name] = rows
    return found


def read_record(file: Path) -> dict[str, Any]:
    """A metrics.json that parses and validates, or ``RecordsNotFound`` naming the file and what is wrong."""
    record = read_json_object(file, RecordsNotFound, "metrics.json")
    try:
        validate_record(record)
    except ValueError as exc:
        raise RecordsNotFound(f"{file}: not a valid metrics record: {exc}") from None
    return record


def record_files(paths: list[Path]) -> list[Path]:
    """Every metrics.json named, or found one or two levels under a folder named (a special file or
    a dangling link there included: its reader names it, rather than it being passed over)."""
    found: list[Path] = []
    for path in paths:
        if path.is_file() or special_file_message(path):  # a FIFO is refused by read_record, not waited on
            found.append(path)
        elif path.is_dir():
            found += _listed(path, "metrics.json") + checkpoint_record_files(path)
        else:
            raise RecordsNotFound(f"{path}: no such file or folder")
    if not found:
        raise RecordsNotFound(f"no metrics.json under {', '.join(map(str, paths))}")
    return found


def checkpoint_record_files(folder: Path) -> list[Path]:
    """``<checkpoint>/metrics.json`` of each checkpoint folder in ``folder`` where anything at all is
    there (a dangling link or a FIFO included, for its reader to name; ``glob`` would pass over a link)."""
    return [file for sub in sorted(folder.iterdir()) if not sub.name.startswith(".") and _is_folder(sub)
            for file in _listed(sub, "metrics.json")]


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _listed(folder: Path, name: str) -> list[Path]:
    """``folder / name`` when anything at all is there (``glob`` passes over a dangling link)."""
    return [folder / name] if os.path.lexists(folder / name) else []


def find_records(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every metrics.json named or found (``record_files``); each must validate, else ``RecordsNotFound``
    naming the first that does not (``merge``: a merged record must not miss a shard's figures)."""
    return [(file, read_record(file)) for file in record_files(paths)]


def find_readable_records(paths: list[Path], left_out: list[str], samples: bool = True
                          ) -> list[tuple[Path, dict[str, Any], dict[str, list[dict[str, Any]]]]]:
    """Every record named or found, with its samples (``samples``), that can be read; each that cannot
    (its record or a samples file) is left out and named in ``left_out``, one line each, so that one
    bad checkpoint costs only itself (``compare``, ``export-lmeval``, ``track``). When none can be
    read, ``RecordsNotFound`` names the first."""
    found, problems = [], []
    for file in record_files(paths):
        try:
            found.append((file, read_record(file), read_samples(file.parent) if samples else {}))
        except RecordsNotFound as exc:
            problems.append(str(exc))
            left_out.append(f"{exc}; {file.parent.name} left out")
    if not found:
        raise RecordsNotFound(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    return found


def read_run_folder(folder: Path) -> tuple[list[tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]],
                                           dict[str, str]]:
    """The records (and samples) of a run folder's checkpoints, and, by checkpoint folder, why a
    metrics.json there could not be read (it holds no figure that can be trusted)."""
    records, problems = [], {}
    for file in checkpoint_record_files(folder) if folder.is_dir() else []:
        try:
            records.append((read_record(file), read_samples(file.parent)))
        except (RecordsNotFound, OSError) as exc:  # one checkpoint's files: its problem, not the folder's
            problems[file.parent.name] = str(exc)
    return records, problems


def run_folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot take a run's records (``--merge-into``, ``merge OUT``), else None: a
    checkpoint's own folder (it holds metrics.json) would get the records one level too deep."""
    if (folder / "metrics.json").exists() or special_file_message(folder / "metrics.json"):
        return (f"{folder}: a checkpoint's report folder (it holds metrics.json), not a run folder; "
                f"pass the run folder above it, {folder.parent}")
    return None


def write_checkpoint_report(record: dict[str, Any], folder: Path, figures: list[Figure], registry: Registry,
                            comparison: bool = False,
                            samples: dict[str, list[dict[str, Any]]] | None = None,
                            problems: list[str] | None = None) -> list[Path]:
    """Validate, then write ``metrics.json`` and ``summary.md`` (and samples) into ``folder``.

    ``comparison``: the run folder also gets a comparison.md, which the summary links.
    ``samples``: per-example rows, written first and fingerprinted in the record.
    ``problems``: where a summary that cannot be written once metrics.json is (a folder in its
    place) is said, rather than raised: the record is written, and stays the run's.
    """
    written: list[Path] = []
    if samples:
        validate_record(record)
        record.setdefault("samples", {}).update(write_samples(samples, folder))
        written += [folder / name for name in sorted(record["samples"])]
    validate_record(record)
    metrics = folder / "metrics.json"
    summary = folder / "summary.md"
    write_atomic(metrics, json.dumps(record, indent=2, sort_keys=False) + "\n")
    try:
        plot = plot_batch_scaling(record, folder / "batch_scaling.png")
        text = render_summary(record, figures, registry, plot.name if plot else None)
        if comparison:
            text += "\nCompared with the other checkpoints of this run in [comparison.md](../comparison.md).\n"
        write_atomic(summary, text)
    except OSError as exc:
        if problems is None:
            raise
        problems.append(f"could not write {summary} ({exc.strerror or exc}); its record {metrics} is written")
        return [metrics] + written
    return [metrics, summary] + ([plot] if plot else []) + written
