"""``core.numerics``: quantiles as numpy interpolates them."""

import math

import numpy
import pytest

from lmeval_fixtures.core.numerics import quantile


@pytest.mark.parametrize("q", [0.0, 0.025, 0.05, 0.5, 0.975, 1.0])
@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_quantile_interpolates_as_numpy(q, n):
    values = [math.sin(i) * 10 for i in range(n)]
    assert quantile(values, q) == pytest.approx(numpy.quantile(values, q), rel=1e-12, abs=1e-12)
