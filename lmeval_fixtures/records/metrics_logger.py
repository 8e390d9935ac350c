"""A training loop's figures over its steps: statistics, a history file that survives restarts, forwarding.

A parameter-allocation study trains many small models and evaluates each every N steps; the
figures it needs afterwards (the best validation bits per byte and when it came, the last
train loss, how often the loss diverged) are spread over the loop. ``MetricsLogger`` keeps
them in one place. Its rules, each written here once:

- A figure is any number (an ``int``, a ``float``, a one-element tensor); a record from
  ``evaluate()`` (``log(step, record=done)``) is flattened to its scored figures by the
  table of figures, under their usual keys (``val_bits_per_byte``, ``smallbench_avg_acc``).
- NaN and infinities are kept (``last`` shows them, the history holds them) and counted, but
  never folded into the mean, minimum, maximum or best: one diverged step must not hide
  the others. In JSON, which has no NaN, they are the strings ``"nan"``, ``"inf"``, ``"-inf"``.
- The best value's direction is the figure table's where it knows the figure (lower bits per
  byte, higher accuracy), else the name's ending: ``loss``, ``perplexity``, ``ppl``,
  ``bits_per_byte``, ``bpb``, ``nll``, ``error``, ``_ms`` are lower-is-better, ``acc``,
  ``accuracy``, ``tokens_per_sec``, ``reward`` higher-is-better; any other figure (a learning rate,
  tokens seen) has no best unless ``directions=`` names one. Ties go to the earliest step.
- The history file gets whole lines only: each save appends its new lines whole or not at all
  (``core.files.append_whole``, the rule of every history file). A file that already holds lines
  from an earlier process (a restarted run) is continued, never overwritten, and the first
  line this logger adds says so (``"resumed": {"after_lines", "last_step"}``);
  ``MetricsLogger.resume(path)`` also reads those lines back, so that the statistics cover the
  whole training.
- Each call is forwarded, after it is recorded, to every tracking backend: anything with
  ``log(step, figures)`` and ``close()`` (``TrackingBackend``).
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..core.errors import RecordError, UsageError
from ..core.files import (
    REPORT_FILE_LIMIT_BYTES,
    append_whole,
    json_lines,
    read_regular_text,
    special_file_message,
    write_atomic,
)
from ..suite.registry import Registry

LOWER_ENDINGS = ("loss", "perplexity", "ppl", "bits_per_byte", "bpb", "nll", "error", "_ms")
HIGHER_ENDINGS = ("acc", "accuracy", "tokens_per_sec", "reward")
DIRECTIONS = ("lower", "higher")
TRAINING_KEYS = ("train_loss", "step", "tokens_seen")  # what a record takes from the logger


@runtime_checkable
class TrackingBackend(Protocol):
    """Where a logger forwards each call (W&B, TensorBoard, MLflow, a test's fake): structural,
    so a backend need not import this module."""

    def log(self, step: int, figures: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class FigureStats:
    """One figure over the calls that logged it. ``count`` is every value, ``non_finite`` the NaN
    and infinite ones among them; mean, min, max and best are over the finite ones (None when
    there are none); ``last`` is the last value logged, finite or not."""

    count: int
    non_finite: int
    mean: float | None
    min: float | None
    max: float | None
    last: float
    last_step: int
    better: str | None
    best: float | None
    best_step: int | None

    def to_json(self) -> dict[str, Any]:
        return {key: json_number(value) for key, value in self.__dict__.items()}


def json_number(value: Any) -> Any:
    """A number as strict JSON holds it: a non-finite float as ``"nan"``, ``"inf"`` or ``"-inf"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _from_json_number(value: Any) -> float:
    return float(value)  # float("nan"), float("inf"), float("-inf") read the strings back


def direction_by_name(name: str) -> str | None:
    """The name rule for a figure the table does not know (see the module docstring)."""
    lowered = name.lower()
    if lowered.endswith(LOWER_ENDINGS):
        return "lower"
    if lowered.endswith(HIGHER_ENDINGS):
        return "higher"
    return None


def _figure_value(name: str, value: Any) -> float:
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise UsageError(f"MetricsLogger.log: figure {name}={value!r} is not a number")
    if hasattr(value, "detach"):  # a loss tensor still in the graph: its value, not a warning
        value = value.detach()
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise UsageError(f"MetricsLogger.log: figure {name}={value!r} is not a number "
                         "(pass a float, an int or a one-element tensor)") from None


def _step(step: Any, where: str) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:  # numpy's integers too
        raise UsageError(f"{where}: step {step!r} must be an integer >= 0")
    return int(step)


class MetricsLogger:
    """Figures of a training loop by step: ``log``, ``stats``, ``save_history``, ``save_summary``.

    ``backends`` receive every call; ``directions`` name the better direction ("lower" or
    "higher") of figures the table and the name rule do not know; ``registry`` is the one whose
    tasks and corpora flatten logged records (the default registry otherwise; a task a record
    holds that it does not declare is flattened all the same).
    """

    def __init__(self, backends: Iterable[TrackingBackend] = (), *, directions: Mapping[str, str] | None = None,
                 registry: Registry | None = None) -> None:
        self.backends = list(backends)
        for backend in self.backends:
            if not isinstance(backend, TrackingBackend):
                raise UsageError(f"MetricsLogger: backend {type(backend).__name__} has no log(step, figures) "
                                 "and close()")
        self.directions = dict(directions or {})
        for name, better in self.directions.items():
            if better not in DIRECTIONS:
                raise UsageError(f"MetricsLogger: directions[{name!r}] is {better!r}; give 'lower' or 'higher'")
        self.registry = registry or Registry.default()
        self.entries: list[dict[str, Any]] = []  # {"step", "time", "figures"} per call, in order
        self._table_directions: dict[str, str] = {}
        self._table_read = False
        self._written: dict[Path, int] = {}  # per history file: how many entries it already holds
        self.resumed_from: dict[str, Any] | None = None

    # ---------------------------------------------------------------- logging

    def log(self, step: int, record: Any = None, **figures: Any) -> dict[str, float]:
        """Record ``figures`` (and, with ``record=``, a record's scored figures) at ``step``, then
        forward them; returns what was logged. ``record`` is what ``evaluate()`` returned (one
        checkpoint), one of its records, or a ``MetricsRecord``."""
        step = _step(step, "MetricsLogger.log")
        logged = {name: _figure_value(name, value) for name, value in figures.items()}
        if record is not None:
            flat = self.record_figures(record)
            clash = sorted(flat.keys() & logged.keys())
            if clash:
                raise UsageError(f"MetricsLogger.log: {', '.join(clash)} given both as a figure and in the record")
            logged |= flat
        if not logged:
            raise UsageError("MetricsLogger.log: no figures given (log(step, train_loss=..., record=...))")
        self.entries.append({"step": step, "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             "figures": logged})
        for backend in self.backends:  # a backend that raises does so after the call is recorded here
            backend.log(step, dict(logged))
        return logged

    def record_figures(self, record: Any) -> dict[str, float]:
        """A record's scored figures (the table's figures with a direction), by key; nulls left out."""
        record = _record_dict(record)
        figures = {}
        for figure in self.registry.figure_table([record]):
            if figure.better is None:
                continue
            value = figure.value(record)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                figures[figure.key] = float(value)
                self._table_directions[figure.key] = figure.better
        return figures

    def close(self) -> None:
        """Close every backend (a backend's own file or connection)."""
        for backend in self.backends:
            backend.close()

    # ---------------------------------------------------------------- statistics

    def better(self, name: str) -> str | None:
        """"lower", "higher" or None: ``directions=``, else the figure table, else the name rule."""
        if name in self.directions:
            return self.directions[name]
        if not self._table_read:  # once: the registry's figures (a record's own were added as logged)
            self._table_directions.update({f.key: f.better for f in self.registry.figure_table()
                                           if f.better is not None})
            self._table_read = True
        return self._table_directions.get(name) or direction_by_name(name)

    def stats(self) -> dict[str, FigureStats]:
        """Per figure, in the order first logged: count, non-finite count, mean, min, max, last, best."""
        series: dict[str, list[tuple[int, float]]] = {}
        for entry in self.entries:
            for name, value in entry["figures"].items():
                series.setdefault(name, []).append((entry["step"], value))
        return {name: self._figure_stats(name, points) for name, points in series.items()}

    def _figure_stats(self, name: str, points: list[tuple[int, float]]) -> FigureStats:
        finite = [(step, value) for step, value in points if math.isfinite(value)]
        values = [value for _, value in finite]
        better = self.better(name)
        best = best_step = None
        if finite and better is not None:
            pick = min if better == "lower" else max
            best = pick(values)
            best_step = next(step for step, value in finite if value == best)  # the earliest step reaching it
        return FigureStats(
            count=len(points), non_finite=len(points) - len(finite),
            mean=math.fsum(values) / len(values) if values else None,
            min=min(values) if values else None, max=max(values) if values else None,
            last=points[-1][1], last_step=points[-1][0], better=better, best=best, best_step=best_step)

    def training_figures(self) -> dict[str, float]:
        """What a record written by ``evaluate(..., logger=...)`` takes: the last ``train_loss``
        logged, the step it was logged at, and the last ``tokens_seen`` (those logged)."""
        last: dict[str, float] = {}
        for entry in self.entries:
            for key in ("train_loss", "tokens_seen"):
                if key in entry["figures"]:
                    last[key] = entry["figures"][key]
                    if key == "train_loss":
                        last["step"] = entry["step"]
        if "tokens_seen" in last and float(last["tokens_seen"]).is_integer():
            last["tokens_seen"] = int(last["tokens_seen"])
        return last

    # ---------------------------------------------------------------- files

    def save_history(self, path: str | Path) -> Path:
        """Bring ``path`` up to date: one JSON line per call not yet in it, after whatever it holds.

        The new lines are appended whole or not at all (``core.files.append_whole``, the one rule
        for every history file: under a lock, after a line end, cut back when a write fails part-way),
        so a reader or a crash never sees half a line, two processes saving to it both keep their
        lines, and a long training run writes each line once. Lines already there from another
        process are kept in front, and the first line this logger adds carries ``"resumed"`` (how
        many lines came before, and their last step)."""
        path = Path(path)
        key = path.resolve()  # one file however it is spelled
        lines = [self._line(entry) for entry in self.entries[self._written.get(key, 0):]]
        if key not in self._written and lines:
            existing = _read_text(path)
            if existing.strip():
                earlier = [line for _, line in json_lines(existing, path, RecordError)]
                last_step = earlier[-1].get("step") if earlier and isinstance(earlier[-1], dict) else None
                lines[0] = self._line(self.entries[0], resumed={"after_lines": len(earlier), "last_step": last_step})
                self.resumed_from = {"path": str(path), "after_lines": len(earlier)}
        special = special_file_message(path)
        if special:
            raise RecordError(special)
        if not lines and os.path.lexists(path):
            return path  # nothing new; a file of others' lines stays unclaimed until we add one
        try:
            append_whole(path, "".join(json.dumps(line) + "\n" for line in lines))  # "": the file made, empty
        except OSError as exc:
            raise RecordError(f"{path}: metrics history cannot be written ({exc})") from None
        self._written[key] = len(self.entries)
        return path

    def save_summary(self, path: str | Path) -> Path:
        """One JSON object: how many calls, the step span, and each figure's ``stats()``."""
        path = Path(path)
        steps = [entry["step"] for entry in self.entries]
        summary = {"calls": len(self.entries), "first_step": steps[0] if steps else None,
                   "last_step": steps[-1] if steps else None,
                   "figures": {name: stats.to_json() for name, stats in self.stats().items()}}
        write_atomic(path, json.dumps(summary, indent=2) + "\n")
        return path

    @classmethod
    def resume(cls, path: str | Path, backends: Iterable[TrackingBackend] = (), **options: Any) -> MetricsLogger:
        """A logger that continues the history in ``path`` (a restarted training run): its lines are
        read back, so statistics cover the whole training, and later saves append after them."""
        path = Path(path)
        logger = cls(backends, **options)
        text = _read_text(path)
        for number, line in json_lines(text, path, RecordError):
            if not isinstance(line, dict) or not isinstance(line.get("figures"), dict) or "step" not in line:
                raise RecordError(f"{path}:{number}: not a MetricsLogger history line (step and figures expected)")
            try:
                figures = {name: _from_json_number(value) for name, value in line["figures"].items()}
            except (TypeError, ValueError):
                raise RecordError(f"{path}:{number}: a figure that is not a number") from None
            logger.entries.append({"step": _step(line["step"], f"{path}:{number}"), "time": line.get("time"),
                                   "figures": figures})
        logger._written[path.resolve()] = len(logger.entries)
        logger.resumed_from = {"path": str(path), "after_lines": len(logger.entries)}
        return logger

    @staticmethod
    def _line(entry: dict[str, Any], resumed: dict[str, Any] | None = None) -> dict[str, Any]:
        line = {"step": entry["step"], "time": entry["time"],
                "figures": {name: json_number(value) for name, value in entry["figures"].items()}}
        return line | ({"resumed": resumed} if resumed else {})


def _read_text(path: Path) -> str:
    """A history file's text; '' when there is none yet. A special file or bytes that are not
    UTF-8 are refused in one line, before anything is written."""
    if not os.path.lexists(path):
        return ""
    return read_regular_text(path, RecordError, "metrics history", REPORT_FILE_LIMIT_BYTES)  # bounded, never waits


def _record_dict(record: Any) -> dict[str, Any]:
    """A metrics record as a dict, from what ``evaluate()`` returned, a record, or a ``MetricsRecord``."""
    if hasattr(record, "records") and isinstance(record.records, dict):  # evaluate()'s Finished
        if len(record.records) != 1:
            names = ", ".join(sorted(record.records)) or "none"
            raise UsageError(f"MetricsLogger.log: record= holds {len(record.records)} checkpoints ({names}); "
                             "pass one: done.records[name]")
        record = next(iter(record.records.values()))
    if hasattr(record, "to_json") and not isinstance(record, dict):
        record = record.to_json()
    if not isinstance(record, dict) or "checkpoint" not in record:
        raise UsageError(f"MetricsLogger.log: record= takes what evaluate() returned or a metrics record, "
                         f"not {type(record).__name__}")
    return record

