"""Where evaluation data comes from: ``--data-dir`` first, then the datasets hub.

Every file read is fingerprinted (sha256) so that a record says exactly what it
measured, and a gate can refuse to compare records made on different data.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from .corpora import split_wikitext_articles

DATA_DIR_ENV = "LMEVAL_DATA_DIR"
WIKITEXT_HUB = ("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1")


class DataUnavailable(Exception):
    """No local copy and no hub access: the items that need the data are skipped with this reason."""


class DataError(ValueError):
    """Data that exists but is unusable (bad encoding, bad rows); the message names the file."""


@dataclass
class DataSource:
    """What was read: a short description and a fingerprint per file (or hub dataset)."""

    description: str
    fingerprints: dict[str, str] = field(default_factory=dict)


def resolve_data_dir(option: str | None) -> Path | None:
    value = option or os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def read_text_file(path: Path) -> tuple[str, str]:
    """Text and sha256 of a UTF-8 file; undecodable bytes are an error, never replaced silently."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 (byte {exc.start}, line {line}); re-encode the file as UTF-8") from None
    return text, hashlib.sha256(raw).hexdigest()


def load_wikitext_articles(split: str, data_dir: Path | None) -> tuple[list[str], DataSource]:
    """WikiText-2 raw articles for ``validation`` or ``test``.

    Local layout: ``DIR/wikitext-2-raw/{split}.txt`` (the raw ``wiki.*.raw`` file).
    Without a data dir, the hub's document-level dataset, which groups articles the
    same way.
    """
    if data_dir is not None:
        path = data_dir / "wikitext-2-raw" / f"{split}.txt"
        if not path.is_file():
            raise DataUnavailable(f"{path} not found: --data-dir must hold wikitext-2-raw/{split}.txt "
                                  "(see README, 'Data layout')")
        text, sha = read_text_file(path)
        key = f"wikitext-2-raw/{split}.txt"
        return split_wikitext_articles(text), DataSource(str(path), {key: sha})
    return _hub_wikitext(split)


_HUB_FAILURE: list[str] = []  # once the hub has failed in this process, do not wait on it again


def _hub_wikitext(split: str) -> tuple[list[str], DataSource]:
    if _HUB_FAILURE:
        raise DataUnavailable(_HUB_FAILURE[0].format(split=split))
    try:
        import datasets

        dataset = datasets.load_dataset(*WIKITEXT_HUB, split=split)
    except Exception as exc:  # offline, missing library, hub errors: all mean "not available here"
        _HUB_FAILURE.append(
            "WikiText-2 {split} unavailable: no --data-dir / $" + DATA_DIR_ENV + " given and the hub failed "
            f"({type(exc).__name__}); pass --data-dir DIR holding wikitext-2-raw/{{split}}.txt"
        )
        raise DataUnavailable(_HUB_FAILURE[0].format(split=split)) from None
    name = f"hub:{WIKITEXT_HUB[0]}/{WIKITEXT_HUB[1]}/{split}"
    return list(dataset["page"]), DataSource(name, {name: dataset._fingerprint})
