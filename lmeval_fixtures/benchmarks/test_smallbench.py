"""SmallBench accuracy per checkpoint and task, scored by log-likelihood (docs/design.md, "SmallBench").

Parametrized over the run's tasks (SST-2, RTE, BoolQ, MRPC by default; a conftest
adds more with ``pytest_lmeval_register``).
"""

import pytest

from ..evaluation import items


@pytest.mark.smallbench
def test_smallbench(checkpoint, task_data, record_metric, eval_run, gates, progress):
    show = progress(f"{checkpoint.name} {task_data.task.name}", "requests")
    result = items.smallbench(checkpoint, task_data, eval_run.settings, show, eval_run.inputs.cache,
                              eval_run.inputs.engine, live=show.live if show else None)
    record_metric(checkpoint, result.fragment)
    assert not result.problems, result.failure
    gates.enforce(checkpoint, result.fragment)
