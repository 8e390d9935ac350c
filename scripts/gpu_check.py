"""The suite's GPU behaviour, checked on a CUDA machine (issue 15, item 6).

    python scripts/gpu_check.py [--checkpoint ref-e35] [--data-dir ../shared/data]
    python scripts/gpu_check.py --dry-run-cpu    # the same code on the CPU: catches script bugs, figures mean nothing

Run from the repository root. Without a CUDA device it prints "no CUDA device: nothing to
check" and exits 0. Each check runs on its own (an exception becomes its row, the others
still run) and the results are printed as one table:

1. sync: forward latency with the device drained around the clock (``timing.time_rounds``,
   as the suite times) against the clock read right after ``model(ids)`` returns (drained
   before each start only, untimed): on CUDA the second counts only the kernel launches, so
   it is much smaller, i.e. wrong, wherever the GPU's work outlasts the launching (bigger
   shapes, the bigger model); at launch-bound shapes the two can agree.
2. dtype: tokens/s of ``items.throughput`` (the suite's item body, batch halving included)
   in float32, bfloat16 and float16, each loaded with ``load_checkpoint(..., device="cuda",
   dtype=...)``, and the loss on the timed ids against float32's (a float16 overflow shows
   as a non-finite loss).
3. memory: ``timing.MemoryWatch`` peaks (allocated, reserved) of a latency and a throughput
   measurement: the peak must hold the weights and the logits, reserved >= allocated, and
   a small measurement after a big one must read less (the peak is reset at each start).
4. oom: ``items.throughput`` on a one-layer model with a wide vocabulary (``--wide``) at a
   batch whose logits alone need twice the GPU's memory: it must run out of memory, halve
   until a batch fits, note each halving, and leave no memory allocated behind;
   ``items.batch_scaling`` must stop cleanly at that batch. Where no real
   out-of-memory happens (a GPU too big, or --dry-run-cpu), a timer that raises
   ``torch.cuda.OutOfMemoryError`` above a batch size stands in, and the row says so.
5. pinning: ``pytest benchmarks -n 2 -m perplexity --device cuda --max-eval-tokens 2000``
   in a subprocess (``-m latency`` where --data-dir does not exist: those items load their
   checkpoint, then skip under xdist); which device each xdist worker used, read from each
   metrics.json (``environment.workers``, written by ``SuitePlugin._divide_resources``). On a one-GPU
   host both workers use cuda (cuda:0) by design: only a multi-GPU host gives each its own.

The random models (``--big``, default d_model 1024, 8 layers, context 2048, about 105M
parameters; ``--wide``) are written with ``save_checkpoint`` into a temporary folder and
loaded like any checkpoint. For the suite's own latency figure on CUDA against a bare
clock, run ``scripts/latency_overhead.py --device cuda``. No timing is asserted: the script exits 1
only when a check raised (ERROR) or a behaviour was wrong (FAIL).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lmeval_fixtures.engine.timing import RoundPolicy, device_sync, plain_forward_timer, time_rounds
from lmeval_fixtures.evaluation import items
from lmeval_fixtures.evaluation.options import option_values
from lmeval_fixtures.evaluation.settings import REFERENCE_DIR, Settings, settings_from_options
from lmeval_fixtures.models.discovery import discover_checkpoints
from lmeval_fixtures.models.loading import LoadedCheckpoint, load_checkpoint
from lmeval_fixtures.models.model import ModelConfig, Transformer
from lmeval_fixtures.models.native import save_checkpoint
from lmeval_fixtures.models.tokenizer import TextTokenizer

ROOT = Path(__file__).resolve().parents[1]
Row = list[str]  # check, subject, result, verdict
DTYPE_NAMES = ("float32", "bfloat16", "float16")
NO_BUDGET = math.inf


class Context:
    """What the checks share: the device, the models' paths (random ones written on first use), the options."""

    def __init__(self, args: argparse.Namespace, device: str, tmp: Path) -> None:
        self.args, self.device, self.tmp = args, device, tmp
        self.paths = {"small": checkpoint_path(args.checkpoint)}

    def config(self, which: str) -> ModelConfig:
        """``big``: a deeper, wider model whose GPU work outlasts its kernel launches; ``wide``: one
        layer and a wide vocabulary, whose logits fill memory at small batches while its compute
        stays cheap (and whose attention never sees a batch beyond CUDA's grid limits)."""
        if which == "big":
            d_model, layers, context = self.args.big
            return ModelConfig(vocab_size=4096, d_model=d_model, n_layers=layers, n_heads=max(1, d_model // 64),
                               max_seq_len=context)
        vocab, d_model, context = self.args.wide
        return ModelConfig(vocab_size=vocab, d_model=d_model, n_layers=1, n_heads=max(1, d_model // 32),
                           max_seq_len=context)

    def path(self, which: str) -> Path:
        """The reference checkpoint, or a random model written with ``save_checkpoint`` on first use."""
        if which not in self.paths:
            model = Transformer(self.config(which))
            model.init_weights(0)
            tokenizer = TextTokenizer.from_file(REFERENCE_DIR / "ref-e35" / "tokenizer.json")
            self.paths[which] = save_checkpoint(model, self.tmp / which, tokenizer)
        return self.paths[which]

    def load(self, which: str, dtype: str = "float32") -> LoadedCheckpoint:
        return load_checkpoint(discover_checkpoints([self.path(which)])[0], device=self.device, dtype=dtype)

    def settings(self, **given: Any) -> Settings:
        """The suite's settings from option values (the defaults, the device, then ``given``)."""
        values = option_values(device=self.device, timing_budget=self.args.budget, **given)
        return settings_from_options(values, [], None, ROOT)


def checkpoint_path(value: str) -> Path:
    reference = REFERENCE_DIR / value
    return reference if "/" not in value and reference.is_dir() else Path(value)


def plain_timer(model: torch.nn.Module, ids: torch.Tensor, policy: RoundPolicy) -> dict[str, Any]:
    """The library API's timer (``items.ForwardTimer``'s signature), for items run outside pytest."""
    return plain_forward_timer(model, ids, policy)


def mb(count: float) -> str:
    return f"{count / 2**20:,.0f} MB"


def weights_bytes(loaded: LoadedCheckpoint) -> int:
    return sum(p.numel() * p.element_size() for p in loaded.model.parameters())


def free(*loaded: LoadedCheckpoint) -> None:
    for one in loaded:
        one.model.to("meta")  # drops the weights even while other references to the model live on
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------- 1. synchronised timing

@torch.inference_mode()
def unsynchronised_ms(model: torch.nn.Module, ids: torch.Tensor, rounds: int, warmup: int) -> list[float]:
    """The clock read as soon as ``model(ids)`` returns: the device is drained before each start
    (untimed, as pytest-benchmark's set-up does) but not inside the timed call."""
    sync = device_sync(ids.device)
    for _ in range(warmup):
        model(ids)
    times = []
    for _ in range(rounds):
        sync()
        start = time.perf_counter()
        model(ids)
        times.append((time.perf_counter() - start) * 1000)
    sync()
    return times


def check_sync(ctx: Context) -> list[Row]:
    rows = []
    args = ctx.args
    for which, shapes in (("small", args.sync_shapes), ("big", args.big_sync_shapes)):
        loaded = ctx.load(which)
        try:
            for batch, seq in shapes:
                ids = items.random_ids(loaded, batch, seq, args.seed)
                policy = RoundPolicy(args.rounds, args.warmup, NO_BUDGET)
                forward = functools.partial(loaded.model, ids)
                with torch.inference_mode():
                    synced = statistics.median(t * 1000 for t in time_rounds(forward, ids.device, policy))
                unsynced = statistics.median(unsynchronised_ms(loaded.model, ids, args.rounds, args.warmup))
                ratio = unsynced / synced
                verdict = "ok" if ratio < 0.8 and ctx.device != "cpu" else "note"
                meaning = ("CPU: nothing queued, any gap is noise" if ctx.device == "cpu" else
                           "unsynchronised reads too low (launches only)" if ratio < 0.8 else
                           "no gap at this shape (launch-bound)")
                rows.append(["sync", f"{loaded.name} {batch}x{seq}",
                             f"median synchronised {synced:.3f} ms, unsynchronised {unsynced:.3f} ms "
                             f"(x{ratio:.2f}): {meaning}", verdict])
        finally:
            free(loaded)
    return rows


# ---------------------------------------------------------------------------- 2. dtypes

@torch.inference_mode()
def loss_on(loaded: LoadedCheckpoint, ids: torch.Tensor) -> float:
    logits = loaded.model(ids).float()
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).item()


def check_dtypes(ctx: Context) -> list[Row]:
    rows = []
    for which, shape in (("small", ctx.args.throughput_shape), ("big", ctx.args.big_throughput_shape)):
        settings = ctx.settings(throughput_shape=shape)
        base_rate = base_loss = None
        for dtype in DTYPE_NAMES:
            subject = f"{'reference' if which == 'small' else 'big'} {shape} {dtype}"
            try:
                loaded = ctx.load(which, dtype)
            except Exception as exc:  # a dtype this device cannot hold is a finding of its own row
                rows.append(["dtype", subject, f"error: {type(exc).__name__}: {first_line(exc)}", "ERROR"])
                continue
            try:
                fragment = items.throughput(loaded, settings, plain_timer).fragment["throughput"]
                loss = loss_on(loaded, items.random_ids(loaded, 4, min(256, loaded.max_seq_len), ctx.args.seed))
            except Exception as exc:
                rows.append(["dtype", subject, f"error: {type(exc).__name__}: {first_line(exc)}", "ERROR"])
                continue
            finally:
                free(loaded)
            rate = fragment["tokens_per_sec"]
            if dtype == "float32":
                base_rate, base_loss = rate, loss
            speed = f" (x{rate / base_rate:.2f} float32)" if base_rate and dtype != "float32" else ""
            drift = f", loss {loss:.4f} vs float32 {base_loss:.4f}" if base_loss is not None and dtype != "float32" \
                else f", loss {loss:.4f}"
            halved = f", batch {fragment['batch']} of {fragment['requested_batch']}" \
                if fragment["batch"] != fragment["requested_batch"] else ""
            verdict = "ok" if math.isfinite(loss) else "FAIL"
            rows.append(["dtype", subject, f"{rate:,.0f} tokens/s{speed}{drift}{halved}", verdict])
    return rows


# ---------------------------------------------------------------------------- 3. memory readings

def check_memory(ctx: Context) -> list[Row]:
    loaded = ctx.load("small")
    try:
        weights = weights_bytes(loaded)
        settings = ctx.settings(throughput_shape=ctx.args.throughput_shape)
        big = items.throughput(loaded, settings, plain_timer).fragment["throughput"]
        latency_result = items.latency(loaded, 1, min(512, loaded.max_seq_len), settings, plain_timer)
        latency_fragment, problems = latency_result.fragment, latency_result.problems
        small = next(iter(latency_fragment["latency"].values()))
    finally:
        free(loaded)
    rows = []
    if ctx.device == "cpu":
        for name, entry in (("throughput", big), ("latency", small)):
            rows.append(["memory", f"{loaded.name} {name}", f"peak RSS {entry['peak_rss_mb']:,.0f} MB "
                         f"({entry['peak_rss_scope']}); no CUDA readings on the CPU", "note"])
        return rows
    vocab = loaded.allocation.vocab_size
    logits = big["batch"] * big["seq"] * vocab * 4
    for name, entry, needed in (("throughput", big, weights + logits), ("latency", small, weights)):
        allocated, reserved = entry["memory_allocated_mb"] * 2**20, entry["memory_reserved_mb"] * 2**20
        wrong = [w for w, bad in ((f"allocated below weights+logits {mb(needed)}", allocated < needed),
                                  ("reserved below allocated", reserved < allocated)) if bad]
        rows.append(["memory", f"{loaded.name} {name} {entry['batch']}x{entry['seq']}",
                     f"peak allocated {mb(allocated)}, reserved {mb(reserved)} (weights {mb(weights)}"
                     + (f", logits {mb(logits)}" if name == "throughput" else "") + ")"
                     + ("; " + "; ".join(wrong) if wrong else ""), "FAIL" if wrong else "ok"])
    reset = small["memory_allocated_mb"] < big["memory_allocated_mb"]
    rows.append(["memory", "peak reset at each start", f"latency peak {small['memory_allocated_mb']:,.0f} MB after "
                 f"throughput peak {big['memory_allocated_mb']:,.0f} MB", "ok" if reset else "FAIL"])
    if problems:
        rows.append(["memory", "latency item problems", "; ".join(problems), "FAIL"])
    return rows


# ---------------------------------------------------------------------------- 4. out of memory

def simulated_oom_timer(limit: int) -> Callable[[torch.nn.Module, torch.Tensor, RoundPolicy], dict[str, Any]]:
    """A timer that runs out of memory, as CUDA would, for every batch above ``limit``."""

    def timer(model: torch.nn.Module, ids: torch.Tensor, policy: RoundPolicy) -> dict[str, Any]:
        if ids.shape[0] > limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated by gpu_check.py above batch {limit})")
        return plain_timer(model, ids, policy)

    return timer


def oom_batch(ctx: Context, loaded: LoadedCheckpoint, seq: int) -> int:
    """The smallest power-of-two batch whose float32 logits alone need twice the GPU's memory."""
    total = torch.cuda.get_device_properties(torch.device(ctx.device)).total_memory
    per_row = seq * loaded.allocation.vocab_size * 4
    return 2 ** math.ceil(math.log2(2 * total / per_row))


def check_oom(ctx: Context) -> list[Row]:
    loaded = ctx.load("wide")
    seq = loaded.max_seq_len
    rows = []
    try:
        weights = torch.cuda.memory_allocated(loaded.device) if ctx.device != "cpu" else 0
        real = ctx.device != "cpu"
        batch = oom_batch(ctx, loaded, seq) if real else 64
        settings = ctx.settings(throughput_shape=f"{batch}x{seq}", throughput_rounds=2)
        timer = plain_timer if real else simulated_oom_timer(8)
        fragment = items.throughput(loaded, settings, timer).fragment["throughput"]
        if fragment["batch"] == batch:  # nothing ran out of memory: stand in for CUDA
            real = False
            fragment = items.throughput(loaded, settings, simulated_oom_timer(batch // 8)).fragment["throughput"]
        left = torch.cuda.memory_allocated(loaded.device) - weights if ctx.device != "cpu" else 0
        halvings = len(fragment["notes"])
        ok = fragment["batch"] < batch and halvings == int(math.log2(batch // fragment["batch"])) and \
            fragment["tokens_per_sec"] > 0 and left < 2**20 * 64
        kind = "real out-of-memory" if real else "simulated out-of-memory (no real one here)"
        rows.append(["oom", f"{loaded.name} throughput {batch}x{seq}",
                     f"{kind}: timed at batch {fragment['batch']} after {halvings} halvings, "
                     f"{fragment['tokens_per_sec']:,.0f} tokens/s; left allocated after: {mb(left)}; "
                     f"first note: {fragment['notes'][0] if fragment['notes'] else 'none'}", "ok" if ok else "FAIL"])
        if real:
            sweep = ctx.settings(throughput_shape=f"{batch}x{seq}", throughput_rounds=2,
                                 batch_sweep=f"1,{fragment['batch']},{batch}")
            scaling_result = items.batch_scaling(loaded, sweep)
            scaling, problems = scaling_result.fragment, scaling_result.problems
            stopped = scaling["batch_scaling"]["stopped"]
            timed = [p["batch"] for p in scaling["batch_scaling"]["points"]]
            rows.append(["oom", f"{loaded.name} batch sweep 1,{fragment['batch']},{batch}",
                         f"timed {timed}; stopped: {stopped}", "ok" if stopped and timed and not problems else "FAIL"])
    finally:
        free(loaded)
    return rows


# ---------------------------------------------------------------------------- 5. worker pinning

def check_pinning(ctx: Context) -> list[Row]:
    """Without the data folder the latency items stand in: under xdist they load their checkpoint
    (recording the worker) and then skip, as timings are not taken there; the hub is never asked."""
    reports = ctx.tmp / "pinning"
    data = ctx.args.data_dir
    family = ["-m", "perplexity", "--max-eval-tokens", "2000", "--data-dir", str(data)] if data.is_dir() else [
        "-m", "latency"]
    command = [sys.executable, "-m", "pytest", "benchmarks", "-n", "2", "-q", *family,
               "--device", "cuda" if ctx.device != "cpu" else "cpu",
               "--report-dir", str(reports), "--run-id", "gpu-check-pinning"]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=ctx.args.pinning_timeout,
                          env=env)
    records = sorted((reports / "gpu-check-pinning").glob("*/metrics.json"))
    if done.returncode != 0 or not records:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        return [["pinning", f"pytest -n 2 {' '.join(family[:2])}",
                 f"exit {done.returncode}, {len(records)} records: {' | '.join(tail)}", "FAIL"]]
    rows, devices = [], {}
    for path in records:
        record = json.loads(path.read_text())
        workers = (record.get("environment") or {}).get("workers") or {}
        for wid, worker in sorted(workers.items()):
            devices.setdefault(wid, set()).add(worker.get("device"))
        rows.append(["pinning", f"{record['checkpoint']['name']} ({family[1]})", ", ".join(
            f"{wid} on {w.get('device')} ({w.get('threads')} threads)" for wid, w in sorted(workers.items()))
            or "no worker recorded", "ok" if workers else "FAIL"])
    gpus = torch.cuda.device_count() if ctx.device != "cpu" else 0
    used = {wid: sorted(d) for wid, d in devices.items()}
    if gpus > 1:
        distinct = len({d for ds in used.values() for d in ds}) == len(used) and all(len(d) == 1 for d in used.values())
        summary, verdict = f"{gpus} GPUs: each worker its own: {used}", "ok" if distinct else "FAIL"
    elif gpus == 1:
        summary, verdict = f"one GPU: both workers use it ({used}) by design", "ok"
    else:
        summary, verdict = f"CPU dry run: {used}", "note"
    rows.append(["pinning", "devices by worker", summary, verdict])
    return rows


# ---------------------------------------------------------------------------- the table

CHECKS: dict[str, Callable[[Context], list[Row]]] = {
    "sync": check_sync, "dtype": check_dtypes, "memory": check_memory, "oom": check_oom, "pinning": check_pinning}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


def print_table(rows: list[Row]) -> None:
    header = ["check", "subject", "result", "verdict"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for i, row in enumerate([header, *rows]):
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
        if i == 0:
            print("  ".join("-" * w for w in widths) + "  -------")


def shape(text: str) -> str:
    batch, _, seq = text.lower().partition("x")
    if not (batch.isdigit() and seq.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected BATCHxSEQUENCE")
    return text.lower()


def shapes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(n) for n in shape(part).split("x")) for part in text.split(",") if part.strip()]


def triple(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected three whole numbers, e.g. 1024,8,2048")
    return int(parts[0]), int(parts[1]), int(parts[2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="ref-e35", help="reference name or path (default: %(default)s)")
    parser.add_argument("--big", type=triple, default=(1024, 8, 2048), metavar="D_MODEL,LAYERS,CONTEXT",
                        help="the bigger random model of the sync and dtype checks (default: 1024,8,2048)")
    parser.add_argument("--wide", type=triple, default=(32768, 64, 2048), metavar="VOCAB,D_MODEL,CONTEXT",
                        help="the one-layer model of the out-of-memory check, timed at its context "
                             "(default: 32768,64,2048: 256 MiB of float32 logits per row)")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data",
                        help="for the pinning run, when it exists (default: ../shared/data)")
    parser.add_argument("--only", default=",".join(CHECKS), help="checks to run (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds of the sync check (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up rounds of the sync check (default: 3)")
    parser.add_argument("--sync-shapes", type=shapes, default=shapes("1x128,1x512,32x512"),
                        help="reference checkpoint shapes of the sync check (default: 1x128,1x512,32x512)")
    parser.add_argument("--big-sync-shapes", type=shapes, default=shapes("1x512,8x2048"),
                        help="bigger model shapes of the sync check (default: 1x512,8x2048)")
    parser.add_argument("--throughput-shape", type=shape, default="32x512", help="default: %(default)s")
    parser.add_argument("--big-throughput-shape", type=shape, default="16x2048", help="default: %(default)s")
    parser.add_argument("--budget", type=float, default=1.0, help="--timing-budget of the items (default: 1.0)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--pinning-timeout", type=int, default=600, help="seconds (default: %(default)s)")
    parser.add_argument("--dry-run-cpu", action="store_true",
                        help="run every check on the CPU with small models and shapes and a simulated "
                             "out-of-memory: proves the script runs; its figures mean nothing")
    args = parser.parse_args()
    unknown = set(args.only.split(",")) - CHECKS.keys()
    if unknown:
        parser.error(f"--only: unknown check(s) {', '.join(sorted(unknown))}; choose from {', '.join(CHECKS)}")
    if args.dry_run_cpu:
        device = "cpu"
        args.big, args.big_sync_shapes, args.big_throughput_shape = (256, 2, 512), [(1, 128)], "2x512"
        args.wide = (32768, 64, 128)
        args.sync_shapes, args.throughput_shape, args.rounds = [(1, 128)], "4x512", 5
    elif not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    else:
        device = "cuda"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (dry run: figures mean nothing)"
    print(f"torch {torch.__version__}, {name}, {torch.cuda.device_count()} CUDA device(s)", flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ctx = Context(args, device, Path(tmp))
        for check in args.only.split(","):
            started = time.perf_counter()
            try:
                found = CHECKS[check](ctx)
            except Exception as exc:  # one check's failure is its row; the others still run
                traceback.print_exc(file=sys.stderr)
                found = [[check, "-", f"error: {type(exc).__name__}: {first_line(exc)}", "ERROR"]]
            rows += found
            print(f"  {check}: done in {time.perf_counter() - started:.1f} s", flush=True)
    print()
    print_table(rows)
    return 1 if any(row[3] in ("FAIL", "ERROR") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
