"""Where evaluation data comes from: ``--data-dir`` first, then the datasets hub.

Every file read is fingerprinted (sha256) so that a record says exactly what it
measured, and a gate can refuse to compare records made on different data.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..core.errors import DataError, DataUnavailable
from ..core.files import special_file_message

DATA_DIR_ENV = "LMEVAL_DATA_DIR"
# file suffix -> the packaged ``datasets`` builder that reads it (as lm-evaluation-harness's
# ``dataset_path: json`` / ``csv`` / ``parquet`` / ``arrow`` does)
TABLE_BUILDERS = MappingProxyType({".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet",
                                   ".arrow": "arrow"})


@dataclass
class DataSource:
    """What was read: a short description and a fingerprint per file (or hub dataset)."""

    description: str
    fingerprints: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # how the text was read, when not as it is on disk


BYTE_ORDER_MARK = "\ufeff"


def normalise_text(text: str, path: Path, notes: list[str]) -> str:
    """A text file read as its text, whatever bytes that carry no text it was saved with: a
    UTF-8 byte-order mark at the start (an encoding signature, not a character of the text), the
    line-end convention (CRLF, lone CR; ``normalise_line_ends``), and whether the last line has its
    line end (a line is text ended by a line end; the reference WikiText files end theirs). Every
    character of the text is kept as it is: spaces, tabs, a U+FEFF after the start, and
    composed or decomposed accents (the tokenizer and the byte count see those) are text. The
    record says what was normalised (``notes``, a split's ``data_notes``) and fingerprints the
    file's own bytes."""
    if text.startswith(BYTE_ORDER_MARK):
        text = text[len(BYTE_ORDER_MARK):]
        notes.append(f"{path.name}: a UTF-8 byte-order mark at the start read as nothing")
    text = normalise_line_ends(text, path, notes)
    if text and not text.endswith("\n"):
        notes.append(f"{path.name}: no line end after the last line; read as if it had one")
        text += "\n"
    return text


def normalise_line_ends(text: str, path: Path, notes: list[str]) -> str:
    """Text files are read as the hub's copies are meant: lines end in "\\n". A file saved with
    Windows line ends (or old Mac ones) would otherwise score different text in silence (the
    "\\r" are tokens too); the record says it was normalised."""
    if "\r" not in text:
        return text
    crlf = text.count("\r\n")
    notes.append(f"{path.name}: {crlf} CRLF and {text.count(chr(13)) - crlf} lone CR line ends read as LF")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def require_local(path: Path, holding: str) -> None:
    """A local data file that is absent makes its items skip, saying what --data-dir must hold;
    a FIFO or device is left for the reader, which refuses it without opening it."""
    if not path.is_file() and not special_file_message(path):
        raise DataUnavailable(f"{path} not found: --data-dir must hold {holding}")


def read_text_file(path: Path) -> tuple[str, str]:
    """Text and sha256 of a UTF-8 file; undecodable bytes are an error, never replaced silently,
    and a FIFO or device is refused before it is opened (reading one would hang the run)."""
    special = special_file_message(path)
    if special:
        raise DataError(special)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 (byte {exc.start}, line {line}); re-encode the file as UTF-8") from None
    return text, hashlib.sha256(raw).hexdigest()


class Hub:
    """The datasets hub as one run sees it.

    After its first failure (offline, missing library, hub errors) later loads
    fail at once instead of waiting on the network again; one object per run,
    so a new run tries again.
    """

    def __init__(self) -> None:
        self.failure: str | None = None

    def load(self, path: str, name: str, split: str) -> object:
        if self.failure is not None:
            raise DataUnavailable(self.failure)
        try:
            import datasets

            return datasets.load_dataset(path, name, split=split)
        except Exception as exc:  # offline, missing library, hub errors: all mean "not available here"
            self.failure = f"the hub failed ({type(exc).__name__})"
            raise DataUnavailable(self.failure) from None


# How a text file is cut into documents: at blank lines (a line holding at most spaces and tabs),
# at every line end, or not at all.
DOCUMENT_RULES = ("blank", "lines", "whole")


def split_documents(text: str, rule: str) -> list[str]:
    """The non-blank documents of a text (line ends already "\\n") under one of ``DOCUMENT_RULES``."""
    if rule == "lines":
        pieces = text.split("\n")
    elif rule == "whole":
        pieces = [text]
    else:
        pieces = re.split(r"\n[ \t]*\n", text)
    return [d for d in pieces if d.strip()]


def text_files(pattern: str) -> Callable[[str, Path | None, Hub], tuple[list[str], DataSource]]:
    """A corpus reader for local text files, one per split: ``pattern`` names the file with
    ``{split}`` (``"mycorpus/{split}.txt"``, under --data-dir unless absolute), and documents
    are separated by blank lines. For ``Corpus(..., read=text_files(...))``."""
    def read(split: str, data_dir: Path | None, hub: Hub) -> tuple[list[str], DataSource]:
        name = pattern.format(split=split)
        path = Path(name) if Path(name).is_absolute() else (data_dir / name if data_dir is not None else None)
        if path is None:
            raise DataUnavailable(f"{name}: no --data-dir / ${DATA_DIR_ENV} given; pass --data-dir DIR holding {name}")
        require_local(path, name)
        text, sha = read_text_file(path)
        source = DataSource(str(path), {name: sha})
        documents = split_documents(normalise_text(text, path, source.notes), "blank")
        if not documents:
            raise DataError(f"{path}: no documents (documents are separated by blank lines)")
        return documents, source
    return read


def read_table(files: list[Path], builder: str, config: str | None = None) -> Any:
    """Rows of local files read by the packaged ``datasets`` builder ``builder`` (json, csv,
    parquet, arrow), returned as a ``datasets.Dataset``: the reader lm-evaluation-harness uses for
    such files, so column types (and any value a CSV parser infers) are the same in both tools.
    Anything that goes wrong is one ``DataError`` line naming the files."""
    for path in files:
        special = special_file_message(path)
        if special:
            raise DataError(special)
    try:
        import datasets

        return datasets.load_dataset(builder, config, data_files={"rows": [str(p) for p in files]}, split="rows")
    except Exception as exc:  # a parser's own error type (ArrowInvalid, JSON errors, ...): one line naming the files
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{', '.join(str(p) for p in files)}: not readable as {builder} "
                        f"({type(exc).__name__}: {first})") from None
