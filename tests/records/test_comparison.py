"""Figures that tell small models apart (issue 16, item 3): the majority-class rate, the gold
margin, the gold continuations' bits per byte, the one-class statement, and comparison.md's
bold only where a paired test separates the best value from the runner-up's.

Expected values are worked out by hand from made-up log-likelihoods, not by the code under test."""

import json
import math
import xml.etree.ElementTree as ET

import pytest

from lmeval_fixtures.core.errors import RecordInvalid
from lmeval_fixtures.core.schema import validate_record
from lmeval_fixtures.engine.scoring import ScoringStats
from lmeval_fixtures.evaluation.run import Run
from lmeval_fixtures.records.codecs import decode_per_row, encode_per_document, encode_per_row
from lmeval_fixtures.records.comparison import render_comparison, verdict
from lmeval_fixtures.records.fragments import smallbench
from lmeval_fixtures.records.history import history_line
from lmeval_fixtures.records.paired import mcnemar_exact, paired_average_accuracy, paired_mean
from lmeval_fixtures.records.summary import render_summary
from lmeval_fixtures.suite.figures import by_key
from lmeval_fixtures.suite.registry import Registry
from lmeval_fixtures.suite.smallbench import RowResult, TaskResult
from lmeval_fixtures.suite.tasks import TASKS

from .conftest import write_native_checkpoint
from .test_gates import lay_out_suite

RUN = {"run_id": "r1", "timestamp": "2026-01-01T00:00:00+00:00", "seed": 1, "git_commit": None,
       "environment": {"device": "cpu", "dtype": "float32", "python": "3.11", "torch": "x", "platform": "p"}}
FIGURES = Registry.default().figure_table()


def task_result(rows: list[RowResult], choices=("no", "sí")) -> TaskResult:
    return TaskResult("boolq", "smallbench", 0, rows, [len(c) for c in choices], ScoringStats(), 1.0,
                      choices=choices, continuations=tuple(" " + c for c in choices))


# Four rows, choices " no" (3 bytes) and " sí" (4 bytes: the í is two). Row 3's context ends with a
# newline, which the engine moves onto the continuation: its gold text as scored is "\n sí", 5 bytes.
HAND_ROWS = [
    RowResult(0, 1, [-1.0, -2.5], [False, False], "Q: a\nA:"),  # predicts 0, wrong; margin -2.5 - -1.0 = -1.5
    RowResult(1, 0, [-0.5, -3.0], [False, False], "Q: b\nA:"),  # predicts 0, right; margin 2.5
    RowResult(2, 1, [-2.0, -4.0], [False, False], "Q: c\nA:"),  # predicts 0, wrong; margin -2.0
    RowResult(3, 1, [-1.25, -1.0], [False, False], "Q: d\nA:\n"),  # predicts 1, right; margin 0.25
]


def test_majority_margin_and_gold_bits_per_byte_of_a_hand_example():
    figures = task_result(HAND_ROWS).summary()
    assert figures["label_counts"] == [1, 3] and figures["majority_rate"] == 0.75
    assert figures["acc"] == 0.5 and figures["acc_above_majority"] == -0.25
    assert figures["prediction_counts"] == [3, 1] and figures["predicted_classes"] == 2
    assert figures["single_class"] is False
    # margins -1.5, 2.5, -2.0, 0.25: mean -0.75 / 4; squared deviations from it sum to 12.421875
    assert figures["margin"] == pytest.approx(-0.1875, abs=1e-12)
    assert figures["margin_stderr"] == pytest.approx(math.sqrt(12.421875 / 3 / 4), rel=1e-12)
    # gold NLL 2.5 + 0.5 + 4.0 + 1.0 = 8 nats over 4 + 3 + 4 + 5 = 16 bytes
    assert figures["gold_bytes"] == 16
    assert figures["gold_bits_per_byte"] == pytest.approx(8.0 / (math.log(2) * 16), rel=1e-12)
    assert figures["gold_loglikelihood_sum"] == -8.0  # the figure it shares its sum with, unchanged


def test_gold_log_likelihood_sum_is_exactly_rounded():
    """Ten gold log-likelihoods of -0.1 add up to -0.9999999999999999 left to right (builtin sum
    before Python 3.12) and to -1.0 exactly rounded: the record holds -1.0 on every Python."""
    rows = [RowResult(i, 0, [-0.1, -5.0], [False, False], f"Q: {i}\nA:") for i in range(10)]
    figures = task_result(rows).summary()
    assert figures["gold_loglikelihood_sum"] == -1.0
    assert figures["gold_bits_per_byte"] == 1.0 / (math.log(2) * figures["gold_bytes"])


def test_margin_with_three_choices_is_against_the_best_other_choice():
    assert RowResult(0, 2, [-1.0, -3.0, -2.0], [False] * 3).margin() == -1.0
    assert RowResult(0, 0, [-1.0, -3.0, -2.0], [False] * 3).margin() == 1.0
    assert RowResult(0, 0, [-1.0], [False]).margin() is None


def test_one_class_for_every_row_is_recorded_and_stated_in_the_summary():
    single = [RowResult(i, i % 2, [-1.0, -2.0 - i], [False, False], "Q:") for i in range(6)]
    mixed = [RowResult(i, i % 2, [-1.0, -2.0 + 2 * (i % 2)], [False, False], "Q:") for i in range(6)]
    fragments = [("a", "t::boolq", smallbench(TASKS["boolq"], task_result(single, ("no", "yes")), {})),
                 ("a", "t::sst2", smallbench(TASKS["sst2"], task_result(mixed, ("negative", "positive")), {}))]
    recorder = Run(RUN)
    recorder.absorb(fragments)
    record = recorder.records()["a"]
    validate_record(record)
    assert record["smallbench"]["boolq"]["single_class"] is True
    assert record["smallbench"]["boolq"]["predicted_classes"] == 1
    assert record["smallbench"]["sst2"]["single_class"] is False
    assert record["smallbench"]["sst2"]["predicted_classes"] == 2
    text = render_summary(record, Registry.default().figure_table([record]), Registry.default())
    assert '- boolq predicts one class for every row ("no" on all 6 rows): its accuracy 0.5000' in text
    assert "sst2 predicts one class" not in text
    assert "| majority | acc - majority | classes | margin | ± SE | gold bits/byte |" in text


def test_per_row_values_round_trip_and_validate():
    rows = task_result(HAND_ROWS).per_row()
    encoded = encode_per_row(rows)
    assert encoded["correct"] == "0101" and encoded["gold_bytes"] == "4 3 4 5"
    assert encoded["margin"] == "-1.5000 2.5000 -2.0000 0.2500"
    decoded = decode_per_row({"n": 4, "per_row": encoded})
    assert decoded.correct == [False, True, False, True] and decoded.gold_loglikelihood == [-2.5, -0.5, -4.0, -1.0]
    assert decode_per_row({"n": 5, "per_row": encoded}) is None  # not one value per row
    assert decode_per_row({"n": 4}) is None  # an older record
    record = Run(RUN)
    record.absorb([("a", "t::boolq", smallbench(TASKS["boolq"], task_result(HAND_ROWS), {}))])
    built = record.records()["a"]
    validate_record(built)
    built["smallbench"]["boolq"]["per_row"]["correct"] = "01x1"
    with pytest.raises(RecordInvalid, match="per_row"):
        validate_record(built)


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


# ---- paired tests --------------------------------------------------------------------------------

def test_paired_mean_difference_and_interval():
    a, b = [1.0, 2.0, 3.0, 4.0], [0.5, 1.5, 3.5, 3.0]  # differences 0.5, 0.5, -0.5, 1.0: mean 0.375
    result = paired_mean(a, b, resamples=2000, seed=3)
    assert result.difference == pytest.approx(0.375)
    assert -0.5 <= result.low <= 0.375 <= result.high <= 1.0
    same = paired_mean(a, a)
    assert same.difference == 0 and not same.significant
    assert paired_mean([x + 1 for x in b * 10], b * 10).significant


def test_paired_average_accuracy_weights_tasks_equally():
    # task 1: A - B = (3 - 1) / 4 = 0.5; task 2: (1 - 2) / 2 = -0.5; the average difference is 0,
    # where pooling the six rows would give (4 - 3) / 6
    result = paired_average_accuracy([([1, 1, 0, 1], [1, 0, 0, 0]), ([0, 1], [1, 1])], resamples=500)
    assert result.difference == pytest.approx(0.0) and result.n == 6 and not result.significant
    clear = paired_average_accuracy([([True] * 50, [False] * 50), ([True] * 40, [False] * 40)])
    assert clear.difference == 1.0 and clear.significant


# ---- comparison.md bolds only what a paired test separates --------------------------------------

N = 200


def entry(correct: list[bool], margins: list[float], gold: list[float], labels: list[int] | None = None) -> dict:
    """A SmallBench task entry as a run records it, from per-row values (bytes: " no" 3, " yes" 4)."""
    labels = labels or [i % 2 for i in range(len(correct))]
    n, acc = len(correct), sum(correct) / len(correct)
    nbytes = [3 if label == 0 else 4 for label in labels]
    return {"n": n, "acc": acc, "acc_stderr": math.sqrt(acc * (1 - acc) / (n - 1)), "acc_norm": acc,
            "acc_norm_stderr": 0.0, "prompt_set": "smallbench", "fewshot": 0, "majority_rate": 0.5,
            "acc_above_majority": acc - 0.5, "predicted_classes": 2, "margin": sum(margins) / n,
            "margin_stderr": 0.01, "gold_bytes": sum(nbytes),
            "gold_bits_per_byte": -sum(gold) / (math.log(2) * sum(nbytes)),
            "per_row": encode_per_row({"idx": list(range(n)), "label": labels, "correct": correct,
                                       "margin": margins, "gold_loglikelihood": gold, "gold_bytes": nbytes})}


def record(name: str, tasks: dict[str, dict], bpb: float = 2.0) -> dict:
    return {"run_id": "r", "data_fingerprints": {}, "embedding_ratio": 0.3,
            "checkpoint": {"name": name, "tokenizer_sha256": "t"}, "smallbench": tasks,
            "perplexity": {"validation": {"bits_per_byte": bpb, "token_perplexity": 10.0}}}


def right_on_first(k: int) -> list[bool]:
    return [i < k for i in range(N)]


BASE_MARGINS = [math.sin(i) for i in range(N)]
BASE_GOLD = [-2.0 - math.cos(i) ** 2 for i in range(N)]


def rows_of(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_accuracy_apart_on_a_few_rows_is_not_bolded():
    b = record("b", {"sst2": entry(right_on_first(100), BASE_MARGINS, BASE_GOLD)})
    a = record("a", {"sst2": entry(right_on_first(103), BASE_MARGINS, BASE_GOLD)})
    text = render_comparison([a, b], FIGURES, "smallbench_sentiment_acc")
    # A alone right on 3 rows, B alone on none: McNemar p = 2 * (1 / 2**3) = 0.25
    assert mcnemar_exact(3, 0) == 0.25
    assert "| a | 0.300 | 2.0000 | 10.00 | 0.5150 ± 0.035 |" in text  # no bold: could be noise
    assert "- SST-2 acc: a 0.5150 vs runner-up b 0.5000, difference +0.0150" in text
    assert "McNemar p = 0.25: not significant; not bolded" in text
    assert "**0.0150**" not in text  # acc - majority follows the same test


def test_accuracy_apart_on_many_rows_is_bolded():
    b = record("b", {"sst2": entry(right_on_first(100), BASE_MARGINS, BASE_GOLD)})
    a = record("a", {"sst2": entry(right_on_first(130), BASE_MARGINS, BASE_GOLD)})
    text = render_comparison([a, b], FIGURES, "smallbench_sentiment_acc")
    # 30 rows only A got right, none only B: p = 2 / 2**30
    assert "| a | 0.300 | 2.0000 | 10.00 | **0.6500 ± 0.034** |" in text
    assert rows_of(text, "| b |")[0].count("**") == 0
    assert "significant; bolded" in text and "| SST-2 | a | **0.6500 ± 0.034** |" in text
    assert "**0.1500**" in text  # accuracy above the majority rate, the same rows


def test_margin_and_gold_bits_per_byte_bold_only_when_paired_tests_separate_them():
    few = [m + (0.01 if i in (5, 9) else 0.0) for i, m in enumerate(BASE_MARGINS)]  # 2 rows apart
    slightly_worse = [g - (0.01 if i in (5, 9) else 0.0) for i, g in enumerate(BASE_GOLD)]
    same_acc = right_on_first(100)
    a = record("a", {"sst2": entry(same_acc, few, slightly_worse)})
    b = record("b", {"sst2": entry(same_acc, BASE_MARGINS, BASE_GOLD)})
    text = render_comparison([a, b], FIGURES, "val_bits_per_byte")
    lines = {line.split(":")[0]: line for line in text.splitlines() if line.startswith("- SST-2")}
    assert lines["- SST-2 acc"].endswith("all equal; not bolded")
    assert lines["- SST-2 margin"].startswith("- SST-2 margin: a ") and lines["- SST-2 margin"].endswith(
        "not significant; not bolded")
    assert "gold bits/byte: b " in lines["- SST-2 gold bits/byte"]  # b is better (lower) by a hair
    assert lines["- SST-2 gold bits/byte"].endswith("not significant; not bolded")
    task_rows = rows_of(text, "| SST-2 |")
    assert all("**" not in row for row in task_rows)

    apart = [m + 0.5 for m in BASE_MARGINS]  # every row: A's gold choice leads by 0.5 nats more
    better = [g + 0.3 for g in BASE_GOLD]  # every row: A gives the gold continuation more probability
    a = record("a", {"sst2": entry(same_acc, apart, better)}, bpb=1.9)
    text = render_comparison([a, b], FIGURES, "val_bits_per_byte")
    row = rows_of(text, "| SST-2 | a |")[0]
    expected_margin = sum(apart) / N
    expected_bpb = -sum(better) / (math.log(2) * sum(3 if i % 2 == 0 else 4 for i in range(N)))
    assert f"**{expected_margin:.4f} ± 0.010**" in row and f"**{expected_bpb:.4f}**" in row
    assert "**" not in rows_of(text, "| SST-2 | b |")[0]
    assert "| a | 0.300 | **1.9000** |" in text  # bits per byte of WikiText: bolded as before


def test_no_bold_without_per_row_values_and_none_for_a_tie():
    a = record("a", {"sst2": entry(right_on_first(150), BASE_MARGINS, BASE_GOLD)})
    b = record("b", {"sst2": entry(right_on_first(100), BASE_MARGINS, BASE_GOLD)})
    del b["smallbench"]["sst2"]["per_row"]  # a record written before per-row values were recorded
    text = render_comparison([a, b], FIGURES, "smallbench_sentiment_acc")
    assert "**0.7500" not in text
    assert ("- SST-2 acc: a 0.7500 vs runner-up b 0.5000: not tested: no per-row values for sst2 in the record "
            "of b (written by a version that did not record them); not bolded") in text

    twin = record("c", {"sst2": entry(right_on_first(150), BASE_MARGINS, BASE_GOLD)})
    labels = {id(r): r["checkpoint"]["name"] for r in (a, twin, b)}
    found = verdict(by_key(FIGURES)["smallbench_sentiment_acc"], [a, twin, b], labels)
    assert not found.bold and found.why == "tied with the runner-up"


def test_the_average_is_bolded_only_when_its_paired_test_separates_it():
    def tasks(k: int, sst2: int | None = None) -> dict:
        return {t: entry(right_on_first(sst2 if sst2 and t == "sst2" else k), BASE_MARGINS, BASE_GOLD)
                for t in ("sst2", "rte", "boolq", "mrpc")}

    # two rows apart, on one task: the average differs by 2 / 200 / 4
    close = render_comparison([record("a", tasks(100, sst2=102)), record("b", tasks(100))], FIGURES,
                              "smallbench_avg_acc")
    line = next(line for line in close.splitlines() if line.startswith("- SmallBench avg:"))
    assert line.startswith("- SmallBench avg: a 0.502") and "vs runner-up b 0.5000, difference +0.0025" in line
    assert line.endswith("not significant; not bolded")
    assert all("**" not in row for row in rows_of(close, "| a |"))
    clear = render_comparison([record("a", tasks(140)), record("b", tasks(100))], FIGURES, "smallbench_avg_acc")
    assert "**0.7000**" in clear


def split_entry(docs: list[tuple[float, int, int]]) -> dict:
    """A WikiText split entry with per-document (NLL, tokens, bytes) values, as a run records it."""
    nll, tokens, n_bytes = (sum(d[i] for d in docs) for i in range(3))
    return {"bits_per_byte": nll / (math.log(2) * n_bytes), "token_perplexity": math.exp(nll / tokens),
            "documents": len(docs), "per_document": encode_per_document([(*d, 1) for d in docs])}


def test_perplexity_columns_with_per_document_values_follow_the_same_rule():
    base = [(100.0 + 10 * math.sin(i), 40, 120) for i in range(10)]
    one_doc = [(nll - (0.5 if i == 3 else 0.0), t, b) for i, (nll, t, b) in enumerate(base)]  # one document
    every_doc = [(nll * 0.95, t, b) for nll, t, b in base]  # 5% less on every document
    b = record("b", {}) | {"perplexity": {"validation": split_entry(base)}}
    close = render_comparison([record("a", {}) | {"perplexity": {"validation": split_entry(one_doc)}}, b], FIGURES,
                              "val_bits_per_byte")
    assert "**" not in close.split("## Best against runner-up")[0]
    assert "- val bits/byte: a " in close and "not significant; not bolded" in close
    clear = render_comparison([record("a", {}) | {"perplexity": {"validation": split_entry(every_doc)}}, b],
                              FIGURES, "val_bits_per_byte")
    expected = sum(d[0] for d in every_doc) / (math.log(2) * 1200)
    assert f"| a | 0.300 | **{expected:.4f}** |" in clear
    assert "- val ppl: a " in clear and "log-perplexity difference -" in clear


# ---- end to end: a run records them, JUnit carries them, comparison.md shows them -----------------

@pytest.fixture
def suite(pytester, offline):
    lay_out_suite(pytester)
    write_native_checkpoint(pytester.path / "ck" / "b", seed=2, d_model=48, n_heads=3)
    return pytester


def test_a_run_records_reports_and_compares_the_small_model_figures(suite):
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "s", "--junitxml", "out.xml",
                    "-m", "smallbench", "-k", "sst2").assert_outcomes(passed=2)
    folder = suite.path / "reports" / "s"
    record = json.loads((folder / "a" / "metrics.json").read_text())
    sst2 = record["smallbench"]["sst2"]
    assert sst2["majority_rate"] == 0.5 and sst2["acc_above_majority"] == sst2["acc"] - 0.5  # 12 rows, labels 0/1
    assert sst2["gold_bytes"] == 6 * len(" negative") + 6 * len(" positive")
    assert sst2["gold_bits_per_byte"] == pytest.approx(
        -sst2["gold_loglikelihood_sum"] / (math.log(2) * sst2["gold_bytes"]), rel=1e-12)
    rows = decode_per_row(sst2)
    assert sum(rows.correct) == sst2["correct"] and sum(rows.margin) / 12 == pytest.approx(sst2["margin"], abs=1e-4)
    cases = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(suite.path / "out.xml").iter("testcase")}
    props = cases["test_smallbench[a-sst2]"]
    assert float(props["smallbench_sentiment_margin"]) == sst2["margin"]
    assert float(props["smallbench_sentiment_margin_stderr"]) == pytest.approx(sst2["margin_stderr"])
    assert float(props["smallbench_sentiment_gold_bits_per_byte"]) == sst2["gold_bits_per_byte"]
    assert float(props["smallbench_sentiment_acc_above_majority"]) == sst2["acc_above_majority"]
    comparison = (folder / "comparison.md").read_text()
    assert "## SmallBench per task" in comparison and "## Best against runner-up" in comparison
    assert "| task | checkpoint | acc | majority | acc - majority | classes | margin | gold bits/byte |" in comparison
    assert "- SST-2 margin: " in comparison
    history = [json.loads(line) for line in (suite.path / "reports" / "history.jsonl").read_text().splitlines()]
    assert all(line["smallbench_sentiment_margin"] is not None for line in history)
    assert "| majority | acc - majority | classes |" in (folder / "a" / "summary.md").read_text()
