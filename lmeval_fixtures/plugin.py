"""pytest hooks only: options, parametrization, the xdist hand-over and session end.

Workers record fragments; the controller alone merges them and writes reports.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from .checkpoints import DTYPES, CheckpointSpec
from .comparison import LOWER_IS_BETTER_SORT, write_comparison
from .fixtures import (  # noqa: F401 (fixtures are found by being in the plugin's namespace)
    SESSION_KEY,
    LmevalSession,
    checkpoint,
    forward_timer,
    gates,
    lmeval,
    progress,
    record_metric,
    smallbench_data,
    timing_policy,
    wikitext,
)
from .history import append_history
from .metrics import RunRecorder, merge_records
from .report import headline, write_checkpoint_report
from .run_info import run_metadata
from .settings import Settings, UsageError, settings_from_options
from .tasks import PROMPT_SETS

MARKERS = {
    "perplexity": "WikiText-2 perplexity, bits per byte, word perplexity",
    "smallbench": "SmallBench accuracy (SST-2, RTE, BoolQ, MRPC) by log-likelihood",
    "latency": "batch-1 forward latency (pytest-benchmark)",
    "throughput": "tokens per second at a larger batch (pytest-benchmark)",
}
FRAGMENTS_PROPERTY = "lmeval_fragments"
REPORT_PATHS_KEY = pytest.StashKey[list[Path]]()
REPORT_ERRORS_KEY = pytest.StashKey[list[str]]()
HEADLINES_KEY = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lmeval-fixtures", "language-model checkpoint benchmarks")
    group.addoption("--checkpoint", action="append", default=[], metavar="PATH",
                    help="checkpoint file (.safetensors with config.json beside it, or .pt) or a folder of them; "
                         "repeatable. Default: the embedded reference checkpoints")
    group.addoption("--data-dir", metavar="DIR", help="local data in the layout of the README "
                    "(default: $LMEVAL_DATA_DIR, else the Hugging Face hub)")
    group.addoption("--report-dir", metavar="DIR", help="where reports/<run_id>/<checkpoint>/ go (default: reports)")
    group.addoption("--run-id", metavar="ID", help="name of this run's report folder (default: UTC time + random)")
    group.addoption("--experiment-name", metavar="NAME", help="recorded as experiment_name")
    group.addoption("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    group.addoption("--dtype", default="float32", choices=list(DTYPES), help="model dtype (default: float32)")
    group.addoption("--seed", type=int, default=1234, help="seed for anything sampled (default: 1234)")
    group.addoption("--max-eval-tokens", type=int, metavar="N",
                    help="score at most N tokens per perplexity split (a quick run; recorded)")
    group.addoption("--ppl-stride", type=int, metavar="N",
                    help="perplexity window stride (default: the context length, disjoint windows as "
                         "lm-evaluation-harness; smaller values give lower, non-comparable figures)")
    group.addoption("--detokenize", choices=["on", "off"], default="on",
                    help="apply the WikiText detokenizer before scoring (default: on, as lm-evaluation-harness)")
    group.addoption("--batch-tokens", type=int, default=16384, metavar="N",
                    help="token budget of one forward batch (default: 16384)")
    group.addoption("--prompts", choices=list(PROMPT_SETS), default="smallbench",
                    help="SmallBench prompt set: the house prompts or lm-evaluation-harness's (default: smallbench)")
    group.addoption("--max-samples", type=int, metavar="N", help="evaluate the first N rows of each task (recorded)")
    group.addoption("--fewshot", type=int, default=0, metavar="K",
                    help="K labelled examples from the train split before each row, drawn with --seed (default: 0)")
    group.addoption("--baseline", metavar="PATH", help="metrics.json, or a folder of <checkpoint>/metrics.json, "
                    "to gate against (a checkpoint without a baseline record is not gated)")
    group.addoption("--ppl-tolerance", type=float, default=0.01, metavar="REL",
                    help="allowed relative rise of perplexity and bits per byte over the baseline (default: 0.01)")
    group.addoption("--acc-tolerance-se", type=float, default=2.0, metavar="K",
                    help="allowed accuracy drop below the baseline, in standard errors (default: 2)")
    group.addoption("--min-acc", type=float, metavar="P", help="accuracy floor for every SmallBench task")
    group.addoption("--latency-shapes", default="1x128,1x512", metavar="BxS,...",
                    help="latency shapes, batch x sequence (default: 1x128,1x512)")
    group.addoption("--latency-rounds", type=int, default=20, metavar="N", help="timed rounds per shape (default: 20)")
    group.addoption("--latency-warmup", type=int, default=3, metavar="N", help="untimed warm-up rounds (default: 3)")
    group.addoption("--throughput-shape", default="32x512", metavar="BxS",
                    help="throughput batch x sequence; the batch is halved until it fits (default: 32x512)")
    group.addoption("--batch-sweep", default="1,4,16,64", metavar="B,...",
                    help="batch sizes of the batch-scaling item, at the throughput sequence length; it stops "
                         "at the first that does not fit (default: 1,4,16,64)")
    group.addoption("--throughput-rounds", type=int, default=5, metavar="N", help="timed rounds (default: 5)")
    group.addoption("--latency-tolerance", type=float, default=0.25, metavar="REL",
                    help="allowed relative rise of mean latency (and fall of throughput) against the baseline, "
                         "same device and dtype only (default: 0.25)")
    group.addoption("--threads", type=int, metavar="N",
                    help="intra-op CPU threads in every process (default: all cores, divided among xdist workers); "
                         "the same N for -n 0 and -n 2 gives bit-identical float sums")
    group.addoption("--shard", metavar="I/N", help="run only the I-th of N deterministic parts of the collected "
                    "items (1-based; join the parts with `lmeval-fixtures merge`)")
    group.addoption("--compare-by", default="val_bits_per_byte", choices=sorted(LOWER_IS_BETTER_SORT),
                    help="sort column of comparison.md (default: val_bits_per_byte)")
    group.addoption("--log-samples", nargs="?", const="full", choices=["full", "hash"], default=None,
                    help="write per-example records (samples-*.jsonl beside metrics.json); 'hash' keeps sha256 "
                         "of the texts instead of the texts (default: off)")
    group.addoption("--merge-into", metavar="RUN_DIR",
                    help="merge this run's records into an earlier run's report folder (reports/<run_id>), e.g. "
                         "timings taken with -p no:xdist after an -n auto run")
    parser.addini("lmeval_checkpoints", "checkpoints to evaluate when --checkpoint is not given", type="paths")
    parser.addini("lmeval_data_dir", "default for --data-dir")


def _build_settings(config: pytest.Config) -> Settings:
    return settings_from_options(
        config.option,
        ini_checkpoints=[str(p) for p in config.getini("lmeval_checkpoints")],
        ini_data_dir=config.getini("lmeval_data_dir") or None,
        rootpath=config.rootpath,
    )


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    try:
        settings = _build_settings(config)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    _divide_resources(config, settings)
    run = {} if _is_worker(config) else run_metadata(
        config.rootpath, settings.device, settings.dtype, settings.seed, settings.run_id,
        settings.experiment_name, settings.as_record())
    if run:
        run["args"] = list(config.invocation_params.args)
    config.stash[SESSION_KEY] = LmevalSession(settings, RunRecorder(run))


def _divide_resources(config: pytest.Config, settings: Settings) -> None:
    """Under xdist: each worker takes its share of the CPU threads and, on a multi-GPU host
    with ``--device cuda`` or ``auto``, its own GPU by worker number (``cuda:N`` is kept as given)."""
    workerinput = getattr(config, "workerinput", None)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    if workerinput is None:
        return
    workers = int(workerinput.get("workercount", 1))
    index = int(str(workerinput.get("workerid", "gw0")).removeprefix("gw") or 0)
    threads = settings.threads or max(1, (os.cpu_count() or 1) // workers)
    torch.set_num_threads(threads)
    if settings.device == "cuda" and torch.cuda.device_count() > 1:
        settings.device = f"cuda:{index % torch.cuda.device_count()}"
    settings.extra["worker"] = {"id": workerinput.get("workerid"), "workers": workers, "threads": threads,
                                "device": settings.device}


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "checkpoint_spec" in metafunc.fixturenames:
        specs = metafunc.config.stash[SESSION_KEY].settings.checkpoints
        metafunc.parametrize("checkpoint_spec", specs, ids=[s.name for s in specs], scope="session")
    if "latency_shape" in metafunc.fixturenames:
        shapes = metafunc.config.stash[SESSION_KEY].settings.latency_shapes
        metafunc.parametrize("latency_shape", shapes, ids=[f"{b}x{s}" for b, s in shapes])


# Relative cost of an item on a typical checkpoint (measured on the reference sweep: BoolQ and
# the perplexity splits take 10-15x as long as the other SmallBench tasks).
ITEM_COST = {"perplexity": 10.0, "boolq": 12.0, "throughput": 2.0}


def estimated_cost(item: pytest.Item) -> float:
    params = getattr(item, "callspec", None) and item.callspec.params or {}
    if params.get("task") in ITEM_COST:
        return ITEM_COST[params["task"]]
    for family in ("perplexity", "throughput"):
        if item.get_closest_marker(family):
            return ITEM_COST[family] * (1.1 if params.get("split") == "test" else 1.0)
    return 1.0


@pytest.hookimpl(specname="pytest_collection_modifyitems", trylast=True)
def pytest_collection_modifyitems_longest_first(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, hand out the longest items of each checkpoint first so that no worker is
    left with a long tail, while a checkpoint's items stay together (each worker loads it
    once and releases it when it moves on). Every worker collects and sorts identically,
    so the schedule stays consistent."""
    if _is_worker(config):
        first_seen: dict[str, int] = {}
        for item in items:
            first_seen.setdefault(_checkpoint_of(item), len(first_seen))
        items.sort(key=lambda it: (first_seen[_checkpoint_of(it)], -estimated_cost(it)))


def _checkpoint_of(item: pytest.Item) -> str:
    spec = getattr(item, "callspec", None) and item.callspec.params.get("checkpoint_spec")
    return spec.name if isinstance(spec, CheckpointSpec) else ""


@pytest.hookimpl(specname="pytest_collection_modifyitems", tryfirst=True)
def pytest_collection_modifyitems_shard(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep this shard's items; tag items with their checkpoint so outcomes reach the right record."""
    shard = config.stash[SESSION_KEY].settings.shard
    if shard is not None:
        # contiguous parts of the items ordered by (checkpoint, id): the same split in every process,
        # and a checkpoint's items mostly stay in one part, so it is loaded by few shards
        index, count = shard
        ordered = sorted(items, key=lambda it: (_checkpoint_of(it), it.nodeid))
        size = len(ordered) / count
        keep = {it.nodeid for it in ordered[round((index - 1) * size):round(index * size)]}
        deselected = [it for it in items if it.nodeid not in keep]
        items[:] = [it for it in items if it.nodeid in keep]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
    for item in items:
        spec = getattr(item, "callspec", None) and item.callspec.params.get("checkpoint_spec")
        if isinstance(spec, CheckpointSpec):
            item.user_properties.append(("lmeval_checkpoint", spec.name))


def _reason(report: pytest.TestReport) -> str | None:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(report.longrepr)
        text = text.strip().removeprefix("Failed: ")
        return text.splitlines()[0][:300] if text else None
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    session = _controller_session(getattr(report, "config", None))
    if session is None:
        return
    for key, value in report.user_properties:
        if key == FRAGMENTS_PROPERTY:
            session.recorder.absorb(value)
    # a report xdist makes for a crashed worker carries no properties: fall back on the id
    names = [value for key, value in report.user_properties if key == "lmeval_checkpoint"]
    names = names or [n for n in [_checkpoint_from_nodeid(session, report.nodeid)] if n]
    if not names:
        return
    outcomes = session.recorder.outcomes.get(names[0], {})
    previous = outcomes.get(report.nodeid)
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
    session.recorder.add_outcome(names[0], report.nodeid, outcome, _reason(report), duration)


_CONFIG: list[pytest.Config] = []


def _controller_session(config: pytest.Config | None) -> LmevalSession | None:
    config = config or (_CONFIG[0] if _CONFIG else None)
    if config is None or _is_worker(config):
        return None
    return config.stash.get(SESSION_KEY, None)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG[:] = [session.config]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Ship the fragments recorded during this phase with its report.

    Reports travel from xdist workers to the controller as each phase ends, so
    figures reach the controller even if a worker dies later; in a plain run the
    same path is taken within one process.
    """
    report = yield
    state = item.config.stash.get(SESSION_KEY, None)
    if state is not None and state.pending:
        report.user_properties.append((FRAGMENTS_PROPERTY, json.dumps(state.pending)))
        state.pending.clear()
    return report


def pytest_collection_finish(session: pytest.Session) -> None:
    state = _controller_session(session.config)
    if state is not None:
        for item in session.items:
            if _checkpoint_of(item):
                state.recorder.expect(_checkpoint_of(item), item.nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:  # noqa: ANN001 (xdist's WorkerController)
    """The controller learns what will run from the workers' collections, to list what never did."""
    state = _controller_session(node.config)
    if state is None:
        return
    for nodeid in ids:
        name = _checkpoint_from_nodeid(state, nodeid)
        if name:
            state.recorder.expect(name, nodeid)


def _checkpoint_from_nodeid(state: LmevalSession, nodeid: str) -> str | None:
    """The checkpoint id leads an item's parameters (it is parametrized first)."""
    params = nodeid.partition("[")[2].rstrip("]")
    names = sorted((spec.name for spec in state.settings.checkpoints), key=len, reverse=True)
    return next((n for n in names if params == n or params.startswith(n + "-")), None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    if _is_worker(config):
        return
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    paths: list[Path] = []
    errors: list[str] = []
    merge_into = state.settings.merge_into
    out = merge_into or state.settings.report_dir / state.recorder.run["run_id"]
    headlines: list[str] = []
    written_records: list[dict] = []
    samples_by_checkpoint: dict[str, dict] = {}
    records = state.recorder.records(interrupted=interrupted)
    for name, record in records.items():
        try:
            if merge_into is not None and (merge_into / name / "metrics.json").is_file():
                earlier = json.loads((merge_into / name / "metrics.json").read_text(encoding="utf-8"))
                record = merge_records(earlier, record)
            samples = state.recorder.samples(name)
            paths += write_checkpoint_report(record, out / name, comparison=len(records) > 1, samples=samples)
            samples_by_checkpoint[name] = samples
            headlines.append(headline(record))
            written_records.append(record)
        except (OSError, ValueError) as exc:  # RecordInvalid, RecordMergeError, bad JSON
            errors.append(f"lmeval-fixtures: could not write the report of {name} into {out / name}: {exc}")
    if len(written_records) > 1:
        try:
            paths += write_comparison(written_records, out, state.settings.compare_by, samples_by_checkpoint)
        except OSError as exc:
            errors.append(f"lmeval-fixtures: could not write {out / 'comparison.md'}: {exc}")
    if written_records and merge_into is None:
        history = state.settings.report_dir / "history.jsonl"
        try:
            append_history(history, written_records)
        except OSError as exc:
            errors.append(f"lmeval-fixtures: could not append to {history}: {exc}")
    config.stash[REPORT_PATHS_KEY] = paths
    config.stash[HEADLINES_KEY] = headlines
    config.stash[REPORT_ERRORS_KEY] = errors
    if errors and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:  # noqa: ANN001
    paths = config.stash.get(REPORT_PATHS_KEY, [])
    errors = config.stash.get(REPORT_ERRORS_KEY, [])
    if not paths and not errors:
        return
    terminalreporter.section("lmeval-fixtures reports")
    for line in config.stash.get(HEADLINES_KEY, []):
        terminalreporter.line(line)
    for path in paths:
        terminalreporter.line(os.path.relpath(path) if not Path(os.path.relpath(path)).is_absolute()
                                    and not os.path.relpath(path).startswith("../..") else str(path))
    for error in errors:
        terminalreporter.line(error, red=True)
