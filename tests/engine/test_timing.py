"""Timing helpers and the timed items, through pytester."""

import json
from pathlib import Path

import numpy
import pytest
import torch

from lmeval_fixtures.engine import timing
from lmeval_fixtures.engine.timing import MemoryWatch, percentile, summarise_ms, synchronised

from .conftest import write_native_checkpoint, write_wikitext
from .test_plugin import BENCHMARK

LATENCY = (Path(__file__).parents[1] / "benchmarks" / "test_latency.py").read_text()
SMALL_SHAPES = ["--latency-shapes", "1x16,2x32", "--throughput-shape", "4x32", "--latency-rounds", "7"]


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
    assert timing.is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert not timing.is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.fixture
def suite(pytester, offline):
    pytester.makepyfile(test_latency=LATENCY, test_perplexity=BENCHMARK)
    write_wikitext(pytester.path / "data")
    write_native_checkpoint(pytester.path / "ck" / "a", seed=1)
    return pytester


def test_timed_items_record_pytest_benchmark_statistics(suite):
    result = suite.runpytest_subprocess("--checkpoint", "ck", "--run-id", "t", "-m", "latency or throughput",
                                        "--benchmark-json", "bench.json", *SMALL_SHAPES,
                                        "--timing-budget", "1000")  # every round asked for, however slow
    result.assert_outcomes(passed=4)
    record = json.loads((suite.path / "reports/t/a/metrics.json").read_text())
    theirs = {b["param"]: b["stats"] for b in json.loads((suite.path / "bench.json").read_text())["benchmarks"]}
    ours = record["latency"]["2x32"]
    assert ours["rounds"] == 7 == theirs["a-2x32"]["rounds"]
    assert ours["mean_ms"] == pytest.approx(theirs["a-2x32"]["mean"] * 1000)
    assert ours["min_ms"] <= ours["median_ms"] <= ours["p95_ms"] <= ours["p99_ms"] <= ours["max_ms"]
    throughput = record["throughput"]
    assert throughput["batch"] == 4 and record["throughput_tokens_per_sec"] == pytest.approx(
        4 * 32 / (theirs["a"]["mean"]))
    assert record["latency_batch1_seq128"] is None  # only the 1x128 / 1x512 shapes fill the original fields
    assert "Latency and throughput" in (suite.path / "reports/t/a/summary.md").read_text()
    scaling = record["batch_scaling"]
    assert [p["batch"] for p in scaling["points"]] == [1, 4, 16, 64] and scaling["stopped"] is None
    assert all(p["tokens_per_sec"] > 0 for p in scaling["points"])


def test_under_xdist_timings_are_not_taken_and_a_second_invocation_merges_them(suite):
    first = suite.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "--run-id", "r", "-n", "2",
                                       *SMALL_SHAPES)
    first.assert_outcomes(passed=2, skipped=4)
    record = json.loads((suite.path / "reports/r/a/metrics.json").read_text())
    assert record["latency"]["1x16"]["timing"] == "not taken" and "xdist" in record["latency"]["1x16"]["reason"]
    assert record["throughput_tokens_per_sec"] is None

    second = suite.runpytest_subprocess("--checkpoint", "ck", "-p", "no:xdist", "-m", "latency or throughput",
                                        "--merge-into", "reports/r", *SMALL_SHAPES)
    second.assert_outcomes(passed=4)
    merged = json.loads((suite.path / "reports/r/a/metrics.json").read_text())
    assert merged["latency"]["1x16"]["timing"] == "taken" and "reason" not in merged["latency"]["1x16"]
    assert merged["val_perplexity"] == record["val_perplexity"] is not None
    assert merged["throughput_tokens_per_sec"] > 0 and len(merged["invocations"]) == 2
    assert all(item["outcome"] == "passed" for item in merged["items"].values())


def test_benchmark_compare_keeps_working(suite):
    args = ["--checkpoint", "ck", "-m", "latency", "--benchmark-storage", "file://bench", *SMALL_SHAPES]
    suite.runpytest_subprocess(*args, "--benchmark-autosave").assert_outcomes(passed=2)
    again = suite.runpytest_subprocess(*args, "--benchmark-compare", "--benchmark-compare-fail=mean:10000%")
    again.assert_outcomes(passed=2)
    again.stderr.fnmatch_lines(["*Comparing against benchmarks from*"])


def test_bfloat16_on_cpu_is_evaluated_and_recorded(suite):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "bf", "--dtype", "bfloat16",
                             "-m", "perplexity")
    result.assert_outcomes(passed=2)
    record = json.loads((suite.path / "reports/bf/a/metrics.json").read_text())
    assert record["environment"]["dtype"] == "bfloat16" and record["val_perplexity"] > 1
