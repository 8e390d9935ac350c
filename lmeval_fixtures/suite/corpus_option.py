"""``--corpus NAME=SOURCE``: a perplexity corpus of your own, declared on the command line.

The option becomes a ``Corpus`` declaration added to the run's registry, the path a
conftest's ``pytest_lmeval_register`` takes, so its items, record entries, summary,
comparison, gates and history follow with no other edit. The grammar:

    NAME=FILE[:RULE]                    a text file: documents separated by blank lines (RULE
                                        ``blank``, the default), one per line (``lines``), or the
                                        whole file as one document (``whole``)
    NAME=FILE.jsonl[:FIELD]             one document per row, its text in FIELD (default ``text``);
                                        .json, .csv, .parquet and .arrow alike, read through datasets
    NAME=FOLDER[:RULE or FIELD]         the entries named validation, test or train (a file as above,
                                        or a folder of .txt files) are those splits; without such
                                        entries, every *.txt in FOLDER is one document, by file name
    NAME=hf:OWNER/DATASET[:CONFIG]:SPLIT[:FIELD]   a hub dataset's split (``::`` for no config)

A file or folder of documents on its own is one split: the one its name says (``validation``,
``test``, ``train``), else ``test``. A path that holds a ``:`` is taken whole when it exists.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import DataError, DataUnavailable, UsageError
from ..core.files import json_lines, sha256_file, special_file_message
from ..core.names import plain_name_problem
from .corpora import Corpus
from .sources import (
    DOCUMENT_RULES,
    TABLE_BUILDERS,
    DataSource,
    Hub,
    normalise_text,
    read_table,
    read_text_file,
    split_documents,
)

SPLITS = ("validation", "test", "train")  # the split names a file or folder entry may carry, in record order
DEFAULT_SPLIT = "test"
DEFAULT_FIELD = "text"
HUB_PREFIX = "hf:"
# a hub dataset id as the hub spells one: DATASET or OWNER/DATASET (checked here, so that a
# mistyped id is one line at start-up rather than an exception from inside the datasets library)
HUB_DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)?")
# the kinds of a local source: how its documents are read
TEXT, JSONL, TABLE, FOLDER = "text", "jsonl", "table", "folder"
GRAMMAR = ("NAME=PATH[:FIELD or RULE] (a text, .jsonl, .json, .csv, .parquet or .arrow file, or a folder) or "
           "NAME=hf:OWNER/DATASET[:CONFIG]:SPLIT[:FIELD]")


@dataclass(frozen=True)
class LocalSource:
    """One split's local file or folder, and how to read it: ``option`` is the text RULE of a
    text file, the FIELD of a table or JSON Lines file, None for a folder of documents."""

    path: Path
    kind: str
    option: str | None = None

    def read(self, corpus: str, split: str) -> tuple[list[str], DataSource]:
        key = f"{corpus}/{split}/{self.path.name}"
        source = DataSource(str(self.path))
        if self.kind == TEXT:
            text, source.fingerprints[key] = read_text_file(self.path)
            documents = split_documents(normalise_text(text, self.path, source.notes), self.option or "blank")
        elif self.kind == JSONL:
            documents = self._jsonl(source, key)
        elif self.kind == TABLE:
            documents = self._table(source, key)
        else:
            documents = self._folder(source, key + "/")
        if not documents:
            raise DataError(f"corpus {corpus!r}: {self.path} holds no documents{self._rule_hint()}")
        return documents, source

    def _rule_hint(self) -> str:
        return f" (documents are cut by the {self.option or 'blank'} rule)" if self.kind == TEXT else ""

    def _jsonl(self, source: DataSource, key: str) -> list[str]:
        text, source.fingerprints[key] = read_text_file(self.path)
        field_name = self.option or DEFAULT_FIELD
        documents = []
        for number, row in json_lines(text, self.path, DataError):
            where = f"{self.path}:{number}"
            if not isinstance(row, dict) or field_name not in row:
                fields = ", ".join(row) if isinstance(row, dict) else f"a JSON {type(row).__name__}"
                raise DataError(f"{where}: no field {field_name!r} (fields: {fields or 'none'}); name the text "
                                f"field after the path: NAME={self.path}:FIELD")
            documents.append(_text_value(row[field_name], field_name, where))
        return _kept(documents, source, self.path.name)

    def _table(self, source: DataSource, key: str) -> list[str]:
        field_name = self.option or DEFAULT_FIELD
        dataset = read_table([self.path], TABLE_BUILDERS[self.path.suffix.lower()])
        if field_name not in dataset.column_names:
            raise DataError(f"{self.path}: no field {field_name!r} (fields: {', '.join(dataset.column_names)}); "
                            f"name the text field after the path: NAME={self.path}:FIELD")
        source.fingerprints[key] = sha256_file(self.path)
        documents = [_text_value(v, field_name, f"{self.path} row {i}") for i, v in enumerate(dataset[field_name])]
        return _kept(documents, source, self.path.name)

    def _folder(self, source: DataSource, key: str) -> list[str]:
        """One document per .txt file, in file-name order. The record keeps one fingerprint for
        the folder (sha256 over each file's name and sha256): a folder of thousands of documents
        would otherwise put thousands of entries into every metrics.json."""
        manifest = []
        documents = []
        normalised: list[str] = []  # one note per file would put thousands into the record: counted instead
        for path in _text_files(self.path):
            text, sha = read_text_file(path)
            notes: list[str] = []
            documents.append(normalise_text(text, path, notes))
            normalised += notes[:1]
            manifest.append(f"{sha}  {path.name}\n")
        source.fingerprints[key] = hashlib.sha256("".join(manifest).encode()).hexdigest()
        source.notes.append(f"{self.path.name}/: {len(manifest)} .txt files, one document each, in name order")
        if normalised:
            source.notes.append(f"{self.path.name}/: {len(normalised)} file(s) read as their text, "
                                f"e.g. {normalised[0]}")
        return _kept(documents, source, self.path.name)


def _text_value(value: object, field_name: str, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: field {field_name!r} holds {type(value).__name__}, not text")
    return value


def _kept(documents: list[str], source: DataSource, where: str) -> list[str]:
    """Blank documents are left out (they score no tokens); the record says how many."""
    kept = [d for d in documents if d.strip()]
    if kept and len(kept) < len(documents):
        source.notes.append(f"{where}: {len(documents) - len(kept)} blank document(s) left out")
    return kept


def _text_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() == ".txt" and not p.is_dir()),
                  key=lambda p: p.name)


@dataclass(frozen=True)
class HubSource:
    """A split of a hub dataset, loaded through the run's ``Hub`` (offline: the items skip)."""

    path: str
    config: str | None
    split: str
    field: str = DEFAULT_FIELD

    @property
    def key(self) -> str:
        return f"hub:{self.path}/{self.config or 'default'}/{self.split}"

    def read(self, corpus: str, hub: Hub) -> tuple[list[str], DataSource]:
        try:
            dataset = hub.load(self.path, self.config, split=self.split)
        except DataUnavailable as exc:
            raise DataUnavailable(f"corpus {corpus!r}: {self.key} unavailable: {exc}") from None
        if self.field not in dataset.column_names:
            raise DataError(f"corpus {corpus!r}: {self.key} has no field {self.field!r} (fields: "
                            f"{', '.join(dataset.column_names)}); name it last: ...:{self.split}:FIELD")
        source = DataSource(self.key, {self.key: dataset._fingerprint})
        documents = [_text_value(v, self.field, f"{self.key} row {i}") for i, v in enumerate(dataset[self.field])]
        documents = _kept(documents, source, self.key)
        if not documents:
            raise DataError(f"corpus {corpus!r}: {self.key} holds no documents")
        return documents, source


@dataclass(frozen=True)
class CorpusSpec:
    """One parsed ``--corpus``: its name, the text as given (for messages) and a source per split."""

    name: str
    text: str
    sources: tuple[tuple[str, LocalSource | HubSource], ...]  # (split, source), in record order

    def read(self, split: str, data_dir: Path | None, hub: Hub) -> tuple[list[str], DataSource]:
        """The corpus reader (``Corpus.read``): --data-dir plays no part, the paths are the option's."""
        source = dict(self.sources)[split]
        if isinstance(source, HubSource):
            return source.read(self.name, hub)
        return source.read(self.name, split)

    def corpus(self) -> Corpus:
        return Corpus(self.name, self.name, read=self.read, splits=tuple(split for split, _ in self.sources))


def parse_corpus(text: str, base: Path, option: str = "--corpus") -> CorpusSpec:
    """``NAME=SOURCE`` -> ``CorpusSpec``; relative paths are relative to ``base``. Anything that
    cannot work (grammar, name, a path that is not there, a RULE a text file does not know) is a
    one-line ``UsageError`` naming the option and its value, at start-up."""
    name, sep, source = text.partition("=")
    if not sep or not name or not source:
        raise UsageError(f"{option} {text!r}: expected {GRAMMAR}")
    problem = plain_name_problem(name)
    if problem:
        raise UsageError(f"{option} {text!r}: corpus {problem}")
    where = f"{option} {text!r}"
    if source.startswith(HUB_PREFIX):
        hub = _hub_source(source.removeprefix(HUB_PREFIX), where)
        return CorpusSpec(name, text, ((hub.split, hub),))
    path, given = _existing_path(source, base, where)
    return CorpusSpec(name, text, tuple(_local_splits(path, given, where).items()))


def _hub_source(rest: str, where: str) -> HubSource:
    if "[" in rest:
        raise UsageError(f"{where}: split slices such as test[:100] are not taken (a split names record keys); "
                         "--max-eval-tokens caps the tokens scored")
    parts = rest.split(":")
    if len(parts) == 2:
        path, config, split, field_name = parts[0], None, parts[1], DEFAULT_FIELD
    elif len(parts) in (3, 4):
        path, config, split = parts[:3]
        field_name = parts[3] if len(parts) == 4 else DEFAULT_FIELD
    else:
        raise UsageError(f"{where}: expected hf:OWNER/DATASET[:CONFIG]:SPLIT[:FIELD] (hf:OWNER/DATASET::SPLIT:FIELD "
                         "for a field without a config)")
    if not path or not split or not field_name:
        raise UsageError(f"{where}: the dataset, the split and the field must not be empty")
    if not HUB_DATASET.fullmatch(path) or "--" in path or ".." in path:
        raise UsageError(f"{where}: {path!r} is not a hub dataset id; expected DATASET or OWNER/DATASET "
                         "(letters, digits, '-', '_', '.')")
    problem = plain_name_problem(split)
    if problem:
        raise UsageError(f"{where}: split {problem}")
    return HubSource(path, config or None, split, field_name)


def _existing_path(source: str, base: Path, where: str) -> tuple[Path, str | None]:
    """The path, and the ``:FIELD`` or ``:RULE`` after it. The whole text wins when it exists,
    so a path holding ``:`` still works."""
    whole = _absolute(source, base)
    if whole.exists():
        return whole, None
    head, colon, tail = source.rpartition(":")
    if colon and head and _absolute(head, base).exists():
        return _absolute(head, base), tail
    missing = head if colon and head else source
    raise UsageError(f"{where}: {missing} does not exist (relative paths are relative to {base})")


def _absolute(path: str, base: Path) -> Path:
    """``path`` against ``base``, ``~`` and ``..`` folded (symbolic links are kept as named)."""
    return Path(os.path.normpath(base / Path(path).expanduser()))


def _local_splits(path: Path, given: str | None, where: str) -> dict[str, LocalSource]:
    special = special_file_message(path)
    if special:
        raise UsageError(f"{where}: {special}")
    if not path.is_dir():
        return {_split_of(path): _source(path, given, where)}
    entries: dict[str, Path] = {}
    for child in sorted(path.iterdir(), key=lambda p: p.name):
        split = child.name if child.is_dir() else child.stem
        if split in SPLITS and (child.is_dir() or _kind(child) is not None):
            if split in entries:
                raise UsageError(f"{where}: {entries[split].name} and {child.name} both hold split {split}; keep one")
            entries[split] = child
    if entries:
        return {split: _source(entries[split], given, where) for split in SPLITS if split in entries}
    if not _text_files(path):
        raise UsageError(f"{where}: {path} holds neither split entries ({', '.join(SPLITS)}: a file or a folder "
                         "of .txt files) nor .txt files")
    return {_split_of(path): _source(path, given, where)}


def _split_of(path: Path) -> str:
    return path.stem if path.stem in SPLITS else DEFAULT_SPLIT


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return JSONL
    if suffix in TABLE_BUILDERS:
        return TABLE
    return TEXT if path.suffix.lower() in (".txt", ".text", ".md", "") else None


def _source(path: Path, given: str | None, where: str) -> LocalSource:
    if path.is_dir():
        if given is not None:
            raise UsageError(f"{where}: a folder of .txt files is one document per file; drop ':{given}'")
        if not _text_files(path):
            raise UsageError(f"{where}: {path} holds no .txt files")
        return LocalSource(path, FOLDER)
    kind = _kind(path) or TEXT  # a file named outright is text unless its suffix says otherwise
    if kind == TEXT and given is not None and given not in DOCUMENT_RULES:
        raise UsageError(f"{where}: ':{given}' after a text file names how documents are cut: "
                         f"{', '.join(DOCUMENT_RULES)} (blank lines by default)")
    if kind != TEXT and given == "":
        raise UsageError(f"{where}: an empty FIELD; name the text field after the path, or nothing for "
                         f"{DEFAULT_FIELD!r}")
    return LocalSource(path, kind, given)
