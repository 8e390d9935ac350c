"""The packaged items (`lmeval_fixtures/benchmarks/test_smallbench.py`), collected here under their usual ids."""

from lmeval_fixtures.benchmarks.test_smallbench import test_smallbench  # noqa: F401
