"""Watch mode (``lmeval_fixtures.cli.watch``): each new checkpoint is evaluated once its files stop changing,
history and comparison grow, a trend is drawn against the training step, and Ctrl-C stops cleanly."""

from __future__ import annotations

import json
import os

import pytest

from lmeval_fixtures.api import evaluate
from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.cli.main import set_options
from lmeval_fixtures.cli.watch import training_step, watch
from lmeval_fixtures.core.errors import UsageError

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


def run_watch(runs, reports, data, steps: dict, evaluate_fn=None, polls: int = 12):
    """watch() with a fake clock: ``steps[n]`` runs at the n-th sleep; Ctrl-C after ``polls``."""
    count = {"n": 0}

    def fake_sleep(seconds: float) -> None:
        count["n"] += 1
        if count["n"] in steps:
            steps[count["n"]]()
        if count["n"] >= polls:
            raise KeyboardInterrupt

    lines: list[str] = []
    watcher = watch(runs, run_id="w", metric="val_bits_per_byte", interval=0.0, sleep=fake_sleep,
                    evaluate=evaluate_fn or evaluate, report=lines.append,
                    options={"families": ["perplexity"], "data_dir": data, "report_dir": reports})
    return watcher, lines


def test_a_checkpoint_not_yet_loadable_is_tried_again_once_its_files_change(tmp_path):
    data, runs, reports = tmp_path / "data", tmp_path / "runs", tmp_path / "reports"
    write_wikitext(data)
    (runs / "step-100").mkdir(parents=True)
    (runs / "step-100" / "model.safetensors").write_bytes(b"\x00" * 40)  # a write that stalled half-way
    watcher, lines = run_watch(runs, reports, data, {4: lambda: write_native_checkpoint(runs / "step-100", seed=1)})
    assert any(line.startswith("  step-100: could not be loaded (") and
               line.endswith("; evaluated again when its files change") for line in lines)
    assert watcher.done == {str(runs / "step-100" / "model.safetensors"): "step-100-2"}
    good = json.loads((reports / "w" / "step-100-2" / "metrics.json").read_text())
    assert good["val_bits_per_byte"] is not None
    assert lines[-1] == "stopped: 1 checkpoint(s) evaluated into run w"  # the failed load is not counted


def test_a_checkpoint_overwritten_in_place_is_evaluated_again_and_the_old_record_kept(tmp_path):
    data, runs, reports = tmp_path / "data", tmp_path / "runs", tmp_path / "reports"
    write_wikitext(data)
    write_native_checkpoint(runs / "step-100", seed=1)
    watcher, lines = run_watch(runs, reports, data, {4: lambda: write_native_checkpoint(runs / "step-100", seed=2)})
    assert "  step-100 changed since it was evaluated: evaluated again as step-100-2 (the earlier record kept)" in lines
    first, second = (json.loads((reports / "w" / n / "metrics.json").read_text()) for n in ("step-100", "step-100-2"))
    assert first["checkpoint"]["sha256"] != second["checkpoint"]["sha256"]
    assert first["val_bits_per_byte"] != second["val_bits_per_byte"]
    assert lines[-1] == "stopped: 2 checkpoint(s) evaluated into run w"


def test_every_failure_to_write_or_evaluate_is_printed_and_not_counted(tmp_path):
    data, runs, reports = tmp_path / "data", tmp_path / "runs", tmp_path / "reports"
    write_wikitext(data)
    write_native_checkpoint(runs / "step-100", seed=1)
    reports.mkdir()
    (reports / "w").write_text("a file where the run folder goes")  # the reports cannot be written
    watcher, lines = run_watch(runs, reports, data, {}, polls=4)
    assert any(line.startswith(f"  lmeval-fixtures: could not write the reports into {reports / 'w'}: ")
               for line in lines)
    assert "  step-100: no report written; tried again when its files change" in lines
    assert lines[-1] == "stopped: 0 checkpoint(s) evaluated into run w"

    def refusing(path, **options):
        raise UsageError(f"--checkpoint {path}: no such file or folder")

    watcher, lines = run_watch(runs, tmp_path / "other", data, {}, evaluate_fn=refusing, polls=4)
    assert (f"  not evaluated: --checkpoint {runs / 'step-100' / 'model.safetensors'}: no such file or folder; "
            "tried again when its files change") in lines
    assert lines[-1] == "stopped: 0 checkpoint(s) evaluated into run w"


def test_a_checkpoint_whose_every_item_skipped_says_why_and_is_not_counted(tmp_path):
    """evaluate() writes nothing when every item skipped (issue 27); watch says why, not only that no report came."""
    from lmeval_fixtures.evaluation.run import Finished

    runs = tmp_path / "runs"
    write_native_checkpoint(runs / "step-100", seed=1)
    why = "nothing measured: every item skipped (WikiText-2 raw validation: pass --data-dir DIR holding it)"

    def skipped(path, **options):
        return Finished(nothing_measured=why)

    watcher, lines = run_watch(runs, tmp_path / "r", tmp_path, {}, evaluate_fn=skipped, polls=4)
    assert f"  {why}" in lines and "  step-100: no report written; tried again when its files change" in lines
    assert lines[-1] == "stopped: 0 checkpoint(s) evaluated into run w"


def test_a_vanished_folder_stops_watch_with_a_line(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    watcher, lines = run_watch(runs, tmp_path / "r", tmp_path, {2: lambda: runs.rmdir()}, polls=50)
    assert watcher.gone
    assert lines[-1] == f"stopped: {runs} is gone (moved or deleted); 0 checkpoint(s) evaluated into run w"
    runs.mkdir()
    monkeypatch.setattr("time.sleep", lambda seconds: runs.rmdir())
    assert cli(["watch", str(runs), "--interval", "0.01"]) == 2
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"stopped: {runs} is gone")


@pytest.mark.parametrize("pairs, line", [
    (["run_id=x"], "--set run_id: use watch's --run-id"),
    (["checkpoint=a.pt"], "--set checkpoint: watch evaluates each checkpoint that appears in DIR"),
    (["shard=1/2"], "--set shard: watch evaluates every item of each checkpoint"),
    (["no_cache=maybe"], "--set no_cache=maybe: --no-cache is on or off; give no_cache=true or no_cache=false"),
    (["seed=5", "seed=6"], "--set seed: given twice (watch's --seed or an earlier --set)"),
    (["seed=99999999999"], "--seed must be an integer from 0 to 4,294,967,295, got 99999999999"),
    (["max-eval-tokens=abc"], "--max-eval-tokens 'abc': expected int"),
    (["dtype=float64"], "--dtype 'float64': choose one of float32, bfloat16, float16"),
    (["timing_budget=nan"], "--timing-budget must be between 0 and 86400, got nan"),
    (["nosuch=1"], "--set nosuch: no such option; known: acc_tolerance_se, "),
    (["max_eval_token=5"], "--set max_eval_token: no such option; did you mean max_eval_tokens?"),
])
def test_set_takes_every_option_with_the_command_lines_checks(tmp_path, capsys, pairs, line):
    argv = ["watch", str(tmp_path), "--interval", "1"]
    for pair in pairs:
        argv += ["--set", pair]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lmeval-fixtures watch: {line}") and err.count("\n") == 1


def test_set_reads_on_off_repeatable_and_bare_options_as_the_command_line_does():
    options = set_options(["no_cache=true", "refresh=off", "corpus=a=x.txt", "corpus=b=y.txt", "log_samples=",
                           "--max-eval-tokens=5", "strict-skips=1"], {"data_dir": "d"})
    assert options == {"data_dir": "d", "no_cache": True, "refresh": False, "corpus": ["a=x.txt", "b=y.txt"],
                       "log_samples": "full", "max_eval_tokens": "5", "strict_skips": True}
