"""Finding and loading checkpoints, and the identity recorded for each.

A checkpoint is untrusted input: ``.pt`` files are read with
``torch.load(weights_only=True)`` only, and every shape is checked against the
config before the model is allocated, so a config that claims absurd sizes is
refused instead of exhausting memory. Every failure is a ``CheckpointError``
whose one-line message names the file. ``save_checkpoint`` writes the same
format, so that every writer (tests, training and sweep scripts) agrees with the loader.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer

from .hf_models import load_hf_folder
from .loaded import Allocation, CheckpointError, check_loaded, sha256_file  # importable from here too
from .model import HEAD_KEY, ModelConfig, Transformer
from .tokenizer import TextTokenizer, TokenizerError

NATIVE_SUFFIXES = (".safetensors", ".pt")
GENERIC_STEMS = frozenset({"model", "pytorch_model", "checkpoint", "weights"})
DTYPES = MappingProxyType({"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16})


@dataclass(frozen=True)
class CheckpointSpec:
    """What the user pointed at, before anything is read: enough to name test ids."""

    name: str
    path: Path


@dataclass
class LoadedCheckpoint:
    """A model ready to score. ``config`` is the native ``ModelConfig``, or None for a
    Hugging Face folder; ``allocation`` is what every record reports either way."""

    name: str
    path: Path
    model: torch.nn.Module
    tokenizer: TextTokenizer
    config: ModelConfig | None
    allocation: Allocation
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def max_seq_len(self) -> int:
        return self.allocation.max_seq_len

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def checkpoint_name(path: Path) -> str:
    """Readable id: the file stem, or the folder name for generic stems like ``model``."""
    stem = path.stem if path.is_file() or path.suffix in NATIVE_SUFFIXES else path.name
    if stem in GENERIC_STEMS:
        stem = path.resolve().parent.name
    return stem


def is_hf_folder(path: Path) -> bool:
    """A folder whose config.json names a Hugging Face ``model_type`` or ``architectures``
    (a native config.json has neither)."""
    config = path / "config.json"
    if not config.is_file():
        return False
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(raw, dict) and ("model_type" in raw or "architectures" in raw)


def _native_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in NATIVE_SUFFIXES and p.is_file())


def discover_checkpoints(paths: list[str | Path]) -> list[CheckpointSpec]:
    """Expand each path: a checkpoint file, a Hugging Face folder, or a folder of either
    (one level of sub-folders).

    Paths that do not exist are kept, so that their items fail with a reason
    rather than vanishing from the run. Duplicate names get a numeric suffix.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if is_hf_folder(path):
            found.append(path)
        elif path.is_dir():
            inside = _native_files(path)
            for sub in sorted(p for p in path.iterdir() if p.is_dir()):
                inside += [sub] if is_hf_folder(sub) else _native_files(sub)
            found.extend(inside or [path])
        else:
            found.append(path)
    specs: list[CheckpointSpec] = []
    seen: dict[str, int] = {}
    for path in found:
        name = checkpoint_name(path)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"
        specs.append(CheckpointSpec(name=name, path=path))
    return specs


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (a .safetensors checkpoint needs config.json beside it)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot parse JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def _config(raw: Any, source: Path) -> ModelConfig:
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source}: config must be a mapping, got {type(raw).__name__}")
    try:
        return ModelConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: bad config ({exc})") from None


def _expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        skeleton = Transformer(config)
    return {k: tuple(v.shape) for k, v in skeleton.stored_state_dict().items()}


def _check_shapes(found: dict[str, tuple[int, ...]], config: ModelConfig, source: Path) -> None:
    # Count first, from the config's arithmetic alone: a config claiming 10^12 parameters
    # (or 10^6 layers) is refused here, before any module, even on the meta device, is built.
    stored = sum(math.prod(shape) for key, shape in found.items() if config.stores(key))
    if stored != config.total_params:
        raise CheckpointError(f"{source}: config implies {config.total_params:,} parameters but the weights hold "
                              f"{stored:,}; config and weights do not belong together")
    expected = _expected_shapes(config)
    missing = sorted(expected.keys() - found.keys())
    extra = sorted(found.keys() - expected.keys() - {HEAD_KEY})  # a tied head stored anyway is ignored
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise CheckpointError(f"{source}: weights do not match the config ({detail})")
    for key, shape in expected.items():
        if found[key] != shape:
            raise CheckpointError(f"{source}: {key} has shape {list(found[key])}, config implies {list(shape)}")


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str], ModelConfig]:
    config = _config(_read_json(path.parent / "config.json"), path.parent / "config.json")
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118
            _check_shapes(shapes, config, path)
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file ({message})") from None
    return tensors, metadata, config


def _read_pt(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], ModelConfig, str | None]:
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: refused: holds objects that weights-only loading will not unpickle "
                              f"({first[:120]})") from None
    except Exception as exc:  # zip/pickle errors come in many types
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    if not isinstance(payload, dict) or "config" not in payload or "model" not in payload:
        raise CheckpointError(f"{path}: expected a dict with 'config' and 'model' (a state_dict)")
    config = _config(payload["config"], path)
    state = payload["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: 'model' must be a state_dict of tensors")
    _check_shapes({k: tuple(v.shape) for k, v in state.items()}, config, path)
    metadata = {k: v for k, v in payload.items() if k not in ("config", "model", "tokenizer")
                and isinstance(v, (int, float, str, bool))}
    tokenizer_json = payload.get("tokenizer") if isinstance(payload.get("tokenizer"), str) else None
    return state, metadata, config, tokenizer_json


def _number(value: Any) -> float | int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and "." not in str(value) else number


def training_metadata(raw: dict[str, Any]) -> dict[str, Any]:
    """Training facts stored with the weights (safetensors metadata is all strings)."""
    keys = ("train_loss", "held_out_loss", "step", "tokens_seen", "seed")
    return {k: _number(raw[k]) for k in keys if k in raw and _number(raw[k]) is not None}


def _as_spec(spec: CheckpointSpec | str | Path) -> CheckpointSpec:
    if isinstance(spec, CheckpointSpec):
        return spec
    return CheckpointSpec(name=checkpoint_name(Path(spec)), path=Path(spec))


def load_checkpoint(spec: CheckpointSpec | str | Path, device: str = "cpu", dtype: str = "float32") -> LoadedCheckpoint:
    """Read, check and build one checkpoint, every time it is called (``CheckpointCache`` shares one)."""
    return _load(_as_spec(spec), device, dtype)


class CheckpointCache:
    """Each checkpoint loaded once per (resolved path, device, dtype), until released.

    The items of one checkpoint share its model; a run releases it as it moves on to the
    next, so a sweep holds one model at a time. An object rather than a module-level dict,
    so that what is held, and for how long, belongs to whoever runs the sweep.
    """

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str, str], LoadedCheckpoint] = {}

    @staticmethod
    def _key(spec: CheckpointSpec, device: str, dtype: str) -> tuple[str, str, str]:
        return str(spec.path.resolve()), device, dtype

    def load(self, spec: CheckpointSpec | str | Path, device: str = "cpu", dtype: str = "float32") -> LoadedCheckpoint:
        spec = _as_spec(spec)
        key = self._key(spec, device, dtype)
        if key not in self._loaded:
            self._loaded[key] = _load(spec, device, dtype)
        return self._loaded[key]

    def release(self, spec: CheckpointSpec | str | Path, device: str = "cpu", dtype: str = "float32") -> None:
        """Forget one checkpoint and free its memory now (the caller drops its own references first)."""
        if self._loaded.pop(self._key(_as_spec(spec), device, dtype), None) is not None:
            _free_memory()

    def clear(self) -> None:
        """Forget every checkpoint (a worker moving on to other checkpoints)."""
        if self._loaded:
            self._loaded.clear()
            _free_memory()


def _free_memory() -> None:
    """Collect garbage now and hand freed heap pages back to the OS.

    The explicit collection matters: a model caught in a reference cycle would otherwise
    stay resident until the garbage collector happens to run, and a sweep of many
    checkpoints would grow by one model each. glibc keeps freed weights resident unless asked.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _load(spec: CheckpointSpec, device: str, dtype: str) -> LoadedCheckpoint:
    path = spec.path
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    if is_hf_folder(path):
        model, tokenizer, allocation, identity = load_hf_folder(path, device, DTYPES[dtype])
        return LoadedCheckpoint(spec.name, path, model, tokenizer, None, allocation, {"name": spec.name} | identity)
    if path.is_dir():
        raise CheckpointError(f"{path}: folder holds no .safetensors or .pt checkpoint "
                              "(nor a Hugging Face config.json)")
    if is_hf_folder(path.parent):
        raise CheckpointError(f"{path}: part of a Hugging Face folder; pass the folder {path.parent} instead")
    if path.suffix == ".safetensors":
        state, raw_meta, config = _read_safetensors(path)
        tokenizer_json = None
    elif path.suffix == ".pt":
        state, raw_meta, config, tokenizer_json = _read_pt(path)
    else:
        raise CheckpointError(f"{path}: not a checkpoint (expected .safetensors or .pt)")

    try:
        if tokenizer_json is not None:
            tokenizer = TextTokenizer.from_json(tokenizer_json, f"{path} (embedded tokenizer)", config.bos_token_id)
        else:
            tokenizer_path = path.parent / "tokenizer.json"
            if not tokenizer_path.exists():
                raise CheckpointError(f"{tokenizer_path}: missing (every checkpoint needs its tokenizer beside it)")
            tokenizer = TextTokenizer.from_file(tokenizer_path, config.bos_token_id)
    except TokenizerError as exc:
        raise CheckpointError(str(exc)) from None

    model = Transformer(config)
    model.load_stored_state_dict(state)
    model = model.to(device=device, dtype=DTYPES[dtype]).eval()
    check_loaded(path, model, tokenizer, config.vocab_size)

    identity = {
        "name": spec.name,
        "path": str(path),
        "format": path.suffix.lstrip("."),
        "sha256": sha256_file(path),
        "tokenizer_sha256": tokenizer.sha256,
        "config": config.to_dict() | {"d_ff": config.d_ff},
        "training": training_metadata(raw_meta),
    }
    return LoadedCheckpoint(spec.name, path, model, tokenizer, config, Allocation.of_native(config), identity)


def save_checkpoint(model: Transformer, folder: str | Path, tokenizer: Tokenizer | TextTokenizer | None = None, *,
                    name: str = "model", fmt: str = "safetensors", metadata: dict[str, Any] | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` as a native checkpoint in ``folder``; returns the weights path.

    The weights are ``Transformer.stored_state_dict`` (a tied head once), contiguous, cast
    to ``dtype`` when given. "safetensors": ``<name>.safetensors`` with ``metadata`` as
    strings (all the format holds) and config.json beside it; "pt": one ``torch.save`` of
    ``{"config", "model", **metadata}``. tokenizer.json goes beside either when a tokenizer
    is given. ``training_metadata`` reads back train_loss, held_out_loss, step, tokens_seen, seed.
    """
    if fmt not in ("safetensors", "pt"):
        raise ValueError(f"fmt must be 'safetensors' or 'pt', got {fmt!r}")
    metadata = metadata or {}
    reserved = metadata.keys() & {"config", "model", "tokenizer"}
    if reserved:
        raise ValueError(f"metadata keys {sorted(reserved)} would overwrite the checkpoint's own entries")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v if dtype is None else v.to(dtype)).contiguous() for k, v in model.stored_state_dict().items()}
    config = model.config.to_dict()
    if fmt == "safetensors":
        path = folder / f"{name}.safetensors"
        save_file(state, str(path), metadata={k: str(v) for k, v in metadata.items()} or None)
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    else:
        path = folder / f"{name}.pt"
        torch.save({"config": config, "model": state, **metadata}, path)
    if tokenizer is not None:
        backend = tokenizer._tokenizer if isinstance(tokenizer, TextTokenizer) else tokenizer
        backend.save(str(folder / "tokenizer.json"))
    return path
