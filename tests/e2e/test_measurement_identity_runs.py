"""Issue 25 through whole runs (pytester): gates never pass on nothing, records are never replaced in
silence, a cache folder the cache did not make is refused. Each asserts the exit status, the one line,
and that no earlier figure or file was lost."""

from __future__ import annotations

import json

import pytest

ARGS = ["--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity"]


@pytest.mark.parametrize("where", ["empty", "reports", "ck", "ck/a"])
def test_a_checkpoint_without_a_baseline_record_fails_unless_allowed(suite, where):
    (suite.path / "empty").mkdir()
    suite.runpytest(*ARGS, "--run-id", "base").assert_outcomes(passed=2)  # reports/ exists, with no a/ in it
    result = suite.runpytest(*ARGS, "--run-id", "gated", "--baseline", where)
    result.assert_outcomes(failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"*a: no baseline record of a in {where} to gate val_bits_per_byte, * against "
                                 f"(expected {where}/a/metrics.json); pass --allow-missing-baseline for a checkpoint "
                                 "with no baseline yet*"])
    record = json.loads((suite.path / "reports/gated/a/metrics.json").read_text())
    assert record["val_perplexity"] is not None and record["gates"]["baseline"]["ok"] is False  # figures kept

    allowed = suite.runpytest(*ARGS, "--run-id", "allowed", "--baseline", where, "--allow-missing-baseline")
    allowed.assert_outcomes(passed=2)
    record = json.loads((suite.path / "reports/allowed/a/metrics.json").read_text())
    assert record["gates"]["baseline"] == {
        "ok": True, "message": f"no baseline record of a in {where}: val_bits_per_byte, val_perplexity not gated "
                               "(--allow-missing-baseline)"}


def test_update_baseline_of_one_checkpoint_keeps_the_others(two_models):
    two_models.runpytest(*ARGS, "--run-id", "r1", "--update-baseline", "ci").assert_outcomes(passed=4)
    kept = (two_models.path / "reports/baselines/ci/b/metrics.json").read_bytes()
    two_models.runpytest("--checkpoint", "ck/a", "--data-dir", "data", "-m", "perplexity", "--run-id", "r2",
                         "--update-baseline", "ci").assert_outcomes(passed=2)
    assert (two_models.path / "reports/baselines/ci/b/metrics.json").read_bytes() == kept
    assert json.loads((two_models.path / "reports/baselines/ci/a/metrics.json").read_text())["run_id"] == "r2"


@pytest.mark.parametrize("second", ["b.txt", "renamed.txt"])
def test_the_same_run_id_with_a_corpus_of_other_text_is_refused_and_the_first_kept(suite, second):
    (suite.path / "a.txt").write_text("The first corpus has words.\n\nAnd a second paragraph of them.\n")
    (suite.path / second).write_text("Quite other text is scored here.\n\nNothing alike at all.\n")
    corpus = ["--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity", "--run-id", "r", "-k", "held"]
    suite.runpytest(*corpus, "--corpus", "held=a.txt").assert_outcomes(passed=1)
    metrics = suite.path / "reports/r/a/metrics.json"
    before = metrics.read_bytes()
    result = suite.runpytest(*corpus, "--corpus", f"held={second}")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR  # every item passed, but its record could not be written
    result.stdout.fnmatch_lines(["*could not merge the record of a into *: perplexity:held:test differs from the "
                                 "earlier record's data (*); one record holds figures measured one way: use another "
                                 "--run-id*"])
    assert metrics.read_bytes() == before


@pytest.mark.parametrize("earlier", [{"schema_version": 0, "checkpoint": {"name": "a"}},
                                     {"schema_version": 99, "run_id": "r"}, "not json"])
def test_an_earlier_record_that_cannot_be_merged_is_kept_and_said(suite, earlier):
    metrics = suite.path / "reports/r/a/metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(earlier if isinstance(earlier, str) else json.dumps(earlier))
    before = metrics.read_bytes()
    result = suite.runpytest(*ARGS, "--run-id", "r")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines([f"*{metrics.relative_to(suite.path)} kept as it is and this run's a figures not "
                                 "written: it cannot be merged (*); pass another --run-id or --report-dir*"])
    assert metrics.read_bytes() == before


@pytest.mark.parametrize("layout", [{"a/b.json": "{}"}, {"x.txt": "mine"}, {"ab/c.json": "[1]", "d/e.json": "{}"}])
def test_a_cache_folder_of_foreign_files_is_a_usage_error_and_its_files_survive(suite, layout):
    folder = suite.path / "mine"
    for name, text in layout.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    result = suite.runpytest(*ARGS, "--cache-dir", "mine", "--cache-max-mb", "1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cache-dir mine: not a result cache (no .lmeval-result-cache marker, and it "
                                 "holds *); nothing in it was touched; pass a new or empty folder to --cache-dir "
                                 "(or --no-cache)"])
    assert {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()} == layout
    assert not (suite.path / "reports").exists()
