"""A good citizen of pytest, pytest-benchmark and CI (issue 14): quiet to other projects,
installable anywhere, visible while it runs, and readable by the tools CI already has."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lmeval_fixtures.engine.timing import RoundPolicy
from lmeval_fixtures.evaluation.options import DEST_PREFIX, DTYPE_NAMES, OPTIONS
from lmeval_fixtures.plugin.fixtures import ProgressLine

from .conftest import SUITE_PLUGIN, write_native_checkpoint, write_wikitext
from .test_gates import lay_out_suite

ROOT = Path(__file__).parents[1]
LATENCY = (ROOT / "benchmarks" / "test_latency.py").read_text()
OWN_DEVICE_CONFTEST = '''
def pytest_addoption(parser):
    parser.addoption("--device", default="abacus", help="this project's own device")
    parser.addoption("--seed", type=int, default=7)

def pytest_configure(config):
    config.own_device = config.getoption("device")
'''
OWN_DEVICE_TEST = '''
def test_own_option(pytestconfig):
    assert pytestconfig.getoption("device") == pytestconfig.own_device
'''


# ---- staying out of other projects' way ------------------------------------------------------

def test_importing_the_plugin_imports_neither_torch_nor_transformers():
    code = ("import sys, lmeval_fixtures.plugin, lmeval_fixtures.evaluation.options, lmeval_fixtures; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_unrelated_project_with_its_own_device_option_is_untouched(pytester, monkeypatch):
    """No pytest11 entry point: installed, the plugin is not loaded where nobody asked for it."""
    monkeypatch.delenv("PYTEST_PLUGINS")
    pytester.makeconftest(OWN_DEVICE_CONFTEST)
    pytester.makepyfile(test_own=OWN_DEVICE_TEST)
    result = pytester.runpytest_subprocess("--device", "gpu9", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "lmeval" not in result.stdout.str()


@pytest.mark.parametrize("load", ["-p", "conftest", "PYTEST_PLUGINS"])
def test_a_project_using_the_suite_keeps_its_own_device_option(pytester, monkeypatch, load):
    """Whichever loads first, the project's --device stays the project's; the suite's is
    then --lmeval-device, and its other options keep their short names."""
    monkeypatch.delenv("PYTEST_PLUGINS")
    conftest = OWN_DEVICE_CONFTEST
    args = ["--device", "gpu9", "--seed", "3"]
    if load == "-p":
        args = ["-p", SUITE_PLUGIN, *args]
    elif load == "conftest":
        conftest += f"\npytest_plugins = [{SUITE_PLUGIN!r}]\n"
    else:
        monkeypatch.setenv("PYTEST_PLUGINS", SUITE_PLUGIN)
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_own=OWN_DEVICE_TEST + '''
def test_suite_options(pytestconfig):
    assert pytestconfig.getoption("lmeval_device") == "cpu"
    assert pytestconfig.getoption("lmeval_dtype") == "bfloat16"
    assert pytestconfig.getoption("lmeval_max_samples") == 4
''')
    result = pytester.runpytest_subprocess(*args, "--lmeval-device", "cpu", "--dtype", "bfloat16",
                                           "--max-samples", "4", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_every_option_answers_to_its_prefixed_name(pytester):
    help_text = pytester.runpytest("--help").stdout.str()
    assert "each option is also --lmeval-NAME" in help_text
    assert all(option.flag in help_text for option in OPTIONS)
    pytester.makepyfile(test_x="""
def test_x(pytestconfig):
    assert pytestconfig.getoption("lmeval_run_id") == "x"
    assert pytestconfig.getoption("lmeval_max_samples") == 3
    assert pytestconfig.getoption("lmeval_strict_skips") is True
""")
    pytester.runpytest("--lmeval-run-id=x", "--lmeval-max-samples", "3", "--lmeval-strict-skips",
                       "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_option_dtype_names_match_the_loader():
    from lmeval_fixtures.models.loading import DTYPES

    assert tuple(DTYPES) == DTYPE_NAMES
    assert all(not o.dest.startswith(DEST_PREFIX) for o in OPTIONS)


# ---- runs from a plain pip install -----------------------------------------------------------

def _venv_with_wheel(tmp: Path) -> Path:
    """A fresh virtual environment holding only the built wheel; the dependencies (torch, pytest,
    ...) are borrowed from this interpreter's site-packages through a .pth line, which adds
    their folder to sys.path without running its .pth files (so this checkout's editable
    install is not seen)."""
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist)], check=True, capture_output=True)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "borrowed-deps.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    wheel = next(dist.glob("lmeval_fixtures-*.whl"))
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, capture_output=True)
    return python


def test_a_wheel_in_a_fresh_venv_runs_the_suite_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_PLUGINS")
    monkeypatch.delenv("PYTHONPATH", raising=False)  # a checkout on it (a worktree's run) would shadow the wheel
    python = _venv_with_wheel(tmp_path)
    work = tmp_path / "elsewhere"
    write_wikitext(work / "data")
    write_native_checkpoint(work / "ck" / "a", seed=1)
    where = subprocess.run([str(python), "-c", "import lmeval_fixtures.benchmarks as b; print(b.__file__)"],
                           cwd=work, check=True, capture_output=True, text=True).stdout
    assert str(tmp_path / "venv") in where  # the wheel's copy, not this checkout
    script = python.parent / ("lmeval-fixtures.exe" if os.name == "nt" else "lmeval-fixtures")
    runs = {
        "cli": [str(script), "run", "--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity",
                "--run-id", "cli"],
        "pyargs": [str(python), "-m", "pytest", "-p", SUITE_PLUGIN, "--pyargs", "lmeval_fixtures.benchmarks",
                   "--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity", "--run-id", "pyargs",
                   "-p", "no:cacheprovider"],
    }
    for run_id, command in runs.items():
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "2 passed" in done.stdout
        record = json.loads((work / "reports" / run_id / "a" / "metrics.json").read_text())
        assert record["val_perplexity"] is not None and record["test_perplexity"] is not None
    installed = Path(where).parent
    assert not (installed / "reports").exists() and not (installed / ".pytest_cache").exists()


# ---- visible while it runs -------------------------------------------------------------------

class FakeWriter:
    fullwidth = 100
    width_of_current_line = 30  # "benchmarks/test_smallbench.py "


class FakeStream:
    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, text: str) -> None:
        self.written.append(text)

    def flush(self) -> None:
        pass


class FakeCapture:
    def __init__(self) -> None:
        self.suspended = 0

    def global_and_fixture_disabled(self):
        import contextlib

        self.suspended += 1
        return contextlib.nullcontext()


def test_progress_line_shows_done_total_rate_and_time_left(monkeypatch):
    clock = iter([100.0, 102.0, 104.0, 104.1, 110.0])
    monkeypatch.setattr("lmeval_fixtures.plugin.fixtures.time.perf_counter", lambda: next(clock))
    stream, capture = FakeStream(), FakeCapture()
    line = ProgressLine(FakeWriter(), capture, "ck boolq", "rows", stream)  # started at t=100
    line(200, 1000)  # t=102: 100 rows/s, 8 s left
    line(400, 1000)  # t=104
    line(410, 1000)  # t=104.1: within half a second of the last, not redrawn
    line(1000, 1000)  # t=110: done, the line is erased
    save, restore = ProgressLine.SAVE, ProgressLine.RESTORE_AND_CLEAR
    assert stream.written == [save + " ck boolq: 200/1,000 rows (100.0/s, 8s left)",
                              restore + " ck boolq: 400/1,000 rows (100.0/s, 6s left)", restore]
    assert capture.suspended == 3  # written with pytest's capture suspended, so it shows without -s


def test_progress_line_never_wraps_the_terminal():
    stream = FakeStream()
    writer = FakeWriter()
    writer.width_of_current_line = 90
    ProgressLine(writer, None, "a very long label for a checkpoint", "windows", stream)(1, 10)
    assert len(stream.written[0]) - len(ProgressLine.SAVE) == 9  # what is left of the 100 columns, less one


def test_no_progress_when_output_is_not_a_terminal(pytester):
    pytester.makeconftest(f"pytest_plugins = [{SUITE_PLUGIN!r}]")
    pytester.makepyfile(test_p="def test_p(progress):\n    assert progress('x') is None\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


# ---- results and CI surfaces -----------------------------------------------------------------

@pytest.fixture
def suite(pytester, offline):
    return lay_out_suite(pytester)


def test_results_table_lists_what_ran_even_one_task(suite):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "-m", "smallbench", "-k", "rte")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*lmeval-fixtures results*", "checkpoint*figure*value*stderr*",
                                 "a * RTE * 0.* 0.*"])
    assert "SmallBench avg" not in result.stdout.str() and "—" not in result.stdout.str()


def test_junit_xml_carries_each_items_figures(suite):
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--junitxml", "out.xml", "--run-id", "j",
                    "-k", "validation or sst2").assert_outcomes(passed=2)
    record = json.loads((suite.path / "reports" / "j" / "a" / "metrics.json").read_text())
    cases = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(suite.path / "out.xml").iter("testcase")}
    ppl = cases["test_perplexity[a-validation]"]
    assert float(ppl["val_bits_per_byte"]) == pytest.approx(record["val_bits_per_byte"], rel=1e-12)
    assert float(ppl["val_perplexity"]) == pytest.approx(record["val_perplexity"], rel=1e-12)
    sst2 = cases["test_smallbench[a-sst2]"]
    assert float(sst2["smallbench_sentiment_acc"]) == record["smallbench"]["sst2"]["acc"]
    assert float(sst2["smallbench_sentiment_acc_stderr"]) == pytest.approx(record["smallbench"]["sst2"]["acc_stderr"])
    assert not any("lmeval_fragments" in props for props in cases.values())  # no JSON blobs in the XML


def test_step_summary_gets_the_results_appended(suite, monkeypatch):
    summary = suite.path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "gh", "-k", "validation or rte")
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, never replaced
    assert "## lmeval-fixtures: run `gh`" in text
    record = json.loads((suite.path / "reports" / "gh" / "a" / "metrics.json").read_text())
    assert f"| a | val bits/byte | {record['val_bits_per_byte']:,.4f} |" in text
    assert f"| a | RTE | {record['smallbench']['rte']['acc']:,.4f} |" in text


def test_no_step_summary_outside_github(suite, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "-k", "validation").assert_outcomes(passed=1)
    assert not list(suite.path.glob("*summary*"))


@pytest.fixture
def timed(pytester, offline):
    pytester.makepyfile(test_latency=LATENCY)
    write_native_checkpoint(pytester.path / "ck" / "a", seed=1)
    return pytester


TIMED = ("--checkpoint", "ck", "--latency-shapes", "1x8,1x16", "--throughput-shape", "2x16", "--batch-sweep", "1,2",
         "-p", "no:xdist")


def test_benchmark_json_has_readable_params_groups_and_extra_info(timed):
    timed.runpytest(*TIMED, "--benchmark-json", "bench.json").assert_outcomes(passed=4)
    benches = {b["name"]: b for b in json.loads((timed.path / "bench.json").read_text())["benchmarks"]}
    assert set(benches) == {"test_latency[a-1x8]", "test_latency[a-1x16]", "test_throughput[a]"}
    assert benches["test_latency[a-1x8]"]["params"] == {"checkpoint_spec": "a", "latency_shape": "1x8"}
    assert benches["test_throughput[a]"]["params"] == {"checkpoint_spec": "a"}
    assert {b["group"] for b in benches.values()} == {"latency 1x8", "latency 1x16", "throughput 2x16"}
    assert "UNSERIALIZABLE" not in (timed.path / "bench.json").read_text()
    extra = benches["test_throughput[a]"]["extra_info"]
    assert extra["tokens_per_sec"] == pytest.approx(2 * 16 / benches["test_throughput[a]"]["stats"]["mean"])
    assert extra["peak_rss_mb"] > 0


@pytest.mark.parametrize(("flag", "passed", "skipped"), [("--benchmark-skip", 0, 4), ("--benchmark-only", 4, 0)])
def test_batch_scaling_follows_benchmark_skip_and_only(timed, flag, passed, skipped):
    timed.makepyfile(test_other="def test_other():\n    pass\n")
    result = timed.runpytest(*TIMED, flag)
    other = (1, 0) if flag == "--benchmark-skip" else (0, 1)
    result.assert_outcomes(passed=passed + other[0], skipped=skipped + other[1])


@pytest.mark.parametrize(("round_s", "budget", "rounds"), [
    (0.01, 1.0, 20), (0.1, 1.0, 10), (0.4, 1.0, 5), (5.0, 1.0, 5), (None, 1.0, 20), (0.01, 0.0, 5),
    (0.01, float("inf"), 20)])
def test_timed_rounds_are_bounded_by_time_between_least_and_most(round_s, budget, rounds):
    assert RoundPolicy(most=20, warmup=3, budget_s=budget, least=5).rounds(round_s) == rounds
    assert RoundPolicy(most=3, warmup=1, budget_s=budget, least=5).rounds(round_s) == 3  # never above most


def test_timing_records_rounds_within_the_budget(timed):
    timed.runpytest(*TIMED, "--run-id", "t", "--timing-budget", "0", "--latency-rounds", "30").assert_outcomes(
        passed=4)
    record = json.loads((timed.path / "reports" / "t" / "a" / "metrics.json").read_text())
    assert {e["rounds"] for e in record["latency"].values()} == {5}  # the least, as the budget is 0
    assert record["throughput"]["rounds"] == 2
    assert record["latency"]["1x8"]["timing_budget_s"] == 0 and record["latency"]["1x8"]["max_rounds"] == 30
    assert all(p["rounds"] == 2 for p in record["batch_scaling"]["points"])


# ---- the CI recipes stay runnable --------------------------------------------------------------

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


# ---- portable ----------------------------------------------------------------------------------

WITHOUT_POSIX = '''
import sys, types
from pathlib import Path
sys.modules["resource"] = None  # as on Windows: import resource raises ImportError
sys.modules["fcntl"] = None
import lmeval_fixtures.plugin, lmeval_fixtures.core.files, lmeval_fixtures.engine.timing as timing
locks = []  # msvcrt faked only now: the standard library takes its presence for Windows
sys.modules["msvcrt"] = types.SimpleNamespace(LK_LOCK=1, LK_UNLCK=0, locking=lambda fd, mode, n: locks.append(mode))
timing.STATUS = Path("/nonexistent/status")  # no /proc either
reading = timing.peak_rss_mb()
assert reading != reading, reading  # NaN: no reading, and no crash
with lmeval_fixtures.core.files.run_folder_lock(Path(sys.argv[1])):
    pass
assert locks == [1, 0], locks
print("ok")
'''


def test_the_package_imports_and_degrades_cleanly_without_posix_modules(tmp_path):
    done = subprocess.run([sys.executable, "-c", WITHOUT_POSIX, str(tmp_path)], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_version_and_mps_are_offered():
    from lmeval_fixtures.cli.main import main
    from lmeval_fixtures.core.errors import UsageError
    from lmeval_fixtures.evaluation.settings import resolve_device

    with pytest.raises(SystemExit) as shown:
        main(["--version"])
    assert shown.value.code == 0
    import torch

    if not torch.backends.mps.is_available():
        with pytest.raises(UsageError, match="--device mps: Apple's Metal"):
            resolve_device("mps")
        assert resolve_device("auto") in ("cpu", "cuda")
