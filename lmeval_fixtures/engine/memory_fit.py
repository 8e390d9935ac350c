"""The largest token budget that fits, found by trying (``--batch-size auto`` as lm-eval users know it).

A scoring call cuts its rows into batches of at most ``batch_tokens`` tokens; on a device
with less memory than the budget needs, its first big batch runs out of memory. Rather than
fail the item, the whole call starts again at half the budget, until it fits (one row per
batch at the least). The call starts again from nothing, not from the batch that failed: its
figures are then exactly those of a run with ``--batch-tokens`` set to the budget that fit, a
fixed rule, rather than a mix of two budgets that depends on where memory ran out. Each call
starts from the budget asked for (nothing is remembered between calls), so the figures do not
depend on which items a process ran before (``-n`` and item order change nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

Result = TypeVar("Result")


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's out-of-memory error, or the RuntimeError other backends (MPS, CPU allocators) raise."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def release_memory() -> None:
    """Hand cached blocks back after an out-of-memory error, so the smaller try starts clean."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def largest_fitting(score: Callable[[int], Result], batch_tokens: int) -> tuple[Result, int]:
    """``score(budget)`` at ``batch_tokens``, halved after each out-of-memory error; returns the
    result and the budget that fit. An error that is not out-of-memory, or out-of-memory at a
    budget of one token (a single row per batch, nothing left to halve), is raised as it is."""
    budget = batch_tokens
    while True:
        try:
            return score(budget), budget
        except Exception as exc:
            if not is_out_of_memory(exc) or budget <= 1:
                raise
        release_memory()  # outside the except block: the traceback no longer holds the failed batch
        budget //= 2
