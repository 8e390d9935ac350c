"""A content-addressed cache of evaluation items' figures: the same inputs are never scored twice.

A key is the sha256 of everything that can change an item's figures: the weights'
digest, the tokenizer's fingerprint, the sha256 of the very texts or rows scored
(so a changed file, reader or detokenizer misses), the task's prompts, every
figure-changing setting, the context length, and ``METRIC_VERSION`` (bumped when a
figure's definition or computation changes). lm-evaluation-harness keys its cache
on a model's name, so its users get stale figures after retraining; a digest of the
weights cannot be stale.

Entries are JSON files written atomically (a temporary file renamed into place),
so xdist workers and concurrent runs can share a folder; an entry that does not
parse, whose payload digest does not match, or whose key material differs from the
one asked for is deleted and recomputed, never trusted. The folder is kept under
its size bound by removing the least recently used entries. Timings are never
cached: they describe the machine at the moment, not the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.files import write_atomic

METRIC_VERSION = "1"
ENTRY_FORMAT = 1


def digest(value: Any) -> str:
    """sha256 of a JSON-able value, independent of dict order."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


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


def item_key(item: str, *, weights: str | None, tokenizer: str, inputs: str, settings: dict[str, Any],
             **extra: Any) -> CacheKey | None:
    """The key of one evaluation item, or None when the weights have no digest (nothing to key on)."""
    if not weights:
        return None
    return CacheKey({"item": item, "weights": weights, "tokenizer": tokenizer, "inputs": inputs,
                     "settings": settings, "metric_version": METRIC_VERSION} | extra)


@dataclass
class Hit:
    fragment: dict[str, Any]
    run_id: str | None
    created: str


class ResultCache:
    """One cache folder. ``refresh``: recompute every item and overwrite its entry."""

    def __init__(self, folder: Path, max_bytes: int, *, refresh: bool = False, run_id: str | None = None) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.refresh = refresh
        self.run_id = run_id

    def _path(self, key: CacheKey) -> Path:
        name = key.hexdigest
        return self.folder / name[:2] / f"{name}.json"

    def get(self, key: CacheKey | None) -> Hit | None:
        if key is None or self.refresh:
            return None
        path = self._path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            valid = (isinstance(entry, dict) and entry.get("format") == ENTRY_FORMAT
                     and entry.get("key") == key.material and isinstance(entry.get("fragment"), dict)
                     and entry.get("payload_sha256") == digest(entry["fragment"]))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):  # the file's fault, never a figure's
            valid = False
        if not valid:  # corrupt, truncated or colliding: recomputed, never trusted
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: the last to be pruned
        return Hit(entry["fragment"], entry.get("run_id"), entry.get("created", ""))

    def put(self, key: CacheKey | None, fragment: dict[str, Any]) -> None:
        if key is None:
            return
        entry = {"format": ENTRY_FORMAT, "key": key.material, "run_id": self.run_id,
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "payload_sha256": digest(fragment), "fragment": fragment}
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(entry, ensure_ascii=False))
            self.prune()
        except OSError:  # a cache that cannot be written costs speed, never a figure
            return

    def prune(self) -> None:
        """Removes least recently used entries until the folder is within ``max_bytes``."""
        entries = []
        for path in self.folder.glob("*/*.json"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
