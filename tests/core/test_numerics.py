"""``core.numerics``: quantiles as numpy interpolates them."""

import math

import numpy
import pytest

from lmeval_fixtures.core.numerics import quantile, safe_exp


@pytest.mark.parametrize("q", [0.0, 0.025, 0.05, 0.5, 0.975, 1.0])
@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_quantile_interpolates_as_numpy(q, n):
    values = [math.sin(i) * 10 for i in range(n)]
    assert quantile(values, q) == pytest.approx(numpy.quantile(values, q), rel=1e-12, abs=1e-12)


def test_a_quantile_of_no_values_is_refused_by_name():
    """No bootstrap resamples (or no rows) is a caller's bug: said, never an IndexError or a 0."""
    with pytest.raises(ValueError, match=r"^quantile of no values$"):
        quantile([], 0.5)


@pytest.mark.parametrize("x, expected", [(0.0, 1.0), (1.0, math.e), (-1000.0, 0.0), (709.0, math.exp(709.0)),
                                         (710.0, math.inf), (1e300, math.inf)])
def test_safe_exp_is_exp_or_infinity_where_exp_overflows(x, expected):
    # exp(709) ~ 8.2e307 is the largest whole power below float64's max (1.8e308); exp(710) overflows
    assert safe_exp(x) == expected
