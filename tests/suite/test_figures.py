"""The table of figures (``suite.figures``): the small-model figures' keys, directions and history fields."""

from lmeval_fixtures.records.history import history_line
from lmeval_fixtures.suite.figures import by_key

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
