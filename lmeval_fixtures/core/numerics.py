"""Float arithmetic that must come out the same wherever a figure is computed.

A perplexity and the bootstrap intervals are compared across runs and against
lm-evaluation-harness to a few parts in a million, so each rule (how an
overflowing exponential is reported, how a quantile interpolates) lives here once.
"""

from __future__ import annotations

import math


def safe_exp(x: float) -> float:
    """``exp(x)``, or ``inf`` where it overflows: a diverged model's perplexity is reported
    as infinite, never turned into an exception halfway through a record."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def quantile(values: list[float], q: float) -> float:
    """Linearly interpolated quantile, q in [0, 1]: numpy's default method, computed as numpy
    computes it (position ``(n - 1) * q``), so bootstrap intervals match scipy's to the bit."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
