"""Perplexity corpora: how one is declared (``Corpus``) and how its splits are named in figure keys.

A declaration is all a corpus needs: its reader returns the ORIGINAL documents (bytes and
words are counted on them, as lm-evaluation-harness counts them), an optional detokenizer
makes the text the model sees. WikiText-2, the shipped corpus, is read in ``wikitext.py``
and declared in ``registry.py``; a scored document is ``engine.perplexity.Document``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..engine.perplexity import Document

if TYPE_CHECKING:
    from .sources import DataSource, Hub


# Short split names in figure keys (val_perplexity); other split names are used as they are.
SPLIT_PREFIX = MappingProxyType({"validation": "val", "test": "test", "train": "train"})


Reader = Callable[[str, "Path | None", "Hub"], "tuple[list[str], DataSource]"]


@dataclass(frozen=True)
class Corpus:
    """A perplexity corpus, declared once: the items, the record, summary.md,
    comparison.md, gates and history follow from this declaration.

    ``read(split, data_dir, hub)`` returns the ORIGINAL documents of a split (bytes
    and words are counted on them) and what was read; ``detokenizer``, when set,
    makes the text the model sees (``--detokenize``). ``legacy`` marks the corpus
    of the original record schema (WikiText-2): its figures live under
    ``perplexity.<split>`` with keys such as ``val_perplexity``; every other corpus
    lives under ``corpora.<name>.<split>`` with keys such as ``<name>_val_perplexity``.
    """

    name: str
    label: str
    read: Reader | None = None  # None only for a corpus known from a record, not from a declaration
    splits: tuple[str, ...] = ("validation", "test")
    detokenizer: Callable[[str], str] | None = None
    legacy: bool = False

    def record_path(self, split: str) -> tuple[str, ...]:
        return ("perplexity", split) if self.legacy else ("corpora", self.name, split)

    def key(self, split: str, metric: str) -> str:
        prefix = SPLIT_PREFIX.get(split, split)
        return f"{prefix}_{metric}" if self.legacy else f"{self.name}_{prefix}_{metric}"

    def documents(self, originals: list[str], detokenize: bool) -> tuple[list[Document], bool]:
        """The scored documents and whether a detokenizer was applied."""
        applied = detokenize and self.detokenizer is not None
        return [Document(text=self.detokenizer(o) if applied else o, original=o) for o in originals], applied

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "splits": list(self.splits)}
