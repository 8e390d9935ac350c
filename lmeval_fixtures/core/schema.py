"""The record's schema (``schema/metrics.schema.json``): its version, its flat fields, validation.

Every written ``metrics.json`` validates against the shipped schema, and the figure table
reads which figures have a flat field of the original schema from it, so the schema is
the single source of both and sits below every wing that writes or reads a record.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from .errors import RecordInvalid

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
    validator = jsonschema.Draft202012Validator(load_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(record))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise RecordInvalid(f"metrics record invalid at {where}: {error.message}")
