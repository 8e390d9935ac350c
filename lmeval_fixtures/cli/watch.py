"""Watch a training run's checkpoint folder and evaluate each new checkpoint as it appears.

A checkpoint is evaluated once its files have stopped changing (the same sizes and
modification times at two polls ``interval`` seconds apart), so a file still being
written is never read half-way. Every checkpoint goes into one run folder (the same
run id, so records merge under the run's lock): each evaluation appends its history
line, rewrites comparison.md over every checkpoint so far, and redraws the trend of
the chosen figure against the training step (``trend.md``, and ``trend.png`` with
the plot extra). Ctrl-C (or SIGTERM) stops between polls or evaluations; what was
evaluated stays written, and an evaluation cut short resumes from the result cache
on the next start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import LmevalError
from ..core.files import write_atomic
from ..core.formatting import markdown_table, markdown_text, number
from ..models.discovery import CheckpointSpec, discover_checkpoints
from ..records.fragments import not_loaded as load_failure
from ..records.tracking import training_step
from ..suite.figures import resolve_figure_key
from ..suite.registry import Registry

Signature = tuple[tuple[str, int, int], ...]


def files_signature(path: Path) -> Signature:
    """Sizes and modification times of a checkpoint's files (a folder's, or a file's with its sidecars)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    else:
        files = [path] + [path.parent / n for n in ("config.json", "tokenizer.json") if (path.parent / n).exists()]
    signature = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:  # gone between listing and reading: still changing
            continue
        signature.append((str(file), stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


@dataclass
class Watcher:
    """One watched folder. ``evaluate`` is ``lmeval_fixtures.evaluate`` (a parameter so tests can count calls).

    A checkpoint is done once its reports are written, at the signature its files had then. Its
    files changing afterwards (overwritten in place, or a write that was still going on when it
    could not be loaded) make it ready again, and it is evaluated again under a new name (the old
    record kept). An evaluation that wrote nothing (refused, or its reports could not be written)
    leaves it not done, to be tried again once its files change."""

    folder: Path
    run_id: str
    metric: str
    options: dict[str, Any]
    evaluate: Callable[..., Any]
    report: Callable[[str], None] = print
    seen: dict[str, Signature] = field(default_factory=dict)  # path -> signature at the last poll
    done: dict[str, str] = field(default_factory=dict)  # path -> checkpoint name, once evaluated
    tried: dict[str, Signature] = field(default_factory=dict)  # path -> signature at its last evaluation
    names: set[str] = field(default_factory=set)  # every name given in this run (old records are kept)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluated: int = 0  # evaluations whose reports were written
    gone: bool = False  # the watched folder disappeared

    def poll(self) -> list[CheckpointSpec]:
        """Checkpoints whose files did not change since the last poll and that were not evaluated
        (or tried) at these very files."""
        ready = []
        for spec in discover_checkpoints([self.folder]):
            key = str(spec.path)
            if not spec.path.exists():
                continue
            signature = files_signature(spec.path)
            if signature and self.seen.get(key) == signature and self.tried.get(key) != signature:
                ready.append(spec)
            self.seen[key] = signature
        return ready

    def evaluate_one(self, spec: CheckpointSpec) -> list[Path]:
        """Evaluate one ready checkpoint; every path written, and every failure reported in a line."""
        key = str(spec.path)
        self.tried[key] = self.seen[key]
        name, suffix = spec.name, 2
        while name in self.names:  # a later file's (or a re-evaluation's) name never replaces an earlier record
            name, suffix = f"{spec.name}-{suffix}", suffix + 1
        if key in self.done:
            self.report(f"  {self.done[key]} changed since it was evaluated: evaluated again as {name} "
                        "(the earlier record kept)")
        try:
            finished = self.evaluate(spec.path, name=name, run_id=self.run_id, **self.options)
        except LmevalError as exc:  # refused before anything was written: tried again when its files change
            self.report(f"  not evaluated: {exc}; tried again when its files change")
            return []
        nothing = [finished.nothing_measured] if finished.nothing_measured else []
        for line in [*nothing, *finished.warnings, *finished.errors]:
            self.report(f"  {line}")
        if not finished.paths or name not in finished.records:
            self.report(f"  {name}: no report written; tried again when its files change")
            return list(finished.paths)
        failure = load_failure(finished.records[name])
        if failure:  # a file still being written, or not readable yet: not done, tried again when it changes
            self.report(f"  {name}: could not be loaded ({failure}); evaluated again when its files change")
        else:
            self.done[key] = name
            self.evaluated += 1
        self.names.add(name)
        self.records.update(finished.records)
        run_folder = Path(finished.paths[0]).parent.parent
        try:
            return list(finished.paths) + self.write_trend(run_folder)
        except OSError as exc:
            self.report(f"  could not write the trend into {run_folder}: {exc}")
            return list(finished.paths)

    def write_trend(self, run_folder: Path) -> list[Path]:
        table = Registry.default().figure_table(list(self.records.values()))
        figure = {f.key: f for f in table}.get(resolve_figure_key(self.metric, table) or self.metric)
        rows = []
        for name, record in self.records.items():
            value = figure.value(record) if figure else record.get(self.metric)
            rows.append((training_step(record), name, value))
        rows.sort(key=lambda r: (r[0] is None, r[0] or 0, r[1]))
        label = figure.label if figure else self.metric
        cells = [("—" if s is None else str(s), markdown_text(n), number(v, significant=6)) for s, n, v in rows]
        table = markdown_table(["step", "checkpoint", markdown_text(label)], cells, right=(0, 2))  # names escaped
        lines = [f"# {markdown_text(label)} against training step", "", table]
        written = [run_folder / "trend.md"]
        write_atomic(written[0], "\n".join(lines) + "\n")
        points = [(s, v) for s, _, v in rows if s is not None and isinstance(v, (int, float))]
        picture = _plot_trend(points, label, run_folder / "trend.png")
        return written + ([picture] if picture else [])


def _plot_trend(points: list[tuple[int, float]], label: str, path: Path) -> Path | None:
    if len(points) < 2:
        return None
    from ..records.plots import _pyplot

    plt = _pyplot()
    if plt is None:
        return None
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot([p[0] for p in points], [p[1] for p in points], marker="o")
    axes.set_xlabel("training step")
    axes.set_ylabel(label)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def watch(folder: Path, *, run_id: str, metric: str, interval: float, options: dict[str, Any],
          evaluate: Callable[..., Any] | None = None, sleep: Callable[[float], None] | None = None,
          report: Callable[[str], None] = print) -> Watcher:
    """Polls ``folder`` every ``interval`` seconds until Ctrl-C, or until the folder is gone (said in
    a line; ``Watcher.gone`` is then set); returns the watcher (what it evaluated)."""
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder to watch")
    if evaluate is None:
        from ..api import evaluate
    sleep = sleep or time.sleep  # looked up now, so that a test's stand-in applies
    watcher = Watcher(folder, run_id, metric, options, evaluate, report)
    report(f"watching {folder} every {interval:g} s (run {run_id}); Ctrl-C stops")
    try:
        while True:
            if not folder.is_dir():
                watcher.gone = True
                report(f"stopped: {folder} is gone (moved or deleted); {watcher.evaluated} checkpoint(s) "
                       f"evaluated into run {run_id}")
                return watcher
            for spec in watcher.poll():
                report(f"evaluating {spec.path}")
                for path in watcher.evaluate_one(spec):
                    report(f"  {path}")
            sleep(interval)
    except KeyboardInterrupt:
        report(f"stopped: {watcher.evaluated} checkpoint(s) evaluated into run {run_id}")
    return watcher
