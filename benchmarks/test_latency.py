"""Forward latency and throughput, timed with pytest-benchmark (DESIGN.md, "Latency").

Timed items never share the machine: under pytest-xdist they record that no
timing was taken and skip. Run them with ``-p no:xdist -m "latency or throughput"``.
"""

import pytest
import torch

from lmeval_fixtures.gates import latency_gates, throughput_gates
from lmeval_fixtures.timing import MemoryWatch, is_out_of_memory, summarise_ms, time_rounds


def random_ids(checkpoint, batch: int, seq: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, checkpoint.allocation.vocab_size, (batch, seq), generator=generator).to(checkpoint.device)


def check_context(checkpoint, seq: int) -> None:
    if seq > checkpoint.max_seq_len:
        pytest.skip(f"sequence {seq} exceeds {checkpoint.name}'s context of {checkpoint.max_seq_len}")


@pytest.mark.latency
def test_latency(checkpoint, latency_shape, forward_timer, record_metric, lmeval, gates):
    batch, seq = latency_shape
    key = f"{batch}x{seq}"
    why_not = forward_timer.unavailable()
    if why_not:
        record_metric(checkpoint, {"latency": {key: {"timing": "not taken", "reason": why_not}}})
        pytest.skip(why_not)
    check_context(checkpoint, seq)
    settings = lmeval.settings
    ids = random_ids(checkpoint, batch, seq, settings.seed)
    memory = MemoryWatch(checkpoint.device)
    memory.start()
    stats = forward_timer.time(checkpoint.model, ids, settings.latency_rounds, settings.latency_warmup)
    readings = memory.read()
    fragment = {"latency": {key: stats | {"timing": "taken", "batch": batch, "seq": seq} | readings}}
    if batch == 1 and seq in (128, 512):
        fragment[f"latency_batch1_seq{seq}"] = stats["mean_ms"]
    fragment.update({k: readings[k] for k in ("memory_allocated_mb", "memory_reserved_mb") if k in readings})
    record_metric(checkpoint, fragment)
    assert stats["rounds"] == settings.latency_rounds and stats["mean_ms"] > 0
    gates.enforce(checkpoint, latency_gates(key, stats, lmeval.environment, gates.baseline(checkpoint.name),
                                            settings.latency_tolerance))


@pytest.mark.throughput
def test_throughput(checkpoint, forward_timer, record_metric, lmeval, gates):
    settings = lmeval.settings
    requested, seq = settings.throughput_shape
    why_not = forward_timer.unavailable()
    if why_not:
        record_metric(checkpoint, {"throughput": {"timing": "not taken", "reason": why_not}})
        pytest.skip(why_not)
    check_context(checkpoint, seq)
    batch, notes = requested, []
    while True:
        memory = MemoryWatch(checkpoint.device)
        memory.start()
        try:
            ids = random_ids(checkpoint, batch, seq, settings.seed)
            stats = forward_timer.time(checkpoint.model, ids, settings.throughput_rounds, 1)
            break
        except Exception as exc:  # only running out of memory is handled; everything else fails the item
            if not is_out_of_memory(exc) or batch == 1:
                raise
            notes.append(f"batch {batch} did not fit ({type(exc).__name__}); halved")
            batch //= 2
            if checkpoint.device.type == "cuda":
                torch.cuda.empty_cache()
    tokens_per_second = batch * seq / (stats["mean_ms"] / 1000)
    readings = memory.read()
    record_metric(checkpoint, {
        "throughput_tokens_per_sec": tokens_per_second,
        "throughput": stats | readings | {"timing": "taken", "batch": batch, "requested_batch": requested, "seq": seq,
                                          "tokens_per_sec": tokens_per_second, "notes": notes},
    })
    assert tokens_per_second > 0
    gates.enforce(checkpoint, throughput_gates(tokens_per_second, lmeval.environment, gates.baseline(checkpoint.name),
                                               settings.latency_tolerance))


@pytest.mark.throughput
def test_batch_scaling(checkpoint, timing_policy, record_metric, lmeval):
    """Tokens per second for each batch size of --batch-sweep, stopping at the first that does not fit."""
    settings = lmeval.settings
    seq = settings.throughput_shape[1]
    why_not = timing_policy()
    if why_not:
        record_metric(checkpoint, {"batch_scaling": {"timing": "not taken", "reason": why_not}})
        pytest.skip(why_not)
    check_context(checkpoint, seq)
    points, stopped = [], None
    for batch in settings.batch_sweep:
        ids = random_ids(checkpoint, batch, seq, settings.seed)
        try:
            with torch.inference_mode():
                stats = summarise_ms(time_rounds(lambda ids=ids: checkpoint.model(ids), checkpoint.device,
                                                 settings.throughput_rounds, 1))
        except Exception as exc:  # only running out of memory ends the sweep cleanly
            if not is_out_of_memory(exc):
                raise
            stopped = f"batch {batch} did not fit ({type(exc).__name__})"
            break
        points.append({"batch": batch, "tokens_per_sec": batch * seq / (stats["mean_ms"] / 1000),
                       "mean_ms": stats["mean_ms"], "rounds": stats["rounds"]})
    record_metric(checkpoint, {"batch_scaling": {"timing": "taken", "seq": seq, "points": points,
                                                 "stopped": stopped}})
    assert points, stopped
