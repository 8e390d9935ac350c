"""What a run tells on the terminal, through pytester: a run that measured nothing fails and writes nothing, a
misspelt option names the one meant, --help leads with the suite's options and honest metavars, and items
taken from the result cache are said to be."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from lmeval_fixtures.evaluation.options import OPTIONS

from ..helpers import BENCHMARK, SMALLBENCH, record_of, write_native_checkpoint


@pytest.mark.parametrize("family", ["perplexity", "smallbench"])
def test_a_run_whose_every_item_skipped_fails_and_writes_no_report_or_history(pytester, offline, family):
    pytester.makepyfile(test_perplexity=BENCHMARK, test_smallbench=SMALLBENCH)
    write_native_checkpoint(pytester.path / "ck" / "a", seed=1)
    result = pytester.runpytest("--checkpoint", "ck", "-m", family, "--run-id", "nothing")  # no data, no hub
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped", 0) >= 2 and "passed" not in outcomes and "failed" not in outcomes
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["lmeval-fixtures: every selected item (*) skipped, so nothing was measured and no "
                                 "report or history line was written; the first reason: *"])
    assert not (pytester.path / "reports").exists()


def test_a_run_with_one_measured_item_among_skips_still_passes_and_reports(pytester, offline):
    pytester.makepyfile(test_perplexity=BENCHMARK, test_smallbench=SMALLBENCH)
    write_native_checkpoint(pytester.path / "ck" / "a", seed=1)
    from ..helpers import write_wikitext

    write_wikitext(pytester.path / "data")  # WikiText only: every SmallBench task skips
    result = pytester.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "some")
    result.assert_outcomes(passed=2, skipped=4)
    assert result.ret == pytest.ExitCode.OK
    assert record_of(pytester, "some")["val_perplexity"] is not None
    assert (pytester.path / "reports" / "history.jsonl").is_file()


@pytest.mark.parametrize(("typed", "meant"), [
    (["--chekpoint", "ck"], "--checkpoint"),
    (["--data-dri=data"], "--data-dir"),
    (["--max-eval-token", "5"], "--max-eval-tokens"),
    (["--latency-shape", "1x8"], "--latency-shapes"),
    (["--lmeval-devise", "cpu"], "--lmeval-device"),
])
def test_a_misspelt_suite_option_is_one_line_naming_the_option_meant(pytester, offline, typed, meant):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    result = pytester.runpytest_subprocess(*typed, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    name = typed[0].partition("=")[0]
    assert f"ERROR: {name}: no such option; did you mean {meant}?" in result.stderr.lines
    assert not any("Traceback" in line for line in result.stderr.lines)


def test_an_unknown_option_close_to_no_suite_option_is_left_to_pytest(pytester, offline):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    result = pytester.runpytest_subprocess("--frobnicate", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "did you mean" not in result.stderr.str()
    assert "unrecognized arguments: --frobnicate" in result.stderr.str()


def test_help_leads_with_the_suite_options_and_their_metavars_are_honest(pytester, offline):
    result = pytester.runpytest_subprocess("--help", "-p", "no:cacheprovider")
    lines = result.stdout.lines
    ours = next(i for i, line in enumerate(lines) if line.startswith("language-model checkpoint benchmarks"))
    general = next(i for i, line in enumerate(lines) if line.startswith("general:"))
    assert ours < general and ours < 40  # not at line 435 of 724
    text = result.stdout.str()
    assert "LMEVAL_" not in text.replace("$LMEVAL_DATA_DIR", "")
    for option in OPTIONS:
        assert re.search(rf"^\s+{re.escape(option.flag)}\b", text, re.MULTILINE), option.flag
    checkpoint_help = " ".join(text.partition("--checkpoint=")[2].split()[:40])
    assert "Hugging Face" in checkpoint_help and "hub model id" in checkpoint_help


def test_the_run_commands_help_shows_the_suite_options_first(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_PLUGINS")
    done = subprocess.run([sys.executable, "-m", "lmeval_fixtures", "run", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("usage: lmeval-fixtures run [SUITE OPTIONS] [PYTEST OPTIONS]")
    first_suite = next(i for i, line in enumerate(lines) if line.strip().startswith("--checkpoint"))
    pytest_usage = next(i for i, line in enumerate(lines) if line.startswith("usage:") and i > 0)
    assert first_suite < 20 < pytest_usage
    assert all(any(line.strip().startswith(o.flag) for line in lines[:pytest_usage]) for o in OPTIONS)


def test_items_from_the_result_cache_are_said_to_be_on_the_terminal_and_in_summary(pytester, offline):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    from ..helpers import write_wikitext

    write_wikitext(pytester.path / "data")
    write_native_checkpoint(pytester.path / "ck" / "a", seed=1)
    first = pytester.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "one")
    first.assert_outcomes(passed=2)
    assert "from the result cache" not in first.stdout.str()
    second = pytester.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "two")
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(["a: 2 item(s) from the result cache, not recomputed (--refresh recomputes): "
                                 "perplexity:wikitext:test, perplexity:wikitext:validation"])
    summary = (pytester.path / "reports" / "two" / "a" / "summary.md").read_text()
    assert ("Taken from the result cache, not recomputed (`--refresh` recomputes): perplexity:wikitext:test (run "
            "one), perplexity:wikitext:validation (run one).") in summary
    assert "result cache" not in (pytester.path / "reports" / "one" / "a" / "summary.md").read_text()
