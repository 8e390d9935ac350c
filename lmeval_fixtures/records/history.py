"""Run history: one line per checkpoint per run in ``reports/history.jsonl``, and trends over it.

A figure trends only against figures measured the same way. So each line carries, beside
its figures, the settings that change a figure (``alike.FIGURE_SETTINGS``, plus the
checkpoint's context) and the fingerprints of the data its run read; ``trend`` leaves out
the lines measured otherwise than the latest one (``alike.differences``, the rule merge,
comparison and gates follow too) and says which and why. A line written before these were
recorded still reads: its settings count as "not recorded", so it trends only with its kind.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import RecordError
from ..core.files import REPORT_FILE_LIMIT_BYTES, append_whole, read_regular_bytes
from ..core.formatting import number
from ..suite.figures import Figure
from .alike import CONTEXT, INPUTS, differences, figure_settings

IDENTITY_FIELDS = ("run_id", "timestamp", "git_commit", "checkpoint", "sha256", "complete")
CONDITION_FIELDS = ("settings", "data_fingerprints", INPUTS)  # how the figures of a line were measured


def context_length(record: dict[str, Any], figures: list[Figure]) -> int | None:
    """The context the checkpoint's perplexity was scored in, read off the corpus entries
    the figure table knows; None when no perplexity was measured (or contexts disagree)."""
    found = set()
    for figure in figures:
        entry = figure.entry(record) if "context_length" in figure.same else None
        if entry and entry.get("context_length") is not None:
            found.add(entry["context_length"])
    return found.pop() if len(found) == 1 else None


def history_line(record: dict[str, Any], figures: list[Figure]) -> dict[str, Any]:
    """Who and when; how it was measured (the figure-changing settings, the context, the data
    fingerprints: what ``trend`` needs to compare like with like); then every headline figure
    of the table (a declared corpus or task included) and every figure marked ``history`` (each
    task's accuracy and the small-model figures)."""
    settings = figure_settings(record)
    settings.pop(CONTEXT, None)  # the context is the model's, as its perplexity entries state it
    context = context_length(record, figures)
    if context is not None:
        settings[CONTEXT] = context
    return {
        "run_id": record["run_id"], "timestamp": record["timestamp"], "git_commit": record.get("git_commit"),
        "checkpoint": record["checkpoint"]["name"], "sha256": record["checkpoint"].get("sha256"),
        "complete": record.get("complete", True),
        "settings": settings, "data_fingerprints": dict(record.get("data_fingerprints") or {}),
        **({INPUTS: dict(record[INPUTS])} if isinstance(record.get(INPUTS), dict) else {}),
        **{f.key: f.value(record) for f in figures if f.headline or f.history},
    }


def metrics_in(lines: list[dict[str, Any]]) -> list[str]:
    """The figures a history file holds (what ``history --metric`` can show)."""
    return sorted({key for line in lines for key in line} - set(IDENTITY_FIELDS) - set(CONDITION_FIELDS))


def append_history(path: Path, records: list[dict[str, Any]], figures: list[Figure]) -> None:
    """The run's lines whole or not at all (``core.files.append_whole``: locked, cut back on a full
    disk, begun on a line of their own), so concurrent runs never interleave half lines."""
    text = "".join(json.dumps(history_line(r, figures), sort_keys=True) + "\n" for r in records)
    append_whole(path, text)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _condition_problem(key: str, value: Any) -> str | None:
    """What is wrong with a line's ``settings`` or ``data_fingerprints`` (None when nothing)."""
    if not isinstance(value, dict):
        return f"{key} is {value!r}, not an object"
    for name, item in value.items():
        if key in ("data_fingerprints", INPUTS) and not isinstance(item, str):
            return f"{key}[{name!r}] is {item!r}, not a sha256"
        if key == "settings" and not (item is None or isinstance(item, (str, bool)) or _is_number(item)):
            return f"settings[{name!r}] is {item!r}, not a setting's value"
    return None


def read_history(path: Path, warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Every history entry of the file, checked. A line that is not one (half a line left by a full
    disk or a killed writer, an edit by hand) is skipped, and ``warn`` gets one line naming the file,
    the line number and what is wrong (stderr by default): one bad line never blocks the history of
    every later run. Lines without ``settings`` or ``data_fingerprints`` (written by an older
    version) are read as they are; ``differences`` treats their settings as not recorded."""
    data = read_regular_bytes(path, RecordError, "history file", REPORT_FILE_LIMIT_BYTES)
    say = warn or (lambda line: print(line, file=sys.stderr))
    lines = []
    for line_number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        entry, problem = _history_entry(raw)
        if problem:
            say(f"{path}:{line_number}: {problem}; line skipped")
        else:
            lines.append(entry)
    return lines


def _history_entry(raw: bytes) -> tuple[dict[str, Any], str | None]:
    """One line (its bytes, so that one line of other bytes spoils only itself) as a history entry,
    or what is wrong with it."""
    try:
        entry = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return {}, "not UTF-8"
    except json.JSONDecodeError as exc:
        return {}, f"invalid JSON ({exc.msg})"
    if not isinstance(entry, dict):
        return {}, f"not a history entry (a JSON {type(entry).__name__})"
    missing = [key for key in ("run_id", "timestamp", "checkpoint") if not isinstance(entry.get(key), str)]
    if missing:
        return {}, f"history entry without {', '.join(missing)}"
    for key, value in entry.items():
        if key in CONDITION_FIELDS:
            problem = _condition_problem(key, value)
            if problem:
                return {}, problem
        elif key not in IDENTITY_FIELDS and value is not None and not _is_number(value):
            return {}, f"{key} is {value!r}, not a number"
    return entry, None


@dataclass(frozen=True)
class Trend:
    """What ``history`` prints for one checkpoint and figure: the rows trended (oldest first),
    the verdict on the latest, and notes (runs left out as measured otherwise, and why)."""

    rows: list[str]
    verdict: str
    notes: list[str]


def _listed(reasons: list[str], most: int = 4) -> str:
    return "; ".join(reasons[:most]) + (f"; and {len(reasons) - most} more" if len(reasons) > most else "")


def trend(lines: list[dict[str, Any]], checkpoint: str, metric: str, previous: int = 5) -> Trend:
    """``metric`` for ``checkpoint`` over the runs measured as the latest was (same settings, same
    data: ``differences``), and a verdict on the latest value: inside or outside the range
    mean +- 2 standard deviations of the ``previous`` such runs before it. Runs measured
    otherwise are left out, and a note counts them and says how they differ."""
    runs = [line for line in lines if line["checkpoint"] == checkpoint and line.get(metric) is not None]
    notes = []
    if runs:
        latest, kept, reasons = runs[-1], [], []
        for line in runs:
            why = [str(reason) for reason in differences(latest, line)]
            if why:
                reasons += [reason for reason in why if reason not in reasons]
            else:
                kept.append(line)
        if len(kept) < len(runs):
            notes.append(f"{checkpoint} {metric}: {len(runs) - len(kept)} earlier run(s) with other settings or "
                         f"data left out (earlier vs latest: {_listed(reasons)}); only runs measured as the "
                         "latest was are trended")
        if not figure_settings(latest):
            notes.append(f"{checkpoint} {metric}: the latest line records no settings (an older lmeval-fixtures "
                         "wrote it), so the runs trended with it may have been measured otherwise")
        runs = kept
    rows = [f"{r['timestamp']}  {r['run_id']:<28} {str(r.get('git_commit') or '')[:12]:<12}  "
            f"{number(r[metric], significant=6)}" for r in runs]
    if len(runs) < 2:
        return Trend(rows, f"{checkpoint} {metric}: {len(runs)} run(s) measured alike, nothing to compare yet",
                     notes)
    latest_value = runs[-1][metric]
    before = [r[metric] for r in runs[-1 - previous:-1]]
    mean = statistics.fmean(before)
    spread = statistics.stdev(before) if len(before) > 1 else 0.0
    low, high = mean - 2 * spread, mean + 2 * spread
    inside = low <= latest_value <= high
    verdict = (f"{checkpoint} {metric}: latest {number(latest_value, significant=6)} is "
               f"{'within' if inside else 'OUTSIDE'} the previous {len(before)} run(s): mean "
               f"{number(mean, significant=6)} +- 2 SD [{number(low, significant=6)}, "
               f"{number(high, significant=6)}]")
    return Trend(rows, verdict, notes)
