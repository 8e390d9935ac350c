"""Paired tests (``records.paired``) against independent computations (scipy, exhaustive enumeration, hand
examples)."""

import itertools
import math

import pytest
from scipy.stats import binomtest

from lmeval_fixtures.records.paired import (
    mcnemar_exact,
    paired_accuracy,
    paired_average_accuracy,
    paired_bits_per_byte,
    paired_mean,
)


@pytest.mark.parametrize("b, c", [(0, 0), (1, 0), (5, 1), (3, 3), (10, 2), (40, 25), (0, 17)])
def test_mcnemar_matches_scipy_binomial_test(b, c):
    expected = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_hand_computed_case():
    # b=5, c=1: 2 * (C(6,0) + C(6,1)) / 2**6 = 2 * 7 / 64
    assert mcnemar_exact(5, 1) == pytest.approx(14 / 64)


def test_paired_bootstrap_approximates_the_exact_bootstrap_distribution():
    a = [True, True, False, True, False, True]
    b = [False, True, False, False, True, True]
    n = len(a)
    diffs = [int(x) - int(y) for x, y in zip(a, b, strict=True)]
    # exhaustive bootstrap: every one of n**n equally likely resamples
    exact = sorted(sum(diffs[i] for i in idx) / n for idx in itertools.product(range(n), repeat=n))

    def quantile(q):
        return exact[min(len(exact) - 1, math.floor(q * (len(exact) - 1)))]

    result = paired_accuracy(a, b, resamples=20000, seed=7)
    assert result.difference == pytest.approx(sum(diffs) / n)
    assert abs(result.low - quantile(0.025)) <= 1 / n + 1e-9 and abs(result.high - quantile(0.975)) <= 1 / n + 1e-9
    assert paired_accuracy(a, b, resamples=500, seed=7) == paired_accuracy(a, b, resamples=500, seed=7)
    assert result.p_value == pytest.approx(mcnemar_exact(2, 1))


def test_identical_checkpoints_are_not_significantly_different():
    rows = [True, False, True, True] * 10
    result = paired_accuracy(rows, rows)
    assert result.difference == 0 and result.low == result.high == 0 and not result.significant
    docs = [(100.0, 50), (80.0, 40), (30.0, 20)]
    same = paired_bits_per_byte(docs, docs)
    assert same.difference == 0 and not same.significant


def test_bits_per_byte_difference_and_its_interval():
    a = [(100.0, 50), (80.0, 40), (30.0, 20), (55.0, 30)]
    b = [(90.0, 50), (70.0, 40), (28.0, 20), (50.0, 30)]
    result = paired_bits_per_byte(a, b, resamples=2000, seed=3)
    expected = (265.0 - 238.0) / (math.log(2) * 140)
    assert result.difference == pytest.approx(expected)
    assert result.low <= expected <= result.high and result.significant  # A is worse on every document
    with pytest.raises(ValueError, match="not the same documents"):
        paired_bits_per_byte(a, [(1.0, 51)] + b[1:])


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
