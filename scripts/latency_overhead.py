"""The latency harness's overhead: the batch-1 latency the suite reports against a bare clock.

    python scripts/latency_overhead.py [--checkpoint ref-e35] [--repeats 5] [--rounds 20] [--warmup 3]

Run from the repository root (issue 15, item 1). For each checkpoint, three timers take
the same forward pass (``items.random_ids`` with the suite's seed, the same rounds and
warm-up rounds, the same shapes in the same order) in one process, in alternating blocks
so that drift of a shared machine falls on all of them:

- bare: ``time.perf_counter`` around ``model(ids)`` under ``torch.inference_mode()``, the
  device drained before each start and after each call (a no-op on the CPU); nothing else;
- suite: the real pytest item ``benchmarks/test_latency.py::test_latency`` run in-process
  with ``pytest.main`` (fixtures, ``items.latency``, ``ForwardTimer``, pytest-benchmark's
  ``pedantic``), its figures read from the metrics.json it writes; a large
  ``--timing-budget`` makes it take exactly ``--rounds`` rounds;
- api: ``timing.plain_forward_timer``, the library API's timer (``lmeval_fixtures.evaluate``).

The blocks go bare, suite, api, then api, suite, bare, and so on (the suite's block always
next to a bare one, each side in turn), after one discarded block of each. Printed per
checkpoint and shape: the median over repetitions of each timer's mean and median, and the
median of the paired ratios timer/bare (each block against the same repetition's bare). The
target for suite/bare is <= 1.02. No figure is asserted: the script fails only when a
measurement could not be taken (the pytest run failed, or wrote no timing).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lmeval_fixtures.engine.timing import RoundPolicy, device_sync, plain_forward_timer
from lmeval_fixtures.evaluation import items
from lmeval_fixtures.evaluation.options import default
from lmeval_fixtures.evaluation.settings import REFERENCE_DIR, parse_shapes
from lmeval_fixtures.models.discovery import CheckpointSpec, discover_checkpoints
from lmeval_fixtures.models.loading import LoadedCheckpoint, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
LATENCY_ITEM = "benchmarks/test_latency.py::test_latency"
TARGET = 1.02
TIMERS = ("bare", "suite", "api")
LABELS = {"bare": "bare perf_counter loop", "suite": "suite (pytest item)", "api": "library API timer"}
# seconds of --timing-budget: large enough that the suite takes --rounds rounds, not fewer
NO_BUDGET = "1000000"

Shape = tuple[int, int]
Figures = dict[Shape, tuple[float, float, int]]  # shape -> (mean ms, median ms, rounds)


class MeasurementFailed(RuntimeError):
    """A timing that could not be taken: the only reason this script exits non-zero."""


def checkpoint_path(value: str) -> Path:
    """A reference checkpoint's name (``ref-e35``) or a path."""
    reference = REFERENCE_DIR / value
    return reference if "/" not in value and reference.is_dir() else Path(value)


@torch.inference_mode()
def bare_timings(model: torch.nn.Module, ids: torch.Tensor, rounds: int, warmup: int) -> list[float]:
    """Seconds of each timed round: the least a timer must do (drain the device on CUDA)."""
    sync = device_sync(ids.device)
    for _ in range(warmup):
        model(ids)
        sync()
    seconds = []
    for _ in range(rounds):
        sync()
        start = time.perf_counter()
        model(ids)
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds


def bare_block(loaded: LoadedCheckpoint, shapes: list[Shape], args: argparse.Namespace) -> Figures:
    figures: Figures = {}
    for batch, seq in shapes:
        ids = items.random_ids(loaded, batch, seq, args.seed)
        ms = [s * 1000 for s in bare_timings(loaded.model, ids, args.rounds, args.warmup)]
        figures[batch, seq] = statistics.fmean(ms), statistics.median(ms), len(ms)
    return figures


def api_block(loaded: LoadedCheckpoint, shapes: list[Shape], args: argparse.Namespace) -> Figures:
    policy = RoundPolicy(args.rounds, args.warmup, float(NO_BUDGET))
    figures: Figures = {}
    for batch, seq in shapes:
        stats = plain_forward_timer(loaded.model, items.random_ids(loaded, batch, seq, args.seed), policy)
        figures[batch, seq] = stats["mean_ms"], stats["median_ms"], stats["rounds"]
    return figures


def suite_block(spec: CheckpointSpec, shapes: list[Shape], args: argparse.Namespace, report_dir: Path,
                run_id: str) -> Figures:
    """Runs the real latency item with ``pytest.main`` and reads the figures its metrics.json holds."""
    argv = [LATENCY_ITEM, "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
            "--checkpoint", str(spec.path), "--report-dir", str(report_dir), "--run-id", run_id,
            "--device", args.device, "--seed", str(args.seed), "--timing-budget", NO_BUDGET,
            "--latency-rounds", str(args.rounds), "--latency-warmup", str(args.warmup),
            "--latency-shapes", ",".join(f"{b}x{s}" for b, s in shapes)]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        code = pytest.main(argv)
    if args.show_pytest:
        print(output.getvalue())
    metrics = report_dir / run_id / spec.name / "metrics.json"
    if code != 0 or not metrics.is_file():
        raise MeasurementFailed(f"pytest {' '.join(argv)} exited {int(code)}"
                                f"{'' if metrics.is_file() else ', no ' + str(metrics)}:\n{output.getvalue()[-3000:]}")
    latency = json.loads(metrics.read_text()).get("latency") or {}
    figures: Figures = {}
    for batch, seq in shapes:
        entry = latency.get(f"{batch}x{seq}") or {}
        if entry.get("timing") != "taken":
            raise MeasurementFailed(f"{metrics}: latency {batch}x{seq} not taken ({entry.get('reason')})")
        figures[batch, seq] = entry["mean_ms"], entry["median_ms"], entry["rounds"]
    return figures


def measure(spec: CheckpointSpec, shapes: list[Shape], args: argparse.Namespace, report_dir: Path
            ) -> dict[str, list[Figures]]:
    """Every timer's figures, one entry per repetition, after one discarded block of each.

    Every block loads the checkpoint afresh, as each pytest run does, so that no timer keeps
    the luck (or bad luck) of one placement of the weights in memory."""
    blocks: dict[str, Callable[[int], Figures]] = {
        "bare": lambda rep: bare_block(load_checkpoint(spec, device=args.device), shapes, args),
        "suite": lambda rep: suite_block(spec, shapes, args, report_dir, f"overhead-{spec.name}-{rep}"),
        "api": lambda rep: api_block(load_checkpoint(spec, device=args.device), shapes, args),
    }
    taken: dict[str, list[Figures]] = {name: [] for name in TIMERS}
    for rep in range(-1, args.repeats):  # -1: the discarded warm block (imports, first kernels, file cache)
        order = TIMERS if rep % 2 == 0 else TIMERS[::-1]
        done = {name: blocks[name](rep) for name in order}
        if rep < 0:
            print(f"  {spec.name}: warm block done", flush=True)
            continue
        for name in TIMERS:
            taken[name].append(done[name])
        print(f"  {spec.name} repetition {rep + 1}/{args.repeats}: mean ms " + "; ".join(
            f"{b}x{s} " + ", ".join(f"{name} {done[name][b, s][0]:.3f}" for name in TIMERS) for b, s in shapes),
            flush=True)
    return taken


def table(name: str, shapes: list[Shape], taken: dict[str, list[Figures]]) -> list[list[str]]:
    rows = []
    for shape in shapes:
        bare = taken["bare"]
        for timer in TIMERS:
            runs = taken[timer]
            mean = statistics.median(f[shape][0] for f in runs)
            median = statistics.median(f[shape][1] for f in runs)
            mean_ratios = [f[shape][0] / b[shape][0] for f, b in zip(runs, bare, strict=True)]
            median_ratios = [f[shape][1] / b[shape][1] for f, b in zip(runs, bare, strict=True)]
            ratio = statistics.median(mean_ratios)
            verdict = "" if timer == "bare" else "ok" if ratio <= TARGET else f"above {TARGET}"
            rounds = sorted({f[shape][2] for f in runs})
            rows.append([name, "{}x{}".format(*shape), LABELS[timer], "/".join(map(str, rounds)), f"{mean:.3f}",
                         f"{median:.3f}", f"{ratio:.3f}", f"{min(mean_ratios):.3f}-{max(mean_ratios):.3f}",
                         f"{statistics.median(median_ratios):.3f}", verdict])
    return rows


def print_table(rows: list[list[str]]) -> None:
    header = ["checkpoint", "shape", "timer", "rounds", "mean ms", "median ms", "mean/bare", "(range)",
              "median/bare", f"target <= {TARGET}"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        cells = zip(row, widths, strict=True)
        print("  ".join(cell.ljust(w) if j < 3 else cell.rjust(w) for j, (cell, w) in enumerate(cells)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", metavar="NAME_OR_PATH",
                        help="a reference checkpoint's name (ref-e25, ref-e35, ref-e50) or a checkpoint path; "
                             "repeatable (default: ref-e35)")
    parser.add_argument("--shapes", default=default("latency_shapes"), help="BxS,... (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=default("latency_rounds"),
                        help="timed rounds per shape and block (default: %(default)s, the suite's --latency-rounds)")
    parser.add_argument("--warmup", type=int, default=default("latency_warmup"),
                        help="untimed rounds before them (default: %(default)s, the suite's --latency-warmup)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of each block (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=default("seed"), help="seed of the ids (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch threads for every timer (default: torch's own)")
    parser.add_argument("--show-pytest", action="store_true", help="print each pytest run's output")
    args = parser.parse_args()
    if args.rounds < 5 or args.repeats < 1 or args.warmup < 0:
        parser.error("--rounds must be >= 5 (the suite's least), --repeats >= 1, --warmup >= 0")
    shapes = parse_shapes(args.shapes, "--shapes")
    os.chdir(ROOT)  # the item's path and the rootdir (conftest.py loads the plugin) are the repository's
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = [discover_checkpoints([checkpoint_path(c)])[0] for c in args.checkpoint or ["ref-e35"]]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; {args.rounds} rounds "
          f"after {args.warmup} warm-up rounds per shape; {args.repeats} repetitions; blocks alternate "
          f"{', '.join(TIMERS)} / {', '.join(TIMERS[::-1])}", flush=True)
    rows = []
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="latency-overhead-") as tmp:
            for spec in specs:
                rows += table(spec.name, shapes, measure(spec, shapes, args, Path(tmp)))
    except MeasurementFailed as exc:
        print(f"measurement failed: {exc}", file=sys.stderr)
        return 1
    print(f"\nmedians over {args.repeats} repetitions ({time.perf_counter() - started:.0f} s); ratios are medians of "
          "the paired ratios timer/bare; (range): their least and greatest")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
