"""Timing and memory readings that are right on CUDA as well as on CPU.

CUDA kernels are queued asynchronously: a clock read right after ``model(ids)``
measures only the launch. ``synchronised`` wraps a function so that the device is
drained before the clock starts (in the untimed set-up) and inside the timed call,
so every queued kernel is counted. pytest-benchmark does the statistics.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.numerics import quantile

# A timing is noisy when its rounds spread this much (interquartile range over median), or its
# standard deviation exceeds NOISY_STDDEV of its mean (a few rounds far out, as on a busy machine):
# docs/metrics.md, "Timings that admit their noise". A noisy timing is flagged, gates do not judge it
# and comparison.md does not bold it.
NOISY_SPREAD = 0.25
NOISY_STDDEV = 0.5
CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


def device_sync(device: torch.device | str) -> Callable[[], None]:
    """A function that waits for all queued work on ``device`` (a no-op on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def synchronised(fn: Callable[[], Any], device: torch.device | str) -> Callable[[], None]:
    sync = device_sync(device)

    def timed() -> None:
        fn()
        sync()

    return timed


def timer_description(device: torch.device | str) -> str:
    kind = torch.device(device).type
    if kind in ("cuda", "mps"):
        return f"time.perf_counter, torch.{kind}.synchronize before each start and inside each timed call"
    return "time.perf_counter (CPU, synchronous)"


def percentile(data: list[float], q: float) -> float:
    """``numerics.quantile`` with q in [0, 100], as latency percentiles are named (p95, p99)."""
    return quantile(data, q / 100)


def summarise_ms(data_seconds: list[float]) -> dict[str, Any]:
    """Statistics of the rounds in ms, with their spread (``iqr_ms``) and ``noisy``: why the
    timing cannot be trusted (``timing_noise``), or None."""
    ms = [t * 1000 for t in data_seconds]
    stats: dict[str, Any] = {
        "mean_ms": statistics.fmean(ms), "median_ms": statistics.median(ms),
        "p95_ms": percentile(ms, 95), "p99_ms": percentile(ms, 99),
        "stddev_ms": statistics.stdev(ms) if len(ms) > 1 else 0.0,
        "iqr_ms": percentile(ms, 75) - percentile(ms, 25),
        "min_ms": min(ms), "max_ms": max(ms), "rounds": len(ms),
    }
    return stats | {"noisy": timing_noise(stats)}


def timing_noise(stats: dict[str, Any]) -> str | None:
    """Why a timing's rounds are too spread to be trusted, or None: the interquartile range above
    NOISY_SPREAD of the median, or the standard deviation above NOISY_STDDEV of the mean. Reads
    only the statistics, so a record written before ``noisy`` existed is judged the same way."""
    median, iqr = stats.get("median_ms"), stats.get("iqr_ms")
    mean, stddev = stats.get("mean_ms"), stats.get("stddev_ms")
    if median and iqr is not None and iqr / median > NOISY_SPREAD:
        return f"noisy: rounds spread {iqr / median:.2f} of the median (IQR/median above {NOISY_SPREAD})"
    if mean and stddev is not None and stddev / mean > NOISY_STDDEV:
        return f"noisy: standard deviation {stddev / mean:.2f} of the mean (above {NOISY_STDDEV})"
    return None


def machine_load() -> dict[str, Any]:
    """The 1-minute load average and the cores it is shared by (None where the system has none):
    recorded before and after each timing, so a reader sees how busy the machine was."""
    try:
        load: float | None = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        load = None
    return {"load": load, "cpus": os.cpu_count()}


def with_load(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``measure()``'s statistics with the machine's load before and after it."""
    before = machine_load()
    stats = measure()
    after = machine_load()
    return stats | {"load_before": before["load"], "load_after": after["load"], "cpus": after["cpus"]}


class MemoryWatch:
    """Peak memory of one measured block: device peaks on CUDA, peak RSS on CPU.

    On Linux the process's peak RSS (VmHWM) is reset at ``start`` by writing 5 to
    /proc/self/clear_refs, so the reading belongs to this block; where that is not
    possible the lifetime peak is reported and labelled as such.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.rss_scope = "process lifetime"

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            CLEAR_REFS.write_text("5")
            self.rss_scope = "this item"
        except OSError:
            self.rss_scope = "process lifetime"

    def read(self) -> dict[str, Any]:
        reading: dict[str, Any] = {"peak_rss_mb": peak_rss_mb(), "peak_rss_scope": self.rss_scope}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            reading["memory_allocated_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            reading["memory_reserved_mb"] = torch.cuda.max_memory_reserved(self.device) / 2**20
        return reading


def peak_rss_mb() -> float:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource  # POSIX only: Windows has neither /proc nor getrusage
    except ImportError:
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB on Linux
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@dataclass(frozen=True)
class RoundPolicy:
    """How many timed rounds a measurement takes: as many as fit ``budget_s`` seconds (judged by
    the last warm-up round), at least ``least`` and at most ``most``. Bounding timings by time,
    not by a count, keeps them a small share of a run on a slow or loaded machine, where a
    fixed count of long rounds would dominate it."""

    most: int
    warmup: int
    budget_s: float
    least: int = 1
    family: str = "latency"  # pytest-benchmark's group: "latency 1x128", "throughput 32x512"

    def rounds(self, round_s: float | None) -> int:
        if round_s is None or round_s <= 0 or math.isinf(self.budget_s):  # nothing to judge by, or no bound
            return self.most
        return max(min(self.least, self.most), min(self.most, math.floor(self.budget_s / round_s + 1e-9)))

    def describe(self) -> dict[str, Any]:
        return {"warmup_rounds": self.warmup, "max_rounds": self.most, "timing_budget_s": self.budget_s}


def warm_up(fn: Callable[[], Any], sync: Callable[[], None], warmup: int) -> float | None:
    """Runs ``warmup`` untimed rounds; the seconds of the last, or None when there were none."""
    seconds = None
    for _ in range(warmup):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        seconds = time.perf_counter() - start
    return seconds


def time_rounds(fn: Callable[[], Any], device: torch.device | str, policy: RoundPolicy) -> list[float]:
    """Seconds per round of ``fn``, draining the device before each start and after each call.

    For measurements that cannot go through pytest-benchmark's fixture (it times one
    function per test), such as a sweep over batch sizes within one item.
    """
    sync = device_sync(device)
    timings = []
    for _ in range(policy.rounds(warm_up(fn, sync, policy.warmup))):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        timings.append(time.perf_counter() - start)
    return timings


XDIST_TIMING_REASON = ("timings are not taken under pytest-xdist (pytest-benchmark disables itself there); "
                       "run the timed items alone: pytest benchmarks -p no:xdist -m \"latency or throughput\" "
                       "--merge-into reports/<run_id>")


def timing_unavailable(*, under_xdist: bool, benchmark_disabled: bool) -> str | None:
    """Why a process must not take timings, or None: timings taken beside other items'
    work, or with pytest-benchmark switched off, would be wrong, so none is taken."""
    if under_xdist:
        return XDIST_TIMING_REASON
    if benchmark_disabled:
        return "pytest-benchmark is disabled (--benchmark-disable): no timing taken"
    return None


def describe(stats: dict[str, Any], device: torch.device, policy: RoundPolicy) -> dict[str, Any]:
    return stats | {"timer": timer_description(device)} | policy.describe()


def benchmark_forward(pedantic: Callable[..., Any], timings: Callable[[], list[float]], model: torch.nn.Module,
                      ids: torch.Tensor, policy: RoundPolicy) -> dict[str, Any]:
    """Times ``model(ids)`` through pytest-benchmark's ``pedantic`` (its statistics and its
    report), draining the device before each round and inside it. The warm-up runs here,
    not in pedantic, because its duration decides the number of rounds."""
    forward = synchronised(lambda: model(ids), ids.device)

    def measure() -> dict[str, Any]:
        with torch.inference_mode():
            rounds = policy.rounds(warm_up(forward, device_sync(ids.device), policy.warmup))
            pedantic(forward, setup=device_sync(ids.device), rounds=rounds, warmup_rounds=0, iterations=1)
        return summarise_ms(list(timings()))

    return describe(with_load(measure), ids.device, policy)


@torch.inference_mode()
def plain_forward_timer(model: torch.nn.Module, ids: torch.Tensor, policy: RoundPolicy) -> dict[str, Any]:
    """The same statistics without pytest-benchmark (the library API's timer)."""
    return describe(with_load(lambda: summarise_ms(time_rounds(lambda: model(ids), ids.device, policy))), ids.device,
                    policy)
