"""What a run measures: its SmallBench-style tasks and its perplexity corpora.

A registry is built fresh for every run (``Registry.default()``), so adding a
task or a corpus never changes another run in the same process. Under pytest a
``conftest.py`` adds to it through the ``pytest_lmeval_register(registry,
config)`` hook; the library API takes a registry argument. Everything downstream (items,
the record, the average, summary.md, comparison.md, gates, history) reads the
registry, so one declaration is the whole change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import RegistryError
from ..core.names import plain_name_problem
from .corpora import Corpus
from .figures import Figure, figure_table
from .tasks import TASKS, Task
from .wikitext import load_wikitext_articles, wikitext_detokenize

WIKITEXT = Corpus("wikitext", "WikiText-2 raw", read=load_wikitext_articles, detokenizer=wikitext_detokenize,
                  legacy=True)


@dataclass
class Registry:
    tasks: dict[str, Task] = field(default_factory=dict)
    corpora: dict[str, Corpus] = field(default_factory=dict)

    @classmethod
    def default(cls) -> Registry:
        """The shipped suite: SST-2, RTE, BoolQ, MRPC and WikiText-2."""
        return cls(tasks=dict(TASKS), corpora={WIKITEXT.name: WIKITEXT})

    def add_task(self, task: Task) -> Task:
        """Declare a task; a clash or a prompt that cannot fill from the task's fields is refused here,
        at start-up, not as a traceback in the middle of the run."""
        for what, value in (("task", task.name), ("record key", task.record_key)):
            problem = plain_name_problem(value)
            if problem:
                raise RegistryError(f"{what} {problem}")
        if task.name in self.tasks:
            raise RegistryError(f"task {task.name!r} is already declared")
        if not task.prompts:
            raise RegistryError(f"task {task.name!r}: declare at least one prompt set")
        for prompt_set, prompt in task.prompts.items():
            problem = prompt.problem(task.fields)
            if problem:
                raise RegistryError(f"task {task.name!r}, prompt set {prompt_set!r}: {problem}")
        self.tasks[task.name] = task
        self._keep_figure_keys_unique(lambda: self.tasks.pop(task.name), f"task {task.name!r}")
        return task

    def add_corpus(self, corpus: Corpus) -> Corpus:
        problem = plain_name_problem(corpus.name)
        if problem:
            raise RegistryError(f"corpus {problem}")
        if corpus.name in self.corpora:
            raise RegistryError(f"corpus {corpus.name!r} is already declared")
        if corpus.read is None:
            raise RegistryError(f"corpus {corpus.name!r}: declare how to read it (read=...)")
        if not corpus.splits or len(set(corpus.splits)) != len(corpus.splits):
            raise RegistryError(f"corpus {corpus.name!r}: splits must be distinct and at least one")
        bad_split = next((s for s in corpus.splits if plain_name_problem(s)), None)
        if bad_split is not None:
            raise RegistryError(f"corpus {corpus.name!r}: split {plain_name_problem(bad_split)}")
        if corpus.legacy and any(c.legacy for c in self.corpora.values()):
            raise RegistryError(f"corpus {corpus.name!r}: only one corpus can hold the original schema's fields")
        self.corpora[corpus.name] = corpus
        self._keep_figure_keys_unique(lambda: self.corpora.pop(corpus.name), f"corpus {corpus.name!r}")
        return corpus

    def _keep_figure_keys_unique(self, undo: Callable[[], object], what: str) -> None:
        """A declaration whose figure key is another figure's (a task named ``avg`` would be
        ``smallbench_avg_acc``) is undone and refused: two figures must never share a key."""
        keys = [f.key for f in self.figure_table()]
        taken = sorted({k for k in keys if keys.count(k) > 1})
        if taken:
            undo()
            raise RegistryError(f"{what}: its figure key {taken[0]} is already another figure's; choose another name")

    def figure_table(self, records: Iterable[dict[str, Any]] = (),
                     latency_shapes: Iterable[tuple[int, int]] = ()) -> list[Figure]:
        """Every figure of a run of this registry (see ``figures.figure_table``)."""
        return figure_table(self.tasks.values(), self.corpora.values(), records, latency_shapes)

    def check_prompts(self, prompt_set: str) -> None:
        """Every task must have the run's prompt set (--prompts); said at start-up, not mid-run."""
        lacking = [t.name for t in self.tasks.values() if prompt_set not in t.prompts]
        if lacking:
            raise RegistryError(f"--prompts {prompt_set}: task(s) {', '.join(lacking)} declare no such prompt set")

    def check_fewshot(self, shots: int) -> None:
        """Every task must be able to run with the run's --fewshot; said at start-up, not mid-run.

        Shots are one setting per run (recorded, and compared as one), so a task declaring its
        own count (a task file's ``num_fewshot``) must agree with --fewshot."""
        for task in self.tasks.values():
            if task.num_fewshot is not None and task.num_fewshot != shots:
                raise RegistryError(f"task {task.name!r} declares num_fewshot {task.num_fewshot}, but this run has "
                                    f"--fewshot {shots}; shots are one setting per run: pass --fewshot "
                                    f"{task.num_fewshot}, or remove num_fewshot from its declaration")
