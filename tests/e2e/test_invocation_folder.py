"""Reports land in the folder a run is started from (or --report-dir), whatever the option values, by every
door: ``pytest`` in a project, ``pytest --pyargs lmeval_fixtures.benchmarks``, ``lmeval-fixtures run`` and
``evaluate()``. pytest reads the values of options it does not know yet (``--checkpoint /abs/x``) as paths and
guesses its rootdir from them; neither the reports nor ``git_commit`` may follow that guess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import BENCHMARK, write_native_checkpoint, write_wikitext

FORMS = ["space", "equals"]


def _git_repository(folder: Path) -> str:
    """``folder`` made a git repository with one commit; its HEAD."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README").write_text("an unrelated repository\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "init.defaultBranch=main"]
    for command in (["init", "-q"], ["add", "README"], ["commit", "-q", "-m", "one"]):
        subprocess.run([*git, *command], cwd=folder, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A checkpoint and data in a repository of their own, beside (not under) the folder the run starts in."""
    folder = tmp_path / "outside"
    _git_repository(folder)
    write_native_checkpoint(folder / "ck" / "a", seed=1)
    write_wikitext(folder / "data")
    return folder


def _options(here: Path, outside: Path, form: str, relative: bool) -> list[str]:
    where = Path(os.path.relpath(outside, here)) if relative else outside
    pairs = [("--checkpoint", where / "ck"), ("--data-dir", where / "data")]
    if form == "space":
        return [item for flag, value in pairs for item in (flag, str(value))]
    return [f"{flag}={value}" for flag, value in pairs]


def _assert_reports_here(here: Path, outside: Path, run_id: str) -> dict:
    record = json.loads((here / "reports" / run_id / "a" / "metrics.json").read_text())
    assert (here / "reports" / "history.jsonl").is_file()
    strays = [p for p in [outside / "reports", outside.parent / "reports", outside / "data" / "reports",
                          Path("/reports") / run_id] if p.exists()]
    assert not strays, strays
    assert not list(outside.rglob("history.jsonl"))
    return record


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
@pytest.mark.parametrize("form", FORMS)
def test_pytest_in_a_project_writes_its_reports_where_it_was_started(pytester, offline, outside, form, relative):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    run_id = f"{form}-{relative}"
    result = pytester.runpytest(*_options(pytester.path, outside, form, relative), "--run-id", run_id)
    result.assert_outcomes(passed=2)
    record = _assert_reports_here(pytester.path, outside, run_id)
    assert record["git_commit"] is None  # the folder it ran in is no repository; the data's repository is not ours


def test_git_commit_is_the_repository_the_run_started_in(pytester, offline, outside, monkeypatch):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    head = _git_repository(pytester.path / "project")
    (pytester.path / "project" / "test_perplexity.py").write_text(BENCHMARK)
    monkeypatch.chdir(pytester.path / "project")
    result = pytester.runpytest(*_options(pytester.path / "project", outside, "space", False), "--run-id", "g",
                                "test_perplexity.py")
    result.assert_outcomes(passed=2)
    record = _assert_reports_here(pytester.path / "project", outside, "g")
    assert record["git_commit"].removesuffix("+dirty") == head


@pytest.mark.parametrize("form", FORMS)
def test_pyargs_writes_its_reports_where_it_was_started(pytester, offline, outside, form):
    result = pytester.runpytest("--pyargs", "lmeval_fixtures.benchmarks", "-m", "perplexity", "-p",
                                "no:cacheprovider", *_options(pytester.path, outside, form, form == "equals"),
                                "--run-id", form)
    result.assert_outcomes(passed=2)
    assert _assert_reports_here(pytester.path, outside, form)["git_commit"] is None


@pytest.mark.parametrize("form", FORMS)
def test_the_run_command_writes_its_reports_where_it_was_started(tmp_path, offline, outside, form, monkeypatch):
    monkeypatch.delenv("PYTEST_PLUGINS")
    here = tmp_path / "empty"
    here.mkdir()
    command = [sys.executable, "-m", "lmeval_fixtures", "run", "-m", "perplexity", "--run-id", form,
               *_options(here, outside, form, form == "space")]
    done = subprocess.run(command, cwd=here, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"rootdir: {here}" in done.stdout  # pytest's header tells where the run is, not a guess
    assert _assert_reports_here(here, outside, form)["git_commit"] is None


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_evaluate_writes_its_reports_where_it_was_called(tmp_path, offline, outside, relative, monkeypatch):
    from lmeval_fixtures import evaluate

    here = tmp_path / "notebook"
    here.mkdir()
    monkeypatch.chdir(here)
    where = Path(os.path.relpath(outside, here)) if relative else outside
    evaluate(where / "ck" / "a", families=["perplexity"], data_dir=where / "data", run_id="e")
    assert _assert_reports_here(here, outside, "e")["git_commit"] is None
