"""A task's rows: read from ``--data-dir`` (JSON Lines) or the hub, and checked before scoring.

Each row must be an object with the task's text fields and a label among its choices;
a bad row is a ``DataError`` naming the file and line, never a wrong figure. The rows'
file digest goes into the record so a gate can refuse a baseline made on other data.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import DataError, DataUnavailable
from ..core.files import json_lines
from .sources import DATA_DIR_ENV, DataSource, Hub, read_text_file, require_local
from .tasks import Task


def _check_row(row: object, task: Task, where: str) -> dict:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [f for f in (*task.fields, "label") if f not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)} (a {task.name} row needs "
                        f"{', '.join((*task.fields, 'label'))})")
    label = row["label"]
    n_choices = len(task.row_choices(row))  # the task's choices, or a task file row's own
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < n_choices:
        raise DataError(f"{where}: label {label!r} out of range for {task.name} (0..{n_choices - 1})")
    for name in task.fields:
        if not isinstance(row[name], str):
            raise DataError(f"{where}: field {name} must be a string, got {type(row[name]).__name__}")
    return row


def read_task_rows(path: Path, task: Task) -> tuple[list[dict], str]:
    """Rows of a local JSON Lines file, each checked; errors name the file and line."""
    text, sha = read_text_file(path)
    rows = [_check_row(row, task, f"{path}:{number}") for number, row in json_lines(text, path, DataError)]
    if not rows:
        raise DataError(f"{path}: no rows (an empty split cannot be evaluated)")
    return rows, sha


def load_task_rows(task: Task, split: str, data_dir: Path | None,
                   hub: Hub | None = None) -> tuple[list[dict], DataSource]:
    """Rows of a SmallBench task split: the task's own reader when it has one (a task file), else
    ``DIR/smallbench/<task>/<split>.jsonl``, else the hub."""
    if task.read is not None:
        rows, source = task.read(split, data_dir, hub or Hub())
        return [_check_row(row, task, f"{source.description} row {i}") for i, row in enumerate(rows)], source
    if data_dir is not None:
        path = data_dir / task.local_file(split)
        require_local(path, f"{task.local_file(split)} (see README, 'Data layout')")
        rows, sha = read_task_rows(path, task)
        return rows, DataSource(str(path), {task.local_file(split): sha})
    try:
        dataset = (hub or Hub()).load(*task.hub, split=split)
    except DataUnavailable as exc:
        raise DataUnavailable(f"{task.name} {split} unavailable: no --data-dir / ${DATA_DIR_ENV} given and {exc}; "
                              f"pass --data-dir DIR holding {task.local_file(split)}") from None
    name = f"hub:{task.hub[0]}/{task.hub[1]}/{split}"
    rows = [_check_row(dict(row), task, f"{name} row {i}") for i, row in enumerate(dataset)]
    return rows, DataSource(name, {name: dataset._fingerprint})
