"""A content-addressed cache of evaluation items' figures: the same inputs are never scored twice.

A key is the digest of the measurement's one identity (``records.alike.measurement_identity``):
the bytes of weights, config and tokenizer the checkpoint was built from (each hashed in the one
read that loaded it), the digest of the item's inputs (declaration and data, by content), every
figure-changing setting, the context and the metric version. lm-evaluation-harness keys its
cache on a model's name, so its users get stale figures after retraining; a digest of the bytes
loaded cannot be stale.

The cache keeps only what it wrote and trusts no figure it cannot account for:

- It owns its folder: a new (or empty) folder gets a marker file (``MARKER``) with the first
  entry; a folder holding anything else without the marker, one owned by another user, or one
  other users may write into, is refused at start-up with one line (``CacheFolderRefused``), and
  nothing in it is read, written or pruned. Pruning removes only files named as entries are.
- An entry carries the full identity it answers (its key material); a hit must carry exactly
  the identity asked for, a payload digest that matches, and figures that agree with each other
  (``unaccounted``: loss, perplexities and bits per byte from the NLL sum; the per-document sums;
  accuracy from the counts and the per-row values). Anything else is deleted and recomputed. The
  payload digest only catches accidents: whoever can write the folder can forge a consistent
  entry, which is why the folder must be writable by its owner alone (docs/scale.md).

Entries are JSON files written atomically (a temporary file renamed into place), so xdist
workers and concurrent runs can share a folder. The folder is kept under its size bound by
removing the least recently used entries. Timings are never cached: they describe the machine
at the moment, not the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import UsageError
from ..core.files import JSON_OBJECT_LIMIT_BYTES, read_regular_bytes, write_atomic
from ..records.alike import METRIC_VERSION, value_sha256
from ..records.codecs import decode_per_document, decode_per_row

ENTRY_FORMAT = 2
MARKER = ".lmeval-result-cache"  # the file that says this folder is a result cache, made by one
ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.json")
SHARD_NAME = re.compile(r"[0-9a-f]{2}")
digest = value_sha256  # the one digest of a JSON-able value (``alike``), under its former name here
__all__ = ["METRIC_VERSION", "CacheFolderRefused", "CacheKey", "Hit", "ResultCache", "digest", "item_key",
           "texts_digest", "unaccounted"]


class CacheFolderRefused(UsageError):
    """A --cache-dir the cache did not create, or one other users can write into."""


def texts_digest(texts: list[str]) -> str:
    """sha256 of texts in order (length-prefixed, so no two lists share a digest)."""
    hasher = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        hasher.update(len(data).to_bytes(8, "little"))
        hasher.update(data)
    return hasher.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    material: dict[str, Any]

    @property
    def hexdigest(self) -> str:
        return digest(self.material)


def item_key(identity: dict[str, Any]) -> CacheKey | None:
    """The key of one measurement identity, or None when the checkpoint's weights have no digest
    (a model built in memory: nothing to key on)."""
    if not identity.get("checkpoint", {}).get("sha256"):
        return None
    return CacheKey(identity)


def _close(a: Any, b: float, tolerance: float = 1e-9) -> bool:
    if not isinstance(a, (int, float)) or isinstance(a, bool):
        return False
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def _perplexity_problem(where: str, entry: dict[str, Any]) -> str | None:
    nll, tokens, n_bytes = entry.get("nll_sum"), entry.get("tokens"), entry.get("bytes")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (nll, tokens, n_bytes)) \
            or tokens <= 0 or n_bytes <= 0:
        return f"{where}: no NLL sum, tokens and bytes to account for its figures"
    expected = {"loss": nll / tokens, "bits_per_byte": nll / (math.log(2) * n_bytes)}
    with contextlib.suppress(OverflowError):
        expected["token_perplexity"] = math.exp(nll / tokens)
        expected["byte_perplexity"] = math.exp(nll / n_bytes)
    for name, value in expected.items():
        if name in entry and not _close(entry[name], value):
            return f"{where}: {name} {entry[name]!r} does not follow from its NLL sum ({value:.6g})"
    documents = decode_per_document(entry)
    if documents is None:
        return f"{where}: its per-document values do not hold one value per document"
    if sum(d[1] for d in documents) != tokens or sum(d[2] for d in documents) != n_bytes \
            or not _close(sum(d[0] for d in documents), nll, 1e-4 * (len(documents) + 1)):
        return f"{where}: its per-document sums are not its totals"
    return None


def _task_problem(where: str, entry: dict[str, Any]) -> str | None:
    n = entry.get("n")
    if not isinstance(n, int) or n <= 0:
        return f"{where}: no row count to account for its accuracy"
    for figure, count in (("acc", "correct"), ("acc_norm", "correct_norm")):
        if figure in entry and not (isinstance(entry.get(count), int) and _close(entry[figure], entry[count] / n)):
            return f"{where}: {figure} {entry[figure]!r} is not {count}/n"
    rows = decode_per_row(entry)
    if rows is None or len(rows.correct) != n or sum(rows.correct) != entry.get("correct"):
        return f"{where}: its per-row values do not add up to its counts"
    return None


def unaccounted(fragment: dict[str, Any]) -> str | None:
    """Why a cached fragment's figures contradict each other (one line), or None when every
    perplexity entry (a dict with ``nll_sum``) and task entry (a dict with ``correct``) agrees
    with its own sums and counts. A forged or damaged entry rarely fixes every figure alike."""
    def walk(value: Any, path: str) -> str | None:
        if not isinstance(value, dict):
            return None
        if "nll_sum" in value:
            return _perplexity_problem(path, value)
        if "correct" in value and "n" in value:
            return _task_problem(path, value)
        for key, inner in value.items():
            found = walk(inner, f"{path}.{key}" if path else key)
            if found:
                return found
        return None

    return walk({k: v for k, v in fragment.items() if k not in ("data_fingerprints", "inputs_sha256")}, "")


@dataclass
class Hit:
    fragment: dict[str, Any]
    run_id: str | None
    created: str


def _is_entry(path: Path, folder: Path) -> bool:
    relative = path.relative_to(folder).parts
    return len(relative) == 2 and bool(SHARD_NAME.fullmatch(relative[0])) and bool(ENTRY_NAME.fullmatch(relative[1]))


def _written_by_a_cache(folder: Path) -> bool:
    """A folder of nothing but entries (``<2 hex>/<64 hex>.json``), as a cache without a marker
    wrote it: adopted. Any other file means the folder is someone's, not the cache's."""
    for entry in folder.iterdir():
        if entry.name == MARKER:  # another run made it a moment ago
            continue
        if not (entry.is_dir() and not entry.is_symlink() and SHARD_NAME.fullmatch(entry.name)):
            return False
        if not all(ENTRY_NAME.fullmatch(f.name) and f.is_file() and not f.is_symlink() for f in entry.iterdir()):
            return False
    return True


def claim_folder(folder: Path, *, create: bool = True) -> None:
    """Make ``folder`` the cache's (a new one, an empty one, or one of entries only gets the
    marker), or raise ``CacheFolderRefused`` saying why it must not be used: not a folder,
    another user's, writable by other users, or holding files the cache did not write.
    ``create=False``: only check a folder that exists (a run that stores nothing makes none)."""
    fix = "pass a new or empty folder to --cache-dir (or --no-cache)"
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise CacheFolderRefused(f"--cache-dir {folder}: not a folder; {fix}")
    if not folder.exists():
        if not create:
            return
        folder.mkdir(parents=True, mode=0o755)
    info = folder.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise CacheFolderRefused(f"--cache-dir {folder}: belongs to another user, whose entries this run would "
                                 f"trust; {fix}")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheFolderRefused(f"--cache-dir {folder}: other users may write into it (mode "
                                 f"{stat.S_IMODE(info.st_mode):o}) and so forge figures; chmod go-w {folder}, or {fix}")
    marker = folder / MARKER
    if marker.is_file() and not marker.is_symlink():
        return
    if not _written_by_a_cache(folder):
        held = sorted(p.name for p in folder.iterdir())[0]
        raise CacheFolderRefused(f"--cache-dir {folder}: not a result cache (no {MARKER} marker, and it holds "
                                 f"{held}); nothing in it was touched; {fix}")
    with contextlib.suppress(FileExistsError), open(marker, "x", encoding="utf-8") as handle:
        # made in place, not renamed into it: a run starting beside this one sees the marker or nothing
        handle.write(json.dumps({"format": ENTRY_FORMAT, "what": "lmeval-fixtures result cache"}) + "\n")


class ResultCache:
    """One cache folder: checked at construction (``claim_folder``: a folder that exists and is
    not the cache's is refused at start-up), made and marked when the first entry is stored.
    ``refresh``: recompute every item and overwrite its entry."""

    def __init__(self, folder: Path, max_bytes: int, *, refresh: bool = False, run_id: str | None = None) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.refresh = refresh
        self.run_id = run_id
        self._claimed = False
        claim_folder(self.folder, create=False)

    def _path(self, key: CacheKey) -> Path:
        name = key.hexdigest
        return self.folder / name[:2] / f"{name}.json"

    def get(self, key: CacheKey | None) -> Hit | None:
        if key is None or self.refresh:
            return None
        path = self._path(key)
        if not os.path.lexists(path):
            return None
        try:  # a special file or one over the bound is refused unread, never waited on
            entry = json.loads(read_regular_bytes(path, ValueError, "cache entry", JSON_OBJECT_LIMIT_BYTES))
            valid = (isinstance(entry, dict) and entry.get("format") == ENTRY_FORMAT
                     and entry.get("key") == key.material and isinstance(entry.get("fragment"), dict)
                     and entry.get("payload_sha256") == digest(entry["fragment"])
                     and unaccounted(entry["fragment"]) is None)
        except (OSError, ValueError):  # the file's fault, never a figure's (UnicodeDecodeError, JSONDecodeError)
            valid = False
        if not valid:  # corrupt, truncated, colliding or self-contradicting: recomputed, never trusted
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: the last to be pruned
        return Hit(entry["fragment"], entry.get("run_id"), entry.get("created", ""))

    def put(self, key: CacheKey | None, fragment: dict[str, Any]) -> None:
        if key is None or unaccounted(fragment) is not None:
            return
        entry = {"format": ENTRY_FORMAT, "key": key.material, "run_id": self.run_id,
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "payload_sha256": digest(fragment), "fragment": fragment}
        path = self._path(key)
        try:
            if not self._claimed:
                claim_folder(self.folder)
                self._claimed = True
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(entry, ensure_ascii=False))
            self.prune()
        except (OSError, CacheFolderRefused):  # a cache that cannot be written costs speed, never a figure
            return

    def prune(self) -> None:
        """Removes least recently used entries until the folder is within ``max_bytes``; only files
        named as entries are (``<2 hex>/<64 hex>.json``), never anything else in the folder."""
        entries = []
        for path in self.folder.glob("*/*.json"):
            if not _is_entry(path, self.folder) or path.is_symlink():
                continue
            with contextlib.suppress(OSError):
                info = path.stat()
                entries.append((info.st_mtime, info.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
