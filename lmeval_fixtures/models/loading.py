"""Loading a discovered checkpoint (native, Hugging Face folder or hub id), and the identity recorded for each.

A checkpoint is untrusted input: ``.pt`` files are read with
``torch.load(weights_only=True)`` only, and every shape is checked against the
config before the model is allocated, so a config that claims absurd sizes is
refused instead of exhausting memory; every config field is type-checked, and
a FIFO or device is refused before it is opened. Every failure is a
``CheckpointError`` whose one-line message names the file and says what to do.
``save_checkpoint`` writes the same format, so that every writer (tests, training
and sweep scripts) agrees with the loader.

A value that names no local path but has the shape of a Hugging Face hub model id
(``EleutherAI/pythia-14m``, ``owner/name@revision``) is that model: discovery names it
without touching the network, and loading fetches it into the Hugging Face cache
(``hf_models.hub_snapshot``) and loads the snapshot as a local Hugging Face folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from ..core.errors import CheckpointError, TokenizerError
from ..core.files import require_regular
from .contract import Allocation, check_loaded
from .discovery import (
    CheckpointSpec,
    _mixed_fields,
    _native_files,
    _spec,
    checkpoint_name,
    hub_model_of,
    is_hf_folder,
    resolved,
)
from .hf_models import HubModel, hub_snapshot, load_hf_folder, parse_hub_id
from .model import ModelConfig, Transformer
from .native import _read_pt, _read_safetensors, training_metadata
from .tokenizer import TextTokenizer

DTYPES = MappingProxyType({"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16})


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


def _as_spec(spec: CheckpointSpec | str | Path) -> CheckpointSpec:
    if isinstance(spec, CheckpointSpec):
        return spec
    hub = hub_model_of(spec)
    if hub is not None:
        return _spec(hub.name, hub)
    return CheckpointSpec(name=checkpoint_name(Path(spec)), path=Path(spec))


def _hub_model(spec: CheckpointSpec) -> HubModel | None:
    """The hub model a spec names: its ``hub_id``, or, for a spec built without one (a renamed
    copy), its path when that names no local file and has a model id's shape."""
    if spec.hub_id is not None:
        hub = parse_hub_id(spec.hub_id)
        if hub is None:
            raise CheckpointError(f"{spec.hub_id}: not a Hugging Face model id; pass owner/name or owner/name@revision")
        return hub
    return hub_model_of(spec.path)


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
        hub = spec.hub_id or (str(spec.path) if hub_model_of(spec.path) else None)
        return (f"hub:{hub}" if hub else str(resolved(spec.path))), device, dtype

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


def _load_hf(spec: CheckpointSpec, device: str, dtype: str) -> LoadedCheckpoint:
    """A Hugging Face folder; when it fails and the folder could have been native but for a few
    keys of its config.json, the message says so (the same story as ``_part_of_hf_folder``)."""
    path = spec.path
    try:
        model, tokenizer, allocation, identity = load_hf_folder(path, device, DTYPES[dtype])
    except CheckpointError as exc:
        mixed = _mixed_fields(path)
        if not mixed:
            raise
        hint = (f"; config.json also has every native field: remove {', '.join(map(repr, mixed[:3]))} "
                f"to load {_native_files(path)[0].name} as a native checkpoint")
        raise CheckpointError(f"{exc}{hint}") from None
    return LoadedCheckpoint(spec.name, path, model, tokenizer, None, allocation, {"name": spec.name} | identity)


def _load_hub(spec: CheckpointSpec, hub: HubModel, device: str, dtype: str) -> LoadedCheckpoint:
    """A hub model: its snapshot in the Hugging Face cache (fetched when missing), loaded as a
    Hugging Face folder. The identity adds the model id and the commit the snapshot holds, so a
    record says exactly which weights a moving branch such as ``main`` pointed at."""
    folder = hub_snapshot(hub)
    if not is_hf_folder(folder):
        raise CheckpointError(f"{hub}: {folder} is not a Hugging Face causal-LM folder (its config.json is missing "
                              "or not a Hugging Face one); pass a local checkpoint instead")
    try:
        loaded = _load_hf(replace(spec, path=folder, hub_id=None), device, dtype)
    except CheckpointError as exc:
        raise CheckpointError(f"{hub}: {exc}") from None
    loaded.identity |= {"hub_id": hub.repo_id, "revision": folder.name}
    return loaded


def _part_of_hf_folder(path: Path) -> CheckpointError:
    """A file inside a Hugging Face folder: point at the folder, and, for a config.json that is
    native but for a few keys, name them (removing them makes this file loadable)."""
    mixed = _mixed_fields(path.parent)
    if not mixed:
        return CheckpointError(f"{path}: part of a Hugging Face folder; pass the folder {path.parent} instead")
    return CheckpointError(f"{path}: {path.parent} is a Hugging Face folder (its config.json has model_type or "
                           f"architectures, and {', '.join(map(repr, mixed[:3]))}, which no native config has); "
                           f"pass the folder, or remove those keys to load this file as a native checkpoint")


def _load(spec: CheckpointSpec, device: str, dtype: str) -> LoadedCheckpoint:
    hub = _hub_model(spec)
    if hub is not None:
        return _load_hub(spec, hub, device, dtype)
    path = spec.path
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    require_regular(path)
    if is_hf_folder(path):
        return _load_hf(spec, device, dtype)
    if path.is_dir():
        inside = _native_files(path)
        if inside:
            raise CheckpointError(f"{path}: a folder of native checkpoints ({inside[0].name}"
                                  f"{', ...' if len(inside) > 1 else ''}); pass one of its files")
        raise CheckpointError(f"{path}: folder holds no .safetensors or .pt checkpoint "
                              "(nor a Hugging Face config.json)")
    if is_hf_folder(path.parent):
        raise _part_of_hf_folder(path)
    if path.suffix == ".safetensors":
        state, raw_meta, config, read = _read_safetensors(path)
        tokenizer_json = None
    elif path.suffix == ".pt":
        state, raw_meta, config, tokenizer_json, read = _read_pt(path)
    else:
        raise CheckpointError(f"{path}: not a checkpoint (expected .safetensors or .pt)")

    try:
        if tokenizer_json is not None:
            tokenizer = TextTokenizer.from_json(tokenizer_json, f"{path} (embedded tokenizer)", config.bos_token_id)
        else:
            tokenizer_path = path.parent / "tokenizer.json"
            if not tokenizer_path.exists():
                raise CheckpointError(f"{tokenizer_path}: missing (every checkpoint needs its tokenizer beside it)")
            tokenizer, read["tokenizer_file_sha256"] = TextTokenizer.from_file_and_sha256(tokenizer_path,
                                                                                        config.bos_token_id)
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
        **read,  # sha256 (weights), config_sha256, tokenizer_file_sha256: of the bytes loaded, read once
        "tokenizer_sha256": tokenizer.sha256,
        "tokenizer_adds_special_tokens": tokenizer.add_special_tokens,
        "config": config.to_dict() | {"d_ff": config.d_ff},
        "training": training_metadata(raw_meta),
    }
    return LoadedCheckpoint(spec.name, path, model, tokenizer, config, Allocation.of_native(config), identity)
