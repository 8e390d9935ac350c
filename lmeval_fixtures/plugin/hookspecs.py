"""Hooks this plugin offers to a project's ``conftest.py`` (declared as pytest declares its own)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..suite.registry import Registry



@pytest.hookspec
def pytest_lmeval_register(registry: Registry, config: pytest.Config) -> None:
    """Declare tasks and corpora for this run, before any item is collected.

    ``registry.add_task(Task(...))`` adds a SmallBench-style task and
    ``registry.add_corpus(Corpus(...))`` a perplexity corpus; each then has its
    items, its place in the record, the average, summary.md, comparison.md, gates
    and history with no other edit. Called once in every process (controller and
    xdist workers), so every process collects the same items.
    """
