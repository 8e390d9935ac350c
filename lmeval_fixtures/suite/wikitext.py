"""WikiText-2, read the way lm-evaluation-harness's ``wikitext`` task reads it.

One document per article (the ``EleutherAI/wikitext_document_level`` grouping, rebuilt
from the raw files' headings), the WikiText detokenizer applied to the scored text, and
bytes and words counted on the original article, so our perplexities and the harness's
agree on the same model. Reading (local files, else the hub) lives here once, for the
registry's corpus and for ``fetch-data``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..core.errors import DataUnavailable
from ..engine.perplexity import Document
from .sources import DATA_DIR_ENV, DataSource, Hub, normalise_text, read_text_file, require_local


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
WIKITEXT_HUB = ("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1")


def load_wikitext_articles(split: str, data_dir: Path | None, hub: Hub | None = None) -> tuple[list[str], DataSource]:
    """WikiText-2 raw articles for ``validation`` or ``test``.

    Local layout: ``DIR/wikitext-2-raw/{split}.txt`` (the raw ``wiki.*.raw`` file).
    Without a data dir, the hub's document-level dataset, which groups articles the
    same way.
    """
    if data_dir is not None:
        path = data_dir / "wikitext-2-raw" / f"{split}.txt"
        require_local(path, f"wikitext-2-raw/{split}.txt (see README, 'Data layout')")
        text, sha = read_text_file(path)
        source = DataSource(str(path), {f"wikitext-2-raw/{split}.txt": sha})
        return split_wikitext_articles(normalise_text(text, path, source.notes)), source
    try:
        dataset = (hub or Hub()).load(*WIKITEXT_HUB, split=split)
    except DataUnavailable as exc:
        raise DataUnavailable(f"WikiText-2 {split} unavailable: no --data-dir / ${DATA_DIR_ENV} given and {exc}; "
                              f"pass --data-dir DIR holding wikitext-2-raw/{split}.txt") from None
    name = f"hub:{WIKITEXT_HUB[0]}/{WIKITEXT_HUB[1]}/{split}"
    return list(dataset["page"]), DataSource(name, {name: dataset._fingerprint})
