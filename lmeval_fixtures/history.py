"""Run history: one line per checkpoint per run in ``reports/history.jsonl``, and trends over it."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from .data import json_lines
from .figures import Figure
from .loaded import special_file_message

IDENTITY_FIELDS = ("run_id", "timestamp", "git_commit", "checkpoint", "sha256", "complete")


def history_line(record: dict[str, Any], figures: list[Figure]) -> dict[str, Any]:
    """Who and when, then every headline figure of the table (a declared corpus or task included)."""
    return {
        "run_id": record["run_id"], "timestamp": record["timestamp"], "git_commit": record.get("git_commit"),
        "checkpoint": record["checkpoint"]["name"], "sha256": record["checkpoint"].get("sha256"),
        "complete": record.get("complete", True),
        **{f.key: f.value(record) for f in figures if f.headline},
    }


def metrics_in(lines: list[dict[str, Any]]) -> list[str]:
    """The figures a history file holds (what ``history --metric`` can show)."""
    return sorted({key for line in lines for key in line} - set(IDENTITY_FIELDS))


def append_history(path: Path, records: list[dict[str, Any]], figures: list[Figure]) -> None:
    """One ``write`` per run, so concurrent runs do not interleave half lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(history_line(r, figures), sort_keys=True) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every line, checked: a line that is not a history entry is named by file and line number."""
    special = special_file_message(path)
    if special:
        raise ValueError(special)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable history file ({exc})") from None
    lines = []
    for number, entry in json_lines(text, path, ValueError):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}:{number}: not a history entry (a JSON {type(entry).__name__})")
        missing = [key for key in ("run_id", "timestamp", "checkpoint") if not isinstance(entry.get(key), str)]
        if missing:
            raise ValueError(f"{path}:{number}: history entry without {', '.join(missing)}")
        for key, value in entry.items():
            if key not in IDENTITY_FIELDS and value is not None and (
                    isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise ValueError(f"{path}:{number}: {key} is {value!r}, not a number")
        lines.append(entry)
    return lines


def trend(lines: list[dict[str, Any]], checkpoint: str, metric: str, previous: int = 5) -> tuple[list[str], str]:
    """Table rows (oldest first) of ``metric`` for ``checkpoint`` and a verdict on the latest value:
    inside or outside the range mean +- 2 standard deviations of the ``previous`` runs before it."""
    runs = [line for line in lines if line["checkpoint"] == checkpoint and line.get(metric) is not None]
    rows = [f"{r['timestamp']}  {r['run_id']:<28} {str(r.get('git_commit') or '')[:12]:<12}  {r[metric]:.6g}"
            for r in runs]
    if len(runs) < 2:
        return rows, f"{checkpoint} {metric}: {len(runs)} run(s), nothing to compare yet"
    latest = runs[-1][metric]
    before = [r[metric] for r in runs[-1 - previous:-1]]
    mean = statistics.fmean(before)
    spread = statistics.stdev(before) if len(before) > 1 else 0.0
    low, high = mean - 2 * spread, mean + 2 * spread
    inside = low <= latest <= high
    verdict = (f"{checkpoint} {metric}: latest {latest:.6g} is {'within' if inside else 'OUTSIDE'} the previous "
               f"{len(before)} run(s): mean {mean:.6g} +- 2 SD [{low:.6g}, {high:.6g}]")
    return rows, verdict
