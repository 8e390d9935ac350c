"""The declarations a run's options make: ``--corpus`` and ``--task-file``, added to its registry.

They take the path a conftest's ``pytest_lmeval_register`` takes (``Registry.add_corpus`` /
``add_task``), so everything downstream treats them alike; the pytest plugin and
``lmeval_fixtures.evaluate`` both call ``declare``. A clash or an unreadable task file is a
``UsageError`` naming the option and its value.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import RegistryError, TaskFileError, UsageError
from .corpus_option import CorpusSpec
from .registry import Registry
from .task_files import load_task_file


def declare(registry: Registry, corpora: list[CorpusSpec], task_files: list[Path]) -> Registry:
    """``registry`` with the options' corpora and tasks added (a copy when there are any, so a
    registry passed to ``evaluate`` twice is not declared into twice)."""
    if not corpora and not task_files:
        return registry
    registry = Registry(tasks=dict(registry.tasks), corpora=dict(registry.corpora))
    for spec in corpora:
        try:
            registry.add_corpus(spec.corpus())
        except RegistryError as exc:
            raise UsageError(f"--corpus {spec.text}: {exc}") from None
    for path in task_files:
        try:
            task = load_task_file(path)
        except TaskFileError as exc:  # its message starts with the file (or the included file) at fault
            raise UsageError(f"--task-file {exc}") from None
        try:
            registry.add_task(task)
        except RegistryError as exc:
            raise UsageError(f"--task-file {path}: {exc}") from None
    return registry
