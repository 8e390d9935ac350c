"""Watch mode (``lmeval_fixtures.cli.watch``): each new checkpoint is evaluated once its files stop changing,
history and comparison grow, a trend is drawn against the training step, and Ctrl-C stops cleanly."""

from __future__ import annotations

import json
import os

from lmeval_fixtures.api import evaluate
from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.cli.watch import training_step, watch

from ..helpers import write_native_checkpoint, write_wikitext


def test_new_checkpoints_are_evaluated_once_stable_and_the_trend_grows(tmp_path):
    data, runs, reports = tmp_path / "data", tmp_path / "runs", tmp_path / "reports"
    write_wikitext(data)
    write_native_checkpoint(runs / "step-100", seed=1)
    calls: list[str] = []

    def counting_evaluate(path, **options):
        calls.append(path.parent.name)
        return evaluate(path, **options)

    polls = {"n": 0}

    def fake_sleep(seconds: float) -> None:
        polls["n"] += 1
        n = polls["n"]
        if n == 2:  # training writes step-200 ...
            write_native_checkpoint(runs / "step-200", seed=2)
        elif n == 3:  # ... and is still writing it: touched again, so not read yet
            weights = runs / "step-200" / "model.safetensors"
            os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
            assert calls == ["step-100"]
        elif n == 6:
            raise KeyboardInterrupt  # Ctrl-C between polls

    lines: list[str] = []
    watcher = watch(runs, run_id="w", metric="val_bits_per_byte", interval=0.0, sleep=fake_sleep,
                    evaluate=counting_evaluate, report=lines.append,
                    options={"families": ["perplexity"], "data_dir": data, "report_dir": reports})
    assert calls == ["step-100", "step-200"]  # each once, step-200 only after it stopped changing
    assert set(watcher.done.values()) == {"step-100", "step-200"}
    assert lines[-1] == "stopped: 2 checkpoint(s) evaluated into run w"
    history = [json.loads(line) for line in (reports / "history.jsonl").read_text().splitlines()]
    assert [h["checkpoint"] for h in history] == ["step-100", "step-200"]
    comparison = (reports / "w" / "comparison.md").read_text()
    assert "step-100" in comparison and "step-200" in comparison
    trend = (reports / "w" / "trend.md").read_text().splitlines()
    records = {n: json.loads((reports / "w" / n / "metrics.json").read_text()) for n in ("step-100", "step-200")}
    steps = {n: r["checkpoint"]["training"].get("step", int(n.split("-")[1])) for n, r in records.items()}
    expected = sorted((steps[n], n, r["val_bits_per_byte"]) for n, r in records.items())
    assert trend[-2:] == [f"| {s} | {n} | {v:.6g} |" for s, n, v in expected]


def test_the_training_step_comes_from_metadata_else_the_name():
    assert training_step({"checkpoint": {"name": "run3-step-1500", "training": {}}}) == 1500
    assert training_step({"checkpoint": {"name": "final", "training": {"step": 42}}}) == 42
    assert training_step({"checkpoint": {"name": "final", "training": {}}}) is None


def test_watch_command_refuses_a_missing_folder_and_bad_settings(tmp_path, capsys):
    assert cli(["watch", str(tmp_path / "nowhere")]) == 2
    assert "not a folder to watch" in capsys.readouterr().err
    assert cli(["watch", str(tmp_path), "--set", "max_eval_tokens"]) == 2
    assert "--set 'max_eval_tokens': expected KEY=VALUE" in capsys.readouterr().err
