"""Every reader of a run folder against every kind of bad neighbour (``tests/hostile_files.py``: a FIFO, a socket,
a link to /dev/zero or /dev/urandom, a folder, a dangling link, a file nobody may read, bytes that are not UTF-8,
truncated JSON, an empty file, a sparse file over every bound): each ends (``ends_within``), names the file in
one line, costs only its own checkpoint, and loses nothing already computed. The readers: a run's own
``Run.finish`` (what the plugin, ``evaluate()`` and ``watch`` end in), ``compare``, ``export-lmeval``, ``track``,
``merge``, ``history`` and the history append, and a baseline folder's gate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.core.errors import BaselineError
from lmeval_fixtures.evaluation.run import Finished, Run
from lmeval_fixtures.records.gates import Baselines

from ..helpers import ENVIRONMENT, SETTINGS, finished_run, history_split_figures
from ..hostile_files import KINDS, SAYS, ends_within, make_hostile

SAMPLES = "samples-perplexity-validation.jsonl"
TARGETS = ["b/metrics.json", f"b/{SAMPLES}"]
ROW = {"document": 0, "nll": 20.5, "tokens": 10, "bytes": 30, "words": 6}


def three_checkpoints(tmp_path: Path) -> Path:
    run = finished_run(tmp_path / "reports", "r", {"a": 1.0, "b": 1.1, "c": 1.2},
                       history=tmp_path / "reports" / "history.jsonl")
    for name in "abc":
        (run / name / SAMPLES).write_text(json.dumps(ROW) + "\n" + json.dumps(ROW | {"document": 1}) + "\n")
    return run


def says(kind: str, target: str) -> str:
    """What the one line says of ``kind`` as ``target`` (after the file's name)."""
    record = target.endswith("metrics.json")
    return SAYS.get(kind) or {"invalid UTF-8": "is not valid JSON" if record else "samples file is not UTF-8",
                              "truncated JSON": "is not valid JSON" if record else ":2: invalid JSON",
                              "empty": "is not valid JSON"}[kind]


def readable(kind: str, target: str) -> bool:
    return kind == "empty" and not target.endswith("metrics.json")  # an empty samples file: no rows, not an error


def unchanged(path: Path) -> tuple:
    info = os.lstat(path)
    return info.st_mode, info.st_ino, info.st_size, info.st_mtime_ns


def run_another(reports: Path, name: str, history: Path | None = None) -> Finished:
    """A later invocation of run r measuring checkpoint ``name``, ending as every door ends (``Run.finish``)."""
    run = Run({"run_id": "r", "timestamp": "2026-01-02T00:00:00+00:00", "seed": 1234, "git_commit": None,
               "environment": ENVIRONMENT, "settings": SETTINGS})
    run.absorb([(name, "t::ppl[validation]", {"perplexity": {"validation": history_split_figures(0.9)},
                                                "data_fingerprints": {"wikitext-2-raw/validation.txt": "1" * 64}}),
                (name, "~checkpoint", {"checkpoint": {"name": name, "path": "p", "sha256": name * 8}})])
    run.add_outcome(name, "t::ppl[validation]", "passed")
    return run.finish(reports / "r", compare_by="val_bits_per_byte", history=history, run_id="r")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", TARGETS)
def test_a_run_beside_a_bad_neighbour_writes_everything_of_its_own_and_names_the_neighbour(tmp_path, target, kind):
    run = three_checkpoints(tmp_path)
    make_hostile(run / target, kind)
    before = unchanged(run / target)
    with ends_within(20):
        done = run_another(tmp_path / "reports", "d", history=tmp_path / "reports" / "history.jsonl")
    assert done.errors == []
    if readable(kind, target):  # adopted and written again with the others
        assert done.warnings == [] and sorted(done.records) == ["a", "b", "c", "d"]
        return
    else:
        assert len(done.warnings) == 1
        assert done.warnings[0].startswith(f"lmeval-fixtures: {run / 'b'} left as it is, and out of comparison.md: "
                                           f"{run / target}")
        assert says(kind, target) in done.warnings[0]
        assert sorted(done.records) == ["a", "c", "d"]
    assert json.loads((run / "d" / "metrics.json").read_text())["val_bits_per_byte"] == 0.9
    assert "| d |" in (run / "comparison.md").read_text()
    history = (tmp_path / "reports" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["checkpoint"] for line in history] == ["a", "b", "c", "d"]
    assert unchanged(run / target) == before  # the unreadable neighbour left exactly as it was


COMMANDS = {"compare": ["compare", "reports/r", "--out", "cmp"],
            "export-lmeval": ["export-lmeval", "reports/r", "--out", "exp"],
            "track": ["track", "reports/r", "--to", "tensorboard:tb"]}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_command_over_a_run_folder_leaves_out_only_the_checkpoint_it_cannot_read(tmp_path, monkeypatch, capsys,
                                                                                  command, target, kind):
    if command == "track":
        pytest.importorskip("torch.utils.tensorboard")
    run = three_checkpoints(tmp_path)
    make_hostile(run / target, kind)
    before = unchanged(run / target)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    with ends_within(30):
        status = cli(COMMANDS[command])
    out, err = capsys.readouterr()
    kept = ["a", "b", "c"]
    if readable(kind, target) or (command == "track" and "samples" in target):  # track reads no samples
        assert (status, err) == (0, "")
    else:
        kept.remove("b")
        assert status == 2
        assert err.startswith(f"lmeval-fixtures {command}: reports/r/{target}") and err.count("\n") == 1
        assert says(kind, target) in err and err.endswith("; b left out\n")
    if command == "compare":
        table = (tmp_path / "cmp" / "comparison.md").read_text()
        assert [name for name in "abc" if f"| {name} |" in table] == kept
    elif command == "export-lmeval":
        assert sorted({Path(line).parent.name for line in out.splitlines()}) == kept
    else:
        assert out.splitlines() == [f"r/{name}" for name in kept]
    assert unchanged(run / target) == before


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", TARGETS)
def test_merge_refuses_a_shard_it_cannot_read_in_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, target,
                                                                            kind):
    """A merged record must not miss a shard's figures in silence: the merge is refused whole, by name."""
    run = three_checkpoints(tmp_path)
    make_hostile(run / target, kind)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    with ends_within(30):
        status = cli(["merge", "out", "reports/r"])
    err = capsys.readouterr().err
    if readable(kind, target):
        assert (status, err) == (0, "")
        return
    assert status == 2 and err.count("\n") == 1
    assert err.startswith(f"lmeval-fixtures merge: reports/r/{target}") and says(kind, target) in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_the_history_command_ends_and_names_a_bad_history_file(tmp_path, monkeypatch, capsys, kind):
    three_checkpoints(tmp_path)
    make_hostile(tmp_path / "reports" / "history.jsonl", kind)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    with ends_within(30):
        status = cli(["history", "--metric", "val_bits_per_byte"])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    if kind == "truncated JSON":  # the last line cut short: skipped by number, the whole lines still trended
        assert status == 0 and lines[0].startswith("reports/history.jsonl:3: invalid JSON (") and len(lines) == 1
        assert "== a: val_bits_per_byte" in out and "== b: val_bits_per_byte" in out
        return
    assert status == 2
    assert lines and all("reports/history.jsonl" in line for line in lines)  # each line names the file
    if kind in SAYS:
        assert len(lines) == 1 and lines[0].startswith("lmeval-fixtures history: reports/history.jsonl: ")
        assert SAYS[kind] in lines[0]
    else:  # lines that are not history entries: each skipped by number, then nothing to show
        assert lines[-1] == ("lmeval-fixtures history: --metric val_bits_per_byte: reports/history.jsonl holds no "
                             "figures")
        assert all(line.endswith("; line skipped") for line in lines[:-1])


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_appends_to_a_bad_history_file_whole_or_names_it_and_keeps_its_reports(tmp_path, kind):
    run = three_checkpoints(tmp_path)
    history = tmp_path / "reports" / "history.jsonl"
    make_hostile(history, kind)
    with ends_within(30):
        done = run_another(tmp_path / "reports", "d", history=history)
    assert sorted(done.records) == ["a", "b", "c", "d"]  # every report written whatever the history file is
    assert json.loads((run / "d" / "metrics.json").read_text())["val_bits_per_byte"] == 0.9
    if kind in SAYS and kind != "huge":  # nowhere a line can go: said, nothing else lost
        assert len(done.errors) == 1
        assert done.errors[0].startswith(f"lmeval-fixtures: could not append to {history}: ")
    else:  # after whatever the file holds, on a line of its own, whole
        assert done.errors == []
        with open(history, "rb") as handle:
            handle.seek(max(0, os.path.getsize(history) - 4096))
            tail = handle.read().split(b"\n")
        assert tail[-1] == b"" and json.loads(tail[-2])["checkpoint"] == "d"


@pytest.mark.parametrize("kind", KINDS)
def test_a_baseline_folder_with_a_bad_record_fails_that_checkpoints_gate_by_name(tmp_path, kind):
    """Before, anything but a regular file there (a FIFO, a folder) read as "no baseline": a gate that passed."""
    run = three_checkpoints(tmp_path)
    make_hostile(run / "b" / "metrics.json", kind)
    baselines = Baselines(run)
    with ends_within(20), pytest.raises(BaselineError) as raised:
        baselines.get("b")
    assert str(raised.value).startswith(f"{run / 'b' / 'metrics.json'}: ")
    assert says(kind, "metrics.json") in str(raised.value)
    assert baselines.get("a")["checkpoint"]["name"] == "a"  # the other checkpoints' baselines still gate


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", ["comparison.md", "a/summary.md", "d/summary.md"])
def test_a_report_file_a_neighbour_spoilt_is_replaced_whole_or_costs_only_itself(tmp_path, target, kind):
    """What a run writes is never read: whatever is in its place is replaced at once (a link by a file, never
    followed); a folder in the way is said in one line, and the record, the others and the history all written."""
    run = three_checkpoints(tmp_path)
    make_hostile(run / target, kind)
    with ends_within(20):
        done = run_another(tmp_path / "reports", "d", history=tmp_path / "reports" / "history.jsonl")
    assert sorted(done.records) == ["a", "b", "c", "d"]
    assert json.loads((run / "d" / "metrics.json").read_text())["val_bits_per_byte"] == 0.9
    history = (tmp_path / "reports" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["checkpoint"] for line in history] == ["a", "b", "c", "d"]
    if kind == "a folder":
        assert len(done.errors) == 1 and str(run / target) in done.errors[0]
    else:
        assert done.errors == []
        assert (run / target).is_file() and not (run / target).is_symlink()
        assert "| d |" in (run / "comparison.md").read_text()
    assert not (run / target).parent.joinpath("gone").exists()


SMALLBENCH_ROW = {"idx": 0, "label": 1, "loglikelihoods": [-1.0, -0.5], "greedy": [False, True], "correct": True,
                  "correct_norm": True}


@pytest.mark.parametrize("name, row, says", [
    (SAMPLES, ROW | {"nll": None}, ":1: not a sample (nll is None)"),
    (SAMPLES, ROW | {"nll": "1.5"}, ":1: not a sample (nll is '1.5')"),
    (SAMPLES, ROW | {"bytes": -3}, ":1: not a sample (bytes is -3)"),
    (SAMPLES, ROW | {"tokens": True}, ":1: not a sample (tokens is True)"),
    (SAMPLES, {k: v for k, v in ROW.items() if k != "document"}, ":1: not a sample (document is None)"),
    ("samples-smallbench-sst2.jsonl", SMALLBENCH_ROW | {"correct": 1}, ":1: not a sample (correct is 1)"),
    ("samples-smallbench-sst2.jsonl", SMALLBENCH_ROW | {"greedy": [True]},
     ":1: not a sample (greedy and loglikelihoods differ in length)"),
    ("samples-smallbench-sst2.jsonl", SMALLBENCH_ROW | {"loglikelihoods": [-1.0, float("nan")]},
     ":1: not a sample (loglikelihoods is [-1.0, nan])"),
])
def test_a_samples_row_without_what_its_readers_take_is_refused_by_line(tmp_path, name, row, says):
    """Before, such a row ended comparison.md's paired test (or export-lmeval) in a KeyError traceback."""
    from lmeval_fixtures.core.errors import RecordsNotFound
    from lmeval_fixtures.records.store import read_samples

    (tmp_path / name).write_text(json.dumps(row) + "\n")
    with pytest.raises(RecordsNotFound) as raised:
        read_samples(tmp_path)
    assert str(raised.value) == f"{tmp_path / name}{says}"


def test_a_samples_file_of_a_set_the_suite_never_writes_is_not_read(tmp_path):
    from lmeval_fixtures.records.store import read_samples

    make_hostile(tmp_path / "samples-notes.jsonl", "a FIFO")  # someone's own file: not opened, not waited on
    (tmp_path / SAMPLES).write_text(json.dumps(ROW) + "\n")
    with ends_within(10):
        assert read_samples(tmp_path) == {"perplexity-validation": [ROW]}
