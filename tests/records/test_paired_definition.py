"""The paired tests' definitions against library implementations (scipy, numpy), in the tests only.

McNemar's exact p-value is the two-sided binomial test of the discordant rows (scipy's
``binomtest``). A paired bootstrap interval is the percentile interval of the resampled
statistic: with the same resamples (the documented seeded generator) it must equal numpy's
linear quantiles of the statistic computed here, to the last bit; with its own resamples,
scipy's ``bootstrap(method="percentile", paired=True)`` must agree within Monte Carlo error.
Statistics: accuracy and margin differences are means over rows, bits per byte a ratio of sums
over documents (not a mean of ratios), the average accuracy an unweighted mean of task means
resampled within each task, and log perplexity per token (nats) where bits per byte is per byte.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from lmeval_fixtures.records.codecs import encode_per_document, encode_per_row
from lmeval_fixtures.records.paired import (
    PairedResult,
    mcnemar_exact,
    paired_accuracy,
    paired_average_accuracy,
    paired_bits_per_byte,
    paired_mean,
    paired_test,
)
from lmeval_fixtures.suite.registry import Registry

FIGURES = {f.key: f for f in Registry.default().figure_table()}


@pytest.mark.parametrize("b", [0, 1, 2, 3, 7, 12, 60])
@pytest.mark.parametrize("c", [0, 1, 4, 9, 12, 45])
def test_mcnemar_is_the_two_sided_binomial_test_of_discordant_rows(b, c):
    expected = 1.0 if b + c == 0 else stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-10, abs=1e-300)
    assert mcnemar_exact(c, b) == mcnemar_exact(b, c)


def test_paired_accuracy_counts_only_the_discordant_rows():
    a = [True] * 5 + [False] * 2 + [True] * 20 + [False] * 13  # 5 only A right, 2 only B right
    b = [False] * 5 + [True] * 2 + [True] * 20 + [False] * 13
    result = paired_accuracy(a, b, resamples=200)
    assert result.p_value == pytest.approx(stats.binomtest(2, 7, 0.5).pvalue, rel=1e-12)
    assert result.difference == pytest.approx((25 - 22) / 40)


def indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """The documented resamples: a torch generator seeded with ``seed``, (resamples, n) indices."""
    return torch.randint(0, n, (resamples, n), generator=torch.Generator().manual_seed(seed)).numpy()


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


RNG = np.random.default_rng(2026)
A_RIGHT = RNG.random(300) < 0.62
B_RIGHT = np.where(RNG.random(300) < 0.7, A_RIGHT, RNG.random(300) < 0.5)
A_MARGIN = RNG.normal(0.3, 1.0, 250)
B_MARGIN = A_MARGIN - RNG.normal(0.1, 0.5, 250)
DOC_BYTES = RNG.integers(50, 5000, 120)
DOC_TOKENS = DOC_BYTES // 4 + 1
A_NLL = DOC_BYTES * RNG.uniform(0.5, 1.5, 120)
B_NLL = A_NLL * RNG.uniform(0.9, 1.1, 120)


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_bootstrap_intervals_are_percentiles_of_the_resampled_statistic(confidence):
    seed, resamples = 11, 3000
    idx = indices(300, resamples, seed)
    diffs = A_RIGHT.astype(float) - B_RIGHT.astype(float)
    got = paired_accuracy(list(A_RIGHT), list(B_RIGHT), resamples=resamples, seed=seed, confidence=confidence)
    assert got.difference == pytest.approx(diffs.mean(), rel=1e-12)
    assert (got.low, got.high) == percentile_interval(diffs[idx].mean(axis=1), confidence)

    idx = indices(250, resamples, seed)
    diffs = A_MARGIN - B_MARGIN
    got = paired_mean(list(A_MARGIN), list(B_MARGIN), resamples=resamples, seed=seed, confidence=confidence)
    assert got.difference == pytest.approx(diffs.mean(), rel=1e-12)
    assert (got.low, got.high) == pytest.approx(percentile_interval(diffs[idx].mean(axis=1), confidence), rel=1e-12)

    idx = indices(120, resamples, seed)
    nll_diff = A_NLL - B_NLL
    boot = nll_diff[idx].sum(axis=1) / (math.log(2) * DOC_BYTES[idx].sum(axis=1))
    got = paired_bits_per_byte(list(zip(A_NLL, DOC_BYTES, strict=True)), list(zip(B_NLL, DOC_BYTES, strict=True)),
                               resamples=resamples, seed=seed, confidence=confidence)
    assert got.difference == pytest.approx(nll_diff.sum() / (math.log(2) * DOC_BYTES.sum()), rel=1e-12)
    assert (got.low, got.high) == pytest.approx(percentile_interval(boot, confidence), rel=1e-9)
    # a ratio of sums, not the mean of per-document ratios
    assert got.difference != pytest.approx(np.mean(nll_diff / (math.log(2) * DOC_BYTES)), rel=1e-3)


def test_the_average_accuracy_is_resampled_within_each_task():
    tasks = [(A_RIGHT[:100], B_RIGHT[:100]), (A_RIGHT[100:130], B_RIGHT[100:130]), (A_RIGHT[130:], B_RIGHT[130:])]
    seed, resamples = 3, 2000
    boot = np.zeros(resamples)
    observed = 0.0
    for i, (a, b) in enumerate(tasks):
        diffs = a.astype(float) - b.astype(float)
        observed += diffs.mean() / len(tasks)
        boot += diffs[indices(len(a), resamples, seed + i)].mean(axis=1) / len(tasks)
    got = paired_average_accuracy([(list(a), list(b)) for a, b in tasks], resamples=resamples, seed=seed)
    assert got.difference == pytest.approx(observed, rel=1e-12) and got.n == 300
    assert (got.low, got.high) == pytest.approx(percentile_interval(boot, 0.95), rel=1e-12)


def scipy_interval(data: tuple, statistic, confidence: float) -> tuple[float, float]:
    found = stats.bootstrap(data, statistic, paired=True, vectorized=True, method="percentile",
                            confidence_level=confidence, n_resamples=20000, random_state=np.random.default_rng(5))
    return found.confidence_interval.low, found.confidence_interval.high


def test_bootstrap_intervals_agree_with_scipy_within_monte_carlo_error():
    """Independent resamples: the endpoints differ by Monte Carlo error only (about 0.03 standard
    errors with 20000 resamples each); a wrong confidence (0.9 for 0.95) moves them by 0.3."""
    diffs = A_RIGHT.astype(float) - B_RIGHT.astype(float)
    se = diffs.std(ddof=1) / math.sqrt(len(diffs))
    ours = paired_accuracy(list(A_RIGHT), list(B_RIGHT), resamples=20000, seed=1)
    theirs = scipy_interval((diffs,), lambda x, axis: x.mean(axis=axis), 0.95)
    assert ours.low == pytest.approx(theirs[0], abs=0.12 * se) and ours.high == pytest.approx(theirs[1], abs=0.12 * se)

    diffs = A_MARGIN - B_MARGIN
    se = diffs.std(ddof=1) / math.sqrt(len(diffs))
    ours = paired_mean(list(A_MARGIN), list(B_MARGIN), resamples=20000, seed=1)
    theirs = scipy_interval((diffs,), lambda x, axis: x.mean(axis=axis), 0.95)
    assert ours.low == pytest.approx(theirs[0], abs=0.12 * se) and ours.high == pytest.approx(theirs[1], abs=0.12 * se)

    ours = paired_bits_per_byte(list(zip(A_NLL, DOC_BYTES, strict=True)), list(zip(B_NLL, DOC_BYTES, strict=True)),
                                resamples=20000, seed=1)
    theirs = scipy_interval((A_NLL - B_NLL, DOC_BYTES.astype(float)),
                            lambda d, n, axis: d.sum(axis=axis) / (math.log(2) * n.sum(axis=axis)), 0.95)
    width = theirs[1] - theirs[0]  # about 4 standard errors
    assert ours.low == pytest.approx(theirs[0], abs=0.03 * width)
    assert ours.high == pytest.approx(theirs[1], abs=0.03 * width)


def test_significance_is_strict_at_the_boundaries():
    def result(p=None, low=-1.0, high=1.0):  # confidence 0.75: 1 - 0.75 is exactly 0.25 (1 - 0.95 is not 0.05)
        return PairedResult(0.0, low, high, p, 10, 100, 1, 0.75)

    assert result(p=0.2499).significant and not result(p=0.25).significant and not result(p=0.9).significant
    assert not result(low=0.0, high=1.0).significant and result(low=1e-9, high=1.0).significant
    assert not result(low=-1.0, high=0.0).significant and result(low=-1.0, high=-1e-9).significant
    assert not result(low=math.nan, high=1.0).significant


# ---- the paired test of a figure: which values, per byte or per token


def split_record(nll: np.ndarray) -> dict:
    docs = [(float(x), int(t), int(b), 1) for x, t, b in zip(nll, DOC_TOKENS, DOC_BYTES, strict=True)]
    return {"perplexity": {"validation": {"documents": len(docs), "per_document": encode_per_document(docs)}}}


def test_a_splits_paired_tests_are_per_byte_and_per_token():
    a, b = split_record(A_NLL), split_record(B_NLL)
    nll_diff = np.round(A_NLL, 4) - np.round(B_NLL, 4)  # the record keeps 4 decimals
    bpb = paired_test(FIGURES["val_bits_per_byte"], a, b, resamples=500)
    assert bpb.difference == pytest.approx(nll_diff.sum() / (math.log(2) * DOC_BYTES.sum()), rel=1e-9)
    ppl = paired_test(FIGURES["val_perplexity"], a, b, resamples=500)
    assert ppl.difference == pytest.approx(nll_diff.sum() / DOC_TOKENS.sum(), rel=1e-9)  # nats per token
    boot = nll_diff[indices(120, 500, 1234)].sum(axis=1) / DOC_TOKENS[indices(120, 500, 1234)].sum(axis=1)
    assert (ppl.low, ppl.high) == pytest.approx(percentile_interval(boot, 0.95), rel=1e-9)


def task_record(correct, margin, gold_ll, gold_bytes) -> dict:
    n = len(correct)
    per_row = encode_per_row({"idx": list(range(n)), "label": [0] * n, "correct": list(correct),
                              "margin": list(margin), "gold_loglikelihood": list(gold_ll),
                              "gold_bytes": list(gold_bytes)})
    return {"smallbench": {"sst2": {"n": n, "acc": float(np.mean(correct)), "per_row": per_row}}}


def test_a_tasks_paired_tests_use_its_rows_verdicts_margins_and_gold_bytes():
    n = 250
    gold_bytes = RNG.integers(3, 12, n)
    a = task_record(A_RIGHT[:n], A_MARGIN, -A_MARGIN ** 2 - 1, gold_bytes)
    b = task_record(B_RIGHT[:n], B_MARGIN, -B_MARGIN ** 2 - 1, gold_bytes)
    acc = paired_test(FIGURES["smallbench_sentiment_acc"], a, b, resamples=300)
    only_a = int(np.sum(A_RIGHT[:n] & ~B_RIGHT[:n]))
    only_b = int(np.sum(B_RIGHT[:n] & ~A_RIGHT[:n]))
    assert acc.p_value == pytest.approx(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue, rel=1e-10)
    margin = paired_test(FIGURES["smallbench_sentiment_margin"], a, b, resamples=300)
    rounded = np.round(A_MARGIN, 4) - np.round(B_MARGIN, 4)
    assert margin.difference == pytest.approx(rounded.mean(), rel=1e-9)
    gold = paired_test(FIGURES["smallbench_sentiment_gold_bits_per_byte"], a, b, resamples=300)
    nll_diff = np.round(A_MARGIN ** 2 + 1, 4) - np.round(B_MARGIN ** 2 + 1, 4)
    assert gold.difference == pytest.approx(nll_diff.sum() / (math.log(2) * gold_bytes.sum()), rel=1e-9)


# ---- the documented defaults, what a result says of itself, and the refusals a gate line shows


def test_each_paired_bootstrap_defaults_to_the_documented_resamples_seed_and_confidence():
    """1000 resamples drawn with seed 1234, a 95% interval (comparison.md's paired section calls with the
    default confidence): the interval is numpy's percentiles of those resamples, and each result says
    the n, resamples, seed and confidence it was computed with."""
    idx = indices(300, 1000, 1234)
    diffs = A_RIGHT.astype(float) - B_RIGHT.astype(float)
    got = paired_accuracy(list(A_RIGHT), list(B_RIGHT))
    assert (got.low, got.high) == percentile_interval(diffs[idx].mean(axis=1), 0.95)
    assert (got.n, got.resamples, got.seed, got.confidence) == (300, 1000, 1234, 0.95)

    idx = indices(250, 1000, 1234)
    diffs = A_MARGIN - B_MARGIN
    got = paired_mean(list(A_MARGIN), list(B_MARGIN))
    assert (got.low, got.high) == pytest.approx(percentile_interval(diffs[idx].mean(axis=1), 0.95), rel=1e-12)
    assert (got.n, got.resamples, got.seed, got.confidence) == (250, 1000, 1234, 0.95)

    idx = indices(120, 1000, 1234)
    nll_diff = A_NLL - B_NLL
    boot = nll_diff[idx].sum(axis=1) / (math.log(2) * DOC_BYTES[idx].sum(axis=1))
    got = paired_bits_per_byte(list(zip(A_NLL, DOC_BYTES, strict=True)), list(zip(B_NLL, DOC_BYTES, strict=True)))
    assert (got.low, got.high) == pytest.approx(percentile_interval(boot, 0.95), rel=1e-9)
    assert (got.n, got.resamples, got.seed, got.confidence) == (120, 1000, 1234, 0.95)

    tasks = [(A_RIGHT[:100], B_RIGHT[:100]), (A_RIGHT[100:], B_RIGHT[100:])]
    boot = sum(((a.astype(float) - b.astype(float))[indices(len(a), 1000, 1234 + i)].mean(axis=1) / 2
                for i, (a, b) in enumerate(tasks)), np.zeros(1000))
    got = paired_average_accuracy([(list(a), list(b)) for a, b in tasks])
    assert (got.low, got.high) == pytest.approx(percentile_interval(boot, 0.95), rel=1e-12)
    assert (got.n, got.resamples, got.seed, got.confidence) == (300, 1000, 1234, 0.95)


def test_a_result_says_the_resamples_seed_and_confidence_it_was_given():
    a, b = [1.0, 2.0, 3.0], [0.5, 2.5, 1.0]
    for result in (paired_mean(a, b, resamples=37, seed=5, confidence=0.8),
                   paired_accuracy([True, False, True], [False, False, True], resamples=37, seed=5, confidence=0.8),
                   paired_bits_per_byte([(3.0, 4), (1.0, 2)], [(2.0, 4), (1.5, 2)], resamples=37, seed=5,
                                        confidence=0.8),
                   paired_average_accuracy([([True], [False]), ([True, True], [True, False])], resamples=37, seed=5,
                                           confidence=0.8)):
        assert (result.resamples, result.seed, result.confidence) == (37, 5, 0.8)


ACCURACY_REFUSAL = "^paired accuracy needs the same, non-empty rows for both checkpoints$"
MEAN_REFUSAL = "^a paired mean needs the same, non-empty rows for both checkpoints$"
BPB_REFUSAL = "^paired bits per byte needs the same, non-empty documents for both checkpoints$"
AVERAGE_REFUSAL = "^a paired average accuracy needs the same, non-empty rows per task for both checkpoints$"


@pytest.mark.parametrize("call, a, b, refusal", [
    (paired_accuracy, [], [], ACCURACY_REFUSAL), (paired_accuracy, [True, False], [True], ACCURACY_REFUSAL),
    (paired_accuracy, [True], [True, False], ACCURACY_REFUSAL),
    (paired_mean, [], [], MEAN_REFUSAL), (paired_mean, [1.0, 2.0], [1.0], MEAN_REFUSAL),
    (paired_mean, [1.0], [1.0, 2.0], MEAN_REFUSAL),
    (paired_bits_per_byte, [], [], BPB_REFUSAL), (paired_bits_per_byte, [(1.0, 2), (2.0, 3)], [(1.0, 2)], BPB_REFUSAL),
    (paired_bits_per_byte, [(1.0, 2)], [(1.0, 2), (2.0, 3)], BPB_REFUSAL),
    (paired_bits_per_byte, [(1.0, 2), (2.0, 3)], [(1.0, 2), (2.0, 4)],
     "^documents differ in bytes: not the same documents$"),
])
def test_rows_that_do_not_pair_are_refused_with_one_line(call, a, b, refusal):
    """A gate shows this line (``paired_test`` turns it into the refusal of the baseline)."""
    with pytest.raises(ValueError, match=refusal):
        call(a, b, resamples=10)


@pytest.mark.parametrize("tasks", [[], [([True], [True]), ([], [])], [([True, False], [True])],
                                   [([True], [True]), ([False], [True, True])]])
def test_tasks_that_do_not_pair_are_refused_with_one_line(tasks):
    with pytest.raises(ValueError, match=AVERAGE_REFUSAL):
        paired_average_accuracy(tasks, resamples=10)
