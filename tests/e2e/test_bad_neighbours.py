"""A run folder survives a bad neighbour: another checkpoint's samples file or record that cannot be read, a
`.lock` that is not a file (never opened: the folder itself is the lock), a history file with a broken line, a
--merge-into that names a checkpoint's folder.
Each is named in one line and costs only its own checkpoint (or is refused before anything is written);
nothing hangs (a FIFO is guarded by a subprocess timeout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lmeval_fixtures.cli.main import main as cli

from ..helpers import needs_fifo
from ..hostile_files import ends_within, make_hostile

RUN = ["--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity", "--run-id", "r", "--log-samples"]


def spoil(path, how: str) -> None:
    """Make ``path`` (a samples file) unreadable as samples, one way each."""
    path.unlink(missing_ok=True)
    if how == "invalid JSON":
        path.write_text('{"document": 0, "nll": 1.5, "tokens": 1, "bytes": 2, "words": 1}\n{"document": \n')
    elif how == "a row without nll":
        path.write_text('{"document": 0, "tokens": 1, "bytes": 2, "words": 1}\n')
    elif how == "not UTF-8":
        path.write_bytes(b'{"text": "caf\xe9"}\n')
    elif how == "not an object":
        path.write_text("[1, 2]\n")
    elif how == "a folder":
        path.mkdir()
    elif how == "a FIFO":
        os.mkfifo(path)


SAMPLES = "samples-perplexity-test.jsonl"


@pytest.mark.parametrize("how, says", [
    ("invalid JSON", f"{SAMPLES}:2: invalid JSON"),
    ("not UTF-8", f"{SAMPLES}: samples file is not UTF-8 (byte 13)"),
    ("not an object", f"{SAMPLES}:1: not a sample (a JSON list)"),
    ("a row without nll", f"{SAMPLES}:1: not a sample (nll is None)"),
    ("a folder", f"{SAMPLES}: samples file cannot be read (Is a directory)"),
    pytest.param("a FIFO", f"{SAMPLES}: not a regular file (a named pipe (FIFO))", marks=needs_fifo),
])
def test_another_checkpoints_unreadable_samples_cost_only_that_checkpoint(two_models, how, says):
    first = two_models.runpytest(*RUN)
    assert first.ret == pytest.ExitCode.OK
    neighbour = two_models.path / "reports/r/b"
    spoil(neighbour / SAMPLES, how)
    before = (neighbour / "metrics.json").read_bytes()
    result = two_models.runpytest_subprocess("--checkpoint", "ck/a", *RUN[2:], "-p", "no:randomly", timeout=120)
    assert result.ret == pytest.ExitCode.OK  # a's report is written; b is named, not an error of this run
    result.stdout.fnmatch_lines([f"*lmeval-fixtures: *reports/r/b left as it is, and out of comparison.md: *{says}*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert (neighbour / "metrics.json").read_bytes() == before
    record = json.loads((two_models.path / "reports/r/a/metrics.json").read_text())
    assert len(record["items"]) == 2 and record["val_bits_per_byte"] is not None
    history = (two_models.path / "reports/history.jsonl").read_text().splitlines()
    assert [json.loads(line)["checkpoint"] for line in history] == ["a", "b", "a"]


@needs_fifo
@pytest.mark.parametrize("command, status, line", [
    (["compare", "reports/r", "--out", "c"], 2, "; b left out"),  # a compared; b named
    (["export-lmeval", "reports/r", "--out", "e"], 2, "; b left out"),
    (["merge", "out", "reports/r"], 2, ""),  # refused whole: a merged run must not miss a shard's figures
])
def test_commands_name_a_fifo_samples_file_in_one_line_without_hanging(two_models, command, status, line):
    two_models.runpytest(*RUN)
    spoil(two_models.path / f"reports/r/b/{SAMPLES}", "a FIFO")
    done = subprocess.run([sys.executable, "-m", "lmeval_fixtures", *command], cwd=two_models.path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == status
    assert done.stderr == (f"lmeval-fixtures {command[0]}: reports/r/b/{SAMPLES}: not a regular file (a named "
                           f"pipe (FIFO)); copy its content to a regular file and pass that{line}\n")
    if line:  # the readable checkpoint's output is written
        assert any("/a/" in path or path.endswith("comparison.md") for path in done.stdout.splitlines())


@pytest.mark.parametrize("kind", ["a FIFO", "a folder", "a dangling symlink", "a symlink to /dev/zero", "a socket"])
def test_a_bad_lock_file_in_the_run_folder_costs_no_checkpoint_anything(two_models, kind):
    """The run folder itself is locked, so a `.lock` a neighbour left as anything at all is never opened: every
    checkpoint's report and history line is written (before, a FIFO hung the run and other kinds cost every report)."""
    make_hostile(two_models.path / "reports/r/.lock", kind)
    result = two_models.runpytest_subprocess(*RUN, timeout=120)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    for name in ("a", "b"):
        assert json.loads((two_models.path / f"reports/r/{name}/metrics.json").read_text())["val_bits_per_byte"]
    assert (two_models.path / "reports/r/comparison.md").is_file()
    history = (two_models.path / "reports/history.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["checkpoint"] for line in history) == ["a", "b"]
    assert os.path.lexists(two_models.path / "reports/r/.lock")  # left as it was


def test_a_broken_history_line_is_skipped_with_its_line_named_and_blocks_nothing(two_models, capsys):
    two_models.runpytest(*RUN)
    history = two_models.path / "reports/history.jsonl"
    whole = history.read_text()
    history.write_text(whole + whole.splitlines()[0][:40])  # a full disk cut the last line short
    later = two_models.runpytest("--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity", "--run-id", "s")
    assert later.ret == pytest.ExitCode.OK
    lines = history.read_text().split("\n")
    assert lines[2] == whole.splitlines()[0][:40]  # the broken line left as it was, on a line of its own
    assert [json.loads(line)["run_id"] for line in lines[3:] if line] == ["s", "s"]
    os.chdir(two_models.path)
    capsys.readouterr()
    assert cli(["history", "--checkpoint", "a", "--metric", "val_bits_per_byte"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("reports/history.jsonl:3: invalid JSON (")
    assert captured.err.endswith("; line skipped\n") and captured.err.count("\n") == 1
    assert "latest" in captured.out and "within the previous 1 run(s)" in captured.out


@pytest.mark.parametrize("target", ["reports/r/a", "reports/r/b"])
def test_merge_into_a_checkpoints_folder_is_refused_in_one_line(two_models, capsys, target):
    two_models.runpytest(*RUN)
    before = sorted(p.relative_to(two_models.path) for p in (two_models.path / "reports").rglob("*"))
    result = two_models.runpytest("--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity",
                                  "--merge-into", target)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--merge-into {target}: a checkpoint's report folder (it holds metrics.json), not "
                                 "a run folder; pass the run folder above it, reports/r"])
    os.chdir(two_models.path)
    capsys.readouterr()
    assert cli(["merge", target, "reports/r"]) == 2
    assert capsys.readouterr().err == (f"lmeval-fixtures merge: OUT {target}: a checkpoint's report folder (it holds "
                                       "metrics.json), not a run folder; pass the run folder above it, reports/r\n")
    assert sorted(p.relative_to(two_models.path) for p in (two_models.path / "reports").rglob("*")) == before


@pytest.mark.parametrize("how", ["a folder", "invalid JSON"])
def test_another_checkpoints_unreadable_record_costs_only_that_checkpoint(two_models, how):
    two_models.runpytest(*RUN)
    record = two_models.path / "reports/r/b/metrics.json"
    record.unlink()
    if how == "a folder":
        record.mkdir()
    else:
        record.write_text('{"run_id": ')
    result = two_models.runpytest("--checkpoint", "ck/a", *RUN[2:])
    assert result.ret == pytest.ExitCode.OK
    says = "cannot be read (Is a directory)" if how == "a folder" else "is not valid JSON ("
    result.stdout.fnmatch_lines([f"lmeval-fixtures: */reports/r/b left as it is, and out of comparison.md: "
                                 f"*/reports/r/b/metrics.json: metrics.json {says}*"])
    assert json.loads((two_models.path / "reports/r/a/metrics.json").read_text())["val_bits_per_byte"] is not None


@pytest.mark.parametrize("target", ["old/metrics.json", "old/samples-perplexity-validation.jsonl", ".lock",
                                    "../history.jsonl"])
@pytest.mark.parametrize("kind", ["a FIFO", "a symlink to /dev/urandom", "a dangling symlink", "huge"])
def test_watch_into_a_run_folder_with_a_bad_neighbour_evaluates_and_says_everything(tmp_path, target, kind):
    """``watch`` ends every evaluation in ``Run.finish`` too: a bad neighbour in its run folder (or a bad history
    file) is named in one line, and each new checkpoint is still evaluated and reported."""
    from lmeval_fixtures.cli.watch import watch

    from ..helpers import finished_run, write_native_checkpoint, write_wikitext

    data, runs, reports = tmp_path / "data", tmp_path / "runs", tmp_path / "reports"
    write_wikitext(data)
    write_native_checkpoint(runs / "step-100", seed=1)
    finished_run(reports, "w", {"old": 1.0}, history=reports / "history.jsonl")  # an earlier checkpoint of the run
    (reports / "w" / "old" / "samples-perplexity-validation.jsonl").write_text("")
    make_hostile(reports / "w" / target, kind)
    polls = {"n": 0}

    def sleep(seconds: float) -> None:
        polls["n"] += 1
        if polls["n"] >= 3:
            raise KeyboardInterrupt

    lines: list[str] = []
    with ends_within(120):
        watcher = watch(runs, run_id="w", metric="val_bits_per_byte", interval=0.0, sleep=sleep, report=lines.append,
                        options={"families": ["perplexity"], "data_dir": data, "report_dir": reports})
    assert watcher.evaluated == 1 and lines[-1] == "stopped: 1 checkpoint(s) evaluated into run w"
    assert json.loads((reports / "w" / "step-100" / "metrics.json").read_text())["val_bits_per_byte"] is not None
    said = [line for line in lines if str(reports / "w" / target) in line or (
        target == "../history.jsonl" and str(reports / "history.jsonl") in line)]
    if target == ".lock":
        assert said == []  # never opened: nothing to say
    elif target == "../history.jsonl" and kind == "huge":
        assert said == []  # appended after it, unread
    else:
        assert len(said) == 1, lines
