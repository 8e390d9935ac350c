"""Timed items through pytester: pytest-benchmark's statistics, JSON, --benchmark-skip/-only and
--benchmark-compare keep working; rounds bounded by the time budget; timings not taken under xdist and
merged from a second invocation; bfloat16 on CPU."""

from __future__ import annotations

import json

import pytest

from ..helpers import BENCHMARK, LATENCY, write_native_checkpoint, write_wikitext

SMALL_SHAPES = ["--latency-shapes", "1x16,2x32", "--throughput-shape", "4x32", "--latency-rounds", "7"]


@pytest.fixture
def timed_suite(pytester, offline):
    pytester.makepyfile(test_latency=LATENCY, test_perplexity=BENCHMARK)
    write_wikitext(pytester.path / "data")
    write_native_checkpoint(pytester.path / "ck" / "a", seed=1)
    return pytester


def test_timed_items_record_pytest_benchmark_statistics(timed_suite):
    result = timed_suite.runpytest_subprocess("--checkpoint", "ck", "--run-id", "t", "-m", "latency or throughput",
                                        "--benchmark-json", "bench.json", *SMALL_SHAPES,
                                        "--timing-budget", "1000")  # every round asked for, however slow
    result.assert_outcomes(passed=4)
    record = json.loads((timed_suite.path / "reports/t/a/metrics.json").read_text())
    theirs = {b["param"]: b["stats"] for b in json.loads((timed_suite.path / "bench.json").read_text())["benchmarks"]}
    ours = record["latency"]["2x32"]
    assert ours["rounds"] == 7 == theirs["a-2x32"]["rounds"]
    assert ours["mean_ms"] == pytest.approx(theirs["a-2x32"]["mean"] * 1000)
    assert ours["min_ms"] <= ours["median_ms"] <= ours["p95_ms"] <= ours["p99_ms"] <= ours["max_ms"]
    throughput = record["throughput"]
    assert throughput["batch"] == 4 and record["throughput_tokens_per_sec"] == pytest.approx(
        4 * 32 / (theirs["a"]["mean"]))
    assert record["latency_batch1_seq128"] is None  # only the 1x128 / 1x512 shapes fill the original fields
    assert "Latency and throughput" in (timed_suite.path / "reports/t/a/summary.md").read_text()
    scaling = record["batch_scaling"]
    assert [p["batch"] for p in scaling["points"]] == [1, 4, 16, 64] and scaling["stopped"] is None
    assert all(p["tokens_per_sec"] > 0 for p in scaling["points"])


def test_under_xdist_timings_are_not_taken_and_a_second_invocation_merges_them(timed_suite):
    first = timed_suite.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "--run-id", "r", "-n", "2",
                                       *SMALL_SHAPES)
    first.assert_outcomes(passed=2, skipped=4)
    record = json.loads((timed_suite.path / "reports/r/a/metrics.json").read_text())
    assert record["latency"]["1x16"]["timing"] == "not taken" and "xdist" in record["latency"]["1x16"]["reason"]
    assert record["throughput_tokens_per_sec"] is None

    second = timed_suite.runpytest_subprocess("--checkpoint", "ck", "-p", "no:xdist", "-m", "latency or throughput",
                                        "--merge-into", "reports/r", *SMALL_SHAPES)
    second.assert_outcomes(passed=4)
    merged = json.loads((timed_suite.path / "reports/r/a/metrics.json").read_text())
    assert merged["latency"]["1x16"]["timing"] == "taken" and "reason" not in merged["latency"]["1x16"]
    assert merged["val_perplexity"] == record["val_perplexity"] is not None
    assert merged["throughput_tokens_per_sec"] > 0 and len(merged["invocations"]) == 2
    assert all(item["outcome"] == "passed" for item in merged["items"].values())


def test_benchmark_compare_keeps_working(timed_suite):
    args = ["--checkpoint", "ck", "-m", "latency", "--benchmark-storage", "file://bench", *SMALL_SHAPES]
    timed_suite.runpytest_subprocess(*args, "--benchmark-autosave").assert_outcomes(passed=2)
    again = timed_suite.runpytest_subprocess(*args, "--benchmark-compare", "--benchmark-compare-fail=mean:10000%")
    again.assert_outcomes(passed=2)
    again.stderr.fnmatch_lines(["*Comparing against benchmarks from*"])


def test_bfloat16_on_cpu_is_evaluated_and_recorded(timed_suite):
    result = timed_suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "bf", "--dtype", "bfloat16",
                             "-m", "perplexity")
    result.assert_outcomes(passed=2)
    record = json.loads((timed_suite.path / "reports/bf/a/metrics.json").read_text())
    assert record["environment"]["dtype"] == "bfloat16" and record["val_perplexity"] > 1


@pytest.fixture
def timed(pytester, offline):
    pytester.makepyfile(test_latency=LATENCY)
    write_native_checkpoint(pytester.path / "ck" / "a", seed=1)
    return pytester


TIMED = ("--checkpoint", "ck", "--latency-shapes", "1x8,1x16", "--throughput-shape", "2x16", "--batch-sweep", "1,2",
         "-p", "no:xdist")


def test_benchmark_json_has_readable_params_groups_and_extra_info(timed):
    timed.runpytest(*TIMED, "--benchmark-json", "bench.json").assert_outcomes(passed=4)
    benches = {b["name"]: b for b in json.loads((timed.path / "bench.json").read_text())["benchmarks"]}
    assert set(benches) == {"test_latency[a-1x8]", "test_latency[a-1x16]", "test_throughput[a]"}
    assert benches["test_latency[a-1x8]"]["params"] == {"checkpoint_spec": "a", "latency_shape": "1x8"}
    assert benches["test_throughput[a]"]["params"] == {"checkpoint_spec": "a"}
    assert {b["group"] for b in benches.values()} == {"latency 1x8", "latency 1x16", "throughput 2x16"}
    assert "UNSERIALIZABLE" not in (timed.path / "bench.json").read_text()
    extra = benches["test_throughput[a]"]["extra_info"]
    assert extra["tokens_per_sec"] == pytest.approx(2 * 16 / benches["test_throughput[a]"]["stats"]["mean"])
    assert extra["peak_rss_mb"] > 0
    # batch scaling, timed outside the fixture, is in the JSON too (the README says --benchmark-json holds it)
    scaling = json.loads((timed.path / "bench.json").read_text())["lmeval_batch_scaling"]["a"]
    assert [p["batch"] for p in scaling["points"]] == [1, 2] and scaling["seq"] == 16
    assert all(p["tokens_per_sec"] > 0 for p in scaling["points"])


@pytest.mark.parametrize(("flag", "passed", "skipped"), [("--benchmark-skip", 0, 4), ("--benchmark-only", 4, 0)])
def test_batch_scaling_follows_benchmark_skip_and_only(timed, flag, passed, skipped):
    timed.makepyfile(test_other="def test_other():\n    pass\n")
    result = timed.runpytest(*TIMED, flag)
    other = (1, 0) if flag == "--benchmark-skip" else (0, 1)
    result.assert_outcomes(passed=passed + other[0], skipped=skipped + other[1])


def test_timing_records_rounds_within_the_budget(timed):
    timed.runpytest(*TIMED, "--run-id", "t", "--timing-budget", "0", "--latency-rounds", "30").assert_outcomes(
        passed=4)
    record = json.loads((timed.path / "reports" / "t" / "a" / "metrics.json").read_text())
    assert {e["rounds"] for e in record["latency"].values()} == {5}  # the least, as the budget is 0
    assert record["throughput"]["rounds"] == 2
    assert record["latency"]["1x8"]["timing_budget_s"] == 0 and record["latency"]["1x8"]["max_rounds"] == 30
    assert all(p["rounds"] == 2 for p in record["batch_scaling"]["points"])
