"""A run exported in lm-evaluation-harness's results and samples layout, so its downstream tools read ours.

lm-eval (0.4.x, ``loggers.evaluation_tracker``) writes, per model, ``<model>/results_<date>.json``
(keys ``results``, ``configs``, ``versions``, ``n-shot``, ``higher_is_better``, ``n-samples``,
``config``, ...) and one ``samples_<task>_<date>.jsonl`` per task; its readers find them by those
names (``utils.get_results_filenames``, ``get_file_task_name``, ``get_file_datetime``) and render
the results with ``utils.make_table``. Here one checkpoint's record (and its samples, when the run
had ``--log-samples``) becomes that folder:

- a SmallBench task is a ``multiple_choice`` task named as ours (``sst2``): ``acc,none``,
  ``acc_norm,none`` and their standard errors; its samples hold each choice's log-likelihood and
  greedy flag as lm-eval's ``resps`` do;
- a perplexity split is a ``loglikelihood_rolling`` task ``<corpus>_<split>``
  (``wikitext_validation``): ``word_perplexity``, ``byte_perplexity`` and ``bits_per_byte``, with
  per-document samples of (log-likelihood, words or bytes), as lm-eval logs them.

Nothing is recomputed: every number is the record's (or its samples'), under lm-eval's name.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.errors import RecordError
from ..core.files import write_atomic
from ..suite.figures import known_corpora, known_tasks, lookup
from ..suite.registry import Registry
from .fragments import perplexity_samples_name, smallbench_samples_name

FILTER = "none"  # lm-eval's key suffix for unfiltered metrics ("acc,none")
VERSION = 1.0  # each exported task's version (lm-eval's per-task "versions")
MULTIPLE_CHOICE_METRICS = ("acc", "acc_norm")
ROLLING_METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte")
# lm-eval's aggregation of each rolling metric's (log-likelihood, count) pairs (its wikitext task's)
ROLLING_AGGREGATIONS = {"word_perplexity": "weighted_perplexity", "byte_perplexity": "weighted_perplexity",
                        "bits_per_byte": "bits_per_byte"}


def date_id(timestamp: str) -> str:
    """lm-eval's date in file names (``datetime.now().isoformat()`` with ``:`` as ``-``), from the record's time."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds").replace(":", "-")


def sanitized_model_name(name: str) -> str:
    """As lm-eval's ``utils.sanitize_model_name`` makes a model's folder name."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def lmeval_results(record: dict[str, Any], registry: Registry | None = None) -> dict[str, Any]:
    """The ``results_<date>.json`` object of one checkpoint's record."""
    registry = registry or Registry.default()
    settings = record.get("settings") or {}
    out: dict[str, Any] = {"results": {}, "configs": {}, "versions": {}, "n-shot": {}, "higher_is_better": {},
                           "n-samples": {}}
    declared = {task.name: task for task in known_tasks(registry.tasks.values(), [record])}
    for name, entry in (record.get("smallbench") or {}).items():
        task = declared[name]
        prompt = task.prompts.get(entry.get("prompt_set") or "smallbench") or next(iter(task.prompts.values()), None)
        out["results"][name] = {"alias": name} | {
            f"{metric}{suffix},{FILTER}": _finite(entry.get(f"{metric}{suffix}"))
            for metric in MULTIPLE_CHOICE_METRICS for suffix in ("", "_stderr")}
        out["configs"][name] = {
            "task": name, "dataset_path": task.hub[0] or None, "dataset_name": task.hub[1] or None,
            "validation_split": task.split, "fewshot_split": task.fewshot_split, "output_type": "multiple_choice",
            "doc_to_text": prompt.template if prompt else None,
            "doc_to_choice": list(prompt.choices) if prompt else None, "doc_to_target": "label",
            "target_delimiter": prompt.delimiter if prompt else " ",
            "fewshot_delimiter": prompt.fewshot_delimiter if prompt else "\n\n",
            "num_fewshot": entry.get("fewshot", 0),
            "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                            for m in MULTIPLE_CHOICE_METRICS],
            "metadata": {"version": VERSION, "prompt_set": entry.get("prompt_set"),
                         "samples": smallbench_samples_name(name)},  # our samples-<this>.jsonl
        }
        out["higher_is_better"][name] = dict.fromkeys(MULTIPLE_CHOICE_METRICS, True)
        out["n-shot"][name] = entry.get("fewshot", 0)
        out["n-samples"][name] = {"original": entry.get("n"), "effective": entry.get("n")}
        out["versions"][name] = VERSION
    for corpus in known_corpora(registry.corpora.values(), [record]):
        for split in corpus.splits:
            entry = lookup(record, corpus.record_path(split))
            if not isinstance(entry, dict):
                continue
            name = f"{corpus.name}_{split}"
            out["results"][name] = {"alias": f"{corpus.label} {split}"} | {
                f"{metric},{FILTER}": _finite(entry.get(metric)) for metric in ROLLING_METRICS} | {
                f"{metric}_stderr,{FILTER}": "N/A" for metric in ROLLING_METRICS}
            out["configs"][name] = {
                "task": name, "dataset_name": corpus.name, "test_split": split,
                "output_type": "loglikelihood_rolling", "num_fewshot": 0,
                "metric_list": [{"metric": m, "aggregation": ROLLING_AGGREGATIONS[m], "higher_is_better": False}
                                for m in ROLLING_METRICS],
                "metadata": {"version": VERSION, "context_length": entry.get("context_length"),
                             "stride": entry.get("stride"), "detokenized": entry.get("detokenized"),
                             "samples": perplexity_samples_name(corpus, split)},
            }
            out["higher_is_better"][name] = dict.fromkeys(ROLLING_METRICS, False)
            out["n-shot"][name] = 0
            out["n-samples"][name] = {"original": entry.get("documents"), "effective": entry.get("documents")}
            out["versions"][name] = VERSION
    checkpoint = record.get("checkpoint") or {}
    out["config"] = {
        "model": "lmeval-fixtures", "model_args": f"pretrained={checkpoint.get('path')}",
        "model_num_parameters": record.get("total_params"), "model_dtype": settings.get("dtype"),
        "batch_size": settings.get("batch_tokens"), "device": settings.get("device"),
        "limit": settings.get("max_samples"), "random_seed": settings.get("seed"),
        "bootstrap_iters": 0, "gen_kwargs": None,
    }
    out |= {"git_hash": record.get("git_commit"), "date": _epoch(record.get("timestamp")),
            "model_name": checkpoint.get("name"), "model_name_sanitized": sanitized_model_name(
                str(checkpoint.get("name"))), "model_source": "lmeval-fixtures", "run_id": record.get("run_id")}
    return out


def _epoch(timestamp: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def multiple_choice_samples(rows: list[dict[str, Any]], continuations: tuple[str, ...] | None = None,
                            delimiter: str = " ") -> list[dict[str, Any]]:
    """Our SmallBench samples (``TaskResult.samples``) as lm-eval's ``samples_<task>`` lines."""
    samples = []
    for doc_id, row in enumerate(rows):
        context = row.get("context", row.get("context_sha256", ""))
        choices = row.get("choices") or row.get("choices_sha256") or list(continuations or ())
        scored = [delimiter + c if "choices" in row else c for c in choices]
        arguments = {f"gen_args_{i}": {"arg_0": context, "arg_1": c} for i, c in enumerate(scored)}
        pairs = [[ll, bool(greedy)] for ll, greedy in zip(row["loglikelihoods"], row["greedy"], strict=True)]
        target = row["label"]
        samples.append({
            "doc_id": doc_id, "doc": {"idx": row["idx"], "label": target}, "target": str(target),
            "arguments": arguments, "resps": [[p] for p in pairs], "filtered_resps": pairs,
            "filter": FILTER, "metrics": list(MULTIPLE_CHOICE_METRICS),
            "doc_hash": _sha256(json.dumps({"idx": row["idx"], "label": target}, sort_keys=True)),
            "prompt_hash": _sha256(str(context)), "target_hash": _sha256(str(target)),
            "acc": 1.0 if row["correct"] else 0.0, "acc_norm": 1.0 if row["correct_norm"] else 0.0,
        })
    return samples


def rolling_samples(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our per-document perplexity samples as lm-eval's ``loglikelihood_rolling`` lines: each metric
    a (log-likelihood, count) pair that lm-eval's aggregations (weighted_perplexity, bits_per_byte) read."""
    samples = []
    for row in rows:
        loglikelihood = -row["nll"]
        samples.append({
            "doc_id": row["document"], "doc": {"document": row["document"]}, "target": "",
            "arguments": {"gen_args_0": {"arg_0": f"document {row['document']}"}},
            "resps": [[loglikelihood]], "filtered_resps": [loglikelihood], "filter": FILTER,
            "metrics": list(ROLLING_METRICS), "doc_hash": _sha256(str(row["document"])), "prompt_hash": "",
            "target_hash": _sha256(""),
            "word_perplexity": [loglikelihood, row["words"]], "byte_perplexity": [loglikelihood, row["bytes"]],
            "bits_per_byte": [loglikelihood, row["bytes"]],
        })
    return samples


def export_lmeval(record: dict[str, Any], samples: dict[str, list[dict[str, Any]]], out: Path,
                  registry: Registry | None = None) -> list[Path]:
    """Write ``out/<model>/results_<date>.json`` and a ``samples_<task>_<date>.jsonl`` per task whose
    samples the run logged; returns the files written."""
    registry = registry or Registry.default()
    if not record.get("timestamp") or not (record.get("checkpoint") or {}).get("name"):
        raise RecordError("the record has no timestamp or checkpoint name: not a record of a finished run")
    results = lmeval_results(record, registry)
    folder = out / results["model_name_sanitized"]
    when = date_id(record["timestamp"])
    written = []
    for task in results["results"]:
        rows = _our_samples(task, results["configs"][task], samples)
        if rows is None:
            continue
        path = folder / f"samples_{task}_{when}.jsonl"
        write_atomic(path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in rows))
        written.append(path)
    results["task_hashes"] = {}
    path = folder / f"results_{when}.json"
    write_atomic(path, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return [path, *written]


def _our_samples(task: str, config: dict[str, Any], samples: dict[str, list[dict[str, Any]]]) -> list | None:
    """lm-eval's sample lines for one exported task, from the run's samples files (None without them)."""
    rows = samples.get(config["metadata"]["samples"])
    if rows is None:
        return None
    if config["output_type"] == "multiple_choice":
        return multiple_choice_samples(rows, tuple(config["doc_to_choice"] or ()), config["target_delimiter"])
    return rolling_samples(rows)
