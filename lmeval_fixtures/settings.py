"""Run settings parsed from options: validated once at start-up, shared by every item.

Kept free of pytest so that scripts build the same object from their own arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoints import DTYPES, CheckpointSpec, discover_checkpoints
from .data import resolve_data_dir

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
    log_samples: str | None = None  # None, "full" or "hash"
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
            "batch_sweep": self.batch_sweep, "log_samples": self.log_samples,
            "device": self.device, "dtype": self.dtype,
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


def settings_from_options(option: Any, ini_checkpoints: list[str], ini_data_dir: str | None,
                          rootpath: Path) -> Settings:
    """Validate every option once, at start-up; a bad value raises ``UsageError`` naming the option."""
    paths = option.checkpoint or ini_checkpoints or [str(REFERENCE_DIR)]
    device = resolve_device(option.device)
    data_option = option.data_dir or ini_data_dir
    report_dir = Path(option.report_dir) if option.report_dir else rootpath / "reports"
    return Settings(
        checkpoints=discover_checkpoints(paths),
        data_dir=resolve_data_dir(data_option),
        report_dir=report_dir,
        device=device,
        dtype=check_dtype(option.dtype, device),
        seed=option.seed,
        max_eval_tokens=positive_or_none("--max-eval-tokens", option.max_eval_tokens),
        ppl_stride=positive_or_none("--ppl-stride", option.ppl_stride),
        detokenize=option.detokenize == "on",
        batch_tokens=positive_or_none("--batch-tokens", option.batch_tokens),
        run_id=option.run_id,
        experiment_name=option.experiment_name,
        prompts=option.prompts,
        max_samples=positive_or_none("--max-samples", option.max_samples),
        fewshot=non_negative("--fewshot", option.fewshot),
        baseline=_existing("--baseline", option.baseline),
        ppl_tolerance=non_negative("--ppl-tolerance", option.ppl_tolerance),
        acc_tolerance_se=non_negative("--acc-tolerance-se", option.acc_tolerance_se),
        min_acc=option.min_acc,
        latency_shapes=parse_shapes(option.latency_shapes, "--latency-shapes"),
        latency_rounds=int(positive_or_none("--latency-rounds", option.latency_rounds)),
        latency_warmup=int(non_negative("--latency-warmup", option.latency_warmup)),
        throughput_shape=parse_shape(option.throughput_shape, "--throughput-shape"),
        throughput_rounds=int(positive_or_none("--throughput-rounds", option.throughput_rounds)),
        merge_into=_existing("--merge-into", option.merge_into),
        latency_tolerance=non_negative("--latency-tolerance", option.latency_tolerance),
        shard=_shard(option.shard),
        threads=positive_or_none("--threads", option.threads),
        batch_sweep=_batch_sizes(option.batch_sweep),
        compare_by=option.compare_by,
        log_samples=option.log_samples,
    )


def _batch_sizes(value: str) -> list[int]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UsageError(f"--batch-sweep {value}: expected positive batch sizes, e.g. 1,4,16,64")
    return sorted({int(p) for p in parts})


def _shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    index, sep, count = value.partition("/")
    if not sep or not index.isdigit() or not count.isdigit() or not 1 <= int(index) <= int(count):
        raise UsageError(f"--shard {value}: expected I/N with 1 <= I <= N, e.g. 2/4")
    return int(index), int(count)


def _existing(name: str, value: str | None) -> Path | None:
    if value is None:
        return None
    if not Path(value).exists():
        raise UsageError(f"{name} {value}: no such file or folder")
    return Path(value)
