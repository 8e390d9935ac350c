"""Run history (``records.history``): a history line carries the figure-changing settings and the data it was
measured on; a figure trends only against runs measured alike, and says which it left out and why; bad
lines are named by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.records.alike import FIGURE_SETTINGS, differences
from lmeval_fixtures.records.history import read_history, trend

from ..helpers import DATA, SETTINGS, finished_run


def test_a_history_line_carries_the_figure_changing_settings_and_data(tmp_path):
    history = tmp_path / "history.jsonl"
    finished_run(tmp_path, "r1", {"a": 2.0}, settings={"max_samples": 200}, history=history)
    line = json.loads(history.read_text().splitlines()[0])
    assert line["settings"] == {key: (SETTINGS | {"max_samples": 200})[key] for key in FIGURE_SETTINGS} | {
        "context": 64}
    assert "batch_tokens" not in line["settings"] and "baseline" not in line["settings"]
    assert line["data_fingerprints"] == DATA
    assert line["val_bits_per_byte"] == 2.0 and line["run_id"] == "r1" and line["sha256"] == "a" * 8
    assert read_history(history)[0] == line  # the validated reader takes the new fields


def line(run_id: str, value: float, data: dict | None = None, **settings) -> dict:
    return {"run_id": run_id, "timestamp": f"2026-01-01T00:00:0{run_id[-1]}+00:00", "git_commit": None,
            "checkpoint": "a", "sha256": "x", "complete": True, "val_bits_per_byte": value,
            "settings": {k: SETTINGS[k] for k in FIGURE_SETTINGS} | {"context": 64} | settings,
            "data_fingerprints": DATA if data is None else data}


def write_lines(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(entry) + "\n" for entry in lines))
    return path


def test_the_trend_leaves_out_runs_measured_otherwise_and_says_so(tmp_path, capsys):
    lines = [line("r1", 2.0, max_samples=200), line("r2", 2.0, max_samples=200), line("r3", 2.1),
             line("r4", 2.5, data={"wikitext-2-raw/validation.txt": "2" * 64}), line("r5", 2.1),
             line("r6", 2.1, context=128), line("r7", 2.3)]
    history = write_lines(tmp_path / "history.jsonl", lines)
    assert cli(["history", "--file", str(history)]) == 0
    out = capsys.readouterr().out
    assert "a val_bits_per_byte: 4 earlier run(s) with other settings or data left out (earlier vs latest: " \
           "max_samples 200 vs all; data wikitext-2-raw/validation.txt differs; context 128 vs 64)" in out
    trended = [row.split()[1] for row in out.splitlines() if row.startswith("  ")]
    assert trended == ["r3", "r5", "r7"]
    assert "latest 2.3 is OUTSIDE the previous 2 run(s): mean 2.1" in out  # 2.5 (other data) is not in the mean

    found = trend(read_history(history), "a", "val_bits_per_byte")
    assert len(found.rows) == 3 and len(found.notes) == 1


@pytest.mark.parametrize("setting, value, says", [
    ("max_eval_tokens", 20000, "max_eval_tokens 20000 vs all"), ("ppl_stride", 32, "ppl_stride 32 vs context"),
    ("detokenize", False, "detokenize off vs on"), ("prompts", "lm-eval", "prompts lm-eval vs smallbench"),
    ("fewshot", 3, "fewshot 3 vs 0"), ("seed", 7, "seed 7 vs 1234"), ("device", "cuda", "device cuda vs cpu"),
    ("dtype", "bfloat16", "dtype bfloat16 vs float32"),
])
def test_each_figure_changing_setting_splits_the_trend(setting, value, says):
    found = trend([line("r1", 2.0, **{setting: value}), line("r2", 2.0)], "a", "val_bits_per_byte")
    assert found.rows == [found.rows[0]] and "r2" in found.rows[0]
    assert says in found.notes[0] and "1 run(s) measured alike, nothing to compare yet" in found.verdict


def test_a_run_of_fewer_items_reads_less_data_but_still_trends():
    fewer = line("r2", 2.0, data={})  # e.g. -m smallbench: read no WikiText; nothing contradicts
    assert differences(line("r1", 2.0), fewer) == []
    assert differences(line("r1", 2.0), line("r2", 2.0, context=None) | {"settings": {
        k: SETTINGS[k] for k in FIGURE_SETTINGS}}) == []  # a run without perplexity states no context


def test_old_history_lines_without_settings_still_read(tmp_path, capsys):
    old = [{"run_id": f"r{i}", "timestamp": f"2026-01-01T00:00:0{i}+00:00", "git_commit": None, "checkpoint": "a",
            "sha256": "x", "complete": True, "val_bits_per_byte": 2.0} for i in (1, 2)]
    history = write_lines(tmp_path / "history.jsonl", old)
    assert cli(["history", "--file", str(history)]) == 0
    out = capsys.readouterr().out
    assert "within the previous 1 run(s)" in out and "the latest line records no settings" in out

    write_lines(history, [*old, line("r3", 2.2), line("r4", 2.2)])
    assert cli(["history", "--file", str(history), "--checkpoint", "a"]) == 0
    out = capsys.readouterr().out
    assert "2 earlier run(s) with other settings or data left out (earlier vs latest: settings not recorded)" in out
    assert "latest 2.2 is within the previous 1 run(s)" in out


@pytest.mark.parametrize("entry, says", [
    ({"settings": [1]}, ":1: settings is [1], not an object"),
    ({"settings": {"max_samples": [200]}}, ":1: settings['max_samples'] is [200], not a setting's value"),
    ({"data_fingerprints": {"f": 3}}, ":1: data_fingerprints['f'] is 3, not a sha256"),
])
def test_a_bad_settings_field_is_named_by_file_and_line(tmp_path, capsys, entry, says):
    good = {"run_id": "g", "timestamp": "t", "checkpoint": "a", "val_bits_per_byte": 2.0}
    history = write_lines(tmp_path / "history.jsonl", [{"run_id": "r", "timestamp": "t", "checkpoint": "a"} | entry,
                                                       good])
    assert cli(["history", "--file", str(history)]) == 0  # the bad line is skipped, never blocking the others
    assert capsys.readouterr().err == f"{history}{says}; line skipped\n"


@pytest.mark.parametrize("line, says", [
    ("[1]", ":1: not a history entry (a JSON list)"),
    ('{"run_id": "r"}', ":1: history entry without timestamp, checkpoint"),
    ('{"run_id": "r", "timestamp": "t", "checkpoint": "a", "val_bits_per_byte": "2.1"}',
     ":1: val_bits_per_byte is '2.1', not a number"),
])
def test_history_names_a_bad_line(tmp_path, capsys, line, says):
    path = tmp_path / "history.jsonl"
    path.write_text(line + "\n" + json.dumps({"run_id": "g", "timestamp": "t", "checkpoint": "a",
                                               "val_bits_per_byte": 2.0}) + "\n")
    assert cli(["history", "--file", str(path)]) == 0
    assert capsys.readouterr().err == f"{path}{says}; line skipped\n"


def test_history_refuses_a_non_finite_value(tmp_path, capsys):
    path = tmp_path / "history.jsonl"
    path.write_text('{"run_id": "r", "timestamp": "t", "checkpoint": "a", "val_bits_per_byte": NaN}\n')
    assert cli(["history", "--file", str(path)]) == 2  # no line left: no figure to show
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:1: val_bits_per_byte is nan, not a number; line skipped\n")
    assert err.endswith("holds no figures\n")


@pytest.mark.parametrize("asked", ["smallbench_sst2_acc", "SST-2", "sst2", "smallbench_sentiment_acc"])
def test_history_takes_any_name_of_a_task(tmp_path, capsys, asked):
    """One task, three names (issue 27): ``history --metric smallbench_sst2_acc`` was refused."""
    lines = [line(f"r{i}", 2.0) | {"smallbench_sentiment_acc": acc} for i, acc in enumerate((0.5, 0.6, 0.7), 1)]
    history = write_lines(tmp_path / "history.jsonl", lines)
    assert cli(["history", "--file", str(history), "--metric", asked]) == 0
    out = capsys.readouterr().out
    assert "== a: smallbench_sentiment_acc" in out and "latest 0.7 is" in out


def test_history_still_refuses_a_name_of_no_figure(tmp_path, capsys):
    history = write_lines(tmp_path / "history.jsonl", [line("r1", 2.0)])
    assert cli(["history", "--file", str(history), "--metric", "smallbench_sst3_acc"]) == 2
    assert "--metric smallbench_sst3_acc: " in capsys.readouterr().err
