"""SmallBench task declarations: data, not a class hierarchy.

A task names its data (hub id + config, local file), the fields a row must
have, its record key, and one prompt per prompt set. A prompt is a context
template and the choice strings; the continuation scored for choice ``c`` is
``delimiter + c`` (lm-evaluation-harness's ``target_delimiter``), and the gold
choice is ``choices[row["label"]]``. A task file's prompt may instead take each
row's own choices from the row (``Prompt.row_choices``: arc_easy's, piqa's), so
the gold choice is then ``row_choices(row)[row["label"]]``.

A task's rows usually come from ``--data-dir`` or the hub by its ``hub`` id; a task with a
``read`` function (a ``--task-file``, see ``task_files.py``) reads its own files instead.

Adding a task is one declaration: ``registry.add_task(Task(...))`` (see
``registry.py``); the items, the record, the average, summary.md,
comparison.md, gates and history then include it with no other edit.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sources import DataSource, Hub


PROMPT_SETS = ("smallbench", "lm-eval")
# what separates solved examples from each other and from the row (lm-evaluation-harness's default)
FEWSHOT_DELIMITER = "\n\n"


@dataclass(frozen=True)
class Prompt:
    template: str  # str.format over the row's fields
    choices: tuple[str, ...]
    delimiter: str = " "  # lm-evaluation-harness's target_delimiter
    fewshot_delimiter: str = FEWSHOT_DELIMITER  # after each solved example (--fewshot)

    def context(self, row: dict[str, Any]) -> str:
        return self.template.format(**row)

    def continuations(self) -> list[str]:
        return [self.delimiter + choice for choice in self.choices]

    def row_choices(self, row: dict[str, Any]) -> tuple[str, ...]:
        """The choices scored for ``row``: this prompt's, the same for every row. A task file's
        prompt whose choices come from each document overrides it (``doc_prompts.DocPrompt``);
        the scorer, the few-shot examples and the row checks all ask here, so they agree."""
        return self.choices

    def problem(self, fields: tuple[str, ...]) -> str | None:
        """Why this prompt cannot be filled from a row holding ``fields``, or None: only plain
        ``{field}`` references to declared fields (no ``{0}``, no ``{field.attr}``, which would
        put an object's address into the prompt). Checked when the task is declared, so a typo
        is a usage error at start-up rather than a traceback mid-run."""
        if not self.choices or not all(isinstance(c, str) and c for c in self.choices):
            return "choices must be one or more non-empty strings"
        try:
            parsed = list(string.Formatter().parse(self.template))
        except ValueError as exc:
            return f"template {self.template!r} does not parse ({exc})"
        for _, field_name, _, _ in parsed:
            if field_name is None:
                continue
            if field_name not in fields:
                return (f"template refers to {{{field_name}}}, which is not a field of the task "
                        f"(fields: {', '.join(fields) or 'none'})")
        return None


# read(split, data_dir, hub) -> checked rows (each with an integer "label") and what was read
TaskReader = Callable[[str, "Path | None", "Hub"], "tuple[list[dict], DataSource]"]


@dataclass(frozen=True)
class Task:
    name: str
    record_key: str  # the original schema's flat key smallbench_{record_key}_acc (the shipped four tasks)
    hub: tuple[str, str]  # datasets.load_dataset(path, name)
    fields: tuple[str, ...]
    prompts: dict[str, Prompt]
    split: str = "validation"
    fewshot_split: str = "train"
    label: str = ""  # column heading in comparison.md (default: the name)
    read: TaskReader | None = None  # its own data (a task file), instead of --data-dir or the hub
    num_fewshot: int | None = None  # the shots its declaration asks for; the run's --fewshot must agree

    @property
    def display(self) -> str:
        return self.label or self.name

    @property
    def n_labels(self) -> int:
        """How many choices the task scores; 0 when each row gives its own (``row_choices``)."""
        return len(next(iter(self.prompts.values())).choices)

    def row_choices(self, row: dict[str, Any]) -> tuple[str, ...]:
        """The choices ``row`` is scored against (see ``Prompt.row_choices``)."""
        return next(iter(self.prompts.values())).row_choices(row)

    def local_file(self, split: str) -> str:
        return f"smallbench/{self.name}/{split}.jsonl"

    def declaration(self) -> str:
        """What declares the task, as text that names no place and no process, for the digest of
        an item's inputs (``evaluation.items.task_inputs``): every field but the reader, and the
        reader's own ``declaration()`` (a task file's: its rules and its files' contents) or, for
        code, its module and qualified name. ``repr`` would hold the reader's memory address (another
        in every process: xdist workers, a later run) and a task file's absolute paths (another on
        every machine), and records of the same task would then never merge, trend, rank or gate
        together."""
        reader = self.read
        if reader is None:
            return repr(self)  # as digested before readers were described: records of the shipped tasks stay alike
        if callable(getattr(reader, "declaration", None)):
            described = reader.declaration()
        else:
            target = getattr(reader, "func", reader)  # functools.partial: the function it calls
            described = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(target).__name__)}"
        return repr(replace(self, read=None)) + f" read={described}"


# The shipped declarations, read-only: a run's own set lives in its Registry.
TASKS: MappingProxyType[str, Task] = MappingProxyType({
    task.name: task
    for task in (
        Task("sst2", "sentiment", ("nyu-mll/glue", "sst2"), ("sentence",), {
            "smallbench": Prompt("Sentence: {sentence}\nSentiment:", ("negative", "positive")),
            "lm-eval": Prompt("{sentence}\nQuestion: Is this sentence positive or negative?\nAnswer:",
                              ("negative", "positive")),
        }, label="SST-2"),
        Task("rte", "nli", ("nyu-mll/glue", "rte"), ("sentence1", "sentence2"), {
            "smallbench": Prompt("Premise: {sentence1}\nHypothesis: {sentence2}\nRelation:",
                                 ("entailment", "not entailment")),
            "lm-eval": Prompt("{sentence1}\nQuestion: {sentence2} True or False?\nAnswer:", ("True", "False")),
        }, label="RTE"),
        Task("boolq", "qa", ("super_glue", "boolq"), ("passage", "question"), {
            "smallbench": Prompt("Passage: {passage}\nQuestion: {question}\nAnswer:", ("no", "yes")),
            "lm-eval": Prompt("{passage}\nQuestion: {question}?\nAnswer:", ("no", "yes")),
        }, label="BoolQ"),
        Task("mrpc", "paraphrase", ("nyu-mll/glue", "mrpc"), ("sentence1", "sentence2"), {
            "smallbench": Prompt("Sentence 1: {sentence1}\nSentence 2: {sentence2}\nParaphrase:", ("no", "yes")),
            "lm-eval": Prompt("Sentence 1: {sentence1}\nSentence 2: {sentence2}\nQuestion: Do both sentences "
                              "mean the same thing?\nAnswer:", ("no", "yes")),
        }, label="MRPC"),
    )
})
