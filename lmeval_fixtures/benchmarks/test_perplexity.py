"""Perplexity per checkpoint, corpus and split (docs/design.md, "Metrics").

Parametrized over the run's corpora (WikiText-2 raw by default; a conftest adds
more with ``pytest_lmeval_register``). The body is ``lmeval_fixtures.evaluation.items``,
the same code the library API runs.
"""

import pytest

from ..evaluation import items


@pytest.mark.perplexity
def test_perplexity(checkpoint, corpus_data, record_metric, eval_run, gates, progress):
    show = progress(f"{checkpoint.name} {corpus_data.corpus.name} {corpus_data.split}", "windows")
    result = items.perplexity(checkpoint, corpus_data, eval_run.settings, show, eval_run.inputs.cache,
                              eval_run.inputs.engine, live=show.live if show else None)
    record_metric(checkpoint, result.fragment)
    assert not result.problems, result.failure
    gates.enforce(checkpoint, result.fragment)
