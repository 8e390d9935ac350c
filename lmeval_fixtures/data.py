"""Where evaluation data comes from: ``--data-dir`` first, then the datasets hub.

Every file read is fingerprinted (sha256) so that a record says exactly what it
measured, and a gate can refuse to compare records made on different data.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .corpora import split_wikitext_articles
from .loaded import special_file_message
from .tasks import Task

DATA_DIR_ENV = "LMEVAL_DATA_DIR"
WIKITEXT_HUB = ("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1")
# file suffix -> the packaged ``datasets`` builder that reads it (as lm-evaluation-harness's
# ``dataset_path: json`` / ``csv`` / ``parquet`` / ``arrow`` does)
TABLE_BUILDERS = MappingProxyType({".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet",
                                   ".arrow": "arrow"})


class DataUnavailable(Exception):
    """No local copy and no hub access: the items that need the data are skipped with this reason."""


class DataError(ValueError):
    """Data that exists but is unusable (bad encoding, bad rows); the message names the file."""


@dataclass
class DataSource:
    """What was read: a short description and a fingerprint per file (or hub dataset)."""

    description: str
    fingerprints: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # how the text was read, when not as it is on disk


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
        return split_wikitext_articles(normalise_line_ends(text, path, source.notes)), source
    try:
        dataset = (hub or Hub()).load(*WIKITEXT_HUB, split=split)
    except DataUnavailable as exc:
        raise DataUnavailable(f"WikiText-2 {split} unavailable: no --data-dir / ${DATA_DIR_ENV} given and {exc}; "
                              f"pass --data-dir DIR holding wikitext-2-raw/{split}.txt") from None
    name = f"hub:{WIKITEXT_HUB[0]}/{WIKITEXT_HUB[1]}/{split}"
    return list(dataset["page"]), DataSource(name, {name: dataset._fingerprint})


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
        documents = split_documents(normalise_line_ends(text, path, source.notes), "blank")
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


def _check_row(row: object, task: Task, where: str) -> dict:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [f for f in (*task.fields, "label") if f not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)} (a {task.name} row needs "
                        f"{', '.join((*task.fields, 'label'))})")
    label = row["label"]
    n_choices = len(task.row_choices(row))  # the task's choices, or a task file row's own
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < n_choices:
        raise DataError(f"{where}: label {label!r} out of range for {task.name} (0..{n_choices - 1})")
    for name in task.fields:
        if not isinstance(row[name], str):
            raise DataError(f"{where}: field {name} must be a string, got {type(row[name]).__name__}")
    return row


def json_lines(text: str, where: Path, error: type[Exception]) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank JSON Lines line; a bad line raises ``error``
    naming ``where`` and the line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{where}:{number}: invalid JSON ({exc.msg})") from None


def read_task_file(path: Path, task: Task) -> tuple[list[dict], str]:
    """Rows of a local JSON Lines file, each checked; errors name the file and line."""
    text, sha = read_text_file(path)
    rows = [_check_row(row, task, f"{path}:{number}") for number, row in json_lines(text, path, DataError)]
    if not rows:
        raise DataError(f"{path}: no rows (an empty split cannot be evaluated)")
    return rows, sha


def load_task_rows(task: Task, split: str, data_dir: Path | None,
                   hub: Hub | None = None) -> tuple[list[dict], DataSource]:
    """Rows of a SmallBench task split: the task's own reader when it has one (a task file), else
    ``DIR/smallbench/<task>/<split>.jsonl``, else the hub."""
    if task.read is not None:
        rows, source = task.read(split, data_dir, hub or Hub())
        return [_check_row(row, task, f"{source.description} row {i}") for i, row in enumerate(rows)], source
    if data_dir is not None:
        path = data_dir / task.local_file(split)
        require_local(path, f"{task.local_file(split)} (see README, 'Data layout')")
        rows, sha = read_task_file(path, task)
        return rows, DataSource(str(path), {task.local_file(split): sha})
    try:
        dataset = (hub or Hub()).load(*task.hub, split=split)
    except DataUnavailable as exc:
        raise DataUnavailable(f"{task.name} {split} unavailable: no --data-dir / ${DATA_DIR_ENV} given and {exc}; "
                              f"pass --data-dir DIR holding {task.local_file(split)}") from None
    name = f"hub:{task.hub[0]}/{task.hub[1]}/{split}"
    rows = [_check_row(dict(row), task, f"{name} row {i}") for i, row in enumerate(dataset)]
    return rows, DataSource(name, {name: dataset._fingerprint})
