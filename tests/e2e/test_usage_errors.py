"""Options that cannot work are usage errors at start-up, through pytester: exit status 4, one line, nothing
written."""

import pytest


@pytest.mark.parametrize("run_id", ["../escape", "/tmp/abs", "..", ".", "a/b", "a\\b", "-dash", ".hidden", ""])
def test_a_run_id_is_one_plain_name(suite, run_id):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", f"--run-id={run_id}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--run-id *: use one plain name*"])
    assert not (suite.path / "reports").exists() and not (suite.path / "escape").exists()


@pytest.mark.parametrize("run_id", ["baselines", "history.jsonl"])
def test_a_run_id_the_report_folder_uses_for_itself_is_refused(suite, run_id):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", run_id)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--run-id '{run_id}': reserved for the report folder's own {run_id}*"])


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


@pytest.mark.parametrize("args, line", [
    (["--ppl-tolerance", "nan"], "--ppl-tolerance must be a finite number >= 0, got nan"),
    (["--acc-tolerance-se", "-1"], "--acc-tolerance-se must be a finite number >= 0, got -1.0"),
    (["--latency-tolerance", "inf"], "--latency-tolerance must be a finite number >= 0, got inf"),
    (["--min-acc", "1.5"], "--min-acc must be between 0 and 1, got 1.5"),
    (["--fewshot", "-2"], "--fewshot must be an integer from 0 to 1,024, got -2"),
    (["--batch-tokens", "0"], "--batch-tokens must be an integer from 1 to 2,147,483,648, got 0"),
    (["--update-baseline", "a b"], "--update-baseline 'a b': use one plain name*"),
])
def test_out_of_range_options_are_usage_errors(suite, args, line):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{line}*"])


@pytest.mark.parametrize("args, message", [
    (["--device", "cuda:7"], "*--device cuda:7*"),
    (["--device", "tpu"], "*--device tpu: expected cpu, cuda, cuda:N, mps or auto*"),
    (["--ppl-stride", "0"], "*--ppl-stride must be an integer from 1 to 1,048,576, got 0*"),
    (["--dtype", "float16"], "*float16 is not supported on CPU*"),
])
def test_bad_options_are_usage_errors(ppl_suite, args, message):
    result = ppl_suite.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_shard_is_a_usage_error(two_models):
    result = two_models.runpytest("--shard", "3/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--shard 3/2: expected I/N with 1 <= I <= N <= 10,000*"])


@pytest.mark.parametrize("args, line", [
    (["--track", "mlflow"], "*--track mlflow: choose wandb or tensorboard*"),
    (["--track", "tensorboard:"], "*--track tensorboard:: name a folder after the colon*"),
])
def test_a_bad_track_value_is_a_usage_error_at_start_up(suite, args, line):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    assert "Traceback" not in result.stderr.str() and not (suite.path / "reports").exists()


def test_benchmark_histogram_without_pygal_is_one_line_at_start_up(suite, monkeypatch):
    """pytest-benchmark imports pygal only when the run ends: the run measured everything, then ended in an
    ImportError traceback. Without the histogram extra it is now a usage error before any item runs."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pygal" else real(name, *a))
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--benchmark-histogram")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == ("ERROR: --benchmark-histogram needs pygal and pygaljs: pip install "
                                      "'lmeval-fixtures[histogram]' (or leave the option out)")
    assert "Traceback" not in result.stderr.str() and not (suite.path / "reports").exists()
