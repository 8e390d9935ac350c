"""The run folder as files: a checkpoint's metrics.json, summary.md and samples written, records read back.

Every file is written atomically (``core.files.write_atomic``), so an interrupted run never
leaves a half-written file and earlier reports stay intact; every record read back is
refused in one line unless it parses and validates (``read_record``), so ``compare``,
``merge`` and ``--merge-into`` never fold in a file they cannot trust.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..core.errors import RecordsNotFound
from ..core.files import json_lines, read_json_object, special_file_message, write_atomic
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


def read_samples(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The per-example sets written beside a metrics.json (empty when none were logged). A file
    that cannot be read as one (a FIFO, refused unopened; no permission; not UTF-8; a line that is
    not a JSON object) is ``RecordsNotFound`` naming it (and the line): its checkpoint's problem alone."""
    found = {}
    for path in sorted(folder.glob("samples-*.jsonl")):
        special = special_file_message(path)
        if special:
            raise RecordsNotFound(special)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RecordsNotFound(f"{path}: samples file cannot be read ({exc.strerror or exc})") from None
        except UnicodeDecodeError as exc:
            raise RecordsNotFound(f"{path}: samples file is not UTF-8 (byte {exc.start})") from None
        rows = []
        for number, row in json_lines(text, path, RecordsNotFound):
            if not isinstance(row, dict):
                raise RecordsNotFound(f"{path}:{number}: not a sample (a JSON {type(row).__name__})")
            rows.append(row)
        found[path.stem.removeprefix("samples-")] = rows
    return found


def read_record(file: Path) -> dict[str, Any]:
    """A metrics.json that parses and validates, or ``RecordsNotFound`` naming the file and what is wrong."""
    record = read_json_object(file, RecordsNotFound, "metrics.json")
    try:
        validate_record(record)
    except ValueError as exc:
        raise RecordsNotFound(f"{file}: not a valid metrics record: {exc}") from None
    return record


def find_records(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every metrics.json named, or found one or two levels under a folder named; each must validate."""
    found: list[Path] = []
    for path in paths:
        if path.is_file() or special_file_message(path):  # a FIFO is refused by read_record, not waited on
            found.append(path)
        elif path.is_dir():
            found += sorted(path.glob("metrics.json")) + sorted(path.glob("*/metrics.json"))
        else:
            raise RecordsNotFound(f"{path}: no such file or folder")
    if not found:
        raise RecordsNotFound(f"no metrics.json under {', '.join(map(str, paths))}")
    return [(file, read_record(file)) for file in found]


def read_run_folder(folder: Path) -> tuple[list[tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]],
                                           dict[str, str]]:
    """The records (and samples) of a run folder's checkpoints, and, by checkpoint folder, why a
    metrics.json there could not be read (it holds no figure that can be trusted)."""
    records, problems = [], {}
    for file in sorted(folder.glob("*/metrics.json")) if folder.is_dir() else []:
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
                            samples: dict[str, list[dict[str, Any]]] | None = None) -> list[Path]:
    """Validate, then write ``metrics.json`` and ``summary.md`` (and samples) into ``folder``.

    ``comparison``: the run folder also gets a comparison.md, which the summary links.
    ``samples``: per-example rows, written first and fingerprinted in the record.
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
    plot = plot_batch_scaling(record, folder / "batch_scaling.png")
    text = render_summary(record, figures, registry, plot.name if plot else None)
    if comparison:
        text += "\nCompared with the other checkpoints of this run in [comparison.md](../comparison.md).\n"
    write_atomic(summary, text)
    return [metrics, summary] + ([plot] if plot else []) + written
