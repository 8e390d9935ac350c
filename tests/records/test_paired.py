"""Paired tests against independent computations (scipy, exhaustive enumeration)."""

import itertools
import math

import numpy
import pytest
from scipy.stats import binomtest

from lmeval_fixtures.core.numerics import quantile
from lmeval_fixtures.records.paired import mcnemar_exact, paired_accuracy, paired_bits_per_byte


@pytest.mark.parametrize("q", [0.0, 0.025, 0.05, 0.5, 0.975, 1.0])
@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_quantile_interpolates_as_numpy(q, n):
    values = [math.sin(i) * 10 for i in range(n)]
    assert quantile(values, q) == pytest.approx(numpy.quantile(values, q), rel=1e-12, abs=1e-12)


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
