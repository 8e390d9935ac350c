"""Every gated figure of the figure table: its direction and its tolerance, at the limit and just past it.

Which way is better is stated here from what each figure measures (bits per byte and perplexity
lower, accuracy higher, latency lower, throughput higher), not read off the table; each family has
its own tolerance option, given distinct values so that using another family's shows. A limit is
inclusive (a value exactly at it passes); a non-finite value never passes. Figures without a gate
get none, and the paired gate fails only on a run significantly worse in its figure's direction.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from lmeval_fixtures.records.codecs import encode_per_document, encode_per_row
from lmeval_fixtures.records.fragments import nest
from lmeval_fixtures.records.gates import GatePolicy, gates_for
from lmeval_fixtures.suite.registry import Registry

FIGURES = Registry.default().figure_table(latency_shapes=[(1, 128), (4, 256)])
CPU = {"device": "cpu", "dtype": "float32"}
# distinct tolerances, each exact in binary: relative 1/4, 2 standard errors, timing 1/2
POLICY = GatePolicy(ppl_tolerance=0.25, acc_tolerance_se=2.0, min_acc=None, latency_tolerance=0.5)
SE = 0.125  # the accuracy's standard error in these entries
SETTINGS = {
    "corpus": {"stride": 64, "context_length": 64, "max_eval_tokens": None, "detokenized": True},
    "task": {"prompt_set": "smallbench", "fewshot": 0, "max_samples": None, "acc_stderr": SE},
    "timing": {"timing": "taken"},
}


def family(key: str) -> str:
    if key.endswith(("_bits_per_byte", "_perplexity")):
        return "corpus"
    if key.endswith("_acc"):
        return "task"
    return "timing"


# key -> (baseline value, [(value, passes)]), worked by hand from the direction and the tolerance
def cases(key: str) -> tuple[float, list[tuple[float, bool]]]:
    if family(key) == "corpus":  # lower is better, limit 2.0 * (1 + 1/4) = 2.5
        return 2.0, [(2.0, True), (2.5, True), (2.5000001, False), (0.1, True), (3.0, False),
                     (math.inf, False), (math.nan, False)]
    if family(key) == "task":  # higher is better, limit 0.5 - 2 * 0.125 = 0.25
        return 0.5, [(0.5, True), (0.25, True), (0.2499999, False), (0.99, True), (0.0, False), (math.nan, False)]
    if key.startswith("latency_"):  # lower is better, limit 8 * (1 + 1/2) = 12
        return 8.0, [(8.0, True), (12.0, True), (12.000001, False), (1.0, True), (math.inf, False)]
    return 1000.0, [(1000.0, True), (500.0, True), (499.999, False), (9000.0, True), (math.nan, False)]  # tokens/s


EXPECTED_GATED = {
    "val_bits_per_byte", "val_perplexity", "test_bits_per_byte", "test_perplexity",
    "smallbench_sentiment_acc", "smallbench_nli_acc", "smallbench_qa_acc", "smallbench_paraphrase_acc",
    "latency_batch1_seq128", "latency_batch4_seq256", "throughput_tokens_per_sec",
}


def entry(figure, value: float) -> dict:
    return nest(figure.path[:-1], SETTINGS[family(figure.key)] | {figure.path[-1]: value})


def gate_of(figure, value: float, baseline_value: float, policy: GatePolicy = POLICY):
    fragment = entry(figure, value) | {"data_fingerprints": {"data": "1"}}
    baseline = entry(figure, baseline_value) | {"data_fingerprints": {"data": "1"}, "environment": CPU,
                                                "_source": "base.json"}
    gates = {g.name: g for g in gates_for(fragment, FIGURES, baseline, policy, CPU)}
    return gates.get(figure.key), gates


def test_the_gated_figures_are_exactly_the_headline_measurements():
    assert {f.key for f in FIGURES if f.gate} == EXPECTED_GATED


@pytest.mark.parametrize("key", sorted(EXPECTED_GATED))
def test_each_gate_direction_and_tolerance(key):
    figure = {f.key: f for f in FIGURES}[key]
    baseline, values = cases(key)
    for value, passes in values:
        gate, gates = gate_of(figure, value, baseline)
        assert gate is not None and list(gates) == [key], (key, value)
        assert gate.ok is passes, (key, value, gate.message)
        assert ("REGRESSED" in gate.message) is not passes


@pytest.mark.parametrize("key", sorted(k for k in EXPECTED_GATED if k.endswith("_acc")))
def test_the_accuracy_floor_is_inclusive_and_separate(key):
    figure = {f.key: f for f in FIGURES}[key]
    floor = GatePolicy(0.25, 2.0, 0.625, 0.5)
    for value, passes in ((0.625, True), (0.75, True), (0.6249999, False)):
        _, gates = gate_of(figure, value, 0.5, floor)
        assert gates[f"{key}_floor"].ok is passes
        assert gates[key].ok  # all within 2 SE of 0.5: the baseline gate says so on its own
    no_baseline = gates_for(entry(figure, 0.6) | {"data_fingerprints": {}}, FIGURES, None, floor, CPU)
    assert [(g.name, g.ok) for g in no_baseline] == [(f"{key}_floor", False)]


def test_figures_without_a_gate_get_none():
    ungated = [f for f in FIGURES if f.gate is None and f.compute is None and f.better is not None]
    assert {"val_loss", "val_word_perplexity", "smallbench_sentiment_margin"} <= {f.key for f in ungated}
    for figure in ungated:
        settings = SETTINGS["corpus"] if figure.path[0] == "perplexity" else SETTINGS["task"]
        fragment = nest(figure.path[:-1], settings | {figure.path[-1]: 100.0}) | {"data_fingerprints": {}}
        baseline = nest(figure.path[:-1], settings | {figure.path[-1]: 1.0}) | {
            "data_fingerprints": {}, "environment": CPU, "_source": "b"}
        assert gates_for(fragment, FIGURES, baseline, POLICY, CPU) == [], figure.key


# ---- the paired gate: fails only when this run is significantly worse, in the figure's direction


def task_entry(correct: list[bool]) -> dict:
    n = len(correct)
    per_row = encode_per_row({"idx": list(range(n)), "label": [0] * n, "correct": correct, "margin": [0.0] * n,
                              "gold_loglikelihood": [-1.0] * n, "gold_bytes": [3] * n})
    return SETTINGS["task"] | {"acc": sum(correct) / n, "n": n, "per_row": per_row}


def split_entry(nll: list[float]) -> dict:
    docs = [(x, 10, 40, 8) for x in nll]
    total = sum(nll)
    return SETTINGS["corpus"] | {"bits_per_byte": total / (math.log(2) * 40 * len(nll)),
                                 "token_perplexity": math.exp(total / (10 * len(nll))), "documents": len(nll),
                                 "per_document": encode_per_document(docs)}


def paired_gates(mine: dict, theirs: dict, path: tuple[str, ...]) -> dict:
    policy = GatePolicy(0.25, 2.0, None, 0.5, mode="paired", alpha=0.05)
    fragment = nest(path, mine) | {"data_fingerprints": {"d": "1"}}
    baseline = nest(path, theirs) | {"data_fingerprints": {"d": "1"}, "environment": CPU, "_source": "b"}
    return {g.name: g for g in gates_for(fragment, FIGURES, baseline, policy, CPU)}


def test_paired_accuracy_gate_fails_only_a_significantly_worse_run():
    good, bad = [True] * 40, [True] * 10 + [False] * 30  # 30 discordant rows, all one way: p < 1e-8
    path = ("smallbench", "sst2")
    assert not paired_gates(task_entry(bad), task_entry(good), path)["smallbench_sentiment_acc"].ok
    assert paired_gates(task_entry(good), task_entry(bad), path)["smallbench_sentiment_acc"].ok
    slightly = [True] * 38 + [False] * 2  # 2 discordant rows: p = 0.5, not significant
    assert paired_gates(task_entry(slightly), task_entry(good), path)["smallbench_sentiment_acc"].ok


def test_paired_corpus_gates_fail_only_a_significantly_worse_run():
    low = [10.0 + 0.1 * i for i in range(30)]
    high = [x + 5.0 for x in low]  # every document 5 nats worse
    worse = paired_gates(split_entry(high), split_entry(low), ("perplexity", "validation"))
    better = paired_gates(split_entry(low), split_entry(high), ("perplexity", "validation"))
    same = paired_gates(split_entry(low), split_entry(low), ("perplexity", "validation"))
    for key in ("val_bits_per_byte", "val_perplexity"):
        assert not worse[key].ok and better[key].ok and same[key].ok, key


# The verdict line a user reads in the results table and the GitHub step summary, written out by hand.
VERDICT_LINES = [
    ("val_bits_per_byte", 2.5, 2.0,
     "val_bits_per_byte 2.5 within baseline 2 + 25.00% (limit 2.5; baseline base.json)"),
    ("test_perplexity", 3.0, 2.0,
     "test_perplexity 3 REGRESSED beyond baseline 2 + 25.00% (limit 2.5; baseline base.json)"),
    ("smallbench_qa_acc", 0.25, 0.5,
     "smallbench_qa_acc 0.2500 within baseline 0.5000 - 2 SE (0.1250) (limit 0.2500; baseline base.json)"),
    ("smallbench_qa_acc", 0.125, 0.5,
     "smallbench_qa_acc 0.1250 REGRESSED beyond baseline 0.5000 - 2 SE (0.1250) (limit 0.2500; baseline base.json)"),
    ("latency_batch4_seq256", 12.0, 8.0,
     "latency_batch4_seq256 12 within baseline 8 + 50.00% (limit 12; baseline base.json)"),
    ("throughput_tokens_per_sec", 1500.0, 1000.0,
     "throughput_tokens_per_sec 1,500 within baseline 1,000 - 50.00% (limit 500; baseline base.json)"),
    ("throughput_tokens_per_sec", 499.0, 1000.0,
     "throughput_tokens_per_sec 499 REGRESSED beyond baseline 1,000 - 50.00% (limit 500; baseline base.json)"),
]


@pytest.mark.parametrize("key, value, baseline, line", VERDICT_LINES)
def test_each_verdict_line(key, value, baseline, line):
    gate, _ = gate_of({f.key: f for f in FIGURES}[key], value, baseline)
    assert gate.message == line


def test_the_floor_verdict_lines():
    figure = {f.key: f for f in FIGURES}["smallbench_sentiment_acc"]
    floor = GatePolicy(0.25, 2.0, 0.625, 0.5)
    _, met = gate_of(figure, 0.75, 0.5, floor)
    _, below = gate_of(figure, 0.5, 0.5, floor)
    assert met["smallbench_sentiment_acc_floor"].message == (
        "smallbench_sentiment_acc_floor 0.7500 meets the floor 0.6250")
    assert below["smallbench_sentiment_acc_floor"].message == (
        "smallbench_sentiment_acc_floor 0.5000 is BELOW the floor 0.6250")


def test_an_accuracy_without_a_standard_error_is_held_to_the_baseline_itself():
    """One row has no standard error (n - 1 = 0): the tolerance in standard errors is then nothing."""
    figure = {f.key: f for f in FIGURES}["smallbench_paraphrase_acc"]
    for value, passes in ((0.5, True), (0.4999, False), (0.75, True)):
        fragment = nest(figure.path[:-1], SETTINGS["task"] | {"acc": value, "acc_stderr": None})
        baseline = entry(figure, 0.5) | {"environment": CPU, "_source": "b"}
        [gate] = gates_for(fragment | {"data_fingerprints": {}}, FIGURES, baseline | {"data_fingerprints": {}},
                           POLICY, CPU)
        assert gate.ok is passes, value


# ---- the paired gate's verdict, at its boundaries, and the line a user reads, written out by hand


def resampled(n: int, seed: int = 1234, resamples: int = 1000) -> np.ndarray:
    """The documented resamples of the paired bootstrap (a torch generator seeded with ``seed``)."""
    return torch.randint(0, n, (resamples, n), generator=torch.Generator().manual_seed(seed)).numpy()


def percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


SST2 = ("smallbench", "sst2")


def paired_gates_at(mine: dict, theirs: dict, path: tuple[str, ...], alpha: float) -> dict:
    policy = GatePolicy(0.25, 2.0, None, 0.5, mode="paired", alpha=alpha)
    fragment = nest(path, mine) | {"data_fingerprints": {"d": "1"}}
    baseline = nest(path, theirs) | {"data_fingerprints": {"d": "1"}, "environment": CPU, "_source": "b.json"}
    return {g.name: g for g in gates_for(fragment, FIGURES, baseline, policy, CPU)}


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_the_paired_accuracy_gate_lines(alpha):
    """40 rows: the baseline right on the first 30, this run on rows 0-9 and 30-34: 20 rows only the
    baseline got right, 5 only this run. The difference (15 - 30) / 40 = -0.375; McNemar's p the
    two-sided binomial test of 5 in 25 (scipy: 0.00408); the interval the percentiles (at 1 - alpha)
    of the resampled mean differences, computed here with numpy (they differ at 90% and 95%)."""
    good = [True] * 30 + [False] * 10
    bad = [True] * 10 + [False] * 20 + [True] * 5 + [False] * 5
    p = stats.binomtest(5, 25, 0.5).pvalue
    diffs = np.array(bad, dtype=float) - np.array(good, dtype=float)
    low, high = percentiles(diffs[resampled(40)].mean(axis=1), 1 - alpha)
    level = f"{1 - alpha:.0%}"
    worse = paired_gates_at(task_entry(bad), task_entry(good), SST2, alpha)["smallbench_sentiment_acc"]
    assert not worse.ok
    assert worse.message == (
        f"smallbench_sentiment_acc 0.3750 vs baseline 0.7500: accuracy difference -0.3750, {level} interval "
        f"[{low:+.4f}, {high:+.4f}], McNemar p = {p:.3g}, n = 40: REGRESSED (significantly worse at alpha {alpha:g}) "
        "(baseline b.json)")
    better = paired_gates_at(task_entry(good), task_entry(bad), SST2, alpha)["smallbench_sentiment_acc"]
    assert better.ok
    assert better.message == (
        f"smallbench_sentiment_acc 0.7500 vs baseline 0.3750: accuracy difference +0.3750, {level} interval "
        f"[{-high:+.4f}, {-low:+.4f}], McNemar p = {p:.3g}, n = 40: no significant regression at alpha {alpha:g} "
        "(baseline b.json)")


def test_a_baseline_of_other_rows_or_documents_is_refused_by_the_paired_gate():
    """Per-row values on both sides that do not pair (other rows; documents of other lengths): a failing
    gate that says why, never a verdict on values of different rows."""
    other_rows = task_entry([True] * 40) | {"per_row": encode_per_row({
        "idx": list(range(1, 41)), "label": [0] * 40, "correct": [True] * 40, "margin": [0.0] * 40,
        "gold_loglikelihood": [-1.0] * 40, "gold_bytes": [3] * 40})}
    [gate] = paired_gates_at(task_entry([True] * 40), other_rows, SST2, 0.05).values()
    assert (gate.name, gate.ok) == ("smallbench_sentiment_acc", False)
    assert gate.message == "smallbench_sentiment_acc: baseline b.json refused: sst2: not the same rows"
    longer = split_entry([10.0] * 30) | {"per_document": encode_per_document([(10.0, 10, 41, 8)] * 30)}
    gates = paired_gates_at(split_entry([10.0] * 30), longer, ("perplexity", "validation"), 0.05)
    assert [(g.name, g.ok, g.message) for g in gates.values()] == [
        ("val_bits_per_byte", False, "val_bits_per_byte: baseline b.json refused: not the same documents (their "
                                     "bytes differ)"),
        ("val_perplexity", True, gates["val_perplexity"].message)]  # per token: the tokens are the same
    assert "no significant regression" in gates["val_perplexity"].message


def test_a_mcnemar_p_value_exactly_at_alpha_is_not_a_regression():
    """5 rows only the baseline got right, none only this run: p = 2 * (1/2)**5 = 0.0625 exactly. At alpha
    0.0625 the gate passes (p must be below alpha), at alpha 0.0626 it fails."""
    good, bad = [True] * 20, [True] * 15 + [False] * 5
    at = paired_gates_at(task_entry(bad), task_entry(good), SST2, 0.0625)["smallbench_sentiment_acc"]
    assert at.ok and "McNemar p = 0.0625" in at.message
    past = paired_gates_at(task_entry(bad), task_entry(good), SST2, 0.0626)["smallbench_sentiment_acc"]
    assert not past.ok


def test_the_paired_corpus_gate_lines():
    """30 documents of 40 bytes and 10 tokens each, this run 5 nats worse on every one: bits per byte
    worse by 5 / (40 ln 2) = 0.1803 on every resample (the interval is that one point), log perplexity
    by 5 / 10 = 0.5 nats per token."""
    low = [10.0 + 0.1 * i for i in range(30)]
    high = [x + 5.0 for x in low]
    gates = paired_gates_at(split_entry(high), split_entry(low), ("perplexity", "validation"), 0.05)
    bpb, mine, theirs = 5 / (40 * math.log(2)), sum(high) / (math.log(2) * 1200), sum(low) / (math.log(2) * 1200)
    assert not gates["val_bits_per_byte"].ok
    assert gates["val_bits_per_byte"].message == (
        f"val_bits_per_byte {mine:.6g} vs baseline {theirs:.6g}: bits/byte difference {bpb:+.4f}, 95% interval "
        f"[{bpb:+.4f}, {bpb:+.4f}], paired bootstrap over documents, n = 30: REGRESSED (significantly worse at "
        "alpha 0.05) (baseline b.json)")
    ppl_mine, ppl_theirs = math.exp(sum(high) / 300), math.exp(sum(low) / 300)
    assert gates["val_perplexity"].message == (
        f"val_perplexity {ppl_mine:.6g} vs baseline {ppl_theirs:.6g}: log perplexity difference +0.5000, 95% "
        "interval [+0.5000, +0.5000], paired bootstrap over documents, n = 30: REGRESSED (significantly worse at "
        "alpha 0.05) (baseline b.json)")
    same = paired_gates_at(split_entry(low), split_entry(low), ("perplexity", "validation"), 0.05)
    assert same["val_bits_per_byte"].message.endswith(
        "difference +0.0000, 95% interval [+0.0000, +0.0000], paired bootstrap over documents, n = 30: "
        "no significant regression at alpha 0.05 (baseline b.json)")


def test_a_bootstrap_interval_that_touches_zero_is_not_a_regression():
    """One document of 30 is 5 nats worse, the rest equal: a resample leaves that document out with
    probability (29/30)**30 = 0.36, so the interval's low end is exactly 0: not significantly worse."""
    theirs = [10.0 + 0.1 * i for i in range(30)]
    mine = [theirs[0] + 5.0] + theirs[1:]
    boot = np.array([5.0] + [0.0] * 29)[resampled(30)].sum(axis=1)
    assert percentiles(boot, 0.95)[0] == 0.0  # the premise, from the resamples themselves
    gates = paired_gates_at(split_entry(mine), split_entry(theirs), ("perplexity", "validation"), 0.05)
    assert gates["val_bits_per_byte"].ok and gates["val_perplexity"].ok
    assert "95% interval [+0.0000, " in gates["val_bits_per_byte"].message
