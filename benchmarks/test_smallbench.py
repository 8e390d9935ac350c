"""SmallBench accuracy per checkpoint and task, scored by log-likelihood (DESIGN.md, "SmallBench")."""

import math

import pytest

from lmeval_fixtures.gates import accuracy_gates
from lmeval_fixtures.smallbench import evaluate_task
from lmeval_fixtures.tasks import TASKS


@pytest.mark.smallbench
@pytest.mark.parametrize("task", list(TASKS))
def test_smallbench(checkpoint, smallbench_data, task, record_metric, lmeval, gates, progress):
    data = smallbench_data(task)
    settings = lmeval.settings
    result = evaluate_task(
        checkpoint.model, checkpoint.tokenizer, data.task, data.rows, checkpoint.max_seq_len,
        prompt_set=settings.prompts, fewshot=settings.fewshot, fewshot_pool=data.fewshot_pool, seed=settings.seed,
        max_samples=settings.max_samples, batch_tokens=settings.batch_tokens,
        progress=progress(f"{checkpoint.name} {task}"),
    )
    summary = result.summary()
    fragment = {
        f"smallbench_{data.task.record_key}_acc": result.acc,
        "smallbench": {task: summary},
        "data_fingerprints": data.source.fingerprints,
    }
    if settings.log_samples:
        fragment["_samples"] = {f"smallbench-{task}": result.samples(settings.log_samples)}
    record_metric(checkpoint, fragment)
    assert result.n > 0, f"{task}: no rows evaluated"
    assert all(math.isfinite(ll) for row in result.rows for ll in row.loglikelihoods), \
        f"{checkpoint.name} {task}: non-finite log-likelihoods (weights or numerics broken)"
    gates.enforce(checkpoint, accuracy_gates(task, summary, data.source.fingerprints, gates.baseline(checkpoint.name),
                                             settings.acc_tolerance_se, settings.min_acc))
