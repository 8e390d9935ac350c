"""One task, one name in every place a run takes one (issue 27): ``-k`` selects a task's item by any of the names
its figures are known by, and ``--compare-by`` takes them too."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("name", ["sst2", "SST-2", "smallbench_sst2_acc", "smallbench_sentiment_acc"])
def test_k_selects_a_task_by_any_of_its_names(suite, name):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--collect-only", "-q", "-m", "smallbench",
                             "-k", name)
    selected = [line for line in result.outlines if "::" in line]
    assert selected == ["test_smallbench.py::test_smallbench[a-sst2]"]


def test_compare_by_takes_a_task_s_other_name_at_start_up(suite):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--collect-only", "-q",
                             "--compare-by", "smallbench_sst2_acc")
    assert result.ret == 0, result.stderr.str()
    refused = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--collect-only", "-q",
                              "--compare-by", "smallbench_sst3_acc")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*--compare-by smallbench_sst3_acc: not a figure of this run*"])
