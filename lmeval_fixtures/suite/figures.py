"""The table of figures: what each figure is, written once.

A figure has a key (``val_bits_per_byte``, ``smallbench_sentiment_acc``,
``latency_batch1_seq128``), a label, where it lives in the nested record, which
direction is better, how many digits it is shown with, whether it heads a
summary, whether it is a column of comparison.md, how a gate treats it, and
(when the original flat schema has it) its flat field. The summary, the
comparison, the gates, the history line and the flat fields are all read off
this table, and the table is built from the run's registry (its tasks and
corpora) and the latency shapes, so a new task or corpus needs no edit here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..core.names import parse_shape_name, shape_name
from ..core.numerics import safe_exp
from ..core.schema import ORIGINAL_FIELDS, legacy_fields
from .corpora import SPLIT_PREFIX, Corpus
from .tasks import Task

# How a gate compares a figure with a baseline's (see gates.py):
RELATIVE = "relative"  # lower is better, within a relative tolerance (--ppl-tolerance)
STDERR = "stderr"  # higher is better, within k standard errors (--acc-tolerance-se), and the --min-acc floor
TIMING = "timing"  # within --latency-tolerance, on the same device and dtype only

# Paired tests behind comparison.md's bold (see comparison.py and paired.py):
ACC = "acc"  # McNemar's exact test on the rows acc got right
MARGIN = "margin"  # paired bootstrap of the mean per-row margin
GOLD_BPB = "gold_bpb"  # paired bootstrap of bits per byte of the gold continuations, rows resampled
AVG_ACC = "avg_acc"  # paired bootstrap of the average accuracy, rows resampled within each task
DOC_BPB = "doc_bpb"  # paired bootstrap over documents of a split's bits per byte
DOC_PPL = "doc_ppl"  # paired bootstrap over documents of a split's log token perplexity
PER_DOCUMENT = (DOC_BPB, DOC_PPL)  # without per-document values (an older record) bolded by value, as before

CORPUS_SETTINGS = ("stride", "context_length", "max_eval_tokens", "detokenized")
TASK_SETTINGS = ("prompt_set", "fewshot", "max_samples", "fewshot_seed")


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    path: tuple[str, ...]
    better: str | None = None  # "lower", "higher", or None (a description, not a score)
    digits: int = 4
    headline: bool = False  # in the terminal headline and the history line
    column: bool = False  # a column of comparison.md
    gate: str | None = None  # RELATIVE, STDERR, TIMING or None
    same: tuple[str, ...] = ()  # sibling fields a baseline must share for a gate to compare
    stderr_field: str | None = None  # sibling field holding its standard error
    tokenizer_dependent: bool = False  # only comparable between checkpoints sharing a tokenizer
    compute: Callable[[dict[str, Any]], Any] | None = None  # a figure derived from others
    legacy: bool = False  # the original flat schema has a top-level field named ``key``
    task: str | None = None  # a column of comparison.md's per-task SmallBench table, for this task
    history: bool = False  # in the history line although not a headline figure
    # The paired test on per-row (per-document) values that must find the best value significantly
    # apart from the runner-up's before comparison.md bolds it: ACC, MARGIN, GOLD_BPB, AVG_ACC
    # (SmallBench), DOC_BPB, DOC_PPL (a corpus split). None: the best value is bolded as it is (timings).
    paired: str | None = None

    def value(self, record: dict[str, Any]) -> Any:
        if self.compute is not None:
            return self.compute(record)
        return lookup(record, self.path)

    def entry(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The nested object holding the figure (a split, a task, a shape), or None."""
        found = lookup(record, self.path[:-1])
        return found if isinstance(found, dict) else None

    def stderr(self, record: dict[str, Any]) -> float | None:
        entry = self.entry(record)
        return entry.get(self.stderr_field) if entry and self.stderr_field else None

    @property
    def lower_is_better(self) -> bool | None:
        return None if self.better is None else self.better == "lower"


def latency_key(batch: int, seq: int) -> str:
    """A latency figure's key in a record (the flat names of the original schema: latency_batch1_seq128)."""
    return f"latency_batch{batch}_seq{seq}"

def lookup(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _train_perplexity(record: dict[str, Any]) -> float | None:
    loss = record.get("train_loss")
    return None if loss is None else safe_exp(loss)


def _peak_memory(field: str) -> Callable[[dict[str, Any]], float | None]:
    def peak(record: dict[str, Any]) -> float | None:
        entries = list((record.get("latency") or {}).values()) + [record.get("throughput") or {}]
        readings = [e[field] for e in entries if isinstance(e, dict) and e.get(field) is not None]
        return max(readings) if readings else None
    return peak


def _average_accuracy(tasks: list[str]) -> Callable[[dict[str, Any]], float | None]:
    """Mean accuracy over every task of the suite; null unless all ran (a subset would not compare)."""
    def average(record: dict[str, Any]) -> float | None:
        accs = [lookup(record, ("smallbench", t, "acc")) for t in tasks]
        # fsum: builtin sum rounds differently from Python 3.12 on, and a figure must not depend on it
        return math.fsum(accs) / len(accs) if accs and all(a is not None for a in accs) else None
    return average


IDENTITY = (
    Figure("total_params", "params", ("total_params",), digits=0, column=True),
    Figure("embedding_ratio", "emb ratio", ("embedding_ratio",), digits=3, column=True),
    Figure("glu_expansion", "GLU exp", ("glu_expansion",), digits=2, column=True),
    Figure("train_perplexity", "train ppl", ("train_perplexity",), digits=4, compute=_train_perplexity,
           legacy=True),
)

# (nested field, key suffix, label, digits, comparison column?)
CORPUS_METRICS = (
    ("bits_per_byte", "bits_per_byte", "bits/byte", 4, True),
    ("token_perplexity", "perplexity", "ppl", 2, True),
    ("loss", "loss", "loss", 4, False),
    ("word_perplexity", "word_perplexity", "word ppl", 2, False),
)


def corpus_figures(corpus: Corpus, legacy_keys: set[str]) -> list[Figure]:
    figures = []
    for field, suffix, label, digits, column in CORPUS_METRICS:
        for i, split in enumerate(corpus.splits):
            key = corpus.key(split, suffix)
            prefix = "" if corpus.legacy else f"{corpus.name} "
            short = SPLIT_PREFIX.get(split, split)
            figures.append(Figure(
                key, f"{prefix}{short} {label}", corpus.record_path(split) + (field,), better="lower",
                digits=digits, column=column,
                headline=field == "token_perplexity" or (field == "bits_per_byte" and i == 0),
                gate=RELATIVE if field in ("token_perplexity", "bits_per_byte") else None, same=CORPUS_SETTINGS,
                tokenizer_dependent=field in ("token_perplexity", "loss"), legacy=key in legacy_keys,
                paired={"bits_per_byte": DOC_BPB, "token_perplexity": DOC_PPL}.get(field)))
    return figures


def task_figure_key(task: Task) -> str:
    """``smallbench_<record_key>_acc`` for the original schema's four tasks, else
    ``smallbench_<name>_acc``: a record alone (as ``merge`` and ``compare`` read it) names it."""
    key = f"smallbench_{task.record_key}_acc"
    return key if key in ORIGINAL_FIELDS else f"smallbench_{task.name}_acc"


def task_figure(task: Task, legacy_keys: set[str]) -> Figure:
    key = task_figure_key(task)
    return Figure(key, task.display, ("smallbench", task.name, "acc"), better="higher", digits=4,
                  column=True, gate=STDERR, same=TASK_SETTINGS, stderr_field="acc_stderr",
                  legacy=key in legacy_keys, task=task.name, history=True, paired=ACC)


# The figures that still tell small models apart when each predicts one class for every row
# (definitions in smallbench.py): (nested field, key suffix, label, better, digits, stderr field,
# paired test). Key suffixes are chosen so that none ends another (nor ``_acc``): two tasks'
# figure keys can then never coincide.
SMALL_MODEL_METRICS = (
    ("majority_rate", "majority_rate", "majority", None, 4, None, None),
    ("acc_above_majority", "acc_above_majority", "acc - majority", "higher", 4, None, ACC),
    ("predicted_classes", "predicted_classes", "classes", None, 0, None, None),
    ("margin", "margin", "margin", "higher", 4, "margin_stderr", MARGIN),
    ("gold_bits_per_byte", "gold_bits_per_byte", "gold bits/byte", "lower", 4, None, GOLD_BPB),
)


def small_model_figures(task: Task) -> list[Figure]:
    """``smallbench_sentiment_margin``, ...: keyed like the task's accuracy (``smallbench_sentiment_acc``),
    kept out of comparison.md's main table (its per-task table shows them), scored ones in the history."""
    base = task_figure_key(task).removesuffix("_acc")
    return [Figure(f"{base}_{suffix}", f"{task.display} {label}", ("smallbench", task.name, field), better=better,
                   digits=digits, same=TASK_SETTINGS, stderr_field=stderr_field, task=task.name,
                   history=better is not None, paired=paired)
            for field, suffix, label, better, digits, stderr_field, paired in SMALL_MODEL_METRICS]


def timing_figures(shapes: Iterable[tuple[int, int]], legacy_keys: set[str]) -> list[Figure]:
    figures = [Figure(latency_key(b, s), f"latency {shape_name(b, s)} ms",
                      ("latency", shape_name(b, s), "mean_ms"), better="lower", digits=3, headline=True, column=True,
                      gate=TIMING, legacy=latency_key(b, s) in legacy_keys) for b, s in shapes]
    figures.append(Figure("throughput_tokens_per_sec", "tokens/s", ("throughput", "tokens_per_sec"), better="higher",
                          digits=0, headline=True, column=True, gate=TIMING, legacy=True))
    for field in ("memory_allocated_mb", "memory_reserved_mb"):
        figures.append(Figure(field, field.replace("_", " "), (field,), better="lower", digits=1,
                              compute=_peak_memory(field), legacy=True))
    return figures


def known_tasks(declared: Iterable[Task], records: Iterable[dict[str, Any]] = ()) -> list[Task]:
    """The declared tasks, then any task the records hold that is not declared."""
    tasks = {task.name: task for task in declared}
    for record in records:
        for name in record.get("smallbench") or {}:
            tasks.setdefault(name, Task(name, name, ("", ""), (), {}))
    return list(tasks.values())


def known_corpora(declared: Iterable[Corpus], records: Iterable[dict[str, Any]] = ()) -> list[Corpus]:
    """The declared corpora, then any corpus the records hold that is not declared."""
    corpora = {corpus.name: corpus for corpus in declared}
    for record in records:
        for name, splits in (record.get("corpora") or {}).items():
            corpora.setdefault(name, Corpus(name, name, splits=tuple(splits)))
    return list(corpora.values())


def figure_table(tasks: Iterable[Task], corpora: Iterable[Corpus], records: Iterable[dict[str, Any]] = (),
                 latency_shapes: Iterable[tuple[int, int]] = ()) -> list[Figure]:
    """Every figure of a run (or of records made by other runs): the declared tasks and
    corpora (a run's registry: ``Registry.figure_table``), plus any task, corpus or latency
    shape that the records hold and the declarations do not (so old or foreign records
    still read in full)."""
    declared_corpora = list(corpora)
    legacy_keys = set(legacy_fields())
    records = list(records)
    tasks = known_tasks(tasks, records)
    shapes = set(latency_shapes)
    for record in records:
        for name in record.get("latency") or {}:
            shape = parse_shape_name(name)
            if shape is not None:
                shapes.add(shape)
    figures = list(IDENTITY)
    for corpus in known_corpora(declared_corpora, records):
        figures += corpus_figures(corpus, legacy_keys)
    figures += [task_figure(task, legacy_keys) for task in tasks]
    figures.append(Figure("smallbench_avg_acc", "SmallBench avg", ("smallbench_avg_acc",), better="higher",
                          digits=4, headline=True, column=True,
                          compute=_average_accuracy([t.name for t in tasks]), legacy=True, paired=AVG_ACC))
    for task in tasks:
        figures += small_model_figures(task)
    figures += timing_figures(sorted(shapes), legacy_keys)
    return figures


def by_key(figures: Iterable[Figure]) -> dict[str, Figure]:
    return {f.key: f for f in figures}


def sortable_keys(figures: Iterable[Figure]) -> list[str]:
    """Keys a comparison can be sorted by: the scored figures of its tables."""
    return sorted(f.key for f in figures if f.better is not None and (f.column or f.task))


def _folded(name: str) -> str:
    """A name as a person may spell it: case, ``-``, ``_`` and spaces do not count (``SST-2`` is ``sst2``)."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def figure_aliases(figures: Iterable[Figure], fold: bool = True) -> dict[str, str]:
    """Every name a figure may be asked for by (folded by ``_folded`` unless ``fold`` is false) -> its key.

    A task is known by three names (``sst2``, its label ``SST-2``, its record key ``sentiment``),
    and its figures' keys use the record key (``smallbench_sentiment_acc``) where the original
    schema does. Any of the names may stand in a key (``smallbench_sst2_acc``), and a task's name
    or label alone means its accuracy. A name that two figures could claim is left out, so an
    alias never picks one of two figures silently."""
    figures = list(figures)
    spell = _folded if fold else str
    claims: dict[str, set[str]] = {}
    for acc in (f for f in figures if f.task and f.stderr_field == "acc_stderr"):
        base = acc.key.removesuffix("_acc")
        names = {acc.task, acc.label, base.removeprefix("smallbench_")}
        for name in names:
            claims.setdefault(spell(name), set()).add(acc.key)
        for figure in (f for f in figures if f.task == acc.task and f.key.startswith(base + "_")):
            suffix = figure.key.removeprefix(base)
            for name in names:
                claims.setdefault(spell(f"smallbench_{name}{suffix}"), set()).add(figure.key)
    aliases = {alias: keys.pop() for alias, keys in claims.items() if len(keys) == 1}
    for figure in figures:  # a key as it is written always means itself
        aliases[spell(figure.key)] = figure.key
    return aliases


def resolve_figure_key(name: str, figures: Iterable[Figure]) -> str | None:
    """The key of the figure ``name`` means, or None: its key; else a name as written
    (``figure_aliases``); else a name spelt otherwise (case, ``-`` and ``_`` aside)."""
    figures = list(figures)
    if not isinstance(name, str):
        return None
    if any(f.key == name for f in figures):
        return name
    return figure_aliases(figures, fold=False).get(name) or figure_aliases(figures).get(_folded(name))
