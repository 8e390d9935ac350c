"""The table of figures (``suite.figures``): the small-model figures' keys, directions and history fields."""

import pytest

from lmeval_fixtures.records.history import history_line
from lmeval_fixtures.suite.figures import by_key, resolve_figure_key
from lmeval_fixtures.suite.registry import Registry
from lmeval_fixtures.suite.tasks import Prompt, Task

from ..helpers import FIGURES


def test_the_figure_table_history_and_keys():
    table = by_key(FIGURES)
    for base in ("smallbench_sentiment", "smallbench_nli", "smallbench_qa", "smallbench_paraphrase"):
        assert table[f"{base}_margin"].better == "higher" and table[f"{base}_margin"].stderr_field == "margin_stderr"
        assert table[f"{base}_gold_bits_per_byte"].better == "lower"
        assert table[f"{base}_acc_above_majority"].better == "higher"
        assert table[f"{base}_majority_rate"].better is None  # a property of the rows, not a score
        assert not any(table[f"{base}_{s}"].column for s in ("margin", "majority_rate"))  # main table unchanged
    record = {"run_id": "r", "timestamp": "t", "checkpoint": {"name": "a"},
              "smallbench": {"sst2": {"acc": 0.5, "margin": -0.25, "gold_bits_per_byte": 2.0,
                                      "acc_above_majority": 0.0, "majority_rate": 0.5}}}
    line = history_line(record, FIGURES)
    assert line["smallbench_sentiment_margin"] == -0.25 and line["smallbench_sentiment_gold_bits_per_byte"] == 2.0
    assert line["smallbench_sentiment_acc"] == 0.5 and "smallbench_sentiment_majority_rate" not in line


# ---- one name per figure: a task's other names are accepted (resolve_figure_key) ----------------------------


@pytest.mark.parametrize("name, key", [
    ("smallbench_sentiment_acc", "smallbench_sentiment_acc"),  # the key itself
    ("smallbench_sst2_acc", "smallbench_sentiment_acc"),  # the key spelt with the task's name (issue 27)
    ("SST-2", "smallbench_sentiment_acc"), ("sst2", "smallbench_sentiment_acc"),  # the label, the name alone
    ("smallbench_SST-2_acc", "smallbench_sentiment_acc"),
    ("smallbench_boolq_margin", "smallbench_qa_margin"), ("smallbench_mrpc_gold_bits_per_byte",
                                                         "smallbench_paraphrase_gold_bits_per_byte"),
    ("RTE", "smallbench_nli_acc"), ("VAL_PERPLEXITY", "val_perplexity"), ("smallbench-avg-acc", "smallbench_avg_acc"),
])
def test_a_figure_is_found_by_any_of_its_names(name, key):
    assert resolve_figure_key(name, Registry.default().figure_table()) == key


@pytest.mark.parametrize("name", ["smallbench_sst3_acc", "sst", "perplexity", ""])
def test_a_name_of_no_figure_resolves_to_none(name):
    assert resolve_figure_key(name, Registry.default().figure_table()) is None


def test_an_alias_two_figures_could_claim_picks_neither():
    """A task *labelled* "RTE" beside RTE makes "RTE" (and "Rte") ambiguous: it resolves to nothing rather
    than to one of the two; a name only one task is known by as written still resolves."""
    registry = Registry.default()
    registry.add_task(Task("rte2", "rte2", ("", ""), ("q",), {"smallbench": Prompt("{q}", ("a", "b"))}, label="RTE"))
    figures = registry.figure_table()
    assert resolve_figure_key("RTE", figures) is None and resolve_figure_key("Rte", figures) is None
    assert resolve_figure_key("rte", figures) == "smallbench_nli_acc"  # the name is still one task's
    assert resolve_figure_key("rte2", figures) == "smallbench_rte2_acc"


def test_a_figures_standard_error_is_its_entrys_sibling_field_or_none():
    table = by_key(FIGURES)
    record = {"smallbench": {"sst2": {"acc": 0.5, "acc_stderr": 0.125, "margin": 0.25, "margin_stderr": 0.0625}},
              "perplexity": {"validation": {"bits_per_byte": 1.5}}}
    assert table["smallbench_sentiment_acc"].stderr(record) == 0.125
    assert table["smallbench_sentiment_margin"].stderr(record) == 0.0625
    assert table["val_bits_per_byte"].stderr(record) is None  # a figure without a standard error
    assert table["smallbench_nli_acc"].stderr(record) is None  # a task the record does not hold
    assert table["smallbench_nli_acc"].stderr({"smallbench": {"rte": {"acc": 1.0}}}) is None  # none recorded
    assert table["test_bits_per_byte"].stderr(record) is None
