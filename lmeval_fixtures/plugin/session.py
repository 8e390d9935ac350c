"""The run of one pytest session as a plugin object: parametrization, the xdist hand-over, session end.

``plugin.pytest_configure`` builds a ``SuitePlugin``, which starts the run as
``evaluate()`` does (``evaluation.startup.start_run``: the settings, the registry
with the project's ``pytest_lmeval_register`` hooks, the ``Run``, the inputs),
adding what is pytest's (the ini file, the hooks, an xdist worker's share); its
methods are the remaining hooks, as pytest's own cacheprovider and stepwise
plugins do: all state lives on that object. Workers record fragments and
ship them with each test report; the controller alone absorbs them and, at
session end, calls ``Run.finish``. Importing this module imports torch, which is
why ``plugin`` imports it only when a session configures.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from ..core.errors import RegistryError, UsageError
from ..core.formatting import outcome_reason
from ..core.names import shape_name
from ..engine.timing import timing_unavailable
from ..evaluation.gating import skip_refusal
from ..evaluation.options import DEST_PREFIX, OPTIONS
from ..evaluation.run import Finished
from ..evaluation.settings import Settings
from ..evaluation.sharding import ShardItem, partition, shard_costs
from ..evaluation.startup import IniDefaults, finish_run, start_run
from ..models.discovery import CheckpointSpec
from ..records.results_table import STEP_SUMMARY_ENV, append_step_summary, render_text
from ..records.summary import cache_hits
from ..records.timing_noise import noisy_timings
from ..suite.figures import resolve_figure_key, task_figure_key
from ..suite.registry import Registry

FRAGMENTS_ATTRIBUTE = "lmeval_fragments"
RUN_ID_INPUT = "lmeval_run_id"
CHECKPOINT_PROPERTY = "lmeval_checkpoint"
ITEMS_OUTPUT = "lmeval_items"  # a worker's collected suite items (node id -> checkpoint), sent when it finishes
# pytest-benchmark's round options, which the suite's timed items do not follow, and what does
REPLACED_BENCHMARK_OPTIONS = MappingProxyType({
    "--benchmark-min-rounds": "--latency-rounds / --throughput-rounds (most rounds) within --timing-budget",
    "--benchmark-max-time": "--timing-budget",
    "--benchmark-min-time": "nothing (one forward pass per round, no calibration)",
    "--benchmark-calibration-precision": "nothing (one forward pass per round, no calibration)",
    "--benchmark-warmup": "--latency-warmup",
    "--benchmark-warmup-iterations": "--latency-warmup",
    "--benchmark-timer": "nothing (time.perf_counter, with the device synchronised around each round)",
})
# Relative cost of an item on a typical checkpoint (measured on the reference sweep: BoolQ and
# the perplexity splits take 10-15x as long as the other SmallBench tasks).
ITEM_COST = MappingProxyType({"perplexity": 10.0, "boolq": 12.0, "throughput": 2.0, "batch_scaling": 4.0,
                              "latency": 0.5})


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _timing_blocked(config: pytest.Config) -> str | None:
    under_xdist = _is_worker(config) or config.getoption("dist", "no") != "no" \
        or bool(os.environ.get("PYTEST_XDIST_WORKER"))
    disabled = config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False)
    return timing_unavailable(under_xdist=under_xdist, benchmark_disabled=disabled)


def _check_benchmark_histogram(config: pytest.Config) -> None:
    """pytest-benchmark's ``--benchmark-histogram`` draws with pygal (its ``histogram`` extra), imported only
    when the run ends: without it a whole run ended in an ImportError traceback. Said at start-up instead."""
    import importlib.util

    if config.getoption("benchmark_histogram", None) and not all(
            importlib.util.find_spec(name) for name in ("pygal", "pygaljs")):
        raise pytest.UsageError("--benchmark-histogram needs pygal and pygaljs: pip install "
                                "'lmeval-fixtures[histogram]' (or leave the option out)")


class SuitePlugin:
    """The run of one pytest process, and the hooks that feed it."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.is_worker = _is_worker(config)
        self._declared: set[int] = set()
        ini = config.getini
        self.context = start_run(
            _suite_options(config), report_root=_invocation_folder(config), source_root=_invocation_folder(config),
            args=list(config.invocation_params.args),
            ini=IniDefaults(checkpoints=[str(p) for p in ini("lmeval_checkpoints")],
                            data_dir=ini("lmeval_data_dir") or None, corpora=ini("lmeval_corpora"),
                            task_files=[str(p) for p in ini("lmeval_task_files")],
                            strict_skips=bool(ini("lmeval_strict_skips")),
                            folder=config.inipath.parent if config.inipath else config.rootpath),
            register=self._register, complete=self._divide_resources, is_worker=self.is_worker,
            worker_run_id=(getattr(config, "workerinput", None) or {}).get(RUN_ID_INPUT))
        self.settings: Settings = self.context.settings
        self.registry = self.context.registry
        self.run = self.context.run
        self.figures = self.context.figures
        self.inputs = self.context.inputs
        self.timing_blocked = _timing_blocked(config)
        if not self.is_worker:
            _warn_replaced_benchmark_options(config)
            _check_benchmark_histogram(config)
        self.finished: Finished | None = None
        self.shard_line: str | None = None
        # the controller's knowledge of which items are the suite's, and whose: from the items themselves (no
        # xdist), else from the workers (each report's property, each finished worker's collection); never
        # from a node id, which a project's own test_x[<checkpoint>-...] can spell alike
        self.suite_items: dict[str, str] = {}
        self.unplaced: list[pytest.TestReport] = []  # reports without the property (a crashed worker's), held
        self.collected_ids: set[str] = set()  # what the workers collected (xdist), to tell a run that ended early
        self.maps_received = 0
        self.reported_ids: set[str] = set()
        self._sigterm: Any = None
        if not self.is_worker and threading.current_thread() is threading.main_thread():
            self._sigterm = signal.signal(signal.SIGTERM, _stop_like_ctrl_c)

    def _register(self, registry: Registry) -> None:
        """The project's ``pytest_lmeval_register`` hooks (its root conftests), before the options'
        declarations, so that a clash names the option."""
        for impl in self.config.hook.pytest_lmeval_register.get_hookimpls():
            self._declared.add(id(impl.plugin))
            try:
                impl.function(registry=registry, config=self.config)
            except RegistryError as exc:
                raise UsageError(f"{_source(impl.plugin, impl.plugin_name)}: {exc}") from None

    def pytest_plugin_registered(self, plugin: Any, plugin_name: str) -> None:
        """A conftest.py loaded during collection (in a sub-folder) comes too late to declare
        tasks or corpora: the run's items and figures are fixed by then. Said, not ignored."""
        if hasattr(plugin, "pytest_lmeval_register") and id(plugin) not in self._declared and plugin is not self:
            raise pytest.UsageError(
                f"{_source(plugin, plugin_name)}: declares tasks or corpora (pytest_lmeval_register) but was loaded "
                "after the run began; declare them in the conftest.py at the root of the run")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)
        self.context.close()

    @property
    def environment(self) -> dict[str, str]:
        """Device and dtype of this run, as a baseline's ``environment`` records them."""
        return self.context.environment

    def _divide_resources(self, settings: Settings) -> Settings:
        """Under xdist: each worker takes its share of the CPU threads and, on a multi-GPU host
        with ``--device cuda`` or ``auto``, its own GPU by worker number (``cuda:N`` is kept as given).
        Returns the settings with the worker's device and share (a copy; ``Settings`` is frozen)."""
        import torch

        workerinput = getattr(self.config, "workerinput", None)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        if workerinput is None:
            return settings
        workers = int(workerinput.get("workercount", 1))
        index = int(str(workerinput.get("workerid", "gw0")).removeprefix("gw") or 0)
        threads = settings.threads or max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(threads)
        device = settings.device
        if device == "cuda" and torch.cuda.device_count() > 1:
            device = f"cuda:{index % torch.cuda.device_count()}"
        worker = {"id": workerinput.get("workerid"), "workers": workers, "threads": threads, "device": device}
        return replace(settings, device=device, extra=settings.extra | {"worker": worker})

    # ------------------------------------------------------------ collection

    @pytest.hookimpl(tryfirst=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        names = metafunc.fixturenames
        if "checkpoint_spec" in names:
            specs = self.settings.checkpoints
            metafunc.parametrize("checkpoint_spec", specs, ids=[s.name for s in specs], scope="session")
        if "perplexity_split" in names:
            splits = [(c, s) for c in self.registry.corpora.values() for s in c.splits]
            metafunc.parametrize("perplexity_split", splits,
                                 ids=[s if c.legacy else f"{c.name}-{s}" for c, s in splits])
        if "smallbench_task" in names:
            tasks = list(self.registry.tasks.values())
            metafunc.parametrize("smallbench_task", tasks, ids=[t.name for t in tasks])
        if "latency_shape" in names:
            shapes = self.settings.latency_shapes
            metafunc.parametrize("latency_shape", shapes, ids=[shape_name(b, s) for b, s in shapes])

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        """One task, one name in every place: ``-k`` selects a task's item by any name its figures are asked
        for by (``SST-2``, ``smallbench_sst2_acc``, ``smallbench_sentiment_acc``), not only by its id."""
        task = getattr(item, "callspec", None) and item.callspec.params.get("smallbench_task")
        if task is not None:
            key = task_figure_key(task)
            item.extra_keyword_matches.update(
                name for name in (task.display, key, f"smallbench_{task.name}_acc") if
                resolve_figure_key(name, self.figures) == key)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Keep this shard's items (of those -m and -k selected); tag items with their checkpoint
        so outcomes reach the right record."""
        shard = self.settings.shard
        if shard is not None:
            index, count = shard
            planned = [ShardItem(it.nodeid, _checkpoint_of(it), _estimated_cost(it)) for it in items]
            keep = set(partition(planned, count)[index - 1])
            deselected = [it for it in items if it.nodeid not in keep]
            items[:] = [it for it in items if it.nodeid in keep]
            if deselected:
                config.hook.pytest_deselected(items=deselected)
            costs = shard_costs(planned, count)
            self.shard_line = (f"lmeval-fixtures: shard {index}/{count}: {len(items)} of {len(planned)} items, "
                               f"estimated cost {costs[index - 1]:.1f} (shards {min(costs):.1f} to {max(costs):.1f})")
        for item in items:
            if _checkpoint_of(item):
                item.user_properties.append((CHECKPOINT_PROPERTY, _checkpoint_of(item)))
        if self.is_worker:
            # hand out the longest items of each checkpoint first, so that no worker is left with a
            # long tail, while a checkpoint's items stay together (each worker loads it once); every
            # worker collects and sorts identically, so the schedule stays consistent
            first_seen: dict[str, int] = {}
            for item in items:
                first_seen.setdefault(_checkpoint_of(item), len(first_seen))
            items.sort(key=lambda it: (first_seen[_checkpoint_of(it)], -_estimated_cost(it)))

    def pytest_report_collectionfinish(self, config: pytest.Config, items: list[pytest.Item]) -> list[str]:
        return [self.shard_line] if self.shard_line else []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The suite's items and their checkpoints, known where the items are: a plain run expects them at
        once; a worker hands them to the controller when it finishes (``workeroutput``)."""
        found = {item.nodeid: _checkpoint_of(item) for item in session.items if _checkpoint_of(item)}
        if self.is_worker:
            self.config.workeroutput[ITEMS_OUTPUT] = found  # type: ignore[attr-defined]
        else:
            self._learn_items(found)

    def _learn_items(self, found: dict[str, str]) -> None:
        for nodeid, name in found.items():
            self.suite_items[nodeid] = name
            self.run.expect(name, nodeid)
        held, self.unplaced = self.unplaced, []
        for report in held:
            self._place(report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: each worker learns the run id (only the controller makes it)."""
        node.workerinput[RUN_ID_INPUT] = self.run.run_id

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """What the workers will run (node ids only: which of them are the suite's comes with the reports
        and each worker's collection at its end), so that a run no worker finished is said to be incomplete."""
        self.collected_ids.update(ids)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """xdist: a finished worker's collection says which items are the suite's, and whose (every worker
        collects them all, so one finished worker is enough to list what never ran); a dead one sends none."""
        found = (getattr(node, "workeroutput", None) or {}).get(ITEMS_OUTPUT)
        if isinstance(found, dict):
            self.maps_received += 1
            self._learn_items(found)

    # ------------------------------------------------------------ running

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
        """Ship the fragments recorded during this phase with its report.

        Reports travel from xdist workers to the controller as each phase ends, so
        figures reach the controller even if a worker dies later; in a plain run the
        same path is taken within one process.
        """
        report = yield
        pending = self.run.take_pending()
        if pending:
            # an attribute, not a user property: xdist carries a report's attributes to the
            # controller, and --junitxml writes the item's user properties (as record_property
            # does), which get the figures instead
            setattr(report, FRAGMENTS_ATTRIBUTE, json.dumps(pending))
            item.user_properties.extend(self._figure_properties(pending))
        if report.skipped and not hasattr(report, "wasxfail"):
            why = self._skip_not_allowed(item)
            if why:
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                report.outcome = "failed"
                report.longrepr = f"{why}: {str(reason).removeprefix('Skipped: ')}"
        return report

    def _figure_properties(self, pending: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, Any]]:
        """The figures an item measured, as (figure key, value) pairs: JUnit XML properties."""
        properties = []
        for _, _, fragment in pending:
            for figure in self.figures:
                value = figure.value(fragment) if figure.compute is None else None
                if figure.better is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
                    properties.append((figure.key, value))
                    stderr = figure.stderr(fragment)
                    if stderr is not None:
                        properties.append((f"{figure.key}_stderr", stderr))
        return properties

    def _skip_not_allowed(self, item: pytest.Item) -> str | None:
        """A skip that must fail: under --strict-skips every one; with --baseline, a gated item's
        (a CI gate that measured nothing must not pass)."""
        return skip_refusal(self.settings, [m.name for m in item.iter_markers()])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        fragments = getattr(report, FRAGMENTS_ATTRIBUTE, None)
        if fragments:
            self.run.absorb(json.loads(fragments))
        self.reported_ids.add(report.nodeid)
        names = [value for key, value in report.user_properties if key == CHECKPOINT_PROPERTY]
        if names:
            self.suite_items[report.nodeid] = names[0]
        self._place(report)

    def _place(self, report: pytest.TestReport) -> None:
        """Record the outcome of a suite item under its checkpoint. A report without the property (the one
        xdist makes for a crashed worker) waits until a worker's collection says whether it is the suite's."""
        name = self.suite_items.get(report.nodeid)
        if name:
            self._record_outcome(name, report)
        elif not report.user_properties and _is_worker_crash(report):
            self.unplaced.append(report)

    def _record_outcome(self, name: str, report: pytest.TestReport) -> None:
        previous = self.run.outcome(name, report.nodeid)
        if report.when == "setup" and report.failed:
            outcome = "error"
        elif report.when == "teardown" and report.failed:
            outcome = "error" if previous is None or previous["outcome"] == "passed" else previous["outcome"]
        elif report.skipped:
            outcome = "skipped"
        elif report.when == "call":
            outcome = "passed" if report.passed else "failed"
        elif report.failed and report.when not in ("setup", "teardown"):  # xdist's report of a crashed worker
            outcome = "failed"
        else:
            return
        if report.when == "teardown" and report.passed:
            return
        duration = round(report.duration, 3) if report.when == "call" else (previous or {}).get("duration_s")
        self.run.add_outcome(name, report.nodeid, outcome, _reason(report), duration)

    # ------------------------------------------------------------ the end

    def pytest_benchmark_update_json(self, config: pytest.Config, benchmarks: list, output_json: dict) -> None:
        """pytest-benchmark's JSON holds the items timed through its fixture; batch scaling times several batch
        sizes in one item, so its points join the JSON here, under ``lmeval_batch_scaling`` by checkpoint."""
        scaling = {name: record["batch_scaling"] for name, record in self.run.records().items()
                   if record.get("batch_scaling")}
        if scaling:
            output_json["lmeval_batch_scaling"] = scaling

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        options = self.config.option
        if self.is_worker or any(getattr(options, name, False) for name in ("collectonly", "setuponly", "setupplan")):
            return  # nothing was measured
        # under xdist with no worker left to say what it collected, items that never reported are unknown
        unlisted = self.collected_ids and not self.maps_received and self.collected_ids - self.reported_ids
        self.finished = finish_run(self.run, self.settings,
                                   interrupted=exitstatus == pytest.ExitCode.INTERRUPTED or bool(unlisted))
        if self.finished.errors and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        if self.finished.nothing_measured and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a run that measured nothing must not pass
        records = list(self.finished.records.values())
        try:
            append_step_summary(records, self.run.figures(records), self.run.run_id, self.finished.paths,
                                self.finished.errors)
        except OSError as exc:
            self.finished.errors.append(f"could not append to ${STEP_SUMMARY_ENV}: {exc}")

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        done = self.finished
        if done is not None and done.nothing_measured:
            terminalreporter.section("lmeval-fixtures results")
            terminalreporter.line(done.nothing_measured, red=True)
        if done is None or (not done.paths and not done.errors and not done.warnings):
            return
        terminalreporter.section("lmeval-fixtures results")
        records = list(done.records.values())
        for line in render_text(records, self.run.figures(records)):
            terminalreporter.line(line)
        for line in notices(done.records):
            terminalreporter.line(line, yellow=True)
        terminalreporter.line("")
        for path in done.paths:
            relative = os.path.relpath(path)
            terminalreporter.line(relative if not relative.startswith("../..") else str(path))
        for warning in done.warnings:
            terminalreporter.line(warning, yellow=True)
        for error in done.errors:
            terminalreporter.line(error, red=True)


def notices(records: dict[str, dict[str, Any]]) -> list[str]:
    """What the results table alone would hide: items the result cache gave, timings that are noise."""
    lines = []
    for name, record in records.items():
        cached = cache_hits(record)
        if cached:
            lines.append(f"{name}: {len(cached)} item(s) from the result cache, not recomputed (--refresh "
                         f"recomputes): {', '.join(cached)}")
        lines += [f"{name}: {key} {why}" for key, why in noisy_timings(record).items()]
    return lines


def _warn_replaced_benchmark_options(config: pytest.Config) -> None:
    """A pytest-benchmark round option given on the command line would be silently ignored by
    the suite's items (they set their own rounds): say so, and name the option that works."""
    given = {arg.partition("=")[0] for arg in config.invocation_params.args if isinstance(arg, str)}
    for flag, instead in REPLACED_BENCHMARK_OPTIONS.items():
        if flag in given:
            config.issue_config_time_warning(pytest.PytestConfigWarning(
                f"{flag} does not apply to lmeval-fixtures' timed items; use {instead}"), stacklevel=2)


def _invocation_folder(config: pytest.Config) -> Path:
    """Where ``reports/`` goes by default and whose repository names the code: the folder pytest was
    started in. Not the rootdir: before the suite's options are known, pytest reads the value of
    ``--checkpoint /abs/x`` or ``--data-dir ../d`` as a path and guesses its rootdir from it (``/``,
    the data folder, ``..``), so the rootdir says nothing about where the user is."""
    return Path(config.invocation_params.dir)


def _suite_options(config: pytest.Config) -> SimpleNamespace:
    """This suite's option values by their plain ``dest`` (pytest stores them under ``lmeval_``)."""
    return SimpleNamespace(**{o.dest: getattr(config.option, DEST_PREFIX + o.dest, o.default) for o in OPTIONS})


def _source(plugin: Any, name: str | None) -> str:
    return str(getattr(plugin, "__file__", None) or name or plugin)


def _stop_like_ctrl_c(signum: int, frame: Any) -> None:
    """SIGTERM (timeout, a CI cancel, docker stop) ends the run as Ctrl-C does: what finished is
    written, and the record says ``complete: false``."""
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")


def _is_worker_crash(report: pytest.TestReport) -> bool:
    """xdist's report of an item whose worker died (``when`` is "???"), the only report made without the item."""
    return report.when not in ("setup", "call", "teardown")


def _checkpoint_of(item: pytest.Item) -> str:
    spec = getattr(item, "callspec", None) and item.callspec.params.get("checkpoint_spec")
    return spec.name if isinstance(spec, CheckpointSpec) else ""


def _estimated_cost(item: pytest.Item) -> float:
    params = getattr(item, "callspec", None) and item.callspec.params or {}
    task = params.get("smallbench_task")
    if task is not None and task.name in ITEM_COST:
        return ITEM_COST[task.name]
    if getattr(item, "originalname", "") == "test_batch_scaling":
        return ITEM_COST["batch_scaling"]
    for family in ("perplexity", "throughput", "latency"):
        if item.get_closest_marker(family):
            split = (params.get("perplexity_split") or (None, None))[1]
            return ITEM_COST[family] * (1.1 if split == "test" else 1.0)
    return 1.0


def _reason(report: pytest.TestReport) -> str | None:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(report.longrepr)
        return outcome_reason(text.strip().removeprefix("Failed: "))
    return None
