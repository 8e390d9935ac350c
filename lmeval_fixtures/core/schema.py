"""The record's schema (``schema/metrics.schema.json``): its version, its flat fields, validation.

Every written ``metrics.json`` validates against the shipped schema, and the figure table
reads which figures have a flat field of the original schema from it, so the schema is
the single source of both and sits below every wing that writes or reads a record.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from .errors import RecordInvalid
from .names import component_name_problem, plain_name_problem

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


@cache
def load_schema() -> dict[str, Any]:
    text = resources.files("lmeval_fixtures").joinpath("schema/metrics.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@cache
def legacy_fields() -> frozenset[str]:
    """The flat numeric fields of the shipped schema: a figure whose key is one of them is
    also written there, derived from the nested record."""
    numeric = ({"number", "null"}, {"integer", "null"})
    return frozenset(name for name, spec in load_schema()["properties"].items()
                     if set(spec.get("type", [])) in numeric)


def validate_record(record: dict[str, Any]) -> None:
    """The record against the shipped schema, then what a JSON schema cannot say and every reader
    relies on (``name_problems``); ``RecordInvalid`` naming where."""
    validator = jsonschema.Draft202012Validator(load_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(record))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise RecordInvalid(f"metrics record invalid at {where}: {error.message}")
    problem = next(iter(name_problems(record)), None)
    if problem is not None:
        raise RecordInvalid(f"metrics record invalid at {problem[0]}: {problem[1]}")


def name_problems(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, why) for each name a reader turns into a path, and the time it turns into a date:
    the checkpoint's name (``core.names.component_name_problem``: a record written by hand or by
    another tool must not make ``merge`` or ``export-lmeval`` write outside their folder), each
    task's and corpus's and split's name (plain names, as declared), and the timestamp (ISO 8601)."""
    found = []
    problem = component_name_problem(record["checkpoint"]["name"])
    if problem:
        found.append(("checkpoint/name", problem))
    named = [("smallbench", name) for name in record.get("smallbench") or {}]
    for corpus, splits in (record.get("corpora") or {}).items():
        named += [("corpora", corpus)] + [(f"corpora/{corpus}", split) for split in splits]
    found += [(where, problem) for where, name in named if (problem := plain_name_problem(name))]
    try:
        datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))
    except ValueError:
        found.append(("timestamp", f"{ascii(record['timestamp'])[:60]} is not an ISO 8601 time"))
    return found
