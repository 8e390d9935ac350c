"""The fixtures a benchmark touches: ``eval_run``, ``checkpoint``, ``corpus_data``, ``task_data``,
``record_metric``, ``gates``, ``forward_timer``, ``timing_policy`` and ``progress``.

This is the pytest layer: each fixture asks the library (``inputs``, ``gates``,
``timing``, ``record``) and turns its errors into a skip or a failure with one
line; it computes nothing itself.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pytest

from ..core.errors import CheckpointError, DataError, DataUnavailable
from ..core.names import shape_name
from ..engine.timing import RoundPolicy, benchmark_forward
from ..evaluation import items
from ..evaluation.gating import ItemFailed
from ..evaluation.inputs import CorpusSplit, TaskData
from ..models.discovery import CheckpointSpec
from ..models.loading import LoadedCheckpoint
from ..records import fragments
from ..suite.corpora import Corpus
from ..suite.tasks import Task

if TYPE_CHECKING:
    import torch

    from .session import SuitePlugin


PLUGIN_NAME = "lmeval-fixtures-run"
MEMORY_READINGS = ("peak_rss_mb", "peak_rss_scope", "memory_allocated_mb", "memory_reserved_mb")


@pytest.fixture(scope="session")
def eval_run(pytestconfig: pytest.Config) -> SuitePlugin:
    """This run as the process sees it: ``.settings``, ``.run`` (the fragment recorder),
    ``.inputs`` (checkpoints, data, baselines), ``.figures`` and ``.environment``; ``.context``
    holds them all as ``evaluate()`` has them (``evaluation.startup.RunContext``)."""
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
        eval_run.run.record(checkpoint_spec.name, fragments.IDENTITY_ITEM,
                            fragments.load_failure(checkpoint_spec.name, str(checkpoint_spec.path), reason))
        pytest.fail(reason, pytrace=False)
    worker = eval_run.settings.extra.get("worker")
    eval_run.run.record(loaded.name, fragments.IDENTITY_ITEM, fragments.identity(loaded, worker))
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
    refusal = items.perplexity_refusal(checkpoint, eval_run.settings)
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
    """Gates for one item (``evaluation.gating.Gates``, as ``evaluate()`` enforces them): every
    verdict goes into the record; any regression fails the item with one line."""

    def __init__(self, eval_run: SuitePlugin, add: Callable[..., None]) -> None:
        self.eval_run = eval_run
        self.add = add

    def enforce(self, checkpoint: LoadedCheckpoint, fragment: dict[str, Any]) -> None:
        def record(verdicts: dict[str, Any]) -> None:
            self.add(checkpoint, verdicts)

        try:
            self.eval_run.context.gates.enforce(checkpoint.name, fragment, record)
        except ItemFailed as exc:
            reason = str(exc)
        else:
            return
        pytest.fail(reason, pytrace=False)  # outside the except block: one line, not a chain


@pytest.fixture
def gates(eval_run: SuitePlugin, record_metric: Callable[..., None]) -> GateKeeper:
    """Regression gates against ``--baseline`` and floors; a failing gate fails the item."""
    return GateKeeper(eval_run, record_metric)


class ProgressLine:
    """``done/total``, the running figures, rate and time left of one item, redrawn in place on
    pytest's terminal.

    Written with capture suspended (as pytest's own live logging does), so it shows under
    normal output capture, not only with ``-s``. It goes after what pytest has written on
    the current line (the file name and its dots), with the cursor saved before and
    restored after, straight to the terminal rather than through pytest's writer, so pytest's
    own bookkeeping of the line (where ``[ 50%]`` goes) is untouched; it is erased when the
    item finishes.

    The rate is taken over the last ``RECENT_S`` seconds of work, not since the start: the first
    seconds (tokenising, the first and longest batches) would otherwise decide the estimate for
    the whole item. Where the line does not fit, the label goes first, then the unit, then the
    figures; the rate and time left stay.
    """

    SAVE, RESTORE_AND_CLEAR = "\x1b7", "\x1b8\x1b[K"
    RECENT_S = 30.0
    FIGURE_FORMATS = MappingProxyType({"bpb": "bpb {:.4g}", "ppl": "ppl {:.4g}", "acc": "acc {:.3f}"})

    def __init__(self, writer: Any, capture: Any, label: str, unit: str, stream: Any = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.writer, self.capture, self.label, self.unit = writer, capture, label, unit
        self.stream = stream
        self.clock = clock or time.perf_counter
        self.start = self.clock()
        self.last = 0.0
        self.shown = False
        self.recent: collections.deque[tuple[float, int]] = collections.deque()
        self.figures: dict[str, float] = {}

    def live(self, figures: dict[str, float]) -> None:
        """The running figures (bits per byte, perplexity, accuracy), shown at the next redraw."""
        self.figures = dict(figures)

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        self.recent.append((now, done))
        while len(self.recent) > 2 and now - self.recent[1][0] >= self.RECENT_S:
            self.recent.popleft()
        if done < total and now - self.last < 0.5:
            return
        self.last = now
        if done >= total:
            if self.shown:
                self._write(self.RESTORE_AND_CLEAR)
            return
        room = self.writer.fullwidth - self.writer.width_of_current_line - 1
        text = self.text(done, total, now, room)
        self._write((self.RESTORE_AND_CLEAR if self.shown else self.SAVE) + text)
        self.shown = True

    def rate(self, now: float) -> float:
        """Units per second over the recent work (since the start while there is only one reading)."""
        (then, before), (_, done) = self.recent[0], self.recent[-1]
        if len(self.recent) < 2 or now - then <= 0:
            return done / max(now - self.start, 1e-9)
        return (done - before) / (now - then)

    def text(self, done: int, total: int, now: float, room: int) -> str:
        """The longest form of the line that fits ``room`` columns, the rate kept to the last."""
        rate = self.rate(now)
        left = f", {format_seconds((total - done) / rate)} left" if done and rate > 0 else ""
        pace = f"{rate:,.1f}/s{left}"
        figures = [self.FIGURE_FORMATS.get(k, k + " {:.4g}").format(v) for k, v in self.figures.items()]
        shown = f" {', '.join(figures)}" if figures else ""
        forms = [f" {self.label}: {done:,}/{total:,} {self.unit}{shown} ({pace})",
                 f" {done:,}/{total:,} {self.unit}{shown} ({pace})",
                 f" {done:,}/{total:,}{shown} ({pace})",
                 f" {done}/{total}{' ' + figures[0] if figures else ''} {pace.replace(', ', ' ')}",
                 f"{' ' + figures[0] if figures else ''} {pace.replace(', ', ' ')}",
                 f" {pace.replace(', ', ' ')}"]
        fitting = next((form for form in forms if len(form) <= room), forms[-1])
        return fitting[:max(0, room)]

    def _write(self, text: str) -> None:
        suspended = self.capture.global_and_fixture_disabled() if self.capture else contextlib.nullcontext()
        with suspended:
            stream = self.stream or sys.__stdout__
            stream.write(text)
            stream.flush()


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@pytest.fixture
def progress(pytestconfig: pytest.Config) -> Callable[..., Callable[[int, int], None] | None]:
    """``progress(label, unit="rows")``: a callback ``(done, total)`` showing progress, rate and
    time left on pytest's terminal, or None where nothing should be shown: output that is not
    a terminal (logs, CI), ``-q``, or an xdist worker (which has no terminal)."""
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    shown = (reporter is not None and bool(reporter.isatty) and pytestconfig.get_verbosity() >= 0
             and not hasattr(pytestconfig, "workerinput"))

    def make(label: str, unit: str = "rows") -> Callable[[int, int], None] | None:
        return ProgressLine(pytestconfig.get_terminal_writer(), capture, label, unit) if shown else None

    return make


@pytest.fixture
def timing_policy(eval_run: SuitePlugin) -> Callable[[], str | None]:
    """``timing_policy()``: why no timing may be taken in this process, or None (for items
    timed without pytest-benchmark's fixture, such as a sweep of shapes in one item)."""
    return lambda: eval_run.timing_blocked


class ForwardTimer:
    """Times ``model(ids)`` with pytest-benchmark, draining the device before and inside each round.

    Each measurement goes into pytest-benchmark's table and JSON under a group of its own
    shape (so batch-1 latency is never ranked against batch-32 throughput), with readable
    params and, in ``extra_info``, tokens per second and the memory readings.
    """

    def __init__(self, benchmark: Any, eval_run: SuitePlugin, params: dict[str, Any]) -> None:
        self.benchmark = benchmark
        self.eval_run = eval_run
        benchmark.params = {key: _readable(value) for key, value in params.items()}

    def unavailable(self) -> str | None:
        """Why no timing can be taken here, or None."""
        reason = self.eval_run.timing_blocked
        if reason is None and self.benchmark.disabled:
            return "pytest-benchmark is disabled here: no timing taken"
        return reason

    def __call__(self, model: torch.nn.Module, ids: torch.Tensor, policy: RoundPolicy) -> dict[str, Any]:
        batch, seq = ids.shape
        self.benchmark.group = f"{policy.family} {shape_name(batch, seq)}"
        stats = benchmark_forward(self.benchmark.pedantic, lambda: self.benchmark.stats.stats.data, model, ids,
                                  policy)
        self.benchmark.extra_info.update({"tokens_per_sec": batch * seq / (stats["mean_ms"] / 1000),
                                          "batch": batch, "seq": seq})
        return stats

    def note_memory(self, entry: dict[str, Any]) -> None:
        """Copies a recorded measurement's memory readings into pytest-benchmark's ``extra_info``."""
        self.benchmark.extra_info.update({k: v for k, v in entry.items() if k in MEMORY_READINGS})

    def skip_unless_timeable(self, checkpoint: LoadedCheckpoint, family: str, shape: tuple[int, int],
                             record_metric: Callable[..., None], *, per_shape: bool = False) -> None:
        """Skips the item when no timing may be taken in this process (recording, for the
        ``family``, that none was taken and why) or when ``shape`` does not fit the model's
        context. ``per_shape``: the family records one entry per shape (latency)."""
        why_not = self.unavailable()
        if why_not:
            record_metric(checkpoint, fragments.timing_not_taken(family, why_not, shape if per_shape else None))
            pytest.skip(why_not)
        too_long = items.too_long(checkpoint, shape[1])
        if too_long:
            pytest.skip(too_long)

    def set_group(self, group: str) -> None:
        """For an item timed outside pytest-benchmark's fixture (the batch sweep), the group its
        row would sit in: it asks for the fixture only so that --benchmark-skip and
        --benchmark-only select it as they select the other timed items."""
        self.benchmark.group = group


def _readable(value: Any) -> Any:
    """A parameter as pytest-benchmark's JSON should show it: a checkpoint's name, ``1x128``."""
    if isinstance(value, CheckpointSpec):
        return value.name
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return shape_name(*value)
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return "x".join(map(str, value))
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else value


@pytest.fixture
def forward_timer(benchmark: Any, eval_run: SuitePlugin, request: pytest.FixtureRequest) -> ForwardTimer:
    """Synchronised forward-pass timing through pytest-benchmark's ``benchmark`` fixture."""
    callspec = getattr(request.node, "callspec", None)
    return ForwardTimer(benchmark, eval_run, dict(callspec.params) if callspec else {})
