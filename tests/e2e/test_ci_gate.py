"""A gate never goes green on nothing, on a wrong figure, or after losing a record (issue #13).

Each class of hostile input is tried with several members; each test asserts the exit
status, the one line the user sees, and that no other checkpoint's figures are lost.
"""

import json
import math
import os
import stat

import pytest

from lmeval_fixtures.cli.main import main as cli

from .conftest import write_native_checkpoint, write_wikitext
from .test_gates import lay_out_suite
from .test_plugin import BENCHMARK


@pytest.fixture
def suite(pytester, offline):
    return lay_out_suite(pytester)  # perplexity + SmallBench benchmarks, data in data/, checkpoint ck/a


def record_of(suite, run: str, name: str = "a") -> dict:
    return json.loads((suite.path / "reports" / run / name / "metrics.json").read_text())


# ---- run ids stay inside the report folder --------------------------------------------------

@pytest.mark.parametrize("run_id", ["../escape", "/tmp/abs", "..", ".", "a/b", "a\\b", "-dash", ".hidden", ""])
def test_a_run_id_is_one_plain_name(suite, run_id):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", f"--run-id={run_id}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--run-id *: use one plain name*"])
    assert not (suite.path / "reports").exists() and not (suite.path / "escape").exists()


# ---- SIGTERM is Ctrl-C -------------------------------------------------------------------------

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


# ---- the same run id twice merges, never replaces ------------------------------------------

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


# ---- compare across runs keys rows by run and checkpoint -----------------------------------

def test_compare_keeps_a_checkpoint_of_two_runs_apart(suite, capsys):
    for run in ("r1", "r2"):
        suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", run, "--log-samples",
                        "-m", "smallbench", "-k", "sst2").assert_outcomes(passed=1)
    out = suite.path / "cmp"
    assert cli(["compare", str(suite.path / "reports/r1"), str(suite.path / "reports/r2"), "--out", str(out),
                "--compare-by", "smallbench_sentiment_acc"]) == 0
    text = (out / "comparison.md").read_text()
    assert "| a @ r1 |" in text and "| a @ r2 |" in text
    assert "a @ r1 vs a @ r2" in text or "a @ r1 - a @ r2" in text
    assert "a - a" not in text


# ---- a data path given and not usable is a usage error ---------------------------------------

@pytest.mark.parametrize("how", ["typo", "file", "env", "ini"])
def test_an_unusable_data_dir_is_a_usage_error(suite, monkeypatch, how):
    args = ["--checkpoint", "ck"]
    if how == "typo":
        args += ["--data-dir", "dta"]
    elif how == "file":
        args += ["--data-dir", "data/wikitext-2-raw/validation.txt"]
    elif how == "env":
        monkeypatch.setenv("LMEVAL_DATA_DIR", "/nonexistent/lmeval")
    else:
        suite.makeini("[pytest]\nlmeval_data_dir = nowhere\n")
    result = suite.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    what = "is not a folder" if how == "file" else "does not exist"
    result.stderr.fnmatch_lines([f"*{what}; pass the folder that holds wikitext-2-raw/*"])
    assert not (suite.path / "reports").exists()


def test_with_a_baseline_a_gated_item_that_skips_fails(suite):
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "base").assert_outcomes(passed=6)
    os.remove(suite.path / "data/smallbench/rte/validation.jsonl")
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--baseline", "reports/base")
    result.assert_outcomes(passed=5, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*--baseline given, but this gated item skipped: *rte/validation.jsonl not found*"])
    # without a baseline the same skip is a skip; --strict-skips (or the ini key) makes it a failure
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data").assert_outcomes(passed=5, skipped=1)
    strict = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--strict-skips")
    strict.assert_outcomes(passed=5, errors=1)
    strict.stdout.fnmatch_lines(["*skipped under --strict-skips: *rte/validation.jsonl not found*"])
    suite.makeini("[pytest]\nlmeval_strict_skips = true\n")
    assert suite.runpytest("--checkpoint", "ck", "--data-dir", "data").ret == pytest.ExitCode.TESTS_FAILED


# ---- baselines made under other settings, or of another checkpoint, are refused -------------

@pytest.mark.parametrize("changed, setting", [
    (["--max-samples", "5"], "max_samples"), (["--prompts", "lm-eval"], "prompt_set"),
    (["--fewshot", "1"], "fewshot"), (["--max-eval-tokens", "50"], "max_eval_tokens"),
    (["--detokenize", "off"], "detokenized"),
])
def test_a_baseline_under_other_settings_is_refused_naming_the_setting(suite, changed, setting):
    args = ["--checkpoint", "ck", "--data-dir", "data", "--max-samples", "6"]
    suite.runpytest(*args, "--run-id", "base").assert_outcomes(passed=6)
    changed_args = [a for a in args if a not in ("--max-samples", "6")] if setting == "max_samples" else args
    result = suite.runpytest(*changed_args, *changed, "--baseline", "reports/base")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"*refused: measured with other {setting}*"])


def test_a_single_file_baseline_gates_only_its_own_checkpoint(suite):
    write_native_checkpoint(suite.path / "ck" / "b", seed=2)
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "base", "-m", "perplexity")
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity",
                             "--baseline", "reports/base/a/metrics.json", "--run-id", "gated")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*metrics.json: baseline of checkpoint 'a', not 'b'; to gate several*"])
    assert record_of(suite, "gated", "b")["val_perplexity"] is not None  # b's figures kept


# ---- nothing ran, nothing written --------------------------------------------------------------

@pytest.mark.parametrize("args", [["--collect-only"], ["--fixtures"], ["-m", "nosuchfamily"], ["-k", "nothing"],
                                  ["--markers"], ["--setup-only"], ["--setup-plan"]])
def test_nothing_is_written_when_nothing_ran(suite, args):
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", *args)
    assert not (suite.path / "reports").exists()


# ---- --update-baseline -------------------------------------------------------------------------

def test_update_baseline_round_trips_and_refuses_an_unsound_run(suite):
    args = ["--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity"]
    result = suite.runpytest(*args, "--run-id", "r1", "--update-baseline", "ci-test")
    result.assert_outcomes(passed=2)
    folder = suite.path / "reports/baselines/ci-test/a"
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.json", "summary.md"]
    assert json.loads((folder / "metrics.json").read_text()) == record_of(suite, "r1")
    gated = suite.runpytest(*args, "--run-id", "r2", "--baseline", "reports/baselines/ci-test")
    gated.assert_outcomes(passed=2)
    gates = record_of(suite, "r2")["gates"]
    assert gates["val_perplexity"]["ok"] and gates["test_bits_per_byte"]["ok"]
    # a path works too; a run with a failed item does not replace the baseline
    other = suite.path / "elsewhere" / "base"
    suite.runpytest(*args, "--run-id", "r3", "--update-baseline", str(other)).assert_outcomes(passed=2)
    assert (other / "a" / "metrics.json").is_file()
    before = (folder / "metrics.json").read_text()
    (suite.path / "data/wikitext-2-raw/test.txt").write_bytes(b"")
    bad = suite.runpytest(*args, "--run-id", "r4", "--update-baseline", "ci-test")
    bad.stdout.fnmatch_lines(["*baseline *ci-test not updated: 1 item(s) did not pass*"])
    assert (folder / "metrics.json").read_text() == before
    assert not [p for p in folder.parent.parent.iterdir() if p.name.startswith(".")]


# ---- one line, not a traceback ---------------------------------------------------------------

@pytest.mark.parametrize("args, line", [
    (["--ppl-tolerance", "nan"], "--ppl-tolerance must be a finite number >= 0, got nan"),
    (["--acc-tolerance-se", "-1"], "--acc-tolerance-se must be a finite number >= 0, got -1.0"),
    (["--latency-tolerance", "inf"], "--latency-tolerance must be a finite number >= 0, got inf"),
    (["--min-acc", "1.5"], "--min-acc must be between 0 and 1, got 1.5"),
    (["--fewshot", "-2"], "--fewshot must be a finite number >= 0, got -2"),
    (["--batch-tokens", "0"], "--batch-tokens must be a positive integer, got 0"),
    (["--update-baseline", "a b"], "--update-baseline 'a b': use one plain name*"),
])
def test_out_of_range_options_are_usage_errors(suite, args, line):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{line}*"])


def test_settings_that_cannot_apply_to_the_data_fail_with_one_line(suite):
    # the test checkpoints have a 64-token context; the toy train splits have 12 rows
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--ppl-stride", "100", "--fewshot", "12")
    result.assert_outcomes(errors=6)
    result.stdout.fnmatch_lines(["*--ppl-stride 100 exceeds a's context of 64 tokens; use a stride of at most 64*",
                                 "*--fewshot 12: the sst2 train split (*) has 12 rows; use --fewshot 11 or fewer*"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize("edit, field", [
    (lambda r: r["perplexity"]["validation"].update(token_perplexity=None), "perplexity.validation.token_perplexity"),
    (lambda r: r["perplexity"]["validation"].update(bits_per_byte=float("nan")), "perplexity.validation.bits_per_byte"),
    (lambda r: r["perplexity"]["validation"].update(token_perplexity="12.5"), "perplexity/validation/token_perplexity"),
    (lambda r: r.update(checkpoint=None), "checkpoint"),
    (lambda r: r.update(environment=[]), "environment"),
])
def test_a_baseline_field_that_is_null_nan_or_mistyped_is_one_line(suite, edit, field):
    args = ["--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity"]
    suite.runpytest(*args, "--run-id", "base").assert_outcomes(passed=2)
    path = suite.path / "reports/base/a/metrics.json"
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    result = suite.runpytest(*args, "--baseline", "reports/base", "--run-id", "gated")
    # a field of the wrong type makes the whole file invalid (every gated item); null or NaN only its figure
    result.assert_outcomes(failed=1, passed=1) if "." in field else result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([f"*base/a/metrics.json*{field}*"])
    assert "TypeError" not in result.stdout.str() and "Traceback" not in result.stdout.str()
    assert record_of(suite, "gated")["val_perplexity"] is not None  # the figures are kept


@pytest.mark.parametrize("content, says", [
    ("", "not a readable metrics.json"), ("[1, 2]", "a JSON list, not an object"),
    ('{"run_id": "r"}', "not a valid metrics record"), ("{oops", "not a readable metrics.json"),
])
def test_compare_and_merge_name_a_bad_record_file(tmp_path, capsys, content, says):
    bad = tmp_path / "run" / "x" / "metrics.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(content)
    for command in (["compare", str(tmp_path / "run"), "--out", str(tmp_path)],
                    ["merge", str(tmp_path / "out"), str(tmp_path / "run")]):
        assert cli(command) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and says in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("line, says", [
    ("[1]", ":1: not a history entry (a JSON list)"), ('{"run_id": "r"}', ":1: history entry without timestamp"),
    ('{"run_id": "r", "timestamp": "t", "checkpoint": "a", "val_bits_per_byte": "2.1"}',
     ":1: val_bits_per_byte is '2.1', not a number"),
])
def test_history_names_a_bad_line(tmp_path, capsys, line, says):
    path = tmp_path / "history.jsonl"
    path.write_text(line + "\n")
    assert cli(["history", "--file", str(path)]) == 2
    assert f"{path}{says}" in capsys.readouterr().err


# ---- files others can read; text read as meant -----------------------------------------------

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


def test_crlf_line_ends_score_as_the_text_is_meant(pytester, offline):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    write_wikitext(pytester.path / "lf")
    write_wikitext(pytester.path / "crlf")
    for split in ("validation", "test"):
        path = pytester.path / "crlf/wikitext-2-raw" / f"{split}.txt"
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    write_native_checkpoint(pytester.path / "ck" / "a", seed=3)
    for run in ("lf", "crlf"):
        pytester.runpytest("--checkpoint", "ck", "--data-dir", run, "--run-id", run).assert_outcomes(passed=2)
    lf, crlf = (json.loads((pytester.path / f"reports/{r}/a/metrics.json").read_text()) for r in ("lf", "crlf"))
    assert crlf["val_perplexity"] == lf["val_perplexity"] and math.isfinite(lf["val_perplexity"])
    assert crlf["perplexity"]["test"]["bytes"] == lf["perplexity"]["test"]["bytes"]
    assert "CRLF" in crlf["perplexity"]["validation"]["data_notes"][0] and "data_notes" not in lf["perplexity"]["test"]
    assert crlf["data_fingerprints"] != lf["data_fingerprints"]  # a different file, honestly fingerprinted


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_fifo_where_a_file_is_read_is_refused_not_waited_on(suite, tmp_path, capsys):
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "base", "-m", "perplexity")
    data = suite.path / "data/wikitext-2-raw/test.txt"
    data.unlink()
    os.mkfifo(data)
    result = suite.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity",
                                        timeout=120)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*test.txt: not a regular file (a named pipe (FIFO))*"])
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    baseline = suite.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity",
                                          "-k", "validation", "--baseline", str(fifo), timeout=120)
    baseline.assert_outcomes(failed=1)
    baseline.stdout.fnmatch_lines(["*pipe.json: not a regular file*"])
    for command in (["compare", str(fifo)], ["history", "--file", str(fifo)]):
        assert cli(command) == 2
        assert "not a regular file (a named pipe (FIFO))" in capsys.readouterr().err


# ---- found by a hostile review: each class gets its own inputs -----------------------------

@pytest.mark.parametrize("run_id", ["baselines", "history.jsonl"])
def test_a_run_id_the_report_folder_uses_for_itself_is_refused(suite, run_id):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", run_id)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--run-id '{run_id}': reserved for the report folder's own {run_id}*"])


def test_update_baseline_never_replaces_a_folder_that_is_not_a_baseline(suite):
    args = ["--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity"]
    suite.runpytest(*args, "--run-id", "one").assert_outcomes(passed=2)
    (suite.path / "mine/src").mkdir(parents=True)
    (suite.path / "mine/src/code.py").write_text("x = 1\n")
    for target, says in ((str(suite.path / "mine"), "not a baseline folder (it holds src)"),
                         (str(suite.path / "reports"), "holds this run's reports"),
                         (str(suite.path / "reports/two"), "holds this run's reports")):
        result = suite.runpytest(*args, "--run-id", "two", "--update-baseline", target)
        result.stdout.fnmatch_lines([f"*could not write the baseline *{says}*"])
        assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    assert (suite.path / "mine/src/code.py").read_text() == "x = 1\n"
    assert (suite.path / "reports/one/a/metrics.json").is_file() and (suite.path / "reports/history.jsonl").is_file()


def test_merge_into_a_folder_of_another_run_is_refused_not_relabelled(suite, capsys):
    args = ["--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity"]
    for run in ("base", "other"):
        suite.runpytest(*args, "--run-id", run).assert_outcomes(passed=2)
    before = (suite.path / "reports/base/a/metrics.json").read_text()
    assert cli(["merge", str(suite.path / "reports/base"), str(suite.path / "reports/other")]) == 2
    assert "holds run base, not other" in capsys.readouterr().err
    assert (suite.path / "reports/base/a/metrics.json").read_text() == before


def test_the_same_run_id_under_other_settings_is_refused(suite):
    args = ["--checkpoint", "ck", "--data-dir", "data", "--run-id", "s"]
    suite.runpytest(*args, "-m", "smallbench", "--max-samples", "5").assert_outcomes(passed=4)
    before = (suite.path / "reports/s/a/metrics.json").read_text()
    result = suite.runpytest(*args, "-m", "smallbench", "--max-samples", "2")
    result.stdout.fnmatch_lines(["*measured with other settings than the earlier record (max_samples 2 vs 5)*"])
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    assert (suite.path / "reports/s/a/metrics.json").read_text() == before


@pytest.mark.parametrize("declaration, says", [
    ('registry.add_task(Task("avg", "avg", ("", ""), ("sentence",), {"smallbench": Prompt("{sentence}", ("a", "b"))}))',
     "its figure key smallbench_avg_acc is already another figure's"),
    ('registry.add_task(Task("../../x", "x", ("", ""), ("sentence",), {"smallbench": Prompt("{sentence}", ("a",))}))',
     "task '../../x': use one plain name"),
    ('registry.add_corpus(Corpus("a/b", "x", read=text_files("x/{split}.txt")))', "corpus 'a/b': use one plain name"),
    ('registry.add_corpus(Corpus("c", "x", read=text_files("x/{split}.txt"), splits=("../v",)))',
     "corpus 'c': split '../v': use one plain name"),
    ('registry.add_task(Task("t", "t", ("", ""), ("sentence",), {"smallbench": Prompt("S: {sentnce}", ("a",))}))',
     "refers to {sentnce}, which is not a field of the task (fields: sentence)"),
    ('registry.add_task(Task("t", "t", ("", ""), ("sentence",), {"smallbench": Prompt("{0} {", ("a",))}))',
     "does not parse"),
    ('registry.add_task(Task("t", "t", ("", ""), ("sentence",), {"smallbench": Prompt("{sentence.upper}", ("a",))}))',
     "refers to {sentence.upper}"),
    ('registry.add_corpus(Corpus("val", "x", read=text_files("x/{split}.txt"), splits=("bits",)))', None),
])
def test_bad_declarations_are_usage_errors_naming_the_conftest(pytester, offline, declaration, says):
    pytester.makeconftest(f'''
from lmeval_fixtures import Corpus, Prompt, Task
from lmeval_fixtures.suite.sources import text_files

def pytest_lmeval_register(registry, config):
    {declaration}
''')
    result = pytester.runpytest()
    if says is None:  # an odd but harmless name is accepted
        assert result.ret != pytest.ExitCode.USAGE_ERROR
        return
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*conftest.py: *{says}*"])


def test_a_conftest_below_the_root_cannot_declare_in_silence(pytester, offline):
    pytester.makepyfile(test_x="def test_x(): pass")
    sub = pytester.mkpydir("sub")
    (sub / "conftest.py").write_text('''
from lmeval_fixtures import Prompt, Task

def pytest_lmeval_register(registry, config):
    registry.add_task(Task("late", "late", ("", ""), ("s",), {"smallbench": Prompt("{s}", ("a",))}))
''')
    (sub / "test_y.py").write_text("def test_y(): pass\n")
    result = pytester.runpytest()
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*sub/conftest.py: declares tasks or corpora*declare them in the conftest.py at the "
                                 "root of the run*"])


def test_a_corpus_reader_that_fails_is_one_line(pytester, offline):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    pytester.makeconftest('''
from lmeval_fixtures import Corpus

def explode(split, data_dir, hub):
    raise RuntimeError("reader exploded\\nsecond line")

def pytest_lmeval_register(registry, config):
    registry.add_corpus(Corpus("boom", "Boom", read=explode, splits=("validation",)))
''')
    write_wikitext(pytester.path / "data")
    write_native_checkpoint(pytester.path / "ck" / "a")
    result = pytester.runpytest("--checkpoint", "ck", "--data-dir", "data")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*corpus 'boom': its reader failed on validation (RuntimeError: reader exploded)*"])
    assert "Traceback" not in result.stdout.str()


def test_history_refuses_a_non_finite_value(tmp_path, capsys):
    path = tmp_path / "history.jsonl"
    path.write_text('{"run_id": "r", "timestamp": "t", "checkpoint": "a", "val_bits_per_byte": NaN}\n')
    assert cli(["history", "--file", str(path)]) == 2
    assert ":1: val_bits_per_byte is nan, not a number" in capsys.readouterr().err


def test_the_same_checkpoint_named_twice_is_evaluated_once(suite):
    result = suite.runpytest("--checkpoint", "ck/a", "--checkpoint", "ck/a/model.safetensors", "--checkpoint", "ck",
                             "--data-dir", "data", "-m", "perplexity", "--run-id", "twice")
    result.assert_outcomes(passed=2)
    assert sorted(p.name for p in (suite.path / "reports/twice").iterdir() if p.is_dir()) == ["a"]
