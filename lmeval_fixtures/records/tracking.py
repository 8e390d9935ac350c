"""Experiment tracking: a run's records logged to Weights & Biases or TensorBoard (optional extras).

Researchers who train sweeps keep their curves in a tracker; the suite's figures belong beside
them. One record (one checkpoint of one run) becomes one logged run of the tracker, named
``<run_id>/<checkpoint>``, its figures logged at the checkpoint's training step (its training
metadata, else the last number in its name, else 0) and its settings as the run's config.
The figures are the figure table's (``Figure.value``): every scored number a report shows,
under the key summary.md and the history line use.

A backend is any object with ``log(step, figures)`` and ``close()`` (the ``TrackingBackend``
protocol of ``records.metrics_logger``, which forwards a training loop's figures to the same
objects); the two here meet it structurally. Each imports its library only when opened, and
a missing one is a ``MissingExtra`` naming the extra to install. Tracking is asked for by
``--track wandb|tensorboard[:DIR]`` (every door's ``Run.finish``) or, for a run already
written, ``lmeval-fixtures track RUN_DIR --to ...``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import MissingExtra, UsageError
from ..suite.figures import Figure

BACKENDS = ("wandb", "tensorboard")
PROJECT = "lmeval-fixtures"  # the W&B project, unless WANDB_PROJECT names another


def training_step(record: dict[str, Any]) -> int | None:
    """The step a checkpoint was saved at: its training metadata, else the last number in its name."""
    step = (record.get("checkpoint", {}).get("training") or {}).get("step")
    if isinstance(step, (int, float)) and not isinstance(step, bool) and math.isfinite(step):
        return int(step)
    numbers = re.findall(r"[0-9]+", str(record.get("checkpoint", {}).get("name", "")))  # ASCII digits only
    return int(numbers[-1]) if numbers and len(numbers[-1]) <= 18 else None


def tracked_figures(record: dict[str, Any], figures: Iterable[Figure]) -> dict[str, float]:
    """Every finite number of the figure table that ``record`` holds, by figure key."""
    found = {}
    for figure in figures:
        value = figure.value(record)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            found[figure.key] = float(value)
    return found


@dataclass(frozen=True)
class TrackSpec:
    """``--track BACKEND[:DIR]``: which tracker, and the folder its files go into (None: its default)."""

    backend: str
    folder: Path | None = None

    @classmethod
    def parse(cls, text: str, option: str = "--track") -> TrackSpec:
        backend, _, folder = text.partition(":")
        if backend not in BACKENDS:
            raise UsageError(f"{option} {text}: choose {' or '.join(BACKENDS)}, optionally followed by :DIR "
                             "(e.g. tensorboard:runs/tb)")
        if _ and not folder:
            raise UsageError(f"{option} {text}: name a folder after the colon, or leave the colon out")
        return cls(backend, Path(folder) if folder else None)


class WandbBackend:
    """One W&B run (``wandb.init``); ``WANDB_MODE=offline`` writes it under ``folder`` to sync later."""

    def __init__(self, name: str, config: Mapping[str, Any], folder: Path | None = None) -> None:
        try:
            import wandb
        except ImportError:
            raise MissingExtra("--track wandb needs wandb: pip install 'lmeval-fixtures[track]'") from None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=PROJECT, name=name, config=dict(config), job_type="eval",
                              dir=str(folder) if folder is not None else None, reinit="create_new")

    def log(self, step: int, figures: Mapping[str, float]) -> None:
        self.run.log(dict(figures), step=step)

    def close(self) -> None:
        self.run.finish()


class TensorBoardBackend:
    """One TensorBoard event file in ``folder/<name>``, each figure a scalar series."""

    def __init__(self, name: str, config: Mapping[str, Any], folder: Path | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingExtra("--track tensorboard needs tensorboard: pip install 'lmeval-fixtures[track]'") from None
        self.writer = SummaryWriter(log_dir=str((folder or Path("runs")) / name))
        self.writer.add_text("settings", "\n".join(f"    {k}: {v}" for k, v in sorted(config.items())), 0)

    def log(self, step: int, figures: Mapping[str, float]) -> None:
        for key, value in figures.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


Opener = Callable[[str, Mapping[str, Any], "Path | None"], Any]
OPENERS: dict[str, Opener] = {"wandb": WandbBackend, "tensorboard": TensorBoardBackend}


def open_backend(spec: TrackSpec | str, name: str, config: Mapping[str, Any] | None = None) -> Any:
    """A tracker run named ``name`` (``--track``'s grammar, or a parsed ``TrackSpec``), ready for ``log`` and
    ``close``: what a training loop's logger (``records.metrics_logger``) forwards to."""
    spec = TrackSpec.parse(spec) if isinstance(spec, str) else spec
    return OPENERS[spec.backend](name, dict(config or {}), spec.folder)


def run_config(record: dict[str, Any]) -> dict[str, Any]:
    """What a tracker shows beside the figures: the run, the checkpoint, and the settings it was measured with."""
    checkpoint = record.get("checkpoint") or {}
    return {"run_id": record.get("run_id"), "checkpoint": checkpoint.get("name"), "sha256": checkpoint.get("sha256"),
            "git_commit": record.get("git_commit"), **(record.get("settings") or {})}


def track_records(records: Iterable[dict[str, Any]], figures: list[Figure], spec: TrackSpec) -> list[str]:
    """Log each record as one run of ``spec``'s tracker; returns the names logged."""
    logged = []
    for record in records:
        name = f"{record.get('run_id')}/{(record.get('checkpoint') or {}).get('name')}"
        backend = open_backend(spec, name, run_config(record))
        try:
            backend.log(training_step(record) or 0, tracked_figures(record, figures))
        finally:
            backend.close()
        logged.append(name)
    return logged
