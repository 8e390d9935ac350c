"""The fixtures a benchmark touches: ``checkpoint``, ``record_metric``, ``wikitext``, ``lmeval``.

This is the pytest layer; the work is done by the library modules it calls.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from .checkpoints import CheckpointError, CheckpointSpec, LoadedCheckpoint, load_checkpoint, release_checkpoint
from .corpora import Document, wikitext_documents
from .data import DataError, DataSource, DataUnavailable, load_task_rows, load_wikitext_articles
from .gates import BaselineError, Gate, load_baseline
from .metrics import RunRecorder
from .settings import Settings
from .tasks import TASKS, Task
from .timing import device_sync, summarise_ms, synchronised, timer_description

IDENTITY_ITEM = "~checkpoint"  # sorts after every node id: identity fields win merges


@dataclass
class LmevalSession:
    """Per-process state: the settings, the recorder collecting fragments, loaded baselines."""

    settings: Settings
    recorder: RunRecorder
    baselines: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    pending: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def record(self, checkpoint: str, item: str, fragment: dict[str, Any]) -> None:
        """Queue a fragment; the plugin ships it with the current test report (see plugin.py)."""
        self.pending.append((checkpoint, item, fragment))

    @property
    def environment(self) -> dict[str, str]:
        """Device and dtype of this run, as a baseline's ``environment`` records them."""
        return {"device": self.settings.device, "dtype": self.settings.dtype}


SESSION_KEY = pytest.StashKey[LmevalSession]()


@pytest.fixture(scope="session")
def lmeval(pytestconfig: pytest.Config) -> LmevalSession:
    """Run settings and the fragment recorder of this process."""
    return pytestconfig.stash[SESSION_KEY]


def identity_fragment(loaded: LoadedCheckpoint) -> dict[str, Any]:
    shape = loaded.allocation
    return {
        "checkpoint": loaded.identity,
        "total_params": shape.total_params,
        "embedding_params": shape.embedding_params,
        "non_embedding_params": shape.non_embedding_params,
        "embedding_ratio": shape.embedding_ratio,
        "d_model": shape.d_model, "d_ff": shape.d_ff, "n_layers": shape.n_layers, "n_heads": shape.n_heads,
        "vocab_size": shape.vocab_size, "glu_expansion": shape.glu_expansion,
        "train_loss": loaded.identity["training"].get("train_loss"),
    }


@pytest.fixture(scope="session")
def checkpoint(checkpoint_spec: CheckpointSpec, lmeval: LmevalSession) -> Iterator[LoadedCheckpoint]:
    """The loaded checkpoint for this parametrization; a bad one fails only its own items.

    pytest groups items by checkpoint and tears this fixture down when it moves on to
    the next one; the model is released then, so a sweep holds one model at a time.
    """
    settings = lmeval.settings
    try:
        loaded = load_checkpoint(checkpoint_spec, settings.device, settings.dtype)
    except CheckpointError as exc:
        reason = str(exc)
    else:
        reason = None
    if reason is not None:  # outside the except block, so the failure shows one line, not a chain
        lmeval.record(checkpoint_spec.name, IDENTITY_ITEM, {
            "checkpoint": {"name": checkpoint_spec.name, "path": str(checkpoint_spec.path)},
            "errors": [reason],
        })
        pytest.fail(reason, pytrace=False)
    fragment = identity_fragment(loaded)
    worker = settings.extra.get("worker")
    if worker:  # which worker evaluated this checkpoint, with how many threads, on which device
        fragment["environment"] = {"workers": {worker["id"]: worker}}
    lmeval.record(loaded.name, IDENTITY_ITEM, fragment)
    yield loaded
    release_checkpoint(checkpoint_spec, settings.device, settings.dtype)


@pytest.fixture
def record_metric(request: pytest.FixtureRequest, lmeval: LmevalSession) -> Callable[..., None]:
    """``record_metric(checkpoint, {...})`` adds figures to that checkpoint's record."""

    def record(target: LoadedCheckpoint | str, fragment: dict[str, Any]) -> None:
        name = target if isinstance(target, str) else target.name
        lmeval.record(name, request.node.nodeid, fragment)

    return record


class DataCache:
    """Loads each dataset once per process and remembers why one could not be had.

    ``get(key)`` returns the data, or stops the item: data that exists but is
    unusable fails it, data that is unavailable skips it, each with one line.
    """

    def __init__(self, load: Callable[[str], Any]) -> None:
        self._load = load
        self._found: dict[str, Any] = {}

    def __call__(self, key: str) -> Any:
        if key not in self._found:
            try:
                self._found[key] = self._load(key)
            except DataUnavailable as exc:
                self._found[key] = ("skip", str(exc))
            except DataError as exc:
                self._found[key] = ("fail", str(exc))
        found = self._found[key]
        if isinstance(found, tuple):
            verdict, reason = found
            if verdict == "fail":
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        return found


@dataclass
class Corpus:
    split: str
    documents: list[Document]
    source: DataSource
    detokenized: bool


@pytest.fixture(scope="session")
def wikitext(lmeval: LmevalSession) -> Callable[[str], Corpus]:
    """``wikitext(split)``: the articles of that split, or a skip that says what to pass."""
    settings = lmeval.settings

    def load(split: str) -> Corpus:
        articles, source = load_wikitext_articles(split, settings.data_dir)
        docs = wikitext_documents(articles, detokenize=settings.detokenize)
        return Corpus(split, docs, source, settings.detokenize)

    return DataCache(load)


@dataclass
class TaskData:
    task: Task
    rows: list[dict]
    fewshot_pool: list[dict] | None
    source: DataSource


@pytest.fixture(scope="session")
def smallbench_data(lmeval: LmevalSession) -> Callable[[str], TaskData]:
    """``smallbench_data(task)``: checked rows (plus few-shot pool), or a skip that says what to pass."""
    settings = lmeval.settings

    def load(name: str) -> TaskData:
        task = TASKS[name]
        rows, source = load_task_rows(task, task.split, settings.data_dir)
        pool = None
        if settings.fewshot:
            pool, pool_source = load_task_rows(task, task.fewshot_split, settings.data_dir)
            source.fingerprints.update(pool_source.fingerprints)
        return TaskData(task, rows, pool, source)

    return DataCache(load)


class GateKeeper:
    """Applies gates for one item: records every verdict, fails the item on any regression."""

    def __init__(self, session: LmevalSession, record: Callable[..., None]) -> None:
        self.session = session
        self.record = record

    def baseline(self, checkpoint: str) -> dict[str, Any] | None:
        path = self.session.settings.baseline
        if path is None:
            return None
        if checkpoint not in self.session.baselines:
            try:
                self.session.baselines[checkpoint] = load_baseline(path, checkpoint)
            except BaselineError as exc:
                self.session.baselines[checkpoint] = {"_error": str(exc)}
        found = self.session.baselines[checkpoint]
        if found is not None and "_error" in found:
            pytest.fail(found["_error"], pytrace=False)
        return found

    def enforce(self, checkpoint: LoadedCheckpoint, gates: list[Gate]) -> None:
        if not gates:
            return
        self.record(checkpoint, {"gates": {g.name: {"ok": g.ok, "message": g.message} for g in gates}})
        failed = [g.message for g in gates if not g.ok]
        if failed:
            pytest.fail(f"{checkpoint.name}: " + "; ".join(failed), pytrace=False)


@pytest.fixture
def gates(lmeval: LmevalSession, record_metric: Callable[..., None]) -> GateKeeper:
    """Regression gates against ``--baseline`` and floors; a failing gate fails the item."""
    return GateKeeper(lmeval, record_metric)


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


XDIST_TIMING_REASON = ("timings are not taken under pytest-xdist (pytest-benchmark disables itself there); "
                       "run the timed items alone: pytest benchmarks -p no:xdist -m \"latency or throughput\" "
                       "--merge-into reports/<run_id>")


def timing_unavailable(config: pytest.Config) -> str | None:
    """Why this process must not take timings (xdist, or timing switched off), or None."""
    under_xdist = hasattr(config, "workerinput") or config.getoption("dist", "no") != "no"
    if under_xdist or os.environ.get("PYTEST_XDIST_WORKER"):
        return XDIST_TIMING_REASON
    if config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False):
        return "pytest-benchmark is disabled (--benchmark-disable): no timing taken"
    return None


@pytest.fixture
def timing_policy(pytestconfig: pytest.Config) -> Callable[[], str | None]:
    """``timing_policy()``: why no timing may be taken here, or None (for items timed without
    pytest-benchmark's fixture, such as a sweep of shapes in one item)."""
    return lambda: timing_unavailable(pytestconfig)


class ForwardTimer:
    """Times ``model(ids)`` with pytest-benchmark, draining the device before and inside each round."""

    def __init__(self, benchmark: Any, config: pytest.Config) -> None:
        self.benchmark = benchmark
        self.config = config

    def unavailable(self) -> str | None:
        """Why no timing can be taken here, or None."""
        reason = timing_unavailable(self.config)
        if reason is None and self.benchmark.disabled:
            return "pytest-benchmark is disabled here: no timing taken"
        return reason

    def time(self, model: torch.nn.Module, ids: torch.Tensor, rounds: int, warmup: int) -> dict[str, Any]:
        device = ids.device
        with torch.inference_mode():
            self.benchmark.pedantic(synchronised(lambda: model(ids), device), setup=device_sync(device),
                                    rounds=rounds, warmup_rounds=warmup, iterations=1)
        summary = summarise_ms(list(self.benchmark.stats.stats.data))
        summary["timer"] = timer_description(device)
        summary["warmup_rounds"] = warmup
        return summary


@pytest.fixture
def forward_timer(benchmark: Any, pytestconfig: pytest.Config) -> ForwardTimer:
    """Synchronised forward-pass timing through pytest-benchmark's ``benchmark`` fixture."""
    return ForwardTimer(benchmark, pytestconfig)
