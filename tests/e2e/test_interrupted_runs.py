"""Runs cut short, through pytester: SIGTERM and Ctrl-C write what finished, marked incomplete, and keep
earlier files; items that never ran are listed."""

import json

import pytest

from lmeval_fixtures.core.schema import validate_record

from ..helpers import record_of, records_of, write_native_checkpoint

TERMINATE = '''
import os, signal

def test_zz_terminate(checkpoint):
    os.kill(os.getpid(), signal.SIGTERM)
'''


def test_sigterm_writes_what_finished_marked_incomplete(suite):
    suite.makepyfile(test_zz_terminate=TERMINATE)
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "keep", "-m", "perplexity")
    before = (suite.path / "reports/keep/a/metrics.json").read_text()
    result = suite.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "--run-id", "cut")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    record = record_of(suite, "cut")
    assert record["complete"] is False and record["val_perplexity"] is not None
    assert any(item["outcome"] == "not run" for item in record["items"].values())
    history = (suite.path / "reports/history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["run_id"] == "cut" and json.loads(history[-1])["complete"] is False
    assert (suite.path / "reports/keep/a/metrics.json").read_text() == before


INTERRUPT = '''
import os, signal

def test_zz_interrupt(checkpoint):
    # Ctrl-C as a terminal sends it; a process started in the background of a non-interactive
    # shell inherits SIGINT ignored, so the handler Python installs for a terminal is put back
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.kill(os.getpid(), signal.SIGINT)
'''


def test_ctrl_c_writes_a_partial_report_marked_incomplete_and_keeps_earlier_files(ppl_suite):
    ppl_suite.makepyfile(test_zz_interrupt=INTERRUPT)
    ckpt = write_native_checkpoint(ppl_suite.path / "ck" / "a")
    ppl_suite.runpytest("--checkpoint", str(ckpt), "--data-dir", "data", "--run-id", "keep", "-m", "perplexity")
    before = (ppl_suite.path / "reports/keep/a/metrics.json").read_text()
    result = ppl_suite.runpytest_subprocess("--checkpoint", str(ckpt), "--data-dir", "data", "--run-id", "cut")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    record = json.loads((ppl_suite.path / "reports/cut/a/metrics.json").read_text())
    validate_record(record)
    assert record["complete"] is False and record["val_perplexity"] is not None
    assert (ppl_suite.path / "reports/keep/a/metrics.json").read_text() == before
    assert not list((ppl_suite.path / "reports").rglob("*.tmp"))


def test_items_that_never_ran_are_listed_and_the_record_is_incomplete(two_models):
    two_models.makepyfile(test_aa_fail="def test_aa_fail(checkpoint):\n    assert False, 'stop here'\n")
    result = two_models.runpytest("--checkpoint", "ck/a", "--data-dir", "data", "--run-id", "x", "-x", "-m",
                             "not smallbench")
    result.assert_outcomes(failed=1)
    record = records_of(two_models.path / "reports", "x")["a"]
    assert record["complete"] is False
    not_run = [node for node, item in record["items"].items() if item["outcome"] == "not run"]
    assert len(not_run) == 2 and all("test_perplexity" in node for node in not_run)
    assert "Incomplete run" in (two_models.path / "reports/x/a/summary.md").read_text()
