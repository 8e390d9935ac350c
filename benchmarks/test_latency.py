"""The packaged items (`lmeval_fixtures/benchmarks/test_latency.py`), collected here under their usual ids."""

from lmeval_fixtures.benchmarks.test_latency import test_batch_scaling, test_latency, test_throughput  # noqa: F401
