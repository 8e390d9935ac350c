"""The packaged items (`lmeval_fixtures/benchmarks/test_perplexity.py`), collected here under their usual ids."""

from lmeval_fixtures.benchmarks.test_perplexity import test_perplexity  # noqa: F401
