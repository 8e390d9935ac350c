"""Perplexity corpora: their declaration, WikiText articles, its detokenizer, byte/word counts.

Everything here follows lm-evaluation-harness's ``wikitext`` task so that our
figures and its figures agree on the same model: one document per article (the
``EleutherAI/wikitext_document_level`` grouping), the WikiText detokenizer
applied to the scored text, and words and bytes counted on the ORIGINAL article.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import DataSource, Hub

# Short split names in figure keys (val_perplexity); other split names are used as they are.
SPLIT_PREFIX = MappingProxyType({"validation": "val", "test": "test", "train": "train"})


@dataclass(frozen=True)
class Document:
    """One scored unit: ``text`` is what the model sees; counts come from ``original``."""

    text: str
    original: str

    @property
    def n_bytes(self) -> int:
        return len(self.original.encode("utf-8"))

    @property
    def n_words(self) -> int:
        # lm-evaluation-harness counts re.split(r"\s+", page) pieces, empty edges included.
        return len(re.split(r"\s+", self.original))


def _is_article_heading(line: str) -> bool:
    heading = line.replace("= = =", "===").replace("= =", "==").strip()
    return heading.startswith("= ") and heading.endswith(" =")


def split_wikitext_articles(raw: str) -> list[str]:
    """Group a raw WikiText file into articles, as ``wikitext_document_level`` does.

    A new article starts at every top-level ``= Title =`` line; an article is its
    lines joined with "\\n"; a blank leading chunk is dropped and the last article
    keeps the file's final empty element (so it ends in "\\n").
    """
    lines = raw.split("\n")
    articles: list[str] = []
    current: list[str] = []
    for line in lines:
        if _is_article_heading(line):
            page = "\n".join(current)
            if page.strip():
                articles.append(page)
            current = []
        current.append(line)
    articles.append("\n".join(current))
    return articles


def wikitext_detokenize(text: str) -> str:
    """Undo WikiText's tokenisation, exactly as lm-evaluation-harness's ``wikitext_detokenizer``."""
    s = text
    # contractions
    s = s.replace("s '", "s'")
    s = re.sub(r"/' [0-9]/", r"/'[0-9]/", s)
    # number separators
    s = s.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    # punctuation
    for mark in (":", ";", ".", "!", "?", ","):
        s = s.replace(f" {mark} ", f"{mark} ")
    # brackets and quotes
    s = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", s)
    s = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", s)
    s = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", s)
    s = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', s)
    s = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", s)
    # miscellaneous
    s = s.replace("= = = =", "====").replace("= = =", "===").replace("= =", "==")
    s = s.replace(" " + chr(176) + " ", chr(176))
    s = s.replace(" \n", "\n").replace("\n ", "\n")
    s = s.replace(" N ", " 1 ")
    s = s.replace(" 's", "'s")
    return s


def wikitext_documents(articles: list[str], detokenize: bool = True) -> list[Document]:
    return [Document(text=wikitext_detokenize(a) if detokenize else a, original=a) for a in articles]


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
