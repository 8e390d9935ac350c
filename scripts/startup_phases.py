"""The fixed cost of a run, phase by phase, and the plugin's cost in an unrelated project.

    python scripts/startup_phases.py [--runs 3] [--unrelated-runs 5] [--checkpoint ref-e25] [--data-dir ../shared/data]

Run from the repository root (issue 15, item 2).

1. Phases: ``pytest benchmarks -m perplexity -k validation --max-eval-tokens 512
   --checkpoint <ref-e25> --no-cache`` (one small item, computed every time unless
   ``--cache``; ``--data-dir ../shared/data`` when that folder exists, else the item skips
   for want of data and the data phase is that skip) runs
   ``--runs`` times in fresh processes, after one discarded run (file cache, byte code).
   This file is passed to each as a pytest plugin (``-p startup_phases``): it reads
   ``time.perf_counter()`` at hook points (configure first and last, collection, each
   item's set-up, call and teardown, each fixture's set-up, session finish, unconfigure,
   and an exit handler that runs after pytest's own cleanups); the parent reads the clock
   at launch and exit. To split what one hook does, the probe imports
   ``lmeval_fixtures.plugin`` itself as the initial conftests load, and torch and
   ``lmeval_fixtures.plugin.session`` at the start of configure (imports the run makes there
   anyway, now timed one by one), and times ``run_info.git_commit`` and
   ``run_info.environment`` through wrappers. Printed: the median of each phase and of the
   total wall time, and the phase in which each heavy module (torch, transformers,
   datasets, ...) was first seen in ``sys.modules``; transformers should never be, for
   native checkpoints.
2. Unrelated project: a temporary folder with one trivial test, ``pytest -q test_one.py``
   with and without ``-p lmeval_fixtures.plugin``, ``--unrelated-runs`` times each,
   alternating; printed: the median wall times, their difference, and which heavy modules
   each imported. ``python -c pass`` is timed alongside as the floor.

The measured processes inherit this environment (less PYTEST_ADDOPTS): where
PYTHONDONTWRITEBYTECODE is set, pytest compiles every module it rewrites anew in each run,
which most users do not pay; ``--write-bytecode`` unsets it for them. ``--gc-freeze`` is an
experiment: every measured process calls ``gc.freeze()`` at the end of configure and again
at the end of unconfigure, as the plugin could, to show what full garbage collections cost
once torch is loaded. For a
module-by-module breakdown of the import phases, run the same command under ``python -X
importtime -m pytest ...``. No figure is asserted: the script fails only when a run fails
(an exit status other than 0) or its probe wrote nothing.
"""

from __future__ import annotations

# This module is also the probe plugin that the measured pytest processes load with -p: its
# top-level imports are only those pytest has already made, so loading it costs next to nothing.
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import argparse

OUT_ENV = "STARTUP_PHASES_OUT"  # where the probe writes its readings
ATTRIBUTE_ENV = "STARTUP_PHASES_ATTRIBUTE"  # "1": pre-import and wrap, to split phases
GC_FREEZE_ENV = "STARTUP_PHASES_GC_FREEZE"  # "1": gc.freeze() at the end of configure (an experiment)
PROBE = "startup_phases"
HEAVY = ("lmeval_fixtures.plugin", "torch", "lmeval_fixtures.plugin.session", "lmeval_fixtures.evaluation.items",
         "safetensors",
         "tokenizers", "numpy", "jsonschema", "datasets", "huggingface_hub", "transformers", "pandas", "scipy",
         "matplotlib")

# ---------------------------------------------------------------------------- the probe (in the measured process)

_ANCHOR = (time.time(), time.perf_counter())  # wall clock (comparable with the parent's launch) and perf_counter
_MARKS: dict[str, float] = {"probe_import": _ANCHOR[1]}
_DURATIONS: dict[str, float] = {}
_FIRST_SEEN: dict[str, str] = {}  # heavy module -> the first mark at which it was in sys.modules
_ATTRIBUTE = os.environ.get(ATTRIBUTE_ENV) == "1"


def _note_modules(mark: str) -> None:
    for name in HEAVY:
        if name not in _FIRST_SEEN and name in sys.modules:
            _FIRST_SEEN[name] = mark


def _mark(name: str, *, last: bool = False) -> None:
    """Records the time of ``name`` (its first occurrence, or with ``last`` its latest)."""
    now = time.perf_counter()
    if last or name not in _MARKS:
        _MARKS[name] = now
    _note_modules(name)


def _add(name: str, seconds: float) -> None:
    _DURATIONS[name] = _DURATIONS.get(name, 0.0) + seconds


def _timed_import(name: str, label: str) -> None:
    """Imports ``name`` now, timed, unless something imported it already (then it is said)."""
    if name in sys.modules:
        _DURATIONS.setdefault(f"{label} (already imported)", 0.0)
        return
    start = time.perf_counter()
    try:
        __import__(name)
    except ImportError:
        return
    _add(label, time.perf_counter() - start)


def _timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _add(label, time.perf_counter() - start)

    return wrapper


_mark("probe_import")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    _mark("conftests_start")
    if _ATTRIBUTE:  # the root conftest.py would import it next (pytest_plugins): time that import alone
        _timed_import("lmeval_fixtures.plugin", "import lmeval_fixtures.plugin")
    try:
        return (yield)
    finally:
        _mark("conftests_end")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _mark("configure_start")
    if not _ATTRIBUTE or not config.pluginmanager.has_plugin("lmeval_fixtures.plugin"):
        return
    # the suite's pytest_configure imports these next; imported here they are timed one by one
    _timed_import("torch", "import torch")
    _timed_import("lmeval_fixtures.plugin.session", "import lmeval_fixtures.plugin.session (torch excluded)")
    from lmeval_fixtures.evaluation import run_info

    run_info.git_commit = _timed("git commit (run_info.git_commit)", run_info.git_commit)
    run_info.environment = _timed("environment and library versions (run_info.environment)",
                                  run_info.environment)


@pytest.hookimpl(trylast=True, specname="pytest_configure")
def pytest_configure_last(config: pytest.Config) -> None:
    if os.environ.get(GC_FREEZE_ENV) == "1":
        import gc

        gc.freeze()  # what the plugin could do once torch is in: full collections then skip those objects
    _mark("configure_end")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection(session: pytest.Session) -> Generator[None, None, None]:
    _mark("collection_start")
    try:
        return (yield)
    finally:
        _mark("collection_end")


def _phase_wrapper(phase: str) -> Callable[..., Any]:
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def wrapper(item: pytest.Item) -> Generator[None, None, None]:
        _mark("items_start")
        start = time.perf_counter()
        try:
            return (yield)
        finally:
            _add(f"item {phase}", time.perf_counter() - start)
            _mark("items_end", last=True)

    return wrapper


# pytest takes as hooks only module attributes named pytest_* (a second hookimpl of one hook
# takes another such name and ``specname``)
pytest_runtest_setup = _phase_wrapper("setup")
pytest_runtest_call = _phase_wrapper("call")
pytest_runtest_teardown = _phase_wrapper("teardown")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest) -> Generator[None, None, Any]:
    start = time.perf_counter()
    try:
        return (yield)
    finally:
        _add(f"fixture {fixturedef.argname}", time.perf_counter() - start)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    _mark("finish_start")
    try:
        return (yield)
    finally:
        _mark("finish_end")


@pytest.hookimpl(tryfirst=True, specname="pytest_sessionfinish")
def pytest_sessionfinish_first(session: pytest.Session) -> None:
    _mark("finish_impls_start")


@pytest.hookimpl(trylast=True, specname="pytest_sessionfinish")
def pytest_sessionfinish_last(session: pytest.Session) -> None:
    _mark("finish_impls_end")


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    _mark("unconfigure_start")


@pytest.hookimpl(trylast=True, specname="pytest_unconfigure")
def pytest_unconfigure_last(config: pytest.Config) -> None:
    if os.environ.get(GC_FREEZE_ENV) == "1":
        import gc

        gc.freeze()  # again: what was made since configure (items, reports, matplotlib) is skipped at exit too
    _mark("unconfigure_end")
    # registered last, so it runs first at exit: after pytest's own cleanups (config.add_cleanup),
    # before the interpreter's shutdown
    import atexit

    atexit.register(_write_reading)


def _write_reading() -> None:
    _mark("cleanup_end")
    out = os.environ.get(OUT_ENV)
    if out:
        Path(out).write_text(json.dumps({
            "anchor_wall": _ANCHOR[0], "anchor_perf": _ANCHOR[1], "marks": _MARKS, "durations": _DURATIONS,
            "first_seen": _FIRST_SEEN, "modules": len(sys.modules)}))


# ---------------------------------------------------------------------------- the parent (this script)

ROOT = Path(__file__).resolve().parents[1]
UNRELATED_TEST = "def test_one():\n    assert 1 + 1 == 2\n"
# (label, from mark, to mark): consecutive intervals that add up to the total wall time
TIMELINE = (
    ("python start + pytest import (to the -p plugins)", "launch", "probe_import"),
    ("entry-point plugins (pytest11: xdist, benchmark, ...), ini", "probe_import", "conftests_start"),
    ("initial conftests (conftest.py loads the plugin)", "conftests_start", "conftests_end"),
    ("argument parsing, pytest_cmdline_main", "conftests_end", "configure_start"),
    ("configure (every plugin's pytest_configure)", "configure_start", "configure_end"),
    ("session start", "configure_end", "collection_start"),
    ("collection (the test modules imported)", "collection_start", "collection_end"),
    ("items (set-up, call, teardown)", "collection_end", "items_end"),
    ("between the items and session finish", "items_end", "finish_start"),
    ("session finish", "finish_start", "finish_end"),
    ("unconfigure", "finish_end", "unconfigure_end"),
    ("pytest's cleanups (unraisableexception's gc.collect)", "unconfigure_end", "cleanup_end"),
    ("interpreter shutdown", "cleanup_end", "exit"),
)
# a module first seen at a mark was imported in the phase that ends there
MARK_PHASE = {end: label for label, _, end in TIMELINE} | {
    "items_start": "items (set-up, call, teardown)", "finish_impls_start": "session finish",
    "finish_impls_end": "session finish (reports)", "unconfigure_start": "unconfigure"}
CONFIGURE_PARTS = ("import torch", "import lmeval_fixtures.plugin.session (torch excluded)",
                   "git commit (run_info.git_commit)", "environment and library versions (run_info.environment)")


def phases(reading: dict[str, Any]) -> dict[str, float]:
    """Seconds of each phase of one run, in display order; a label indented by two spaces is a part
    of the phase above it."""
    offset = reading["anchor_wall"] - reading["launch_wall"] - reading["anchor_perf"]
    at = {name: value + offset for name, value in reading["marks"].items()} | {
        "launch": 0.0, "exit": reading["exit_wall"] - reading["launch_wall"]}
    took = reading["durations"]
    found: dict[str, float] = {}
    for label, start, end in TIMELINE:
        found[label] = at[end] - at[start] if start in at and end in at else float("nan")
        if start == "conftests_start" and "import lmeval_fixtures.plugin" in took:
            found["  import lmeval_fixtures.plugin"] = took["import lmeval_fixtures.plugin"]
        elif start == "configure_start":
            rest = found[label]
            for part in CONFIGURE_PARTS:
                if part in took:
                    found[f"  {part}"] = took[part]
                    rest -= took[part]
            found["  the rest: settings, registry, run, other plugins"] = rest
        elif start == "collection_end":
            setup = took.get("item setup", 0.0)
            checkpoint = took.get("fixture checkpoint", 0.0)
            data = took.get("fixture corpus_data", 0.0) + took.get("fixture task_data", 0.0)
            phases_sum = sum(took.get(f"item {p}", 0.0) for p in ("setup", "call", "teardown"))
            found["  checkpoint load (the checkpoint fixture)"] = checkpoint
            found["  data load + hashing (corpus_data, task_data)"] = data
            found["  other set-up (other fixtures, pytest)"] = setup - checkpoint - data
            found["  the item itself (call)"] = took.get("item call", 0.0)
            found["  teardown (the checkpoint released)"] = took.get("item teardown", 0.0)
            found["  between set-up, call and teardown (reports)"] = found[label] - phases_sum
        elif start == "finish_start" and "finish_impls_start" in at and "finish_impls_end" in at:
            impls = at["finish_impls_end"] - at["finish_impls_start"]
            found["  sessionfinish hooks (Run.finish writes the reports)"] = impls
            found["  terminal summary (every plugin's), the rest"] = found[label] - impls
    found["total wall time"] = at["exit"]
    return found


def launch(command: list[str], cwd: Path, env: dict[str, str], out: Path | None) -> dict[str, Any]:
    """Runs one process; its launch and exit wall times, and the probe's reading when ``out`` is given."""
    import subprocess

    if out is not None:
        out.unlink(missing_ok=True)
        env = env | {OUT_ENV: str(out)}
    launch_wall = time.time()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    exit_wall = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} (in {cwd}) exited {done.returncode}:\n"
                           f"{(done.stdout + done.stderr)[-3000:]}")
    reading: dict[str, Any] = {"launch_wall": launch_wall, "exit_wall": exit_wall}
    if out is not None:
        if not out.is_file():
            raise RuntimeError(f"{' '.join(command)}: the probe wrote nothing (was -p {PROBE} loaded?)")
        reading |= json.loads(out.read_text())
    return reading


def child_env(args: argparse.Namespace, attribute: bool) -> dict[str, str]:
    """This process's environment, without PYTEST_ADDOPTS, with the probe importable."""
    dropped = {"PYTEST_ADDOPTS"} | ({"PYTHONDONTWRITEBYTECODE"} if args.write_bytecode else set())
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    path = [str(Path(__file__).resolve().parent), str(ROOT), env.get("PYTHONPATH", "")]
    return env | {"PYTHONPATH": os.pathsep.join(p for p in path if p), ATTRIBUTE_ENV: "1" if attribute else "0",
                  GC_FREEZE_ENV: "1" if args.gc_freeze else "0"}


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        cells = zip(row, widths, strict=True)
        print("  ".join(cell.ljust(w) if j == 0 else cell.rjust(w) for j, (cell, w) in enumerate(cells)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def median_rows(runs: list[dict[str, float]]) -> list[list[str]]:
    """One row per phase: median, share of the median total, least and greatest."""
    import statistics

    total = statistics.median(r["total wall time"] for r in runs)
    rows = []
    for label in runs[0]:
        values = [r[label] for r in runs if label in r and r[label] == r[label]]  # NaN: mark missing
        if not values:
            rows.append([label, "-", "", ""])
            continue
        value = statistics.median(values)
        rows.append([label, f"{value:.3f}", f"{100 * value / total:.1f}%", f"{min(values):.3f}-{max(values):.3f}"])
    return rows


def item_phases(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """The probe's readings of ``args.runs`` runs of the small item (after one discarded)."""
    from lmeval_fixtures.evaluation.options import OPTIONS

    command = [sys.executable, "-m", "pytest", "-p", PROBE, "benchmarks", "-m", "perplexity", "-k", "validation",
               "--max-eval-tokens", str(args.max_eval_tokens), "--checkpoint", args.checkpoint,
               "--report-dir", str(tmp / "reports")]
    if args.data_dir.is_dir():
        command += ["--data-dir", str(args.data_dir)]
    if not args.cache and "--no-cache" in {option.flag for option in OPTIONS}:
        command.append("--no-cache")  # the second run would otherwise take the item's figures from the cache
    shown = [("python" if c == sys.executable else c) for c in command if c not in ("-p", PROBE)]
    print(f"item run: {' '.join(shown).replace(str(tmp), '<tmp>')}")
    print(f"{args.runs} measured runs after 1 discarded, each a fresh process", flush=True)
    readings = []
    for run in range(args.runs + 1):
        reading = launch(command, ROOT, child_env(args, attribute=True), tmp / "probe.json")
        if run:
            readings.append(reading)
    return readings


def unrelated_project(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, list[float]], dict[str, dict]]:
    """Wall times of a one-test project with and without the plugin (and of ``python -c pass``),
    alternating, and the heavy modules each pytest run had imported by its end."""
    project = tmp / "unrelated"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")  # the rootdir: nothing above it is read
    (project / "test_one.py").write_text(UNRELATED_TEST)
    base = [sys.executable, "-m", "pytest", "-q", "-p", PROBE, "-p", "no:cacheprovider"]
    variants = {"python -c pass": ([sys.executable, "-c", "pass"], False),
                "pytest -q test_one.py": ([*base, "test_one.py"], True),
                "pytest -q -p lmeval_fixtures.plugin test_one.py": ([*base, "-p", "lmeval_fixtures.plugin",
                                                                     "test_one.py"], True)}
    walls: dict[str, list[float]] = {name: [] for name in variants}
    seen: dict[str, dict] = {}
    for run in range(args.unrelated_runs + 1):
        for name in list(variants) if run % 2 == 0 else list(variants)[::-1]:
            command, probed = variants[name]
            reading = launch(command, project, child_env(args, attribute=False),
                             tmp / "probe.json" if probed else None)
            if run:
                walls[name].append(reading["exit_wall"] - reading["launch_wall"])
                if probed:
                    seen[name] = reading["first_seen"]
    leftovers = sorted(p.name for p in project.iterdir() if p.name not in ("pytest.ini", "test_one.py", "__pycache__"))
    if leftovers:  # pytest-benchmark makes .benchmarks/ in any project it is installed in
        print(f"note: the unrelated project's folder now also holds {', '.join(leftovers)}")
    return walls, seen


def main() -> int:
    import argparse
    import statistics
    import tempfile
    from importlib import metadata

    from lmeval_fixtures.evaluation.settings import REFERENCE_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="measured runs of the item (default: %(default)s)")
    parser.add_argument("--unrelated-runs", type=int, default=5,
                        help="runs of the unrelated project, with and without the plugin (default: %(default)s)")
    parser.add_argument("--checkpoint", default="ref-e25",
                        help="a reference checkpoint's name or a checkpoint path (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data",
                        help="passed when it exists (default: ../shared/data)")
    parser.add_argument("--max-eval-tokens", type=int, default=512, help="default: %(default)s")
    parser.add_argument("--cache", action="store_true",
                        help="let the result cache serve the item (a warm-cache run); by default --no-cache")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="an experiment: the probe calls gc.freeze() at the end of configure and of "
                             "unconfigure, as the plugin could, to show what it saves (pytest's cleanup collects "
                             "garbage 5 times at exit)")
    parser.add_argument("--write-bytecode", action="store_true",
                        help="unset PYTHONDONTWRITEBYTECODE for the measured processes, so that pytest caches the "
                             "modules it rewrites (as it does for most users)")
    args = parser.parse_args()
    if args.runs < 1 or args.unrelated_runs < 1:
        parser.error("--runs and --unrelated-runs must be >= 1")
    reference = REFERENCE_DIR / args.checkpoint
    args.checkpoint = str(reference if "/" not in args.checkpoint and reference.is_dir() else args.checkpoint)

    plugins = sorted({e.name for e in metadata.entry_points(group="pytest11")})
    print(f"python {sys.version.split()[0]}, pytest {pytest.__version__}; entry-point plugins: {', '.join(plugins)}")
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not args.write_bytecode:
        print("note: PYTHONDONTWRITEBYTECODE is set, so pytest compiles the modules it rewrites (test modules, "
              "conftest.py, plugins and their packages) anew in every run; --write-bytecode unsets it")
    if args.gc_freeze:
        print("experiment: every measured process calls gc.freeze() at the end of configure and of unconfigure")
    with tempfile.TemporaryDirectory(prefix="startup-phases-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            readings = item_phases(args, tmp)
            runs = [phases(r) for r in readings]
            print()
            print_table(["phase (indented: part of the phase above)", "median s", "share", "range"],
                        median_rows(runs))
            first = readings[-1]["first_seen"]
            print("\nheavy modules, the phase in which each was first seen in sys.modules (last run):")
            for name in HEAVY:
                print(f"  {name}: {MARK_PHASE.get(first[name], first[name]) if name in first else 'never imported'}")
            imported = [r["first_seen"].get("transformers") for r in readings]
            print(f"transformers imported in any run: {'no' if not any(imported) else 'YES'}; modules loaded at "
                  f"the end: {readings[-1]['modules']}")

            print(f"\nunrelated project (one trivial test, a pytest.ini), {args.unrelated_runs} runs of each after "
                  "1 discarded, alternating", flush=True)
            walls, seen = unrelated_project(args, tmp)
        except RuntimeError as exc:
            print(f"failed: {exc}", file=sys.stderr)
            return 1
    without = statistics.median(walls["pytest -q test_one.py"])
    rows = []
    for name, values in walls.items():
        value = statistics.median(values)
        heavy = [m for m in HEAVY if m in seen.get(name, {}) and not m.startswith("lmeval_fixtures")]
        rows.append([name, f"{value:.3f}", f"{value - without:+.3f}", f"{min(values):.3f}-{max(values):.3f}",
                     (", ".join(heavy) or "none") if name in seen else ""])
    print_table(["command", "median s", "vs without", "range", "heavy modules imported"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
