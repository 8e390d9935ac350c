"""The result cache across processes: two concurrent runs sharing a cache both finish with equal records; a
killed run resumes with only the rest recomputed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..helpers import (
    cached_items,
    lay_out_suite,
    write_native_checkpoint,
    write_smallbench,
    write_wikitext,
)


def test_two_concurrent_runs_sharing_a_cache_both_finish_with_equal_records(tmp_path):
    write_wikitext(tmp_path / "data")
    write_smallbench(tmp_path / "data")
    write_native_checkpoint(tmp_path / "ck" / "a", seed=1)
    (tmp_path / "conftest.py").write_text("pytest_plugins = ['lmeval_fixtures.plugin']\n")
    from ..helpers import BENCHMARK, SMALLBENCH

    (tmp_path / "test_perplexity.py").write_text(BENCHMARK)
    (tmp_path / "test_smallbench.py").write_text(SMALLBENCH)
    commands = [[sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--checkpoint", "ck",
                 "--data-dir", "data", "--max-samples", "6", "--cache-dir", "shared-cache", "--report-dir", f"r{i}",
                 "--run-id", "same"] for i in (1, 2)]
    runs = [subprocess.Popen(c, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for c in commands]
    outputs = [p.communicate(timeout=600)[0] for p in runs]
    assert all(p.returncode == 0 for p in runs), outputs
    records = [json.loads((tmp_path / f"r{i}" / "same" / "a" / "metrics.json").read_text()) for i in (1, 2)]
    for key in ("val_bits_per_byte", "test_bits_per_byte", "smallbench_sentiment_acc", "smallbench_avg_acc"):
        assert records[0][key] == records[1][key] is not None
    for path in (tmp_path / "shared-cache").glob("*/*.json"):
        json.loads(path.read_text())  # every entry whole


def test_a_killed_run_resumes_with_only_the_rest_recomputed(pytester, offline):
    suite = lay_out_suite(pytester)
    suite.makeconftest(KILL_AFTER_THREE)  # SIGTERM as the fourth item starts, whatever the order
    args = ["--checkpoint", "ck", "--data-dir", "data", "--max-samples", "6"]
    killed = suite.runpytest_subprocess(*args, "--run-id", "killed")
    assert killed.ret == pytest.ExitCode.INTERRUPTED
    cut = json.loads((suite.path / "reports" / "killed" / "a" / "metrics.json").read_text())
    finished = {_cache_item(node) for node, item in cut["items"].items() if item["outcome"] == "passed"}
    finished.discard(None)
    assert len(finished) == 3  # three items finished, three never ran
    (suite.path / "conftest.py").unlink()
    resumed = suite.runpytest(*args, "--run-id", "resumed")
    resumed.assert_outcomes(passed=6)
    record = json.loads((suite.path / "reports" / "resumed" / "a" / "metrics.json").read_text())
    assert cached_items(record) == finished  # only what had not finished was computed again
    assert record["complete"] is True and record["smallbench_avg_acc"] is not None


KILL_AFTER_THREE = """
import os, signal

PASSED = []


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        PASSED.append(report.nodeid)


def pytest_runtest_setup(item):
    if len(PASSED) == 3:
        os.kill(os.getpid(), signal.SIGTERM)
"""


def _cache_item(nodeid: str) -> str | None:
    param = nodeid.partition("[a-")[2].rstrip("]")
    if "test_perplexity" in nodeid:
        return f"perplexity:wikitext:{param}"
    return f"smallbench:{param}" if "test_smallbench" in nodeid else None
