"""Run history: one line per checkpoint per run in ``reports/history.jsonl``, and trends over it.

A figure trends only against figures measured the same way. So each line carries, beside
its figures, the settings that change a figure (``record.FIGURE_SETTINGS``, the list that
also keeps differently measured records from merging, plus the checkpoint's context) and
the fingerprints of the data its run read; ``trend`` leaves out the lines measured
otherwise than the latest one and says which and why. ``differences`` is the one test of
"measured alike", used by the comparison too. A line written before these were recorded
still reads: its settings count as "not recorded", so it trends only with its kind.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.files import json_lines, special_file_message
from ..suite.figures import Figure
from .record import FIGURE_SETTINGS

IDENTITY_FIELDS = ("run_id", "timestamp", "git_commit", "checkpoint", "sha256", "complete")
CONDITION_FIELDS = ("settings", "data_fingerprints")  # how the figures of a line were measured
CONTEXT = "context"  # the checkpoint's context length: a property of the model, recorded beside the settings
HISTORY_SETTINGS = (*FIGURE_SETTINGS, CONTEXT)
# how an unset (None) setting reads: no cap means every token or row; no stride means the context
UNSET = {"max_eval_tokens": "all", "max_samples": "all", "ppl_stride": "context"}
NOT_RECORDED = "not recorded"


def figure_settings(entry: dict[str, Any]) -> dict[str, Any]:
    """The figure-changing settings a metrics record or a history line states. A setting it
    does not state is absent from the result (None is a value: ``max_samples`` None is every row)."""
    settings = entry.get("settings")
    if not isinstance(settings, dict):
        return {}
    return {key: settings[key] for key in HISTORY_SETTINGS if key in settings}


def shown(key: str, settings: dict[str, Any]) -> str:
    """A setting's value as a sentence names it: ``200``, ``all``, ``on``, ``not recorded``."""
    if key not in settings:
        return NOT_RECORDED
    value = settings[key]
    if value is None:
        return UNSET.get(key, "none")
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def differences(reference: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """Why figures of ``other`` do not compare with those of ``reference`` (each a metrics record
    or a history line); empty when they were measured alike.

    A figure-changing setting that differs reads ``max_samples 200 vs all`` (``other``'s value
    first); a side that records no settings at all (a line written before they were recorded)
    reads ``settings not recorded``. The context counts only where both state it (a run that
    measured no perplexity does not say). A data file both read, with other contents, reads
    ``data wikitext-2-raw/validation.txt differs``; a file only one of them read is no reason
    (a run of fewer items reads less data, but the same data)."""
    mine, theirs = figure_settings(reference), figure_settings(other)
    found = []
    if bool(set(mine) & set(FIGURE_SETTINGS)) != bool(set(theirs) & set(FIGURE_SETTINGS)):
        found.append(f"settings {NOT_RECORDED}")
    else:
        for key in FIGURE_SETTINGS:
            if (key in mine, mine.get(key)) != (key in theirs, theirs.get(key)):
                found.append(f"{key} {shown(key, theirs)} vs {shown(key, mine)}")
    if CONTEXT in mine and CONTEXT in theirs and mine[CONTEXT] != theirs[CONTEXT]:
        found.append(f"{CONTEXT} {shown(CONTEXT, theirs)} vs {shown(CONTEXT, mine)}")
    my_data, their_data = reference.get("data_fingerprints"), other.get("data_fingerprints")
    if isinstance(my_data, dict) and isinstance(their_data, dict):
        found += [f"data {name} differs" for name in sorted(my_data.keys() & their_data.keys())
                  if my_data[name] != their_data[name]]
    elif isinstance(my_data, dict) != isinstance(their_data, dict) and not found:
        found.append(f"data {NOT_RECORDED}")
    return found


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
        **{f.key: f.value(record) for f in figures if f.headline or f.history},
    }


def metrics_in(lines: list[dict[str, Any]]) -> list[str]:
    """The figures a history file holds (what ``history --metric`` can show)."""
    return sorted({key for line in lines for key in line} - set(IDENTITY_FIELDS) - set(CONDITION_FIELDS))


def append_history(path: Path, records: list[dict[str, Any]], figures: list[Figure]) -> None:
    """One ``write`` per run, so concurrent runs do not interleave half lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(history_line(r, figures), sort_keys=True) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _condition_problem(key: str, value: Any) -> str | None:
    """What is wrong with a line's ``settings`` or ``data_fingerprints`` (None when nothing)."""
    if not isinstance(value, dict):
        return f"{key} is {value!r}, not an object"
    for name, item in value.items():
        if key == "data_fingerprints" and not isinstance(item, str):
            return f"data_fingerprints[{name!r}] is {item!r}, not a sha256"
        if key == "settings" and not (item is None or isinstance(item, (str, bool)) or _is_number(item)):
            return f"settings[{name!r}] is {item!r}, not a setting's value"
    return None


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every line, checked: a line that is not a history entry is named by file and line number.
    Lines without ``settings`` or ``data_fingerprints`` (written by an older version) are read
    as they are; ``differences`` treats their settings as not recorded."""
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
            if key in CONDITION_FIELDS:
                problem = _condition_problem(key, value)
                if problem:
                    raise ValueError(f"{path}:{number}: {problem}")
            elif key not in IDENTITY_FIELDS and value is not None and not _is_number(value):
                raise ValueError(f"{path}:{number}: {key} is {value!r}, not a number")
        lines.append(entry)
    return lines


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
            why = differences(latest, line)
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
    rows = [f"{r['timestamp']}  {r['run_id']:<28} {str(r.get('git_commit') or '')[:12]:<12}  {r[metric]:.6g}"
            for r in runs]
    if len(runs) < 2:
        return Trend(rows, f"{checkpoint} {metric}: {len(runs)} run(s) measured alike, nothing to compare yet",
                     notes)
    latest_value = runs[-1][metric]
    before = [r[metric] for r in runs[-1 - previous:-1]]
    mean = statistics.fmean(before)
    spread = statistics.stdev(before) if len(before) > 1 else 0.0
    low, high = mean - 2 * spread, mean + 2 * spread
    inside = low <= latest_value <= high
    verdict = (f"{checkpoint} {metric}: latest {latest_value:.6g} is {'within' if inside else 'OUTSIDE'} the "
               f"previous {len(before)} run(s): mean {mean:.6g} +- 2 SD [{low:.6g}, {high:.6g}]")
    return Trend(rows, verdict, notes)
