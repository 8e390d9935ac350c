"""SmallBench task declarations: data, not a class hierarchy.

A task names its data (hub id + config, local file), the fields a row must
have, its record key, and one prompt per prompt set. A prompt is a context
template and the choice strings; the continuation scored for choice ``c`` is
``delimiter + c`` (lm-evaluation-harness's ``target_delimiter``), and the gold
choice is ``choices[row["label"]]``.

Adding a task is one declaration: ``registry.add_task(Task(...))`` (see
``registry.py``); the items, the record, the average, summary.md,
comparison.md, gates and history then include it with no other edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

PROMPT_SETS = ("smallbench", "lm-eval")


@dataclass(frozen=True)
class Prompt:
    template: str  # str.format over the row's fields
    choices: tuple[str, ...]
    delimiter: str = " "

    def context(self, row: dict[str, Any]) -> str:
        return self.template.format(**row)

    def continuations(self) -> list[str]:
        return [self.delimiter + choice for choice in self.choices]


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

    @property
    def display(self) -> str:
        return self.label or self.name

    @property
    def figure_key(self) -> str:
        """``smallbench_<record_key>_acc`` for the original schema's four tasks, else
        ``smallbench_<name>_acc``: a record alone (as ``merge`` and ``compare`` read it) names it."""
        from .record import ORIGINAL_FIELDS

        key = f"smallbench_{self.record_key}_acc"
        return key if key in ORIGINAL_FIELDS else f"smallbench_{self.name}_acc"

    @property
    def n_labels(self) -> int:
        return len(next(iter(self.prompts.values())).choices)

    def local_file(self, split: str) -> str:
        return f"smallbench/{self.name}/{split}.jsonl"


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
