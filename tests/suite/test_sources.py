"""Text files read as their text (``suite.sources.normalise_text``): a copy that differs from the reference
only in bytes that carry no text (a UTF-8 byte-order mark, CRLF or CR line ends, a missing line end after the
last line) gives the reference's documents, for WikiText and every --corpus text rule; the split's notes say
what was normalised; characters of the text (spaces, a U+FEFF after the start, decomposed accents) are kept."""

from __future__ import annotations

import unicodedata

import pytest

from lmeval_fixtures.suite.corpus_option import parse_corpus
from lmeval_fixtures.suite.sources import Hub
from lmeval_fixtures.suite.wikitext import load_wikitext_articles, split_wikitext_articles

from ..helpers import write_wikitext

VARIANTS = {  # how a copy was saved -> (its bytes from the reference's, the note it gets)
    "bom": (lambda b: b"\xef\xbb\xbf" + b, "a UTF-8 byte-order mark at the start read as nothing"),
    "crlf": (lambda b: b.replace(b"\n", b"\r\n"), "CRLF and 0 lone CR line ends read as LF"),
    "cr": (lambda b: b.replace(b"\n", b"\r"), "0 CRLF and"),
    "no-final-line-end": (lambda b: b.rstrip(b"\n"), "no line end after the last line; read as if it had one"),
    "all": (lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n").rstrip(b"\r\n"), "byte-order mark"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_wikitext_copy_saved_otherwise_reads_as_the_reference(tmp_path, variant):
    change, note = VARIANTS[variant]
    reference = write_wikitext(tmp_path / "ref") / "wikitext-2-raw/validation.txt"
    copy = write_wikitext(tmp_path / "copy") / "wikitext-2-raw/validation.txt"
    copy.write_bytes(change(reference.read_bytes()))
    expected = split_wikitext_articles(reference.read_text(encoding="utf-8"))  # the reference, as read before
    articles, source = load_wikitext_articles("validation", tmp_path / "copy", Hub())
    assert articles == expected
    assert any(note in n for n in source.notes), source.notes
    assert load_wikitext_articles("validation", tmp_path / "ref", Hub())[1].notes == []  # the reference: no note


DOCS = ["first document, line one\nline two", "second  document\twith tabs", "third"]


@pytest.mark.parametrize("rule", ["blank", "lines", "whole"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_corpus_text_file_saved_otherwise_reads_as_the_reference(tmp_path, rule, variant):
    change, note = VARIANTS[variant]
    reference = tmp_path / "ref.txt"
    reference.write_bytes(("\n\n".join(DOCS) + "\n").encode())
    (tmp_path / "copy.txt").write_bytes(change(reference.read_bytes()))
    expected, _ = parse_corpus(f"r=ref.txt:{rule}", tmp_path).corpus().read("test", None, Hub())
    documents, source = parse_corpus(f"c=copy.txt:{rule}", tmp_path).corpus().read("test", None, Hub())
    assert documents == expected
    assert any(note in n for n in source.notes), source.notes


def test_characters_of_the_text_are_kept(tmp_path):
    """Only bytes outside the text are normalised: a U+FEFF inside it, trailing spaces and a decomposed
    accent are characters the tokenizer and the byte count see."""
    decomposed = unicodedata.normalize("NFD", "café")
    text = f"a\ufeffb  \n\n{decomposed}\t\n"
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    documents, source = parse_corpus("t=t.txt", tmp_path).corpus().read("test", None, Hub())
    assert documents == ["a\ufeffb  ", f"{decomposed}\t\n"] and source.notes == []


def test_a_folder_of_documents_counts_what_it_normalised(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(30):  # saved without a final line end, some with a BOM
        (folder / f"{i:02}.txt").write_bytes((b"\xef\xbb\xbf" if i % 3 == 0 else b"") + f"doc {i}".encode())
    documents, source = parse_corpus("d=docs", tmp_path).corpus().read("test", None, Hub())
    assert documents == [f"doc {i}\n" for i in range(30)]
    assert len(source.notes) == 2 and source.notes[1].startswith("docs/: 30 file(s) read as their text, e.g. 00.txt")
