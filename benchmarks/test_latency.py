"""Forward latency and throughput, timed with pytest-benchmark (docs/design.md, "Latency").

Timed items never share the machine: under pytest-xdist they record that no
timing was taken and skip. Run them with ``-p no:xdist -m "latency or throughput"``.
"""

import pytest

from lmeval_fixtures import items, record


@pytest.mark.latency
def test_latency(checkpoint, latency_shape, forward_timer, record_metric, eval_run, gates):
    why_not = forward_timer.unavailable()
    if why_not:
        record_metric(checkpoint, record.timing_not_taken("latency", why_not, latency_shape))
        pytest.skip(why_not)
    too_long = items.too_long(checkpoint, latency_shape[1])
    if too_long:
        pytest.skip(too_long)
    fragment, problems = items.latency(checkpoint, *latency_shape, eval_run.settings, forward_timer)
    record_metric(checkpoint, fragment)
    assert not problems, "; ".join(problems)
    gates.enforce(checkpoint, fragment)


@pytest.mark.throughput
def test_throughput(checkpoint, forward_timer, record_metric, eval_run, gates):
    why_not = forward_timer.unavailable()
    if why_not:
        record_metric(checkpoint, record.timing_not_taken("throughput", why_not))
        pytest.skip(why_not)
    too_long = items.too_long(checkpoint, eval_run.settings.throughput_shape[1])
    if too_long:
        pytest.skip(too_long)
    fragment = items.throughput(checkpoint, eval_run.settings, forward_timer)
    record_metric(checkpoint, fragment)
    gates.enforce(checkpoint, fragment)


@pytest.mark.throughput
def test_batch_scaling(checkpoint, timing_policy, record_metric, eval_run):
    """Tokens per second for each batch size of --batch-sweep, stopping at the first that does not fit."""
    why_not = timing_policy()
    if why_not:
        record_metric(checkpoint, record.timing_not_taken("batch_scaling", why_not))
        pytest.skip(why_not)
    too_long = items.too_long(checkpoint, eval_run.settings.throughput_shape[1])
    if too_long:
        pytest.skip(too_long)
    fragment, problems = items.batch_scaling(checkpoint, eval_run.settings)
    record_metric(checkpoint, fragment)
    assert not problems, "; ".join(problems)
