"""Forward latency and throughput, timed with pytest-benchmark (docs/design.md, "Latency").

Timed items never share the machine: under pytest-xdist they record that no
timing was taken and skip. Run them with ``-p no:xdist -m "latency or throughput"``.
"""

import pytest

from ..evaluation import items


@pytest.mark.latency
def test_latency(checkpoint, latency_shape, forward_timer, record_metric, eval_run, gates):
    forward_timer.skip_unless_timeable(checkpoint, "latency", latency_shape, record_metric, per_shape=True)
    result = items.latency(checkpoint, *latency_shape, eval_run.settings, forward_timer)
    record_metric(checkpoint, result.fragment)
    forward_timer.note_memory(next(iter(result.fragment["latency"].values())))
    assert not result.problems, result.failure
    gates.enforce(checkpoint, result.fragment)


@pytest.mark.throughput
def test_throughput(checkpoint, forward_timer, record_metric, eval_run, gates):
    forward_timer.skip_unless_timeable(checkpoint, "throughput", eval_run.settings.throughput_shape, record_metric)
    result = items.throughput(checkpoint, eval_run.settings, forward_timer)
    record_metric(checkpoint, result.fragment)
    forward_timer.note_memory(result.fragment["throughput"])
    assert not result.problems, result.failure
    gates.enforce(checkpoint, result.fragment)


@pytest.mark.throughput
@pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")  # timed by design outside the fixture
def test_batch_scaling(checkpoint, forward_timer, record_metric, eval_run, progress):
    """Tokens per second for each batch size of --batch-sweep, stopping at the first that does not fit.

    Timed in one item over several shapes, so outside pytest-benchmark's one-function
    fixture; it asks for the fixture all the same, so that --benchmark-skip and
    --benchmark-only select it as they select the other timed items."""
    forward_timer.set_group("batch scaling")
    forward_timer.skip_unless_timeable(checkpoint, "batch_scaling", eval_run.settings.throughput_shape, record_metric)
    result = items.batch_scaling(checkpoint, eval_run.settings,
                                 progress(f"{checkpoint.name} batch scaling", "batch sizes"))
    record_metric(checkpoint, result.fragment)
    assert not result.problems, result.failure
