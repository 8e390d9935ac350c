"""Which timings of a record are noise, and whether two timings differ beyond their noise.

A timing is flagged when its own rounds spread too far (``engine.timing.timing_noise``, the
one threshold, read from the statistics so old records are judged alike) or when a shorter
sequence took longer than a longer one at the same batch (1x128 slower than 1x512 says
the machine was busy, not that the model is slow). The terminal, summary.md, comparison.md
and the latency gates all ask ``noisy_timings``; comparison.md bolds a timing only where
``stands_out`` says the difference is larger than both timings' noise.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

from ..core.names import parse_shape_name
from ..engine.timing import timing_noise
from ..suite.figures import latency_key

THROUGHPUT_KEY = "throughput_tokens_per_sec"


def noisy_timings(record: dict[str, Any]) -> dict[str, str]:
    """Figure key -> why that timing is not to be trusted, for each flagged timing of ``record``."""
    found: dict[str, str] = {}
    taken: dict[tuple[int, int], dict[str, Any]] = {}
    for name, entry in (record.get("latency") or {}).items():
        if entry.get("timing") != "taken" or entry.get("mean_ms") is None:
            continue
        shape = (int(entry["batch"]), int(entry["seq"])) if "batch" in entry and "seq" in entry \
            else parse_shape_name(name)
        if shape is None:
            continue
        taken[shape] = entry
        why = entry.get("noisy") or timing_noise(entry)
        if why:
            found[latency_key(*shape)] = why
    for (batch, seq), entry in taken.items():
        longer = [(s, e) for (b, s), e in taken.items() if b == batch and s > seq and e["mean_ms"] < entry["mean_ms"]]
        if longer:
            seq_long, other = min(longer)
            why = (f"noisy: {batch}x{seq} ({entry['mean_ms']:.3g} ms) slower than the longer {batch}x{seq_long} "
                   f"({other['mean_ms']:.3g} ms); the machine was likely busy")
            found.setdefault(latency_key(batch, seq), why)
            found.setdefault(latency_key(batch, seq_long), why)
    throughput = record.get("throughput") or {}
    if throughput.get("timing") == "taken":
        why = throughput.get("noisy") or timing_noise(throughput)
        if why:
            found[THROUGHPUT_KEY] = why
    return found


def relative_standard_error(entry: dict[str, Any] | None) -> float | None:
    """The standard error of a timing's mean relative to the mean (stddev / sqrt(rounds) / mean);
    the same share applies to the tokens per second derived from it. None without statistics."""
    if not entry or not entry.get("mean_ms") or entry.get("stddev_ms") is None or not entry.get("rounds"):
        return None
    return entry["stddev_ms"] / math.sqrt(entry["rounds"]) / entry["mean_ms"]


def stands_out(a: float, a_entry: dict[str, Any] | None, b: float, b_entry: dict[str, Any] | None,
               alpha: float = 0.05) -> bool:
    """Whether two timings' values differ beyond their noise: the difference larger than the
    two-sided ``alpha`` quantile of its standard error (Welch's z, from each mean's standard
    error); never when either has no statistics to judge by."""
    rel_a, rel_b = relative_standard_error(a_entry), relative_standard_error(b_entry)
    if rel_a is None or rel_b is None:
        return False
    error = math.hypot(a * rel_a, b * rel_b)
    return abs(a - b) > NormalDist().inv_cdf(1 - alpha / 2) * error
