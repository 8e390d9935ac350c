"""Finding and loading checkpoints, and the identity recorded for each.

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
import json
import math
import os
import pickle
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer

from .hf_models import HubModel, hub_snapshot, load_hf_folder, parse_hub_id
from .loaded import (  # importable from here too
    REFUSED_PICKLE,
    Allocation,
    CheckpointError,
    check_loaded,
    default_file_mode,
    require_regular,
    sha256_file,
)
from .model import HEAD_KEY, REQUIRED_FIELDS, ModelConfig, Transformer
from .tokenizer import TextTokenizer, TokenizerError

NATIVE_SUFFIXES = (".safetensors", ".pt")
GENERIC_STEMS = frozenset({"model", "pytorch_model", "checkpoint", "weights"})
HF_MARKERS = ("model_type", "architectures")  # what makes a config.json a Hugging Face one
DTYPES = MappingProxyType({"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16})


@dataclass(frozen=True)
class CheckpointSpec:
    """What the user pointed at, before anything is read: enough to name test ids.

    ``hub_id`` is set for a Hugging Face hub model (``owner/name[@revision]``, also in
    ``path`` as given): it is fetched when loaded, never at discovery, so that naming the
    run's checkpoints stays cheap and offline.
    """

    name: str
    path: Path
    hub_id: str | None = None


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


def resolved(path: Path) -> Path:
    """``path.resolve()``, or the plain absolute path where a symlink loop makes that fail: naming
    and caching must not stop a run that the loader will refuse with a reason."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def _base_and_folders(path: Path) -> tuple[str, list[str]]:
    """The name a checkpoint is known by on its own, and the folders above it, nearest first.

    The file stem, or the folder name for a folder; a generic stem (``model``) takes its
    folder's name instead, and ``.``, ``..`` or ``/`` the resolved folder's, so that every
    name is one valid path component (names become report folders).
    """
    absolute = resolved(path)
    base = path.stem if path.is_file() or path.suffix in NATIVE_SUFFIXES else path.name
    folders = [parent.name for parent in absolute.parents if parent.name]
    if base in ("", ".", ".."):
        base = absolute.name
    if base in GENERIC_STEMS and folders:
        base, folders = folders[0], folders[1:]
    return base or "root", folders


def checkpoint_name(path: Path) -> str:
    """Readable id of one checkpoint on its own: the file stem, or the folder name for generic
    stems like ``model`` (``checkpoint_names`` tells several apart)."""
    return _base_and_folders(path)[0]


def _name_chain(path: Path) -> list[str]:
    """Candidate names, each qualified by one more parent folder: ``a``, ``d1-a``, ``runs-d1-a``..."""
    base, folders = _base_and_folders(path)
    return [base] + ["-".join([*reversed(folders[:depth]), base]) for depth in range(1, len(folders) + 1)]


Entry = Path | HubModel  # what a checkpoint name is derived from: a local path or a hub model


def _chain_of(entry: Entry) -> list[str]:
    return entry.name_chain() if isinstance(entry, HubModel) else _name_chain(Path(entry))


def _format_of(entry: Entry) -> str:
    """The suffix that tells two files of one folder apart; a hub model has none."""
    return "" if isinstance(entry, HubModel) else Path(entry).suffix.lstrip(".")


def _collisions(names: Sequence[str]) -> list[list[int]]:
    """Indices that share a name, compared case-insensitively (report folders on macOS and Windows are)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, name in enumerate(names):
        groups[name.casefold()].append(index)
    return [members for _, members in sorted(groups.items()) if len(members) > 1]


def _climbers(members: list[int], chains: list[list[str]], levels: list[int]) -> list[int]:
    """Which of the colliding ``members`` take one more parent folder.

    A name already qualified yields to a simpler one (a plain stem never changes because of a
    derived name); equally qualified names all climb, unless climbing can never tell them
    apart (two files of one folder), which ``_settle`` resolves instead.
    """
    top = max(levels[i] for i in members)
    movable = [i for i in members if levels[i] == top and levels[i] + 1 < len(chains[i])]
    if any(levels[i] < top for i in members):
        return movable
    futures = {tuple(name.casefold() for name in chains[i][levels[i] + 1:]) for i in members}
    return movable if len(futures) > 1 else []


def _free(name: str, taken: set[str]) -> str:
    """``name``, or the first of ``name-2``, ``name-3``... that no other checkpoint has."""
    candidate, number = name, 1
    while candidate.casefold() in taken:
        number += 1
        candidate = f"{name}-{number}"
    taken.add(candidate.casefold())
    return candidate


def _settle(names: list[str], paths: Sequence[Entry], levels: list[int]) -> list[str]:
    """Names that parent folders could not tell apart. The least qualified keep priority; when
    several of them are files of one folder that differ by format, each takes its format
    (``a-pt``, ``a-safetensors``); otherwise the first in path order keeps the name. Every other
    one (the same path twice, a name derived up to the root) takes the first free ``-2``, ``-3``."""
    final = list(names)
    for members in _collisions(names):
        members.sort(key=lambda i: (levels[i], str(paths[i]), i))
        taken = {name.casefold() for i, name in enumerate(final) if i not in members}
        lowest = [i for i in members if levels[i] == levels[members[0]]]
        formats = [_format_of(paths[i]) for i in lowest]
        by_format = len(lowest) > 1 and all(formats) and len(set(formats)) == len(formats)
        for i in members:
            suffix = f"-{_format_of(paths[i])}" if by_format and i in lowest else ""
            final[i] = _free(names[i] + suffix, taken)
    return final


def checkpoint_names(paths: Sequence[Entry]) -> list[str]:
    """One distinct, stable name per path or hub model (test ids and report folders).

    Each checkpoint is named by ``checkpoint_name``; checkpoints that share a name are
    prefixed with as many parent folders as it takes to tell them apart (``d1/a.pt`` and
    ``d2/a.pt`` become ``d1-a`` and ``d2-a``), and a qualified name never takes one that
    another checkpoint has on its own. A hub model is named by its repository's name and
    qualified by its revision, then its owner (``pythia-14m``, ``pythia-14m-step1000``,
    ``EleutherAI-pythia-14m``). The names depend on the set of paths, not their order.
    """
    chains = [_chain_of(path) for path in paths]
    levels = [0] * len(chains)
    while True:
        current = [chain[level] for chain, level in zip(chains, levels, strict=True)]
        climbing = {i for members in _collisions(current) for i in _climbers(members, chains, levels)}
        if not climbing:
            return _settle(current, [p if isinstance(p, HubModel) else Path(p) for p in paths], levels)
        for i in climbing:
            levels[i] += 1


def _read_config_json(folder: Path) -> dict[str, Any] | None:
    """A folder's config.json as a dict, or None when absent, not a regular file, or not JSON."""
    config = folder / "config.json"
    if not config.is_file():
        return None
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return raw if isinstance(raw, dict) else None


def _non_native_keys(raw: dict[str, Any]) -> list[str]:
    return sorted(str(k) for k in raw if k not in ModelConfig.field_names() and k not in HF_MARKERS)


def is_native_config(raw: dict[str, Any]) -> bool:
    """A native config: the native fields (vocab_size, d_model, n_layers, n_heads), and no key
    but native fields and, optionally, the Hugging Face markers ``model_type``/``architectures``."""
    return all(name in raw for name in REQUIRED_FIELDS) and not _non_native_keys(raw)


def is_hf_folder(path: Path) -> bool:
    """A folder whose config.json is a Hugging Face one.

    The rule, the same wherever a folder or a file in it is passed: config.json names
    ``model_type`` or ``architectures`` AND is not a native config (``is_native_config``).
    A native config that carries those markers (some writers add them) stays native: its
    folder is a folder of native checkpoints, and the markers are ignored when loading.
    """
    raw = _read_config_json(path)
    return raw is not None and any(m in raw for m in HF_MARKERS) and not is_native_config(raw)


def _mixed_fields(folder: Path) -> list[str]:
    """For a Hugging Face folder whose config.json also has every native field and which holds a
    native weights file: the keys that stop it from being native. Empty for any other folder."""
    raw = _read_config_json(folder)
    if raw is None or not all(name in raw for name in REQUIRED_FIELDS) or not _native_files(folder):
        return []
    return _non_native_keys(raw)


def _native_files(folder: Path) -> list[Path]:
    """Native checkpoint files in ``folder``. Anything but a folder counts: a FIFO or a broken
    link named ``x.pt`` is then refused with a reason instead of vanishing from the run."""
    return sorted(p for p in folder.iterdir() if p.suffix in NATIVE_SUFFIXES and not p.is_dir())


def readable_by_umask(path: Path) -> None:
    """Give a written file the permissions ``open`` would (the writer may have made it private)."""
    os.chmod(path, default_file_mode())


def hub_model_of(value: str | Path) -> HubModel | None:
    """``value`` as a Hugging Face hub model, or None. A value that exists as a local path (a
    broken link included) is always that path; one that does not is a hub model when it has
    the shape of one (``hf_models.parse_hub_id``), and otherwise keeps its "no such file" error."""
    if os.path.lexists(value):
        return None
    return parse_hub_id(value)


def discover_checkpoints(paths: list[str | Path]) -> list[CheckpointSpec]:
    """Expand each path: a checkpoint file, a Hugging Face folder, or a folder of either
    (one level of sub-folders); or a Hugging Face hub model id (``hub_model_of``).

    Paths that do not exist are kept, so that their items fail with a reason
    rather than vanishing from the run. Names come from ``checkpoint_names``. Nothing is
    downloaded here: a hub model is named from its id and fetched when loaded.
    """
    found: list[Entry] = []
    for raw in paths:
        path = Path(raw)
        hub = hub_model_of(raw)
        if hub is not None:
            found.append(hub)
        elif is_hf_folder(path):
            found.append(path)
        elif path.is_dir():
            inside = _native_files(path)
            for sub in sorted(p for p in path.iterdir() if p.is_dir()):
                inside += [sub] if is_hf_folder(sub) else _native_files(sub)
            found.extend(inside or [path])
        else:
            found.append(path)
    unique: dict[Path | str, Entry] = {}  # the same file (or model id) named twice is evaluated once
    for entry in found:
        unique.setdefault(_identity_key(entry), entry)
    found = list(unique.values())
    return [_spec(name, entry) for name, entry in zip(checkpoint_names(found), found, strict=True)]


def _spec(name: str, entry: Entry) -> CheckpointSpec:
    if isinstance(entry, HubModel):
        return CheckpointSpec(name=name, path=Path(str(entry)), hub_id=str(entry))
    return CheckpointSpec(name=name, path=entry)


def _identity_key(path: Entry) -> Path | str:
    if isinstance(path, HubModel):
        return f"hub:{path}"
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: keep it apart, its items fail with a reason
        return path.absolute()


def _read_json(path: Path) -> dict[str, Any]:
    require_regular(path)
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


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str], ModelConfig]:
    config = _config(_read_json(path.parent / "config.json"), path.parent / "config.json")
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118
            _check_shapes(shapes, config, path)
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
            metadata = handle.metadata() or {}
        _check_dtypes(tensors, path)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file ({message})") from None
    return tensors, metadata, config


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


def _read_pt(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], ModelConfig, str | None]:
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
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
