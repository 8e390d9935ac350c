"""The record's derived fields, each against its definition: a flat field of the original schema is
its nested figure's value, the average accuracy the mean over tasks, the train perplexity exp of the
train loss, and the memory figures the peak over every timed entry."""

from __future__ import annotations

import math

import pytest

from ..helpers import build, split_figures

TASK_ACC = {"sst2": 0.25, "rte": 0.5, "boolq": 0.625, "mrpc": 0.75}
FLAT = {"smallbench_sentiment_acc": 0.25, "smallbench_nli_acc": 0.5, "smallbench_qa_acc": 0.625,
        "smallbench_paraphrase_acc": 0.75}


def full_record() -> dict:
    timed = {"timing": "taken"}
    return build([
        ("a", "t::v", {"perplexity": {"validation": split_figures(3.0, bits_per_byte=1.25, word_perplexity=40.0)}}),
        ("a", "t::t", {"perplexity": {"test": split_figures(4.0, bits_per_byte=1.75, word_perplexity=50.0)}}),
        ("a", "t::s", {"smallbench": {t: {"acc": acc, "acc_stderr": 0.1} for t, acc in TASK_ACC.items()}}),
        ("a", "t::l1", {"latency": {"1x128": timed | {"mean_ms": 4.0, "memory_allocated_mb": 30.0,
                                                      "memory_reserved_mb": 64.0}}}),
        ("a", "t::l2", {"latency": {"1x512": timed | {"mean_ms": 9.0, "memory_allocated_mb": 70.0,
                                                      "memory_reserved_mb": 96.0}}}),
        ("a", "t::tp", {"throughput": timed | {"tokens_per_sec": 1234.0, "memory_allocated_mb": 50.0,
                                               "memory_reserved_mb": 128.0}}),
        ("a", "~checkpoint", {"train_loss": 1.5, "total_params": 1000, "embedding_ratio": 0.25}),
    ])["a"]


def test_each_flat_field_is_its_nested_figure():
    record = full_record()
    assert (record["val_loss"], record["val_perplexity"], record["val_bits_per_byte"]) == (3.0, 8.0, 1.25)
    assert (record["test_loss"], record["test_perplexity"], record["test_bits_per_byte"]) == (4.0, 16.0, 1.75)
    assert (record["val_word_perplexity"], record["test_word_perplexity"]) == (40.0, 50.0)
    assert {key: record[key] for key in FLAT} == FLAT
    assert (record["latency_batch1_seq128"], record["latency_batch1_seq512"]) == (4.0, 9.0)
    assert record["throughput_tokens_per_sec"] == 1234.0
    assert record["total_params"] == 1000 and record["embedding_ratio"] == 0.25


def test_the_derived_figures():
    record = full_record()
    assert record["smallbench_avg_acc"] == pytest.approx(sum(TASK_ACC.values()) / 4, rel=1e-15)  # 0.53125
    assert record["train_perplexity"] == pytest.approx(math.exp(1.5), rel=1e-15)
    # the peak over both latency shapes and the throughput entry, each reading on its own
    assert (record["memory_allocated_mb"], record["memory_reserved_mb"]) == (70.0, 128.0)
    assert record["smallbench_tasks"] == sorted(TASK_ACC)


def test_a_train_loss_beyond_float64_gives_an_infinite_perplexity_written_as_null():
    record = build([("a", "~checkpoint", {"train_loss": 1000.0})])["a"]
    assert record["train_perplexity"] is None
    assert any("train_perplexity" in e for e in record["errors"])


def test_non_finite_figures_become_null_and_each_is_named_by_its_path():
    """Every NaN or infinity, at any depth of dicts and lists, is written as null and listed under
    errors by its path (keys joined by dots, list positions in brackets), worked out by hand here."""
    from lmeval_fixtures.records.record import replace_non_finite

    found: list[str] = []
    record = {"val_loss": math.inf, "ok": 1.5, "perplexity": {"validation": {"per_document": [
        [2.0, 3], [math.nan, 4]], "loss": -math.inf}}, "latency": {"1x8": {"samples_ms": [1.0, math.inf]}}}
    assert replace_non_finite(record, found=found) == {
        "val_loss": None, "ok": 1.5, "perplexity": {"validation": {"per_document": [[2.0, 3], [None, 4]],
                                                                   "loss": None}},
        "latency": {"1x8": {"samples_ms": [1.0, None]}}}
    assert found == ["val_loss is inf (written as null)",
                     "perplexity.validation.per_document[1][0] is nan (written as null)",
                     "perplexity.validation.loss is -inf (written as null)",
                     "latency.1x8.samples_ms[1] is inf (written as null)"]
    bare: list[str] = []
    assert replace_non_finite(math.nan, found=bare) is None and bare == ["value is nan (written as null)"]
    at_top: list[str] = []
    assert replace_non_finite([0.5, math.inf], found=at_top) == [0.5, None] and at_top == [
        "[1] is inf (written as null)"]
    assert replace_non_finite({"a": [math.nan]}) == {"a": [None]}  # nobody asking for the list: still replaced
