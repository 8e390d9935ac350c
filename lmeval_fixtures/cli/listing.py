"""`lmeval-fixtures list`: what a run can measure, as ``lm_eval --tasks list`` tells it.

A newcomer asks what the suite knows before running it: the tasks with their prompt sets and
figure keys (and the other names each is accepted by), the perplexity corpora and their
splits, the families a run can select with ``-m``, and the packaged reference checkpoints with
their paths (what ``--checkpoint`` takes to run one of them alone). Everything is read off the
same declarations a run reads (``Registry``, the figure table, checkpoint discovery), so the
listing cannot disagree with a run; ``--task-file`` and ``--corpus`` are declared as a run
declares them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.formatting import markdown_table
from ..evaluation.settings import REFERENCE_DIR
from ..models.discovery import discover_checkpoints
from ..suite.corpus_option import parse_corpus
from ..suite.declarations import declare
from ..suite.figures import Figure, resolve_figure_key, task_figure_key
from ..suite.registry import Registry

# The families a run selects with -m (each item carries its family's marker), and their items.
FAMILIES = {
    "perplexity": "test_perplexity[<checkpoint>-<split>]: bits per byte, perplexity, loss per corpus split",
    "smallbench": "test_smallbench[<checkpoint>-<task>]: accuracy by log-likelihood per task",
    "latency": "test_latency[<checkpoint>-<BxS>]: forward latency per shape (--latency-shapes)",
    "throughput": "test_throughput, test_batch_scaling: tokens per second; the batch sweep (--batch-sweep)",
}


def also_accepted(key: str, figures: list[Figure]) -> list[str]:
    """The other names a person may write for a task's figure (a task's name and label alone, its
    key spelt with the task's name): only those that ``resolve_figure_key`` does take to ``key``."""
    figure = next(f for f in figures if f.key == key)
    spelt = [figure.task or "", figure.label, f"smallbench_{figure.task}_acc"]
    return [name for i, name in enumerate(spelt) if name and name != key and name not in spelt[:i]
            and resolve_figure_key(name, figures) == key]


def listing(registry: Registry) -> dict[str, Any]:
    """The listing as data (``list --json``)."""
    figures = registry.figure_table()
    tasks = []
    for task in registry.tasks.values():
        key = task_figure_key(task)
        tasks.append({"name": task.name, "label": task.display, "figure_key": key,
                      "also_accepted": also_accepted(key, figures), "prompt_sets": sorted(task.prompts),
                      "split": task.split, "fewshot_split": task.fewshot_split,
                      "data": "own files" if task.read else f"smallbench/{task.name}/<split>.jsonl or hub "
                                                             f"{task.hub[0]}" + (f" ({task.hub[1]})" if task.hub[1]
                                                                                  else ""),
                      "figures": [f.key for f in figures if f.task == task.name]})
    corpora = []
    for corpus in registry.corpora.values():
        paths = {corpus.record_path(split) for split in corpus.splits}
        corpora.append({"name": corpus.name, "label": corpus.label, "splits": list(corpus.splits),
                        "figures": [f.key for f in figures if f.gate and f.path[:-1] in paths]})
    references = [{"name": spec.name, "path": str(spec.path)} for spec in discover_checkpoints([REFERENCE_DIR])]
    return {"tasks": tasks, "corpora": corpora, "families": dict(FAMILIES), "reference_checkpoints": references}


def render_listing(found: dict[str, Any]) -> str:
    """The listing as a person reads it: four short tables."""
    tasks = markdown_table(
        ["task", "figure key", "also accepted as", "prompt sets (--prompts)", "split", "data"],
        [[t["name"], t["figure_key"], ", ".join(t["also_accepted"]) or "—", ", ".join(t["prompt_sets"]),
          t["split"], t["data"]] for t in found["tasks"]])
    corpora = markdown_table(["corpus", "label", "splits", "gated figures"],
                             [[c["name"], c["label"], ", ".join(c["splits"]), ", ".join(c["figures"])]
                              for c in found["corpora"]])
    families = markdown_table(["family (-m)", "items"], [[k, v] for k, v in found["families"].items()])
    references = markdown_table(["reference checkpoint", "path (give it to --checkpoint)"],
                                [[r["name"], r["path"]] for r in found["reference_checkpoints"]])
    return "\n\n".join([
        "Tasks (select one with -k NAME; a figure key or any name beside it is accepted by --compare-by, "
        "history --metric and watch --metric)", tasks,
        "Corpora (perplexity; add one with --corpus NAME=SOURCE)", corpora,
        "Families", families,
        "Reference checkpoints (evaluated when no --checkpoint is given)", references]) + "\n"


def list_suite(task_files: list[Path], corpora: list[str]) -> dict[str, Any]:
    """The listing of the shipped suite plus the declarations given, as a run would declare them."""
    return listing(declare(Registry.default(), [parse_corpus(text, Path.cwd()) for text in corpora], task_files))
