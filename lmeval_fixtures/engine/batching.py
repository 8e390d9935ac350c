"""Cutting rows sorted longest first into forward-pass batches.

A batch is padded to its first (longest) row. Filled to the token budget alone, a
batch ran from its longest row down to rows of half that length or less: SmallBench's
shorter tasks spent a third of their forward passes on padding, and the last, partial
windows of perplexity's documents a few percent. So a row joins a batch only while
padding it to the batch's width wastes at most ``MAX_PADDING`` of that width.

The cut is a fixed rule of the lengths and the budget, so a run's figures are the same
for the same inputs in any process; a different budget may move a log-likelihood in its
last bits, since a CPU's matrix kernels round by shape.
"""

from __future__ import annotations

MAX_PADDING = 0.125


def length_batches(lengths: list[int], batch_tokens: int) -> list[range]:
    """Consecutive runs of ``lengths`` (sorted longest first): at most ``batch_tokens`` tokens
    at the first row's width (one row at least), and no row shorter than ``1 - MAX_PADDING``
    of that width."""
    batches, start = [], 0
    while start < len(lengths):
        width = lengths[start]
        count = max(1, batch_tokens // max(1, width))
        shortest = width * (1 - MAX_PADDING)
        stop = start + 1
        while stop < len(lengths) and stop - start < count and lengths[stop] >= shortest:
            stop += 1
        batches.append(range(start, stop))
        start = stop
    return batches
