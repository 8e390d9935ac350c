"""The native checkpoint format: reading and checking it, and writing it.

A native checkpoint is ``.safetensors`` (config in the header) or ``.pt`` (a dict read with
``torch.load(weights_only=True)``), with its ``config.json``/tokenizer beside it. It is
untrusted input: every config field is type-checked and every tensor's dtype and shape is
checked against the config before the model is allocated, so a config that claims absurd
sizes is refused instead of exhausting memory. ``save_checkpoint`` writes the same format,
so every writer (tests, training and sweep scripts) agrees with the reader.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file
from tokenizers import Tokenizer

from ..core.errors import CheckpointError
from ..core.files import read_json_object_and_sha256, readable_by_umask
from .contract import REFUSED_PICKLE
from .discovery import HF_MARKERS
from .model import HEAD_KEY, ModelConfig, Transformer
from .tokenizer import TextTokenizer


def _config(raw: Any, source: Path) -> ModelConfig:
    """The native config in ``raw`` (config.json, or a .pt's "config"), every field checked.

    The Hugging Face markers are dropped first (see ``is_hf_folder``); any other key that
    is not a native field is refused with its name.
    """
    fix = "correct config.json" if source.name == "config.json" else "re-save the checkpoint with a corrected config"
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source}: the config must be a JSON object, got {type(raw).__name__}; {fix}")
    try:
        return ModelConfig.from_dict({k: v for k, v in raw.items() if k not in HF_MARKERS})
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: {exc}; {fix}") from None


def _check_dtypes(tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Refuse integer or boolean weights: loading copies them into float parameters without a
    word, so quantised or corrupt tensors would be scored as if they were the trained weights."""
    for key, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise CheckpointError(f"{source}: weight {key} has dtype {str(tensor.dtype).removeprefix('torch.')}, "
                                  "not a floating-point type; re-save the checkpoint with float weights")


def _expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    return config.stored_shapes()


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


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str], ModelConfig, dict[str, str]]:
    """Tensors, metadata and config of a .safetensors checkpoint, and the sha256 of the bytes each
    was built from (``sha256``, ``config_sha256``). The file is read into memory once and the
    tensors are made from those bytes, so the digest a record states is of the very weights
    scored, even when the file is replaced while it loads; the shapes in its header are checked
    against the config before any tensor is made."""
    config_raw, config_sha256 = read_json_object_and_sha256(
        path.parent / "config.json", CheckpointError, "checkpoint config",
        "a .safetensors checkpoint needs config.json beside it")
    config = _config(config_raw, path.parent / "config.json")
    try:
        raw = path.read_bytes()
        header = _safetensors_header(raw)
        _check_shapes({k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}, config, path)
        tensors = load_safetensors(raw)
        metadata = header.get("__metadata__") or {}
        _check_dtypes(tensors, path)
    except (SafetensorError, OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file ({message})") from None
    return tensors, metadata, config, {"sha256": hashlib.sha256(raw).hexdigest(), "config_sha256": config_sha256}


def _safetensors_header(raw: bytes) -> dict[str, Any]:
    """The JSON header of safetensors bytes (8 bytes of length, then the header); ValueError when
    it is not one. Read here because safetensors opens only files, not bytes, lazily."""
    if len(raw) < 8:
        raise ValueError("shorter than a safetensors header")
    size = int.from_bytes(raw[:8], "little")
    if size > len(raw) - 8:
        raise ValueError("header longer than the file")
    header = json.loads(raw[8:8 + size].decode("utf-8"))
    if not isinstance(header, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("shape"), list) for k, v in header.items()
            if k != "__metadata__"):
        raise ValueError("header is not a table of tensors")
    return header


def _first_sentence(exc: BaseException) -> str:
    """The first sentence of an error, at most 120 characters: enough to tell a truncated zip from
    a text file, without a library's paragraph of advice cut mid-sentence."""
    text = str(exc).strip()
    first = re.split(r"(?<=[.!?])\s", text.splitlines()[0])[0] if text else ""
    return first if len(first) <= 120 else first[:117] + "..."


def _refused_pickle(path: Path, exc: pickle.UnpicklingError) -> CheckpointError:
    """Our line for a pickle that weights-only loading refused. Never torch's message: cut to a
    line, it reads as advice to pass weights_only=False, which would run the pickle's code."""
    opcode = re.search(r"Unsupported operand (\d+)", str(exc))
    if opcode:  # bytes the weights-only unpickler cannot even parse: not torch.save's format
        return CheckpointError(f"{path}: not a PyTorch checkpoint (weights-only loading cannot read it: pickle "
                               f"opcode {opcode.group(1)}); re-save it with torch.save")
    return CheckpointError(f"{path}: {REFUSED_PICKLE}; re-save the weights with "
                           'torch.save({"config": config, "model": model.state_dict()})')


def _read_pt(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], ModelConfig, str | None, dict[str, str]]:
    """Tensors, metadata, config and embedded tokenizer of a .pt checkpoint, and the sha256 of the
    bytes they were read from (``sha256``): one read into memory, as ``_read_safetensors``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refused_pickle(path, exc) from None
    except Exception as exc:  # zip/pickle errors come in many types
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: {_first_sentence(exc)}); "
                              "pass a file written by torch.save or save_checkpoint") from None
    if not isinstance(payload, dict) or "config" not in payload or "model" not in payload:
        raise CheckpointError(f"{path}: expected a dict with 'config' and 'model' (a state_dict)")
    config = _config(payload["config"], path)
    state = payload["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: 'model' must be a state_dict of tensors")
    _check_shapes({k: tuple(v.shape) for k, v in state.items()}, config, path)
    _check_dtypes(state, path)
    metadata = {k: v for k, v in payload.items() if k not in ("config", "model", "tokenizer")
                and isinstance(v, (int, float, str, bool))}
    tokenizer_json = payload.get("tokenizer") if isinstance(payload.get("tokenizer"), str) else None
    return state, metadata, config, tokenizer_json, {"sha256": hashlib.sha256(raw).hexdigest()}


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
        readable_by_umask(path)
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    else:
        path = folder / f"{name}.pt"
        torch.save({"config": config, "model": state, **metadata}, path)
        readable_by_umask(path)
    if tokenizer is not None:
        backend = tokenizer._tokenizer if isinstance(tokenizer, TextTokenizer) else tokenizer
        backend.save(str(folder / "tokenizer.json"))
    return path
