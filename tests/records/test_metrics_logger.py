"""The training loop's logger (``records.metrics_logger``): statistics against a hand computation (NaN and
infinities kept and counted, never averaged), the best step by each direction rule, the history file (whole
lines, atomic, continued across restarts and saying so), the summary file, forwarding to a backend, and the
one-line refusals of bad calls."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from lmeval_fixtures import MetricsLogger, MetricsRecord, TrackingBackend
from lmeval_fixtures.core.errors import RecordError, UsageError
from lmeval_fixtures.records.metrics_logger import direction_by_name

from ..helpers import build, needs_fifo, one_line, split_figures

NAN, INF = math.nan, math.inf


class FakeBackend:
    """What a tracking backend receives, call by call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict[str, float]]] = []
        self.closed = False

    def log(self, step, figures):
        self.calls.append((step, dict(figures)))

    def close(self):
        self.closed = True


def logged() -> MetricsLogger:
    """Five steps of a loop whose loss diverges once (NaN) and once overflows (inf)."""
    logger = MetricsLogger()
    for step, loss, lr in [(0, 4.0, 1e-3), (10, 3.0, 9e-4), (20, NAN, 8e-4), (30, INF, 7e-4), (40, 2.5, 6e-4)]:
        logger.log(step, train_loss=loss, lr=lr)
    logger.log(40, val_acc=0.5)
    logger.log(50, val_acc=0.75)
    logger.log(60, val_acc=0.75)
    return logger


def test_statistics_match_a_hand_computation_with_non_finite_values_counted_not_averaged():
    stats = logged().stats()
    loss = stats["train_loss"]
    assert loss.count == 5 and loss.non_finite == 2
    assert loss.mean == pytest.approx((4.0 + 3.0 + 2.5) / 3)  # NaN and inf left out of the mean
    assert (loss.min, loss.max) == (2.5, 4.0)
    assert math.isinf(loss.last) is False and loss.last == 2.5 and loss.last_step == 40
    assert (loss.better, loss.best, loss.best_step) == ("lower", 2.5, 40)
    acc = stats["val_acc"]
    assert (acc.count, acc.non_finite, acc.mean) == (3, 0, pytest.approx(2.0 / 3))
    assert (acc.better, acc.best, acc.best_step) == ("higher", 0.75, 50)  # a tie goes to the earliest step
    lr = stats["lr"]
    assert lr.better is None and lr.best is None and lr.best_step is None  # no direction: no best
    assert lr.mean == pytest.approx((1e-3 + 9e-4 + 8e-4 + 7e-4 + 6e-4) / 5)


def test_a_figure_with_only_non_finite_values_has_no_mean_and_shows_its_last():
    logger = MetricsLogger()
    logger.log(1, grad_norm=INF)
    logger.log(2, grad_norm=NAN)
    stats = logger.stats()["grad_norm"]
    assert (stats.count, stats.non_finite, stats.mean, stats.min, stats.max) == (2, 2, None, None, None)
    assert math.isnan(stats.last)


@pytest.mark.parametrize("name, better", [
    ("train_loss", "lower"), ("val_perplexity", "lower"), ("wiki_ppl", "lower"), ("val_bpb", "lower"),
    ("eval_bits_per_byte", "lower"), ("latency_ms", "lower"), ("val_acc", "higher"), ("accuracy", "higher"),
    ("tokens_per_sec", "higher"), ("lr", None), ("tokens_seen", None), ("step_time", None),
])
def test_direction_by_name_for_figures_the_table_does_not_know(name, better):
    assert direction_by_name(name) == better


def test_the_figure_table_and_explicit_directions_come_before_the_name_rule():
    logger = MetricsLogger(directions={"lr": "lower", "smallbench_sst2_margin": "lower"})
    assert logger.better("smallbench_sentiment_margin") == "higher"  # the table's, not the name rule's (none)
    assert logger.better("smallbench_sentiment_majority_rate") is None  # a description in the table
    assert logger.better("lr") == "lower"
    with pytest.raises(UsageError) as info:
        MetricsLogger(directions={"reward": "up"})
    assert one_line(info) == "MetricsLogger: directions['reward'] is 'up'; give 'lower' or 'higher'"


def test_a_record_is_flattened_to_its_scored_figures():
    record = build([("a", "t::wikitext", {"perplexity": {"validation": split_figures(2.0)}}),
                    ("a", "~checkpoint", {"train_loss": 3.5})])["a"]
    logger = MetricsLogger()
    figures = logger.log(100, train_loss=3.5, record=record)
    # split_figures(2.0) holds loss 2.0, token perplexity 2 ** 2.0, bits per byte 2.0 / 2, word perplexity 9
    assert figures == {"train_loss": 3.5, "val_loss": 2.0, "val_perplexity": 4.0, "val_bits_per_byte": 1.0,
                       "val_word_perplexity": 9.0}  # nulls and descriptions (params, train ppl) left out
    assert logger.stats()["val_bits_per_byte"].better == "lower"
    typed = MetricsLogger().log(100, record=MetricsRecord.from_json(record))  # the typed view flattens alike
    assert typed == {k: v for k, v in figures.items() if k != "train_loss"}
    with pytest.raises(UsageError) as info:
        logger.log(101, val_loss=1.0, record=record)
    assert one_line(info) == "MetricsLogger.log: val_loss given both as a figure and in the record"


def test_torch_scalars_are_figures_and_other_values_are_refused_in_one_line():
    logger = MetricsLogger()
    assert logger.log(3, train_loss=torch.tensor(1.25)) == {"train_loss": 1.25}
    for bad, says in [
        (dict(train_loss="low"), "MetricsLogger.log: figure train_loss='low' is not a number"),
        (dict(flag=True), "MetricsLogger.log: figure flag=True is not a number"),
        (dict(loss=None), "MetricsLogger.log: figure loss=None is not a number"),
    ]:
        with pytest.raises(UsageError) as info:
            logger.log(4, **bad)
        assert one_line(info) == says
    with pytest.raises(UsageError, match=r"figure v=tensor\(\[1., 2.\]\) is not a number \(pass a float"):
        logger.log(4, v=torch.tensor([1.0, 2.0]))
    for step in (-1, 1.5, True, "3", np.int64(-2), np.float64(3.0)):
        with pytest.raises(UsageError) as info:
            logger.log(step, train_loss=1.0)
        assert one_line(info) == f"MetricsLogger.log: step {step!r} must be an integer >= 0"
    with pytest.raises(UsageError, match="no figures given"):
        logger.log(5)
    with pytest.raises(UsageError, match="record= takes what evaluate\\(\\) returned or a metrics record, not list"):
        logger.log(5, record=[1])
    assert len(logger.entries) == 1  # refused calls record nothing
    logger.log(np.int64(6), train_loss=1.0)  # a step counted by numpy is an integer too
    assert logger.entries[-1]["step"] == 6 and type(logger.entries[-1]["step"]) is int


def test_each_call_is_forwarded_to_every_backend_after_it_is_recorded():
    first, second = FakeBackend(), FakeBackend()
    assert isinstance(first, TrackingBackend)
    logger = MetricsLogger([first, second])
    logger.log(1, train_loss=2.0, lr=0.1)
    logger.log(2, train_loss=NAN)
    assert first.calls[0] == (1, {"train_loss": 2.0, "lr": 0.1})
    assert first.calls[1][0] == 2 and math.isnan(first.calls[1][1]["train_loss"])  # forwarded as it is
    assert len(second.calls) == 2 and second.calls[0] == first.calls[0]
    logger.close()
    assert first.closed and second.closed
    with pytest.raises(UsageError, match="backend object has no log\\(step, figures\\) and close\\(\\)"):
        MetricsLogger([object()])


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_history_has_one_whole_line_per_call_and_keeps_non_finite_values(tmp_path):
    logger = logged()
    path = logger.save_history(tmp_path / "history.jsonl")
    lines = read_lines(path)
    assert len(lines) == len(logger.entries) == 8
    assert [line["step"] for line in lines] == [0, 10, 20, 30, 40, 40, 50, 60]
    assert lines[2]["figures"]["train_loss"] == "nan" and lines[3]["figures"]["train_loss"] == "inf"
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()  # strict JSON
    logger.log(70, train_loss=2.0)
    logger.save_history(path)  # only the new call is added
    assert [line["step"] for line in read_lines(path)] == [0, 10, 20, 30, 40, 40, 50, 60, 70]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_history_lines_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A save cut off part-way (a full disk, an interrupt between writes) leaves the file as it was:
    whole lines, never half of one; the next save brings it up to date. The rule is the one of every
    history file (``core.files.append_whole``)."""
    from lmeval_fixtures.core import files

    logger = MetricsLogger()
    logger.log(1, train_loss=3.0)
    path = logger.save_history(tmp_path / "history.jsonl")
    before = path.read_text()
    logger.log(2, train_loss=2.0)
    logger.log(3, train_loss=1.5)
    real_write = os.write

    def half_then_interrupted(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "write", half_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        logger.save_history(path)
    monkeypatch.undo()
    assert path.read_text() == before
    logger.save_history(path)  # the next save brings the file up to date
    assert [line["step"] for line in read_lines(path)] == [1, 2, 3]


def test_each_save_writes_only_the_new_lines(tmp_path, monkeypatch):
    """A training run saving every step appends its line, never rewrites the lines before it."""
    from lmeval_fixtures.core import files

    logger = MetricsLogger()
    path = tmp_path / "history.jsonl"
    written: list[bytes] = []
    real_write = os.write
    monkeypatch.setattr(files.os, "write", lambda fd, data: written.append(bytes(data)) or real_write(fd, data))
    for step in range(5):
        logger.log(step, train_loss=float(5 - step))
        logger.save_history(path)
    assert [json.loads(chunk)["step"] for chunk in written] == [0, 1, 2, 3, 4]
    assert [line["step"] for line in read_lines(path)] == [0, 1, 2, 3, 4]


def test_a_restarted_run_continues_the_history_and_says_so(tmp_path, monkeypatch):
    path = tmp_path / "history.jsonl"
    first = MetricsLogger()
    for step, loss in [(0, 4.0), (10, 3.0), (20, 2.8)]:
        first.log(step, train_loss=loss)
    first.save_history(path)

    # a new process that does not read the file back: its lines go after the earlier ones, marked
    second = MetricsLogger()
    second.log(15, train_loss=2.9)  # restarted from the step-10 checkpoint
    second.log(25, train_loss=2.7)
    second.save_history(path)
    lines = read_lines(path)
    assert [line["step"] for line in lines] == [0, 10, 20, 15, 25]
    assert lines[3]["resumed"] == {"after_lines": 3, "last_step": 20}
    assert all("resumed" not in line for i, line in enumerate(lines) if i != 3)
    assert second.resumed_from == {"path": str(path), "after_lines": 3}

    # resume() reads the lines back: the statistics cover the whole training, saves append after them
    third = MetricsLogger.resume(path)
    assert third.resumed_from == {"path": str(path), "after_lines": 5}
    third.log(30, train_loss=NAN)
    third.log(35, train_loss=2.5)
    monkeypatch.chdir(tmp_path)
    third.save_history("history.jsonl")  # the same file spelled otherwise: no line written twice
    lines = read_lines(path)
    assert [line["step"] for line in lines] == [0, 10, 20, 15, 25, 30, 35]
    assert "resumed" not in lines[5]
    stats = third.stats()["train_loss"]
    assert (stats.count, stats.non_finite) == (7, 1)
    assert stats.mean == pytest.approx((4.0 + 3.0 + 2.8 + 2.9 + 2.7 + 2.5) / 6)
    assert (stats.best, stats.best_step) == (2.5, 35)
    assert math.isnan(MetricsLogger.resume(path).entries[5]["figures"]["train_loss"])


def test_a_history_that_is_not_ours_is_refused_in_one_line_and_left_alone(tmp_path):
    bad = tmp_path / "history.jsonl"
    bad.write_text('{"step": 1, "figures": {"loss": 1.0}}\n{"step": 2, "figu\n')
    with pytest.raises(RecordError) as info:
        MetricsLogger.resume(bad)
    assert one_line(info).startswith(f"{bad}:2: invalid JSON")
    logger = MetricsLogger()
    logger.log(3, loss=0.5)
    with pytest.raises(RecordError):
        logger.save_history(bad)
    assert bad.read_text().endswith('"figu\n')  # nothing written over it
    other = tmp_path / "other.jsonl"
    other.write_text('{"step": 1, "loss": 1.0}\n')
    with pytest.raises(RecordError) as info:
        MetricsLogger.resume(other)
    assert one_line(info) == f"{other}:1: not a MetricsLogger history line (step and figures expected)"


@needs_fifo
def test_a_fifo_as_history_is_refused_unopened(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(RecordError, match="not a regular file"):
        MetricsLogger.resume(fifo)
    logger = MetricsLogger()
    logger.log(1, loss=1.0)
    with pytest.raises(RecordError, match="not a regular file"):
        logger.save_history(fifo)


def test_summary_file_holds_the_statistics_as_strict_json(tmp_path):
    path = logged().save_summary(tmp_path / "summary.json")
    summary = json.loads(path.read_text())
    assert (summary["calls"], summary["first_step"], summary["last_step"]) == (8, 0, 60)
    loss = summary["figures"]["train_loss"]
    assert loss["count"] == 5 and loss["non_finite"] == 2 and loss["best_step"] == 40
    assert loss["mean"] == pytest.approx(9.5 / 3)
    assert summary["figures"]["lr"]["best"] is None
    crash = MetricsLogger()
    crash.log(1, loss=INF)
    crash.save_summary(path)
    assert json.loads(path.read_text())["figures"]["loss"]["last"] == "inf"
    assert "Infinity" not in path.read_text()


def test_training_figures_are_the_last_train_loss_its_step_and_tokens_seen():
    logger = MetricsLogger()
    assert logger.training_figures() == {}
    logger.log(10, train_loss=3.0, tokens_seen=1024.0)
    logger.log(20, val_acc=0.6)
    logger.log(30, train_loss=2.5)
    assert logger.training_figures() == {"train_loss": 2.5, "step": 30, "tokens_seen": 1024}


def test_a_record_from_several_checkpoints_is_refused():
    class Finished:
        records = {"a": build([("a", "t::x", {})]), "b": build([("b", "t::x", {})])}

    with pytest.raises(UsageError) as info:
        MetricsLogger().log(1, record=Finished())
    assert one_line(info) == ("MetricsLogger.log: record= holds 2 checkpoints (a, b); pass one: done.records[name]")

