"""The fixtures a benchmark touches: ``eval_run``, ``checkpoint``, ``corpus_data``, ``task_data``,
``record_metric``, ``gates``, ``forward_timer``, ``timing_policy`` and ``progress``.

This is the pytest layer: each fixture asks the library (``inputs``, ``gates``,
``timing``, ``record``) and turns its errors into a skip or a failure with one
line; it computes nothing itself.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from . import record
from .checkpoints import CheckpointError, CheckpointSpec, LoadedCheckpoint
from .corpora import Corpus
from .data import DataError, DataUnavailable
from .gates import BaselineError, gates_for
from .inputs import CorpusSplit, TaskData
from .items import perplexity_refusal
from .tasks import Task
from .timing import benchmark_forward

if TYPE_CHECKING:
    import torch

    from .plugin import SuitePlugin

PLUGIN_NAME = "lmeval-fixtures-run"


@pytest.fixture(scope="session")
def eval_run(pytestconfig: pytest.Config) -> SuitePlugin:
    """This run as the process sees it: ``.settings``, ``.run`` (the fragment recorder),
    ``.inputs`` (checkpoints, data, baselines), ``.figures`` and ``.environment``."""
    return pytestconfig.pluginmanager.get_plugin(PLUGIN_NAME)


@pytest.fixture(scope="session")
def checkpoint(checkpoint_spec: CheckpointSpec, eval_run: SuitePlugin) -> Iterator[LoadedCheckpoint]:
    """The loaded checkpoint for this parametrization; a bad one fails only its own items.

    pytest groups items by checkpoint and tears this fixture down when it moves on to
    the next one; the model is released then, so a sweep holds one model at a time.
    """
    try:
        loaded = eval_run.inputs.checkpoint(checkpoint_spec)
    except CheckpointError as exc:
        reason = str(exc)
    else:
        reason = None
    if reason is not None:  # outside the except block, so the failure shows one line, not a chain
        eval_run.run.record(checkpoint_spec.name, record.IDENTITY_ITEM,
                            record.load_failure(checkpoint_spec.name, str(checkpoint_spec.path), reason))
        pytest.fail(reason, pytrace=False)
    worker = eval_run.settings.extra.get("worker")
    eval_run.run.record(loaded.name, record.IDENTITY_ITEM, record.identity(loaded, worker))
    yield loaded
    eval_run.inputs.release(checkpoint_spec)


@pytest.fixture
def record_metric(request: pytest.FixtureRequest, eval_run: SuitePlugin) -> Callable[..., None]:
    """``record_metric(checkpoint, fragment)`` adds a fragment (made by ``lmeval_fixtures.record``'s
    builders) to that checkpoint's record."""

    def add(target: LoadedCheckpoint | str, fragment: dict[str, Any]) -> None:
        name = target if isinstance(target, str) else target.name
        eval_run.run.record(name, request.node.nodeid, fragment)

    return add


def _skip_or_fail(load: Callable[[], Any]) -> Any:
    try:
        return load()
    except DataUnavailable as exc:
        reason, skip = str(exc), True
    except DataError as exc:
        reason, skip = str(exc), False
    if skip:
        pytest.skip(reason)
    pytest.fail(reason, pytrace=False)


@pytest.fixture
def corpus_data(perplexity_split: tuple[Corpus, str], eval_run: SuitePlugin,
                checkpoint: LoadedCheckpoint) -> CorpusSplit:
    """The documents of one corpus split (parametrized over the registry's corpora and splits),
    or a skip that says what to pass; a failure when the settings cannot apply to this checkpoint."""
    refusal = perplexity_refusal(checkpoint, eval_run.settings)
    if refusal:
        pytest.fail(refusal, pytrace=False)
    corpus, split = perplexity_split
    return _skip_or_fail(lambda: eval_run.inputs.corpus_split(corpus, split))


@pytest.fixture
def task_data(smallbench_task: Task, eval_run: SuitePlugin) -> TaskData:
    """Checked rows (plus few-shot pool) of one task (parametrized over the registry's tasks),
    or a skip that says what to pass."""
    return _skip_or_fail(lambda: eval_run.inputs.task_data(smallbench_task))


class GateKeeper:
    """Gates for one item: every verdict goes into the record; any regression fails the item."""

    def __init__(self, eval_run: SuitePlugin, add: Callable[..., None]) -> None:
        self.eval_run = eval_run
        self.add = add

    def enforce(self, checkpoint: LoadedCheckpoint, fragment: dict[str, Any]) -> None:
        try:
            baseline, refusal = self.eval_run.inputs.baseline(checkpoint.name), None
        except BaselineError as exc:
            baseline, refusal = None, str(exc)
        if refusal:  # outside the except block, so the failure shows one line, not a chain
            pytest.fail(refusal, pytrace=False)
        found = gates_for(fragment, self.eval_run.figures, baseline, self.eval_run.settings.gate_policy,
                          self.eval_run.environment)
        if not found:
            return
        self.add(checkpoint, record.gate_verdicts(found))
        failed = [g.message for g in found if not g.ok]
        if failed:
            pytest.fail(f"{checkpoint.name}: " + "; ".join(failed), pytrace=False)


@pytest.fixture
def gates(eval_run: SuitePlugin, record_metric: Callable[..., None]) -> GateKeeper:
    """Regression gates against ``--baseline`` and floors; a failing gate fails the item."""
    return GateKeeper(eval_run, record_metric)


@pytest.fixture
def progress(pytestconfig: pytest.Config) -> Callable[[str], Callable[[int, int], None] | None]:
    """``progress(label)``: a callback showing done/total and rate on an interactive terminal.

    Nothing is shown when output is not a terminal, under ``-qq``, or on an xdist worker
    (which has no terminal), so logs and captured output stay clean.
    """
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    quiet = pytestconfig.get_verbosity() < -1
    interactive = reporter is not None and sys.stdout.isatty() and not hasattr(pytestconfig, "workerinput")

    def make(label: str) -> Callable[[int, int], None] | None:
        if quiet or not interactive:
            return None
        start = time.perf_counter()
        last = [0.0]

        def show(done: int, total: int) -> None:
            now = time.perf_counter()
            if now - last[0] < 0.5 and done < total:
                return
            last[0] = now
            rate = done / max(now - start, 1e-9)
            line = f"  {label}: {done}/{total} ({rate:,.0f}/s)"
            reporter.write(f"\r{line}\x1b[K" if done < total else "\r\x1b[K", flush=True)

        return show

    return make


@pytest.fixture
def timing_policy(eval_run: SuitePlugin) -> Callable[[], str | None]:
    """``timing_policy()``: why no timing may be taken in this process, or None (for items
    timed without pytest-benchmark's fixture, such as a sweep of shapes in one item)."""
    return lambda: eval_run.timing_blocked


class ForwardTimer:
    """Times ``model(ids)`` with pytest-benchmark, draining the device before and inside each round."""

    def __init__(self, benchmark: Any, eval_run: SuitePlugin) -> None:
        self.benchmark = benchmark
        self.eval_run = eval_run

    def unavailable(self) -> str | None:
        """Why no timing can be taken here, or None."""
        reason = self.eval_run.timing_blocked
        if reason is None and self.benchmark.disabled:
            return "pytest-benchmark is disabled here: no timing taken"
        return reason

    def __call__(self, model: torch.nn.Module, ids: torch.Tensor, rounds: int, warmup: int) -> dict[str, Any]:
        return benchmark_forward(self.benchmark.pedantic, lambda: self.benchmark.stats.stats.data, model, ids,
                                 rounds, warmup)


@pytest.fixture
def forward_timer(benchmark: Any, eval_run: SuitePlugin) -> ForwardTimer:
    """Synchronised forward-pass timing through pytest-benchmark's ``benchmark`` fixture."""
    return ForwardTimer(benchmark, eval_run)
