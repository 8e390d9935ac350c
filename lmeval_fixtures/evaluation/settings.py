"""Run settings parsed from options: validated once at start-up, shared by every item.

Kept free of pytest so that scripts build the same object from their own arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from ..core.errors import UsageError
from ..core.files import output_folder_problem
from ..core.names import SHARDS_MOST, parse_shape_name, parse_shard, plain_name_problem, shape_name, whole_number
from ..engine.timing import RoundPolicy
from ..models.discovery import CheckpointSpec, checkpoint_problem, discover_checkpoints
from ..models.loading import DTYPES
from ..records.alike import METRIC_VERSION
from ..records.gates import GatePolicy
from ..records.store import run_folder_problem
from ..records.tracking import TrackSpec
from ..suite.corpus_option import CorpusSpec, parse_corpus
from ..suite.sources import DATA_DIR_ENV
from .options import AUTO, LARGEST_SHAPE, OPTIONS, default

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
# fewest timed rounds of a measurement, whatever --timing-budget says (enough for a spread)
LEAST_ROUNDS = MappingProxyType({"latency": 5, "throughput": 2})


@dataclass(frozen=True)
class Settings:
    """Validated option values; built only by ``settings_from_options`` (defaults live in ``OPTIONS``).

    Frozen once validated: what a run changes afterwards (a worker's device, the library's
    checkpoint names) it changes in a copy, ``dataclasses.replace``, before the run starts
    (``startup.start_run``)."""

    checkpoints: list[CheckpointSpec]
    data_dir: Path | None
    report_dir: Path
    device: str
    dtype: str
    seed: int
    max_eval_tokens: int | None
    ppl_stride: int | None
    detokenize: bool
    batch_tokens: int
    run_id: str | None
    experiment_name: str | None
    prompts: str
    max_samples: int | None
    fewshot: int
    baseline: Path | None
    ppl_tolerance: float
    acc_tolerance_se: float
    min_acc: float | None
    latency_shapes: list[tuple[int, int]]
    latency_rounds: int
    latency_warmup: int
    throughput_shape: tuple[int, int]
    throughput_rounds: int
    timing_budget: float
    merge_into: Path | None
    latency_tolerance: float
    shard: tuple[int, int] | None
    threads: int | None
    batch_sweep: list[int]
    log_samples: str | None
    compare_by: str
    strict_skips: bool
    update_baseline: Path | None
    cache_dir: Path | None = None
    gate: str = "threshold"
    gate_alpha: float = 0.05
    refresh: bool = False
    cache_max_mb: int = 2048
    allow_missing_baseline: bool = False
    extra: dict[str, object] = field(default_factory=dict)
    corpora: list[CorpusSpec] = field(default_factory=list)  # --corpus, parsed; declared into the registry
    task_files: list[Path] = field(default_factory=list)  # --task-file; read when the registry is built
    track: TrackSpec | None = None  # --track: the tracker each record is logged to at the end

    @property
    def latency_policy(self) -> RoundPolicy:
        return RoundPolicy(self.latency_rounds, self.latency_warmup, self.timing_budget, LEAST_ROUNDS["latency"])

    @property
    def throughput_policy(self) -> RoundPolicy:
        """Throughput and each batch size of the sweep: one warm-up round (a long one)."""
        return RoundPolicy(self.throughput_rounds, 1, self.timing_budget, LEAST_ROUNDS["throughput"], "throughput")

    @property
    def gate_policy(self) -> GatePolicy:
        return GatePolicy(self.ppl_tolerance, self.acc_tolerance_se, self.min_acc, self.latency_tolerance,
                          self.gate, self.gate_alpha)

    def as_record(self) -> dict[str, object]:
        """The settings that change figures, as recorded in every metrics.json."""
        return {
            "metric_version": METRIC_VERSION,
            "seed": self.seed, "max_eval_tokens": self.max_eval_tokens, "ppl_stride": self.ppl_stride,
            "detokenize": self.detokenize, "batch_tokens": self.batch_tokens,
            "data_dir": str(self.data_dir) if self.data_dir else None,
            "checkpoints": [spec.name for spec in self.checkpoints],
            "prompts": self.prompts, "max_samples": self.max_samples, "fewshot": self.fewshot,
            "baseline": str(self.baseline) if self.baseline else None, "ppl_tolerance": self.ppl_tolerance,
            "gate": self.gate, "gate_alpha": self.gate_alpha,
            "acc_tolerance_se": self.acc_tolerance_se, "min_acc": self.min_acc,
            "latency_shapes": [shape_name(b, s) for b, s in self.latency_shapes],
            "latency_rounds": self.latency_rounds, "latency_warmup": self.latency_warmup,
            "throughput_shape": shape_name(*self.throughput_shape), "throughput_rounds": self.throughput_rounds,
            "timing_budget": self.timing_budget,
            "latency_tolerance": self.latency_tolerance,
            "shard": "{}/{}".format(*self.shard) if self.shard else None,
            "batch_sweep": self.batch_sweep, "log_samples": self.log_samples,
            "device": self.device, "dtype": self.dtype,
        }


def resolve_device(requested: str) -> str:
    """``auto`` picks CUDA, else Apple's MPS, else the CPU; an unavailable device is a usage error."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "mps":
        if not _mps_available():
            raise UsageError("--device mps: Apple's Metal (MPS) backend is not available here (use --device cpu)")
        return "mps"
    if requested == "cuda" or requested.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {requested}: CUDA is not available on this machine (use --device cpu)")
        index = requested.partition(":")[2]
        number = whole_number(index)
        if index and (number is None or number >= torch.cuda.device_count()):
            raise UsageError(f"--device {requested}: no such GPU ({torch.cuda.device_count()} visible)")
        return requested
    raise UsageError(f"--device {requested}: expected cpu, cuda, cuda:N, mps or auto")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def check_dtype(dtype: str, device: str) -> str:
    if dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    if dtype == "float16" and device == "cpu":
        raise UsageError("--dtype float16 is not supported on CPU (use float32 or bfloat16)")
    return dtype


# --batch-tokens auto: where an accelerator starts halving (a million tokens), and what a CPU takes instead. On a
# CPU, running short of memory is rarely an exception torch can catch (the kernel stops the process), so
# "the largest that fits, found by trying" is only tried where an out-of-memory error is raised.
AUTO_BATCH_TOKENS = 1 << 20


def batch_tokens_for(value: int | str, device: str) -> int:
    """``--batch-tokens`` as a number for ``device`` (``auto``: see ``AUTO_BATCH_TOKENS``; a number was
    checked against its range by ``check_ranges``)."""
    if value == AUTO:
        return int(default("batch_tokens")) if device == "cpu" else AUTO_BATCH_TOKENS
    return int(value)


def check_ranges(option: Any) -> None:
    """Every numeric option within its documented range (``options.Range``), before anything uses it
    (``auto``, where an option takes it, is not a number to check)."""
    for declared in OPTIONS:
        value = getattr(option, declared.dest)
        if declared.bounds is not None and value != AUTO:
            declared.bounds.check(declared.flag, value)


def run_id(value: str | None) -> str | None:
    """One plain path component: a run id names a folder under --report-dir, never a path out of it."""
    problem = None if value is None else plain_name_problem(value, reserved=True)
    if problem:
        raise UsageError(f"--run-id {problem}; e.g. nightly-2026-11-27")
    return value


def data_dir(option: str | None, ini: str | None) -> Path | None:
    """A data folder named by --data-dir, the ini or $LMEVAL_DATA_DIR must be a folder: a typo
    would otherwise skip every item and let a gate pass on nothing."""
    environment = os.environ.get(DATA_DIR_ENV)
    for name, value in (("--data-dir", option), ("ini lmeval_data_dir", ini), (f"${DATA_DIR_ENV}", environment)):
        if value:
            path = Path(value).expanduser()
            if not path.is_dir():
                what = "is not a folder" if path.exists() else "does not exist"
                raise UsageError(f"{name} {value}: {what}; pass the folder that holds wikitext-2-raw/ and "
                                 "smallbench/ (README, 'Data layout'), or none to use the hub")
            return path
    return None


def baseline_target(value: str | None, report_dir: Path) -> Path | None:
    """--update-baseline NAME is reports/baselines/NAME; a value with a path separator is a path."""
    if value is None:
        return None
    if "/" in value or "\\" in value or value in (".", ".."):
        return Path(value)
    return report_dir / "baselines" / plain_name(value, "--update-baseline")


def plain_name(value: object, option: str) -> str:
    problem = plain_name_problem(value)
    if problem:
        raise UsageError(f"{option} {problem}")
    return value


def parse_shape(text: str, option: str) -> tuple[int, int]:
    """``BxS`` (batch x sequence) as a person types it (any case, spaces around) -> (B, S), read by
    the one shape-name rule (``core.names``), so an option names a shape exactly as a record keys it."""
    shape = parse_shape_name(text.strip().lower())
    if shape is None or min(shape) < 1 or max(shape) > LARGEST_SHAPE:
        raise UsageError(f"{option} {text!r}: expected BATCHxSEQUENCE, each from 1 to {LARGEST_SHAPE:,}, e.g. 1x128")
    return shape


def parse_shapes(text: str, option: str) -> list[tuple[int, int]]:
    shapes = [parse_shape(part, option) for part in text.split(",") if part.strip()]
    if not shapes:
        raise UsageError(f"{option}: give at least one BATCHxSEQUENCE shape")
    return list(dict.fromkeys(shapes))


def settings_from_options(option: Any, ini_checkpoints: list[str], ini_data_dir: str | None,
                          rootpath: Path, ini_corpora: list[str] | None = None,
                          ini_task_files: list[str] | None = None, ini_dir: Path | None = None,
                          ini_strict_skips: bool = False) -> Settings:
    """Validate every option once, at start-up; a bad value raises ``UsageError`` naming the option.
    ``ini_corpora`` and ``ini_task_files`` apply when the options are not given (as the ini's
    checkpoints do); their relative paths are relative to ``ini_dir``, the ini file's folder.
    ``ini_strict_skips`` (the ini's ``lmeval_strict_skips``) turns --strict-skips on too."""
    check_ranges(option)
    paths = option.checkpoint or ini_checkpoints or [str(REFERENCE_DIR)]
    for value in paths:
        problem = checkpoint_problem(value)
        if problem:
            raise UsageError(f"{'--checkpoint' if option.checkpoint else 'ini lmeval_checkpoints'} {problem}")
    device = resolve_device(option.device)
    report_dir = Path(option.report_dir) if option.report_dir else rootpath / "reports"
    for name, folder in (("--report-dir", report_dir), ("--cache-dir", option.cache_dir)):
        problem = folder and output_folder_problem(Path(folder))
        if problem:
            raise UsageError(f"{name} {problem}")
    return Settings(
        checkpoints=discover_checkpoints(paths),
        data_dir=data_dir(option.data_dir, ini_data_dir),
        report_dir=report_dir,
        device=device,
        dtype=check_dtype(option.dtype, device),
        seed=option.seed,
        max_eval_tokens=option.max_eval_tokens,
        ppl_stride=option.ppl_stride,
        detokenize=option.detokenize == "on",
        batch_tokens=batch_tokens_for(option.batch_tokens, device),
        run_id=run_id(option.run_id),
        experiment_name=option.experiment_name,
        prompts=option.prompts,
        max_samples=option.max_samples,
        fewshot=int(option.fewshot),
        baseline=_existing("--baseline", option.baseline),
        allow_missing_baseline=bool(option.allow_missing_baseline),
        ppl_tolerance=option.ppl_tolerance,
        acc_tolerance_se=option.acc_tolerance_se,
        min_acc=option.min_acc,
        latency_shapes=parse_shapes(option.latency_shapes, "--latency-shapes"),
        latency_rounds=int(option.latency_rounds),
        latency_warmup=int(option.latency_warmup),
        throughput_shape=parse_shape(option.throughput_shape, "--throughput-shape"),
        throughput_rounds=int(option.throughput_rounds),
        timing_budget=option.timing_budget,
        merge_into=_run_folder("--merge-into", option.merge_into),
        latency_tolerance=option.latency_tolerance,
        shard=_shard(option.shard),
        threads=option.threads,
        batch_sweep=_batch_sizes(option.batch_sweep),
        compare_by=option.compare_by,
        log_samples=option.log_samples,
        strict_skips=bool(option.strict_skips) or bool(ini_strict_skips),
        update_baseline=baseline_target(option.update_baseline, report_dir),
        cache_dir=None if option.no_cache else (Path(option.cache_dir) if option.cache_dir else report_dir / ".cache"),
        refresh=bool(option.refresh),
        gate=option.gate,
        gate_alpha=option.gate_alpha,
        cache_max_mb=int(option.cache_max_mb),
        corpora=_corpora(option.corpus, ini_corpora, ini_dir),
        task_files=_task_files(option.task_file, ini_task_files, ini_dir),
        track=TrackSpec.parse(option.track) if option.track else None,
    )


def _corpora(given: list[str] | None, ini: list[str] | None, ini_dir: Path | None) -> list[CorpusSpec]:
    """``--corpus`` values (paths relative to the working folder), else the ini's (relative to its folder)."""
    if given:
        return [parse_corpus(text, Path.cwd()) for text in given]
    return [parse_corpus(text, ini_dir or Path.cwd(), "ini lmeval_corpora") for text in ini or []]


def _task_files(given: list[str] | None, ini: list[str] | None, ini_dir: Path | None) -> list[Path]:
    """Each named task file must exist: a typo would otherwise drop a task from a gated run."""
    option, values, base = ("--task-file", given, Path.cwd()) if given else ("ini lmeval_task_files", ini or [],
                                                                              ini_dir or Path.cwd())
    paths = [base / Path(value).expanduser() for value in values]
    for value, path in zip(values, paths, strict=True):
        if not path.is_file():
            raise UsageError(f"{option} {value}: {'not a file' if path.exists() else 'no such file'}")
    return paths


def _batch_sizes(value: str) -> list[int]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    sizes = [whole_number(p) for p in parts]
    if not parts or not all(size is not None and 0 < size <= LARGEST_SHAPE for size in sizes):
        raise UsageError(f"--batch-sweep {value}: expected batch sizes from 1 to {LARGEST_SHAPE:,}, e.g. 1,4,16,64")
    return sorted(set(sizes))


def _shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    shard = parse_shard(value)
    if shard is None:
        raise UsageError(f"--shard {value}: expected I/N with 1 <= I <= N <= {SHARDS_MOST:,}, e.g. 2/4")
    return shard


def _run_folder(name: str, value: str | None) -> Path | None:
    folder = _existing(name, value)
    problem = folder and run_folder_problem(folder)
    if problem:
        raise UsageError(f"{name} {problem}")
    return folder


def _existing(name: str, value: str | None) -> Path | None:
    if value is None:
        return None
    if not Path(value).exists():
        raise UsageError(f"{name} {value}: no such file or folder")
    return Path(value)
