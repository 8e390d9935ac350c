"""The metrics record: its schema, how item fragments merge into it, validation.

Items contribute *fragments* (small nested dicts) per checkpoint. Fragments are
merged in item-id order, so the record is the same whichever process produced
which fragment, for any ``-n``. The original schema's flat fields are always
present (``null`` when not measured); JSON has no NaN, so non-finite figures
become ``null`` and are listed under ``errors``.
"""

from __future__ import annotations

import copy
import json
import math
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

SCHEMA_VERSION = 1

ORIGINAL_FIELDS = (
    "run_id", "experiment_name", "timestamp",
    "total_params", "d_model", "d_ff", "n_layers", "embedding_ratio", "glu_expansion",
    "train_loss", "train_perplexity",
    "val_loss", "val_perplexity", "test_loss", "test_perplexity",
    "smallbench_sentiment_acc", "smallbench_nli_acc", "smallbench_qa_acc",
    "smallbench_paraphrase_acc", "smallbench_avg_acc",
    "latency_batch1_seq128", "latency_batch1_seq512",
    "throughput_tokens_per_sec", "memory_allocated_mb", "memory_reserved_mb",
    "seed", "git_commit",
)


SAMPLES_KEY = "_samples"  # fragment key of per-example rows, written to samples-*.jsonl, not the record


class RecordInvalid(ValueError):
    """A record that does not match the shipped schema."""


@cache
def load_schema() -> dict[str, Any]:
    text = resources.files("lmeval_fixtures").joinpath("schema/metrics.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate_record(record: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(load_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(record))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise RecordInvalid(f"metrics record invalid at {where}: {error.message}")


def deep_merge(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    """Merge ``fragment`` into ``base`` in place.

    Nested dicts merge; lists extend without repeating an entry already there (so
    the same fragment sent by two workers counts once); other values replace.
    """
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        elif isinstance(value, list) and isinstance(base.get(key), list):
            base[key].extend(copy.deepcopy(v) for v in value if v not in base[key])
        else:
            base[key] = copy.deepcopy(value)
    return base


def replace_non_finite(value: Any, path: str = "", found: list[str] | None = None) -> Any:
    """Copy of ``value`` with NaN/inf floats as ``None``; their paths go to ``found``."""
    if isinstance(value, float) and not math.isfinite(value):
        if found is not None:
            found.append(f"{path or 'value'} is {value} (written as null)")
        return None
    if isinstance(value, dict):
        return {k: replace_non_finite(v, f"{path}.{k}" if path else k, found) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_non_finite(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def empty_record(run: dict[str, Any], name: str) -> dict[str, Any]:
    record: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    record.update({key: None for key in ORIGINAL_FIELDS})
    record.update({
        "run_id": run["run_id"], "experiment_name": run.get("experiment_name"), "timestamp": run["timestamp"],
        "seed": run.get("seed"), "git_commit": run.get("git_commit"),
        "checkpoint": {"name": name, "path": ""},
        "environment": copy.deepcopy(run["environment"]),
        "settings": copy.deepcopy(run.get("settings", {})),
        "data_fingerprints": {}, "perplexity": {}, "items": {}, "errors": [], "complete": True,
        "invocations": [{"timestamp": run["timestamp"], "git_commit": run.get("git_commit"),
                         "args": run.get("args", [])}],
    })
    return record


class RecordMergeError(ValueError):
    """Two records that do not describe the same checkpoint and data."""


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def merge_records(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Fold a later invocation of the same run into an earlier record (e.g. timings after an -n auto run).

    The later figures win where both measured something; a figure the later
    invocation did not measure (null) never erases an earlier one. Records of
    different weights or of the same file name with different contents are refused.
    """
    mine, theirs = earlier["checkpoint"].get("sha256"), later["checkpoint"].get("sha256")
    if mine and theirs and mine != theirs:
        raise RecordMergeError(f"{later['checkpoint']['name']}: weights differ from the earlier record's "
                               f"(sha256 {theirs[:12]} vs {mine[:12]})")
    for name, sha in later.get("data_fingerprints", {}).items():
        if earlier.get("data_fingerprints", {}).get(name, sha) != sha:
            raise RecordMergeError(f"{later['checkpoint']['name']}: {name} differs from the earlier record's data")
    merged = copy.deepcopy(earlier)
    update = _drop_nulls({k: v for k, v in later.items()
                          if k not in ("schema_version", "run_id", "timestamp", "experiment_name", "invocations",
                                       "complete", "errors")})
    # a timing entry is one measurement: a later one replaces it whole (a "not taken" note must not linger)
    for shape, entry in update.pop("latency", {}).items():
        merged.setdefault("latency", {})[shape] = entry
    for key in ("throughput", "batch_scaling"):
        if key in update:
            merged[key] = update.pop(key)
    deep_merge(merged, update)
    merged["errors"] = earlier.get("errors", []) + [e for e in later.get("errors", []) if e not in earlier["errors"]]
    merged["invocations"] = earlier.get("invocations", []) + later.get("invocations", [])
    merged["complete"] = bool(earlier.get("complete", True) and later.get("complete", True))
    derive_fields(merged)
    return _schema_order(merged)


SMALLBENCH_KEYS = ("sentiment", "nli", "qa", "paraphrase")


def derive_fields(record: dict[str, Any]) -> None:
    """Fields that follow from others, filled after every fragment is in.

    ``smallbench_avg_acc`` is the mean of the four task accuracies, and stays null
    unless all four ran: an average over a subset would not compare with others.
    """
    accs = [record.get(f"smallbench_{key}_acc") for key in SMALLBENCH_KEYS]
    if all(a is not None for a in accs):
        record["smallbench_avg_acc"] = sum(accs) / len(accs)
    if record.get("smallbench"):
        record["smallbench_tasks"] = sorted(record["smallbench"])
    if record.get("train_loss") is not None and record.get("train_perplexity") is None:
        try:
            record["train_perplexity"] = math.exp(record["train_loss"])
        except OverflowError:
            record["train_perplexity"] = math.inf


def _schema_order(record: dict[str, Any]) -> dict[str, Any]:
    """Keys in the schema's order (then any extras), so records read and diff alike."""
    order = list(load_schema()["properties"])
    rank = {key: i for i, key in enumerate(order)}
    return dict(sorted(record.items(), key=lambda kv: (rank.get(kv[0], len(order)), kv[0])))


class RunRecorder:
    """Collects fragments and item outcomes for one run; builds one record per checkpoint."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = run
        self.fragments: list[tuple[str, str, dict[str, Any]]] = []
        self.outcomes: dict[str, dict[str, dict[str, Any]]] = {}
        self.expected: dict[str, set[str]] = {}

    def expect(self, checkpoint: str, item: str) -> None:
        """An item collected to run; one that never reports is listed as "not run"."""
        self.expected.setdefault(checkpoint, set()).add(item)

    def add(self, checkpoint: str, item: str, fragment: dict[str, Any]) -> None:
        self.fragments.append((checkpoint, item, copy.deepcopy(fragment)))

    def add_outcome(self, checkpoint: str, item: str, outcome: str, reason: str | None = None,
                    duration_s: float | None = None) -> None:
        self.outcomes.setdefault(checkpoint, {})[item] = {
            "outcome": outcome, "reason": reason, "duration_s": duration_s,
        }

    def export(self) -> str:
        """JSON of the fragments, as shipped from one process to another."""
        return json.dumps(self.fragments)

    def absorb(self, exported: str) -> None:
        self.fragments.extend(tuple(f) for f in json.loads(exported))

    def checkpoint_names(self) -> list[str]:
        names = {name for name, _, _ in self.fragments} | set(self.outcomes) | set(self.expected)
        return sorted(names)

    def samples(self, checkpoint: str) -> dict[str, list[dict[str, Any]]]:
        """Per-example rows (``--log-samples``) by set name, e.g. ``smallbench-sst2``: kept out of the record."""
        found: dict[str, list[dict[str, Any]]] = {}
        for name, _, fragment in sorted(self.fragments, key=lambda f: f[1]):
            if name == checkpoint:
                found.update(fragment.get(SAMPLES_KEY, {}))
        return found

    def records(self, interrupted: bool = False) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        for name in self.checkpoint_names():
            record = empty_record(self.run, name)
            for _, _, fragment in sorted((f for f in self.fragments if f[0] == name), key=lambda f: f[1]):
                deep_merge(record, {k: v for k, v in fragment.items() if k != SAMPLES_KEY})
            items = dict(self.outcomes.get(name, {}))
            missing = sorted(self.expected.get(name, set()) - items.keys())
            for item in missing:
                items[item] = {"outcome": "not run", "reason": "the run ended before this item reported",
                               "duration_s": None}
            record["items"] = dict(sorted(items.items()))
            derive_fields(record)
            problems: list[str] = []
            record = replace_non_finite(record, found=problems)
            record["errors"] = list(record["errors"]) + problems
            record["complete"] = not interrupted and not missing
            records[name] = _schema_order(record)
        return records
