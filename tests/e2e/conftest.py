"""The pytester suites the end-to-end tests run: a project laid out with the benchmarks, data
and checkpoints made here (``offline``: no hub, no inherited data dir or xdist worker)."""

from __future__ import annotations

import pytest

from ..helpers import BENCHMARK, lay_out_suite, write_native_checkpoint, write_wikitext


@pytest.fixture
def suite(pytester: pytest.Pytester, offline: None) -> pytest.Pytester:
    """The perplexity and SmallBench benchmarks, their data in data/, and checkpoint ck/a."""
    return lay_out_suite(pytester)


@pytest.fixture
def ppl_suite(pytester: pytest.Pytester, offline: None) -> pytest.Pytester:
    """The perplexity benchmark and WikiText in data/; each test writes its own checkpoints."""
    pytester.makepyfile(test_perplexity=BENCHMARK)
    write_wikitext(pytester.path / "data")
    return pytester


@pytest.fixture
def two_models(pytester: pytest.Pytester, offline: None) -> pytest.Pytester:
    """``suite`` with a second checkpoint of another shape, ck/b."""
    lay_out_suite(pytester)
    write_native_checkpoint(pytester.path / "ck" / "b", seed=2, d_model=48, n_heads=3)
    return pytester
