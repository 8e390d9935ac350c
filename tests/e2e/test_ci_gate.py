"""The CI gate, through pytester: a run gated against a baseline (its own, a single file, one made under
other settings or with broken fields), --update-baseline, --strict-skips; and the example workflow's and
tox's gate commands parse and collect the reference sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ..helpers import ROOT, record_of, write_native_checkpoint


def test_a_run_gates_against_its_own_baseline_and_fails_on_regression(suite):
    args = ["--checkpoint", "ck", "--data-dir", "data"]
    suite.runpytest(*args, "--run-id", "base").assert_outcomes(passed=6)
    suite.runpytest(*args, "--run-id", "same", "--baseline", "reports/base").assert_outcomes(passed=6)
    record = json.loads((suite.path / "reports/same/a/metrics.json").read_text())
    assert record["gates"]["val_perplexity"]["ok"] and record["gates"]["smallbench_sentiment_acc"]["ok"]

    # make the baseline better than this model can be: the gates must fail, with the figures in the message
    path = suite.path / "reports/base/a/metrics.json"
    base = json.loads(path.read_text())
    base["perplexity"]["validation"]["token_perplexity"] /= 2
    base["smallbench"]["sst2"]["acc"] = 1.0
    path.write_text(json.dumps(base))
    result = suite.runpytest(*args, "--run-id", "worse", "--baseline", "reports/base")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(["*val_perplexity * REGRESSED beyond baseline *",
                                 "*smallbench_sentiment_acc * REGRESSED beyond*"])
    worse = json.loads((suite.path / "reports/worse/a/metrics.json").read_text())
    assert worse["gates"]["val_perplexity"]["ok"] is False and worse["val_perplexity"] is not None

    # a baseline made on other data is refused, not compared
    (suite.path / "data/wikitext-2-raw/validation.txt").write_text(" = Other = \n text . \n")
    refused = suite.runpytest(*args, "--run-id", "other", "--baseline", "reports/base", "-m", "perplexity")
    refused.stdout.fnmatch_lines(["*refused: wikitext-2-raw/validation.txt differs*"])


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


def test_a_corrupt_baseline_fails_the_gated_items_with_its_name(ppl_suite):
    ckpt = write_native_checkpoint(ppl_suite.path / "ck" / "a")
    (ppl_suite.path / "base.json").write_text("{")
    result = ppl_suite.runpytest("--checkpoint", str(ckpt), "--data-dir", "data", "--baseline", "base.json")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*base.json: baseline is not valid JSON*"])


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


def _workflow_pytest_command() -> list[str]:
    import shlex

    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "benchmarks.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    runs = [step["run"] for step in steps if "pytest benchmarks" in step.get("run", "")]
    assert len(runs) == 1, runs
    return shlex.split(runs[0].replace("${{ github.run_id }}", "123"))


def test_the_example_workflows_gate_command_parses_and_collects(tmp_path, monkeypatch):
    """Every option of the workflow's gate exists, its baseline is committed, and it collects the
    reference sweep (run collect-only here; CI's .ci/run runs the same gate for real)."""
    monkeypatch.delenv("PYTEST_PLUGINS")
    command = _workflow_pytest_command()
    data = command.index("--data-dir") + 1
    command[data] = str(tmp_path)
    for output in ("--junitxml", "--benchmark-json"):  # written here, not into the checkout
        command[command.index(output) + 1] = str(tmp_path / output.strip("-"))
    assert (ROOT / command[command.index("--baseline") + 1]).is_dir()
    done = subprocess.run([sys.executable, "-m", *command, "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "30 tests collected" in done.stdout


def test_the_tox_gate_env_runs_the_same_gate_as_the_workflow():
    import configparser

    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    gate = tox["testenv:gate"]["commands"].replace("\\\n", " ").split()
    workflow = _workflow_pytest_command()
    shared = ["--baseline", "--max-eval-tokens", "--max-samples", "--latency-tolerance", "--strict-skips"]
    for flag in shared:
        assert flag in gate and flag in workflow
        if flag != "--strict-skips":
            assert gate[gate.index(flag) + 1] == workflow[workflow.index(flag) + 1]
