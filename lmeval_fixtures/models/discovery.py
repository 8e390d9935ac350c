"""Which checkpoints a run evaluates and what each is called, decided before anything is loaded.

``--checkpoint`` takes files, folders (native or Hugging Face) and hub ids; discovery
turns them into ``CheckpointSpec``s with names that are unique in the run and stable
across runs (a file's stem, climbing to parent folders only where two names collide), so
report folders, history lines and baselines keep meaning the same checkpoint. Nothing
here reads weights or touches the network.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.names import name_from_file
from .hf_models import HubModel, parse_hub_id
from .model import REQUIRED_FIELDS, ModelConfig

NATIVE_SUFFIXES = (".safetensors", ".pt")
GENERIC_STEMS = frozenset({"model", "pytorch_model", "checkpoint", "weights"})
HF_MARKERS = ("model_type", "architectures")  # what makes a config.json a Hugging Face one


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
    name is one valid path component (names become report folders) with no character that acts
    rather than shows (``core.names.name_from_file``).
    """
    absolute = resolved(path)
    base = path.stem if path.is_file() or path.suffix in NATIVE_SUFFIXES else path.name
    folders = [parent.name for parent in absolute.parents if parent.name]
    if base in ("", ".", ".."):
        base = absolute.name
    if base in GENERIC_STEMS and folders:
        base, folders = folders[0], folders[1:]
    return name_from_file(base or "root"), [name_from_file(folder) for folder in folders]


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


def hub_model_of(value: str | Path) -> HubModel | None:
    """``value`` as a Hugging Face hub model, or None: the one rule of path against hub id.

    A value that exists as a local path (a broken link included) is always that path. One that
    does not is a hub model only when it has the shape of one (``hf_models.parse_hub_id``:
    ``OWNER/NAME[@REVISION]``) and cannot be a local path: its first part (``OWNER``) is not a
    folder here. So ``runs/step100`` beside a ``runs/`` folder is a mistyped path, never a model
    id; ``./x/y``, ``/x/y`` and ``~/x`` cannot have the hub's shape at all."""
    if os.path.lexists(value):
        return None
    hub = parse_hub_id(value)
    if hub is None or os.path.isdir(hub.owner):
        return None
    return hub


def checkpoint_problem(value: str | Path) -> str | None:
    """Why ``value`` cannot be a checkpoint at all (neither an existing path nor a hub model id), or
    None. Asked at start-up, so that a typo is one line before any report or history line is written."""
    if os.path.lexists(value) or hub_model_of(value) is not None:
        return None
    hub = parse_hub_id(value)
    if hub is not None:  # the shape of a hub id, but OWNER/ is a folder here: a path
        return f"{value}: no such file or folder ({hub.owner}/ is a folder here, so this names a path in it)"
    return f"{value}: no such file or folder"


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
