"""What a run measures: its SmallBench-style tasks and its perplexity corpora.

A registry is built fresh for every run (``Registry.default()``), so adding a
task or a corpus never changes another run in the same process. Under pytest a
``conftest.py`` adds to it through the ``pytest_lmeval_register(registry,
config)`` hook; the library API takes a registry argument. Everything downstream (items,
the record, the average, summary.md, comparison.md, gates, history) reads the
registry, so one declaration is the whole change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .corpora import Corpus, wikitext_detokenize
from .data import load_wikitext_articles
from .tasks import TASKS, Task

WIKITEXT = Corpus("wikitext", "WikiText-2 raw", read=load_wikitext_articles, detokenizer=wikitext_detokenize,
                  legacy=True)


class RegistryError(ValueError):
    """A declaration that clashes with one already made; the message names both."""


@dataclass
class Registry:
    tasks: dict[str, Task] = field(default_factory=dict)
    corpora: dict[str, Corpus] = field(default_factory=dict)

    @classmethod
    def default(cls) -> Registry:
        """The shipped suite: SST-2, RTE, BoolQ, MRPC and WikiText-2."""
        return cls(tasks=dict(TASKS), corpora={WIKITEXT.name: WIKITEXT})

    def add_task(self, task: Task) -> Task:
        if task.name in self.tasks:
            raise RegistryError(f"task {task.name!r} is already declared")
        clash = next((t.name for t in self.tasks.values() if t.figure_key == task.figure_key), None)
        if clash:
            raise RegistryError(f"task {task.name!r}: record key {task.record_key!r} is already used by {clash!r}")
        if not task.prompts:
            raise RegistryError(f"task {task.name!r}: declare at least one prompt set")
        self.tasks[task.name] = task
        return task

    def add_corpus(self, corpus: Corpus) -> Corpus:
        if corpus.name in self.corpora:
            raise RegistryError(f"corpus {corpus.name!r} is already declared")
        if corpus.read is None:
            raise RegistryError(f"corpus {corpus.name!r}: declare how to read it (read=...)")
        if not corpus.splits or len(set(corpus.splits)) != len(corpus.splits):
            raise RegistryError(f"corpus {corpus.name!r}: splits must be distinct and at least one")
        if corpus.legacy and any(c.legacy for c in self.corpora.values()):
            raise RegistryError(f"corpus {corpus.name!r}: only one corpus can hold the original schema's fields")
        self.corpora[corpus.name] = corpus
        return corpus

    def check_prompts(self, prompt_set: str) -> None:
        """Every task must have the run's prompt set (--prompts); said at start-up, not mid-run."""
        lacking = [t.name for t in self.tasks.values() if prompt_set not in t.prompts]
        if lacking:
            raise RegistryError(f"--prompts {prompt_set}: task(s) {', '.join(lacking)} declare no such prompt set")
