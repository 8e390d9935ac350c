"""What a run writes into its report folder, through pytester: the same run id twice merges and never
replaces, and is refused on other data or settings; nothing is written when nothing ran; files follow the
umask; an unwritable folder is one clear error."""

import os
import stat

import pytest

from ..helpers import record_of, write_native_checkpoint


def test_the_same_run_id_twice_keeps_both_invocations_figures(suite):
    write_native_checkpoint(suite.path / "ck" / "b", seed=2)
    args = ["--checkpoint", "ck", "--data-dir", "data", "--run-id", "same"]
    suite.runpytest(*args, "-m", "perplexity").assert_outcomes(passed=4)
    suite.runpytest(*args, "-m", "smallbench", "-k", "sst2 or rte").assert_outcomes(passed=4)
    for name in ("a", "b"):
        record = record_of(suite, "same", name)
        assert record["val_perplexity"] is not None and record["smallbench_sentiment_acc"] is not None
        assert len(record["invocations"]) == 2 and record["complete"] is True
    # shards of one run written into one folder join the same way
    shard_args = ["--checkpoint", "ck", "--data-dir", "data", "--run-id", "sharded", "-m", "perplexity"]
    suite.runpytest(*shard_args, "--shard", "1/2").assert_outcomes(passed=2)
    suite.runpytest(*shard_args, "--shard", "2/2").assert_outcomes(passed=2)
    assert all(record_of(suite, "sharded", n)["test_perplexity"] is not None for n in ("a", "b"))


def test_a_run_id_reused_on_other_data_is_refused_and_the_first_record_kept(suite):
    args = ["--checkpoint", "ck", "--data-dir", "data", "--run-id", "r", "-m", "perplexity"]
    suite.runpytest(*args).assert_outcomes(passed=2)
    first = (suite.path / "reports/r/a/metrics.json").read_text()
    (suite.path / "data/wikitext-2-raw/validation.txt").write_text(" = Other = \n other text . \n")
    result = suite.runpytest(*args)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["*could not merge the record of a into *r/a: *differs from the earlier record*"])
    assert (suite.path / "reports/r/a/metrics.json").read_text() == first


def test_the_same_run_id_under_other_settings_is_refused(suite):
    args = ["--checkpoint", "ck", "--data-dir", "data", "--run-id", "s"]
    suite.runpytest(*args, "-m", "smallbench", "--max-samples", "5").assert_outcomes(passed=4)
    before = (suite.path / "reports/s/a/metrics.json").read_text()
    result = suite.runpytest(*args, "-m", "smallbench", "--max-samples", "2")
    result.stdout.fnmatch_lines(["*measured with other settings than the earlier record (max_samples 2 vs 5)*"])
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    assert (suite.path / "reports/s/a/metrics.json").read_text() == before


@pytest.mark.parametrize("args", [["--collect-only"], ["--fixtures"], ["-m", "nosuchfamily"], ["-k", "nothing"],
                                  ["--markers"], ["--setup-only"], ["--setup-plan"]])
def test_nothing_is_written_when_nothing_ran(suite, args):
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", *args)
    assert not (suite.path / "reports").exists()


def test_report_files_follow_the_umask(suite):
    old = os.umask(0o022)
    try:
        suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "u", "-m", "perplexity",
                        "--log-samples")
    finally:
        os.umask(old)
    files = [p for p in (suite.path / "reports/u").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert len(files) >= 4
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files), [
        (p.name, oct(p.stat().st_mode)) for p in files]


def test_an_unwritable_report_folder_is_a_clear_error_at_session_end(ppl_suite):
    ckpt = write_native_checkpoint(ppl_suite.path / "ck" / "a")
    (ppl_suite.path / "blocked").mkdir()
    (ppl_suite.path / "blocked" / "r").write_text("a file where the run folder should go")
    result = ppl_suite.runpytest("--checkpoint", str(ckpt), "--data-dir", "data", "--report-dir", "blocked",
                                 "--run-id", "r")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["*could not write the reports into blocked/r*"])
