"""Prompts rendered from a task file's documents, and the reader that turns its files into rows.

A task file's row keeps the document as it was read (``row["doc"]``), next to the gold
choice's index (``row["label"]``, which the scorer reads) and ``row["idx"]``; prompts render
from the document alone, so a column named ``label`` means in a template what it meant in
the file. When the choices come from the document (a choice field, or a ``doc_to_choice``
that reads it, as arc_easy's ``{{choices.text}}``), the row also holds its own list
(``row["choices"]``): each row is scored against its own choices, and its gold index and
few-shot answer are read through them. Two ways to render, one per task-file format:

- ``FormatRules``: our format, ``{field}`` as ``str.format`` (the suite's own ``Prompt``);
- ``JinjaRules``: lm-evaluation-harness's ``doc_to_text`` / ``doc_to_choice`` / ``doc_to_target``,
  rendered as its ``utils.apply_template`` renders them (Jinja, undefined names an error,
  trailing newlines kept, its ``regex_replace`` filter), in a bounded Jinja sandbox (a task file
  is data: it never runs code, and every render ends within limits; ``suite.jinja_sandbox``),
  with its rules for a plain field name, digits and lists.
"""

from __future__ import annotations

import ast
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..core.errors import DataError, DataUnavailable, RowError
from ..core.files import sha256_file
from .jinja_sandbox import render
from .sources import TABLE_BUILDERS, DataSource, Hub, read_table
from .tasks import Prompt

DOC = "doc"  # the row key holding the document as read
CHOICES = "choices"  # the row key holding the row's own choices, when the document gives them
MIN_CHOICES = 2  # a row scored against fewer choices measures nothing


class DocRules(Protocol):
    def text(self, doc: dict[str, Any]) -> str:
        """The context the model reads for this document (no answer)."""

    def choices(self, doc: dict[str, Any]) -> list[str] | None:
        """This document's choices, or None when they are the same for every document."""

    def gold(self, doc: dict[str, Any], choices: tuple[str, ...]) -> int:
        """The index of the right choice."""


def _gold_index(value: object, choices: tuple[str, ...], what: str) -> int:
    """A target as lm-evaluation-harness reads it: an index into the choices, or a choice's text."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value < len(choices):
            raise RowError(f"{what} {value} is not an index of the {len(choices)} choices")
        return value
    if isinstance(value, str):
        if value not in choices:
            raise RowError(f"{what} {value!r} is not one of the choices {list(choices)}")
        return choices.index(value)
    raise RowError(f"{what} is {type(value).__name__}; expected a choice's index or its text")


def choice_list(value: object, what: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(c, str) and c for c in value):
        raise RowError(f"{what} must give a non-empty list of non-empty strings, not {value!r}")
    return list(value)


@dataclass(frozen=True)
class FormatRules:
    """Our task-file format: ``template`` is ``str.format`` over the document's fields; the
    choices are a list, or a field holding one; ``label_field`` holds an index or a choice's text."""

    template: str
    choice_field: str | None
    label_field: str

    def text(self, doc: dict[str, Any]) -> str:
        for _, name, _, _ in string.Formatter().parse(self.template):
            if name is not None and doc.get(name) is None:
                state = "is empty" if name in doc else "is not a field of the row"
                raise RowError(f"template refers to {{{name}}}, which {state} (fields: {', '.join(doc)})")
        return self.template.format(**doc)

    def choices(self, doc: dict[str, Any]) -> list[str] | None:
        if self.choice_field is None:
            return None
        if self.choice_field not in doc:
            raise RowError(f"choice_field {self.choice_field!r} is not a field of the row (fields: {', '.join(doc)})")
        return choice_list(doc[self.choice_field], f"choice_field {self.choice_field!r}")

    def gold(self, doc: dict[str, Any], choices: tuple[str, ...]) -> int:
        if self.label_field not in doc:
            raise RowError(f"label_field {self.label_field!r} is not a field of the row (fields: {', '.join(doc)})")
        return _gold_index(doc[self.label_field], choices, f"label_field {self.label_field!r} value")


def render_key(key: str, source: str, doc: dict[str, Any]) -> str:
    """``source`` (the task file's ``key``) rendered over ``doc``; its ``RowError`` names the key."""
    try:
        return render(source, doc)
    except RowError as exc:
        raise type(exc)(f"{key}: {exc}") from None


@dataclass(frozen=True)
class JinjaRules:
    """lm-evaluation-harness's ``doc_to_text``, ``doc_to_choice``, ``doc_to_target`` (its
    ``ConfigurableTask`` methods): a string that names a field of the document is that field;
    any other string is a Jinja template. A rendered target of digits is an index, a rendered
    choice list is a Python literal. ``doc_to_choice`` here is a template or a field name: a
    list in the YAML is resolved once, when the file is read."""

    doc_to_text: str
    doc_to_choice: str | None
    doc_to_target: str | int

    def text(self, doc: dict[str, Any]) -> str:
        if self.doc_to_text in doc:
            value = doc[self.doc_to_text]
        else:
            value = render_key("doc_to_text", self.doc_to_text, doc)
            if value.isdigit():
                raise RowError(f"doc_to_text renders the number {value}, which lm-eval reads as the index of a "
                               "context among several (multiple inputs, as winogrande): not supported")
        if not isinstance(value, str):
            raise RowError(f"doc_to_text gives {type(value).__name__}, not text")
        return value

    def choices(self, doc: dict[str, Any]) -> list[str] | None:
        if self.doc_to_choice is None:
            return None
        if self.doc_to_choice in doc:
            return choice_list(doc[self.doc_to_choice], f"doc_to_choice field {self.doc_to_choice!r}")
        rendered = render_key("doc_to_choice", self.doc_to_choice, doc)
        try:
            value = ast.literal_eval(rendered)
        except (SyntaxError, ValueError):
            raise RowError(f"doc_to_choice renders {rendered[:80]!r}, not a Python list") from None
        return choice_list(value, "doc_to_choice")

    def gold(self, doc: dict[str, Any], choices: tuple[str, ...]) -> int:
        target: object = self.doc_to_target
        if isinstance(target, str):
            if target in doc:
                target = doc[target]
            else:
                rendered = render_key("doc_to_target", target, doc)
                target = rendered
                if rendered.isdigit():
                    try:
                        target = ast.literal_eval(rendered)
                    except (SyntaxError, ValueError):
                        raise RowError(f"doc_to_target renders {rendered!r}, not an index") from None
                if rendered.startswith("[") and rendered.endswith("]"):
                    raise RowError(f"doc_to_target renders the list {rendered[:80]}: several right answers are "
                                   "not supported")
        if isinstance(target, (list, tuple)):
            raise RowError("doc_to_target gives a list: several right answers are not supported")
        return _gold_index(target, choices, "doc_to_target")


@dataclass(frozen=True)
class DocPrompt(Prompt):
    """A task file's prompt: ``context`` renders from the row's document by its ``rules``.
    ``template`` is only the source text (for messages). ``choices`` are the task's one list, or
    empty when the rows' own lists differ: a row that holds its own (``row["choices"]``) is
    scored against those."""

    rules: Any = None  # a DocRules

    def context(self, row: dict[str, Any]) -> str:
        return self.rules.text(row[DOC])

    def row_choices(self, row: dict[str, Any]) -> tuple[str, ...]:
        return row.get(CHOICES, self.choices)

    def problem(self, fields: tuple[str, ...]) -> str | None:
        if not all(isinstance(c, str) and c for c in self.choices):  # empty: each row gives its own
            return "choices must be non-empty strings"
        return None


def check_row_choices(choices: tuple[str, ...]) -> None:
    """A row's own choice list must offer a choice to make: ``RowError`` when it has fewer than two."""
    if len(choices) < MIN_CHOICES:
        raise RowError(f"it has {len(choices)} choice{'' if len(choices) == 1 else 's'} {list(choices)}; a row needs "
                       f"at least {MIN_CHOICES} to be scored")


def table_builder(files: tuple[Path, ...]) -> str:
    """The ``datasets`` builder reading these files, from their common suffix."""
    builders = {TABLE_BUILDERS.get(p.suffix.lower()) for p in files}
    if len(builders) != 1 or None in builders:
        raise ValueError(f"use files of one kind, each ending in {', '.join(TABLE_BUILDERS)}: "
                         f"{', '.join(p.name for p in files)}")
    return builders.pop()


@dataclass(frozen=True)
class TaskFileRows:
    """The reader of a task file's data (``Task.read``): documents through ``datasets``, each
    turned into a row and checked (its context renders, its choices render and are at least
    two, its gold is one of its own choices), every data file and the task file itself
    fingerprinted. ``--data-dir`` plays no part: the files are the task file's."""

    task: str
    origin: Path
    splits: tuple[tuple[str, tuple[Path, ...]], ...]  # (split, files)
    builder: str
    config: str | None
    rules: Any  # DocRules
    choices: tuple[str, ...]  # the task's one list; empty when the rows' own lists differ
    definition: tuple[tuple[str, str], ...]  # (fingerprint key, sha256) of the task file and what it includes

    def declaration(self) -> str:
        """The reader as ``Task.declaration`` digests it: its rules and the contents of the task file
        and its includes (``definition``), each data file by name only (its content is in the rows),
        never the folder they sit in."""
        splits = tuple((split, tuple(path.name for path in files)) for split, files in self.splits)
        return repr((self.task, splits, self.builder, self.config, self.rules, self.choices, self.definition))

    def documents(self, split: str) -> tuple[list[dict[str, Any]], DataSource]:
        files = dict(self.splits).get(split)
        if files is None:
            raise DataUnavailable(f"task {self.task!r}: {self.origin} names no {split} data (--fewshot draws from it: "
                                  "fewshot_data in our format, fewshot_split or training_split in lm-eval's)")
        dataset = read_table(list(files), self.builder, self.config)
        source = DataSource(", ".join(str(p) for p in files), dict(self.definition))
        for path in files:
            source.fingerprints[f"{self.task}/{split}/{path.name}"] = sha256_file(path)
        return [dict(doc) for doc in dataset], source

    def __call__(self, split: str, data_dir: Path | None, hub: Hub) -> tuple[list[dict], DataSource]:
        documents, source = self.documents(split)
        if not documents:
            raise DataError(f"task {self.task!r}: {source.description} holds no rows (an empty split cannot be "
                            "evaluated)")
        rows = []
        for i, doc in enumerate(documents):
            try:
                self.rules.text(doc)
                own = self.rules.choices(doc)
                choices = self.choices if own is None else tuple(own)
                if own is not None:
                    check_row_choices(choices)
                gold = self.rules.gold(doc, choices)
            except RowError as exc:
                where = f"task {self.task!r} ({self.origin.name}): {source.description} row {i}"
                raise DataError(f"{where}: {exc}") from None
            idx = doc.get("idx")
            row = {"idx": idx if isinstance(idx, int) and not isinstance(idx, bool) else i, "label": gold, DOC: doc}
            if own is not None:  # the document gives its choices: the row is scored against these
                row[CHOICES] = choices
            rows.append(row)
        return rows, source

    def shared_choices(self, split: str) -> tuple[str, ...]:
        """The choice list every document of ``split`` gives (choices from a field or a template
        that reads the document), or ``()`` when they differ: each row is then scored against its
        own. A task whose rows all agree keeps one list, as a task declaring it does. A document
        whose choices cannot be read, or are fewer than two, also gives ``()``: the reader then
        names it (a ``DataError`` naming the file and row, when the item runs)."""
        documents, source = self.documents(split)
        if not documents:
            raise DataError(f"{source.description}: no rows to read the choices from")
        found: list[str] | None = None
        for doc in documents:
            try:
                choices = self.rules.choices(doc)
            except RowError:
                return ()
            if len(choices) < MIN_CHOICES or (found is not None and choices != found):
                return ()
            found = choices
        return tuple(found)
