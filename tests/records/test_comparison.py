"""The cross-checkpoint comparison (``records.comparison``): records measured otherwise are grouped apart and
ranked on their own; token perplexity only across one tokenizer; and a SmallBench (or per-document) figure
bolded only where a paired test separates the best value from the runner-up's. Expected values are worked
out by hand from made-up per-row values, not by the code under test."""

from __future__ import annotations

import math

import pytest

from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.records.codecs import encode_per_document, encode_per_row
from lmeval_fixtures.records.comparison import comparable_groups, render_comparison, render_paired, verdict
from lmeval_fixtures.records.paired import mcnemar_exact
from lmeval_fixtures.suite.figures import by_key
from lmeval_fixtures.suite.registry import Registry

from ..helpers import DATA, FIGURES, SETTINGS, finished_run


def settings_record(name: str, bpb: float, run_id: str = "r", data: dict | None = None, **settings) -> dict:
    return {"run_id": run_id, "data_fingerprints": DATA if data is None else data, "embedding_ratio": 0.3,
            "settings": SETTINGS | settings, "checkpoint": {"name": name, "tokenizer_sha256": "t"},
            "perplexity": {"validation": {"bits_per_byte": bpb, "token_perplexity": 10.0}}}


def test_records_with_other_settings_are_grouped_apart_and_ranked_on_their_own():
    figures = Registry.default().figure_table()
    records = [settings_record("a", 2.0), settings_record("b", 1.8, max_samples=200), settings_record("c", 1.9),
               settings_record("d", 2.2, max_samples=200),
               settings_record("e", 1.5, data={"wikitext-2-raw/validation.txt": "2" * 64})]
    assert [[r["checkpoint"]["name"] for r in g] for g in comparable_groups(records)] == [["a", "c"], ["b", "d"],
                                                                                          ["e"]]
    text = render_comparison(records, figures, "val_bits_per_byte")
    assert "**These checkpoints were not all measured alike (later groups vs group 1: max_samples 200 vs all; " \
           "data wikitext-2-raw/validation.txt differs)" in text
    assert "not ranked together" in text and "paired tests compare only checkpoints of one group" in text
    assert "## Group 1: max_samples all, data wikitext-2-raw/validation.txt 111111111111 (2 checkpoint(s))" in text
    assert "## Group 2: max_samples 200, data wikitext-2-raw/validation.txt 111111111111 (2 checkpoint(s))" in text
    assert "## Group 3: max_samples all, data wikitext-2-raw/validation.txt 222222222222 (1 checkpoint(s))" in text
    rows = [row for row in text.splitlines() if row.startswith("| ") and not row.startswith("| checkpoint")]
    assert [row.split(" | ")[0] for row in rows] == ["| c", "| a", "| b", "| d", "| e"]  # sorted within each group
    assert "| c | 0.300 | **1.9000** |" in rows[0] and "| b | 0.300 | **1.8000** |" in rows[2]
    assert "**1.5000**" not in text  # alone in its group: the best of nothing

    alike = render_comparison([settings_record("a", 2.0), settings_record("c", 1.9)], figures, "val_bits_per_byte")
    assert "Group" not in alike and "measured alike" not in alike and "| c | 0.300 | **1.9000** |" in alike


def test_records_without_settings_form_their_own_group():
    figures = Registry.default().figure_table()
    # written before settings were recorded
    old = {k: v for k, v in settings_record("c", 1.0).items() if k != "settings"}
    text = render_comparison([settings_record("a", 2.0), settings_record("b", 1.9), old], figures, "val_bits_per_byte")
    assert "(later groups vs group 1: settings not recorded)" in text
    assert "## Group 1: settings recorded (2 checkpoint(s))" in text
    assert "## Group 2: settings not recorded (1 checkpoint(s))" in text
    fewer = render_comparison([settings_record("a", 2.0), settings_record("b", 1.9, data={})], figures,
                              "val_bits_per_byte")
    assert "Group" not in fewer and "did not all read the same data files" in fewer  # one group, noted


def test_paired_tests_do_not_cross_groups():
    rows = [{"idx": i, "correct": i % 2 == 0} for i in range(20)]
    records = [settings_record("a", 2.0), settings_record("b", 1.9, max_samples=20), settings_record("c", 1.8)]
    text = render_paired(records, {name: {"smallbench-sst2": rows} for name in "abc"}, resamples=50)
    assert "- sst2 (n=20): accuracy a - c" in text
    assert "- smallbench-sst2, a vs b: not compared (measured otherwise: max_samples all vs 20)" in text
    assert "- smallbench-sst2, b vs c: not compared (measured otherwise: max_samples 20 vs all)" in text


def test_the_compare_command_groups_runs_measured_otherwise(tmp_path, capsys):
    full = finished_run(tmp_path, "full", {"a": 2.0, "b": 1.9})
    quick = finished_run(tmp_path, "quick", {"a": 2.05, "b": 1.8}, settings={"max_eval_tokens": 20000})
    assert cli(["compare", str(full), str(quick), "--out", str(tmp_path / "cmp"),
                "--compare-by", "val_bits_per_byte"]) == 0
    text = (tmp_path / "cmp/comparison.md").read_text()
    assert "(later groups vs group 1: max_eval_tokens 20000 vs all)" in text
    assert "## Group 1: max_eval_tokens all (2 checkpoint(s))" in text
    assert "## Group 2: max_eval_tokens 20000 (2 checkpoint(s))" in text
    rows = [row for row in text.splitlines() if "@" in row]
    assert rows[0].startswith("| b @ full | **1.9000** |") and rows[1].startswith("| a @ full | 2.0000 |")
    assert rows[2].startswith("| b @ quick | **1.8000** |") and rows[3].startswith("| a @ quick | 2.0500 |")
    assert str(tmp_path / "cmp/comparison.md") in capsys.readouterr().out
    assert "Group" not in (full / "comparison.md").read_text()  # one run: measured alike


def comparison_record(name: str, tokenizer: str, bpb: float, ppl: float = 100.0, **extra) -> dict:
    return {"run_id": "r", "data_fingerprints": {}, "embedding_ratio": 0.3,
            "checkpoint": {"name": name, "tokenizer_sha256": tokenizer},
            "perplexity": {"validation": {"bits_per_byte": bpb, "token_perplexity": ppl}}} | extra


def test_different_tokenizers_make_token_perplexity_not_comparable():
    figures = Registry.default().figure_table()
    a = comparison_record("a", "1", 2.0)
    b = comparison_record("b", "2", 1.9)
    text = render_comparison([a, b], figures, "val_bits_per_byte")
    assert "token perplexity is not comparable" in text and "val ppl" not in text
    assert "| b | 0.300 | **1.9000** |" in text  # sorted, best in bold
    shared = render_comparison([a, comparison_record("b", "1", 1.9)], figures, "val_bits_per_byte")
    assert "val ppl" in shared and "**100.00**" not in shared  # a value every checkpoint shares is not "best"


def test_comparison_plot_is_written_with_the_plot_extra(tmp_path):
    pytest.importorskip("matplotlib")
    from lmeval_fixtures.records.comparison import write_comparison

    records = [comparison_record(n, "t", bpb, embedding_ratio=ratio, val_bits_per_byte=bpb,
                                 latency={"1x128": {"timing": "taken", "mean_ms": ms}}, latency_batch1_seq128=ms)
               for n, ratio, bpb, ms in (("a", 0.25, 2.3, 1.0), ("b", 0.5, 2.2, 1.4))]
    written = write_comparison(records, tmp_path, Registry.default().figure_table(records), "val_bits_per_byte")
    png = tmp_path / "comparison.png"
    assert png in written and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![quality against latency](comparison.png)" in (tmp_path / "comparison.md").read_text()


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


def tasks_record(name: str, tasks: dict[str, dict], bpb: float = 2.0) -> dict:
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
    b = tasks_record("b", {"sst2": entry(right_on_first(100), BASE_MARGINS, BASE_GOLD)})
    a = tasks_record("a", {"sst2": entry(right_on_first(103), BASE_MARGINS, BASE_GOLD)})
    text = render_comparison([a, b], FIGURES, "smallbench_sentiment_acc")
    # A alone right on 3 rows, B alone on none: McNemar p = 2 * (1 / 2**3) = 0.25
    assert mcnemar_exact(3, 0) == 0.25
    assert "| a | 0.300 | 2.0000 | 10.00 | 0.5150 ± 0.035 |" in text  # no bold: could be noise
    assert "- SST-2 acc: a 0.5150 vs runner-up b 0.5000, difference +0.0150" in text
    assert "McNemar p = 0.25: not significant; not bolded" in text
    assert "**0.0150**" not in text  # acc - majority follows the same test


def test_accuracy_apart_on_many_rows_is_bolded():
    b = tasks_record("b", {"sst2": entry(right_on_first(100), BASE_MARGINS, BASE_GOLD)})
    a = tasks_record("a", {"sst2": entry(right_on_first(130), BASE_MARGINS, BASE_GOLD)})
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
    a = tasks_record("a", {"sst2": entry(same_acc, few, slightly_worse)})
    b = tasks_record("b", {"sst2": entry(same_acc, BASE_MARGINS, BASE_GOLD)})
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
    a = tasks_record("a", {"sst2": entry(same_acc, apart, better)}, bpb=1.9)
    text = render_comparison([a, b], FIGURES, "val_bits_per_byte")
    row = rows_of(text, "| SST-2 | a |")[0]
    expected_margin = sum(apart) / N
    expected_bpb = -sum(better) / (math.log(2) * sum(3 if i % 2 == 0 else 4 for i in range(N)))
    assert f"**{expected_margin:.4f} ± 0.010**" in row and f"**{expected_bpb:.4f}**" in row
    assert "**" not in rows_of(text, "| SST-2 | b |")[0]
    assert "| a | 0.300 | **1.9000** |" in text  # bits per byte of WikiText: bolded as before


def test_no_bold_without_per_row_values_and_none_for_a_tie():
    a = tasks_record("a", {"sst2": entry(right_on_first(150), BASE_MARGINS, BASE_GOLD)})
    b = tasks_record("b", {"sst2": entry(right_on_first(100), BASE_MARGINS, BASE_GOLD)})
    del b["smallbench"]["sst2"]["per_row"]  # a record written before per-row values were recorded
    text = render_comparison([a, b], FIGURES, "smallbench_sentiment_acc")
    assert "**0.7500" not in text
    assert ("- SST-2 acc: a 0.7500 vs runner-up b 0.5000: not tested: no per-row values for sst2 in the record "
            "of b (written by a version that did not record them); not bolded") in text

    twin = tasks_record("c", {"sst2": entry(right_on_first(150), BASE_MARGINS, BASE_GOLD)})
    labels = {id(r): r["checkpoint"]["name"] for r in (a, twin, b)}
    found = verdict(by_key(FIGURES)["smallbench_sentiment_acc"], [a, twin, b], labels)
    assert not found.bold and found.why == "tied with the runner-up"


def test_the_average_is_bolded_only_when_its_paired_test_separates_it():
    def tasks(k: int, sst2: int | None = None) -> dict:
        return {t: entry(right_on_first(sst2 if sst2 and t == "sst2" else k), BASE_MARGINS, BASE_GOLD)
                for t in ("sst2", "rte", "boolq", "mrpc")}

    # two rows apart, on one task: the average differs by 2 / 200 / 4
    close = render_comparison([tasks_record("a", tasks(100, sst2=102)), tasks_record("b", tasks(100))], FIGURES,
                              "smallbench_avg_acc")
    line = next(line for line in close.splitlines() if line.startswith("- SmallBench avg:"))
    assert line.startswith("- SmallBench avg: a 0.502") and "vs runner-up b 0.5000, difference +0.0025" in line
    assert line.endswith("not significant; not bolded")
    assert all("**" not in row for row in rows_of(close, "| a |"))
    clear = render_comparison([tasks_record("a", tasks(140)), tasks_record("b", tasks(100))], FIGURES,
                              "smallbench_avg_acc")
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
    b = tasks_record("b", {}) | {"perplexity": {"validation": split_entry(base)}}
    close = render_comparison([tasks_record("a", {}) | {"perplexity": {"validation": split_entry(one_doc)}}, b],
                              FIGURES, "val_bits_per_byte")
    assert "**" not in close.split("## Best against runner-up")[0]
    assert "- val bits/byte: a " in close and "not significant; not bolded" in close
    clear = render_comparison([tasks_record("a", {}) | {"perplexity": {"validation": split_entry(every_doc)}}, b],
                              FIGURES, "val_bits_per_byte")
    expected = sum(d[0] for d in every_doc) / (math.log(2) * 1200)
    assert f"| a | 0.300 | **{expected:.4f}** |" in clear
    assert "- val ppl: a " in clear and "log-perplexity difference -" in clear
