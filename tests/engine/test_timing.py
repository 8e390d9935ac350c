"""Timing helpers (``engine.timing``): percentiles, the CUDA drain, the memory watch, and how many rounds a
timed item takes."""

from __future__ import annotations

import numpy
import pytest
import torch

from lmeval_fixtures.engine import memory_fit, timing
from lmeval_fixtures.engine.timing import MemoryWatch, RoundPolicy, percentile, summarise_ms, synchronised


@pytest.mark.parametrize("q", [0, 50, 95, 99, 100])
def test_percentile_matches_numpy(q):
    data = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.3]
    assert percentile(data, q) == pytest.approx(numpy.percentile(data, q))


def test_summary_in_milliseconds():
    stats = summarise_ms([0.001, 0.002, 0.003])
    assert stats["mean_ms"] == pytest.approx(2.0) and stats["median_ms"] == pytest.approx(2.0)
    assert stats["stddev_ms"] == pytest.approx(1.0) and stats["rounds"] == 3


def test_cuda_timing_drains_the_device_inside_the_timed_call(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("sync", str(device))))
    timed = synchronised(lambda: calls.append(("work", None)), "cuda:0")
    timed()
    assert calls == [("work", None), ("sync", "cuda:0")]
    assert "synchronize" in timing.timer_description("cuda:0")
    cpu_calls = []
    synchronised(lambda: cpu_calls.append("work"), "cpu")()
    assert cpu_calls == ["work"]


def test_memory_watch_reads_this_block_on_linux():
    watch = MemoryWatch("cpu")
    watch.start()
    block = bytearray(64 * 2**20)  # touched: 64 MiB resident
    block[::4096] = b"x" * len(block[::4096])
    reading = watch.read()
    assert reading["peak_rss_mb"] > 64
    assert reading["peak_rss_scope"] in ("this item", "process lifetime")


def test_out_of_memory_is_recognised():
    assert memory_fit.is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert not memory_fit.is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.parametrize(("round_s", "budget", "rounds"), [
    (0.01, 1.0, 20), (0.1, 1.0, 10), (0.4, 1.0, 5), (5.0, 1.0, 5), (None, 1.0, 20), (0.01, 0.0, 5),
    (0.01, float("inf"), 20)])
def test_timed_rounds_are_bounded_by_time_between_least_and_most(round_s, budget, rounds):
    assert RoundPolicy(most=20, warmup=3, budget_s=budget, least=5).rounds(round_s) == rounds
    assert RoundPolicy(most=3, warmup=1, budget_s=budget, least=5).rounds(round_s) == 3  # never above most
