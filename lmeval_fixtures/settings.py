"""Run settings parsed from options: validated once at start-up, shared by every item.

Kept free of pytest so that scripts build the same object from their own arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import DTYPES, CheckpointSpec

REFERENCE_DIR = Path(__file__).parent / "reference"


class UsageError(ValueError):
    """An option value that cannot work; reported before any item runs."""


@dataclass
class Settings:
    checkpoints: list[CheckpointSpec]
    data_dir: Path | None = None
    report_dir: Path = Path("reports")
    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 1234
    max_eval_tokens: int | None = None
    ppl_stride: int | None = None
    detokenize: bool = True
    batch_tokens: int = 16384
    run_id: str | None = None
    experiment_name: str | None = None
    prompts: str = "smallbench"
    max_samples: int | None = None
    fewshot: int = 0
    baseline: Path | None = None
    ppl_tolerance: float = 0.01
    acc_tolerance_se: float = 2.0
    min_acc: float | None = None
    latency_shapes: list[tuple[int, int]] = field(default_factory=lambda: [(1, 128), (1, 512)])
    latency_rounds: int = 20
    latency_warmup: int = 3
    throughput_shape: tuple[int, int] = (32, 512)
    throughput_rounds: int = 5
    merge_into: Path | None = None
    latency_tolerance: float = 0.25
    shard: tuple[int, int] | None = None
    threads: int | None = None
    batch_sweep: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    compare_by: str = "val_bits_per_byte"
    extra: dict[str, object] = field(default_factory=dict)

    def as_record(self) -> dict[str, object]:
        """The settings that change figures, as recorded in every metrics.json."""
        return {
            "seed": self.seed, "max_eval_tokens": self.max_eval_tokens, "ppl_stride": self.ppl_stride,
            "detokenize": self.detokenize, "batch_tokens": self.batch_tokens,
            "data_dir": str(self.data_dir) if self.data_dir else None,
            "checkpoints": [spec.name for spec in self.checkpoints],
            "prompts": self.prompts, "max_samples": self.max_samples, "fewshot": self.fewshot,
            "baseline": str(self.baseline) if self.baseline else None, "ppl_tolerance": self.ppl_tolerance,
            "acc_tolerance_se": self.acc_tolerance_se, "min_acc": self.min_acc,
            "latency_shapes": [f"{b}x{s}" for b, s in self.latency_shapes],
            "latency_rounds": self.latency_rounds, "latency_warmup": self.latency_warmup,
            "throughput_shape": "{}x{}".format(*self.throughput_shape), "throughput_rounds": self.throughput_rounds,
            "latency_tolerance": self.latency_tolerance,
            "shard": "{}/{}".format(*self.shard) if self.shard else None,
            "batch_sweep": self.batch_sweep, "device": self.device, "dtype": self.dtype,
        }


def resolve_device(requested: str) -> str:
    """``auto`` picks CUDA when present; an unavailable device is a usage error."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {requested}: CUDA is not available on this machine (use --device cpu)")
        index = requested.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UsageError(f"--device {requested}: no such GPU ({torch.cuda.device_count()} visible)")
        return requested
    raise UsageError(f"--device {requested}: expected cpu, cuda, cuda:N or auto")


def check_dtype(dtype: str, device: str) -> str:
    if dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    if dtype == "float16" and device == "cpu":
        raise UsageError("--dtype float16 is not supported on CPU (use float32 or bfloat16)")
    return dtype


def positive_or_none(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value}")
    return value


def non_negative(name: str, value: float) -> float:
    if value < 0:
        raise UsageError(f"{name} must not be negative, got {value}")
    return value


def parse_shape(text: str, option: str) -> tuple[int, int]:
    """``BxS`` (batch x sequence) -> (B, S)."""
    batch, sep, seq = text.strip().lower().partition("x")
    if not sep or not batch.isdigit() or not seq.isdigit() or int(batch) < 1 or int(seq) < 1:
        raise UsageError(f"{option} {text!r}: expected BATCHxSEQUENCE, e.g. 1x128")
    return int(batch), int(seq)


def parse_shapes(text: str, option: str) -> list[tuple[int, int]]:
    shapes = [parse_shape(part, option) for part in text.split(",") if part.strip()]
    if not shapes:
        raise UsageError(f"{option}: give at least one BATCHxSEQUENCE shape")
    return list(dict.fromkeys(shapes))
