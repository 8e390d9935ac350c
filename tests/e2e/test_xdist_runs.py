"""Runs under pytest-xdist: the same records as a serial run, every checkpoint of a sweep reported, CPU threads
divided between workers, and a dead worker loses no finished figures."""

import json
import os

import pytest

from ..helpers import records_of, write_native_checkpoint


def test_serial_and_xdist_records_are_identical(ppl_suite):
    for name, seed in (("a", 1), ("b", 2)):
        write_native_checkpoint(ppl_suite.path / "ck" / name, seed=seed)
    common = ["--checkpoint", "ck", "--data-dir", "data", "-p", "no:cacheprovider", "--no-cache"]  # both computed
    ppl_suite.runpytest_subprocess(*common, "--run-id", "serial").assert_outcomes(passed=4)
    ppl_suite.runpytest_subprocess(*common, "--run-id", "parallel", "-n", "2").assert_outcomes(passed=4)
    run_level = {"seconds", "tokens_per_second", "duration_s", "run_id", "timestamp", "environment", "invocations"}

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in run_level}
        return value

    for name in ("a", "b"):
        serial = json.loads((ppl_suite.path / f"reports/serial/{name}/metrics.json").read_text())
        parallel = json.loads((ppl_suite.path / f"reports/parallel/{name}/metrics.json").read_text())
        assert strip(serial) == strip(parallel)
        assert serial["val_perplexity"] is not None


def test_a_sweep_of_twenty_checkpoints_under_xdist_reports_all_twenty(ppl_suite):
    from ..helpers import make_tokenizer

    tokenizer = make_tokenizer()
    for i in range(20):
        write_native_checkpoint(ppl_suite.path / "sweep" / f"c{i:02d}", seed=i, tokenizer=tokenizer)
    result = ppl_suite.runpytest_subprocess("--checkpoint", "sweep", "--data-dir", "data", "--run-id", "s", "-n", "2")
    result.assert_outcomes(passed=40)
    reports = sorted(p.parent.name for p in (ppl_suite.path / "reports/s").glob("*/metrics.json"))
    assert reports == [f"c{i:02d}" for i in range(20)]
    comparison = (ppl_suite.path / "reports/s/comparison.md").read_text()
    assert all(f"| c{i:02d} |" in comparison for i in range(20))


def test_xdist_workers_divide_the_cpu_threads(two_models):
    two_models.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "--run-id", "x", "-n", "2",
                               "-m", "perplexity").assert_outcomes(passed=4)
    record = json.loads((two_models.path / "reports/x/a/metrics.json").read_text())
    workers = record["environment"]["workers"]
    assert workers and all(w["threads"] == max(1, (os.cpu_count() or 1) // 2) for w in workers.values())


CRASH = '''
import os

import pytest


def test_zz_crash(checkpoint):
    if checkpoint.name == "b":
        os._exit(3)  # the worker process dies here
'''


def test_a_dead_worker_loses_no_finished_figures(two_models):
    two_models.makepyfile(test_zz_crash=CRASH)
    result = two_models.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "--run-id", "d", "-n", "2",
                                        "-m", "perplexity or not smallbench", "-p", "no:randomly")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 and outcomes["passed"] == 5  # 4 perplexity + crash test of "a"
    records = records_of(two_models.path / "reports", "d")
    for name in ("a", "b"):
        assert records[name]["val_perplexity"] is not None and records[name]["test_perplexity"] is not None
    crashed = [item for node, item in records["b"]["items"].items() if "crash" in node]
    assert crashed[0]["outcome"] in ("failed", "error")


FOREIGN = '''
import pytest


@pytest.mark.parametrize("x", [1, 2, 3, 4], ids=["a", "a-x", "b-perplexity", "a-validation"])
def test_own(x):
    assert x < 3  # two pass, two fail: neither may reach a checkpoint's record
'''


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_a_projects_own_tests_named_like_a_checkpoint_are_in_no_record(two_models, workers):
    """A project's test whose parameter id starts with a checkpoint's name is not that checkpoint's item: the
    checkpoint travels with the suite's own reports (and each worker's collection), never read off a node id."""
    two_models.makepyfile(test_own=FOREIGN)
    result = two_models.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "--run-id", "f",
                                             "-m", "perplexity or not smallbench", "-p", "no:randomly", *workers)
    result.assert_outcomes(passed=6, failed=2)  # the suite's 4 perplexity items and the project's 4 tests
    records = records_of(two_models.path / "reports", "f")
    for name in ("a", "b"):
        assert sorted(records[name]["items"]) == [f"test_perplexity.py::test_perplexity[{name}-{split}]"
                                                  for split in ("test", "validation")]
        assert {item["outcome"] for item in records[name]["items"].values()} == {"passed"}
        assert records[name]["complete"] is True
    history = (two_models.path / "reports/history.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["checkpoint"] for line in history) == ["a", "b"]


def test_a_run_whose_every_worker_died_says_its_records_are_incomplete(two_models):
    """With no worker left to say what it collected, the controller cannot tell the suite's unrun items from a
    project's (it never reads a node id for that): the records it can write say ``complete: false``."""
    two_models.makepyfile(test_zz_crash=CRASH.replace('checkpoint.name == "b"', 'checkpoint.name == "a"'))
    result = two_models.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "--run-id", "k", "-n", "1",
                                             "--max-worker-restart", "0", "-m", "perplexity or not smallbench",
                                             "-p", "no:randomly")
    assert result.parseoutcomes()["failed"] == 1  # the crash; b's items never ran
    record = records_of(two_models.path / "reports", "k")["a"]
    assert record["val_perplexity"] is not None  # what finished is kept
    assert record["complete"] is False
