"""The metrics record: its schema, the fragments items contribute, how they merge, validation.

Items contribute *fragments* (small nested dicts) per checkpoint, made by the
builders below (``identity``, ``perplexity``, ``smallbench``, ``latency``,
``throughput``, ...), so no benchmark, the shipped ones or a user's, spells a
schema key. Fragments merge in item-id order, so the record is the same whichever
process produced which fragment, for any ``-n``. Figures live in the nested
record; the original schema's flat fields (``val_perplexity``,
``smallbench_sentiment_acc``, ``latency_batch1_seq128``, ...) are derived from it
through the table of figures (``figures.py``) and are always present (``null``
when not measured). JSON has no NaN, so non-finite figures become ``null`` and
are listed under ``errors``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import jsonschema

if TYPE_CHECKING:
    from .checkpoints import LoadedCheckpoint
    from .corpora import Corpus
    from .figures import Figure
    from .gates import Gate
    from .perplexity import PerplexityResult
    from .smallbench import TaskResult
    from .tasks import Task

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

IDENTITY_ITEM = "~checkpoint"  # the item id of identity fragments: it sorts after every item, so they win merges
SAMPLES_KEY = "_samples"  # fragment key of per-example rows, written to samples-*.jsonl, not the record

Fragment = dict[str, Any]

# Settings that change a figure: records made under different ones never merge into one.
FIGURE_SETTINGS = ("seed", "max_eval_tokens", "ppl_stride", "detokenize", "prompts", "max_samples", "fewshot",
                   "device", "dtype")


class RecordInvalid(ValueError):
    """A record that does not match the shipped schema."""


class RecordMergeError(ValueError):
    """Two records that do not describe the same checkpoint and data."""


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


# ---------------------------------------------------------------- fragment builders


def nest(path: Iterable[str], value: Any) -> Fragment:
    """``nest(("a", "b"), v)`` -> ``{"a": {"b": v}}``."""
    for part in reversed(tuple(path)):
        value = {part: value}
    return value


def identity(loaded: LoadedCheckpoint, worker: dict[str, Any] | None = None) -> Fragment:
    """What a loaded checkpoint is: its identity, parameter allocation and training facts."""
    shape = loaded.allocation
    fragment = {
        "checkpoint": loaded.identity,
        "total_params": shape.total_params,
        "embedding_params": shape.embedding_params,
        "non_embedding_params": shape.non_embedding_params,
        "embedding_ratio": shape.embedding_ratio,
        "d_model": shape.d_model, "d_ff": shape.d_ff, "n_layers": shape.n_layers, "n_heads": shape.n_heads,
        "vocab_size": shape.vocab_size, "glu_expansion": shape.glu_expansion,
        "train_loss": loaded.identity.get("training", {}).get("train_loss"),
    }
    if worker:  # which worker evaluated this checkpoint, with how many threads, on which device
        fragment["environment"] = {"workers": {worker["id"]: worker}}
    return fragment


def load_failure(name: str, path: str, reason: str) -> Fragment:
    """A checkpoint that could not be loaded: its record names it and says why."""
    return {"checkpoint": {"name": name, "path": path}, "errors": [reason]}


def perplexity(corpus: Corpus, split: str, result: PerplexityResult, *, detokenized: bool,
               max_eval_tokens: int | None, seconds: float, fingerprints: dict[str, str],
               log_samples: str | None = None, data_notes: list[str] = ()) -> Fragment:
    """One corpus split's perplexity figures (token, byte, word perplexity, bits per byte, top-k);
    ``data_notes`` say how the text was read when not as it is on disk (line ends normalised)."""
    figures = result.summary() | {
        "detokenized": detokenized, "max_eval_tokens": max_eval_tokens,
        "seconds": round(seconds, 3), "tokens_per_second": result.tokens / seconds if seconds > 0 else None,
    }
    if data_notes:
        figures["data_notes"] = list(data_notes)
    figures["per_document"] = encode_per_document(result.per_document)
    fragment = nest(corpus.record_path(split), figures) | {"data_fingerprints": dict(fingerprints)}
    if log_samples:
        name = f"perplexity-{split}" if corpus.legacy else f"perplexity-{corpus.name}-{split}"
        fragment[SAMPLES_KEY] = {name: result.samples()}
    return fragment


def smallbench(task: Task, result: TaskResult, fingerprints: dict[str, str],
               log_samples: str | None = None) -> Fragment:
    """One task's figures (acc, acc_norm, standard errors, counts, the small-model figures) and its
    compact per-row values (``per_row``), so comparison.md can run paired tests without samples."""
    figures = result.summary() | {"per_row": encode_per_row(result.per_row())}
    fragment: Fragment = {"smallbench": {task.name: figures}, "data_fingerprints": dict(fingerprints)}
    if log_samples:
        fragment[SAMPLES_KEY] = {f"smallbench-{task.name}": result.samples(log_samples)}
    return fragment


# Per-row values travel in the record as strings, one line of JSON each, not as lists (which an
# indented metrics.json would spread over one line per row: 3,270 lines for BoolQ). Log-likelihoods
# and margins keep 4 decimals (1e-4 nats, far below any difference a paired test can see); the
# figures themselves are computed from the unrounded values. About 20 bytes per row: some 90 kB
# for the four shipped tasks.
PER_ROW_DECIMALS = 4


def rows_fingerprint(idx: list[int], labels: list[int]) -> str:
    """sha256 of the rows' ``idx:label`` in order: two checkpoints are paired only on the same rows."""
    return hashlib.sha256(",".join(f"{i}:{label}" for i, label in zip(idx, labels, strict=True)).encode()).hexdigest()


def encode_per_row(rows: dict[str, list[Any]]) -> dict[str, Any]:
    """The compact ``per_row`` entry of a task (see ``PerRow``) from ``TaskResult.per_row()``."""
    def numbers(values: list[float | None]) -> str | None:
        return None if any(v is None for v in values) else " ".join(f"{v:.{PER_ROW_DECIMALS}f}" for v in values)

    return {"rows_sha256": rows_fingerprint(rows["idx"], rows["label"]),
            "correct": "".join("1" if c else "0" for c in rows["correct"]),
            "margin": numbers(rows["margin"]), "gold_loglikelihood": numbers(rows["gold_loglikelihood"]),
            "gold_bytes": " ".join(str(b) for b in rows["gold_bytes"])}


@dataclass(frozen=True)
class PerRow:
    """A task's per-row values as a record holds them: ``correct`` is acc's verdict per row
    ("1"/"0"), ``margin`` ll[gold] - max(ll[other]) and ``gold_loglikelihood`` in nats, rounded to
    ``PER_ROW_DECIMALS``, ``gold_bytes`` the UTF-8 bytes of the gold continuation as scored."""

    rows_sha256: str
    correct: list[bool]
    margin: list[float] | None
    gold_loglikelihood: list[float]
    gold_bytes: list[int]


def decode_per_row(entry: dict[str, Any] | None) -> PerRow | None:
    """A task entry's per-row values, or None where it has none (an older record) or they do not
    hold one value per row (a record edited by hand): a paired test then says it cannot run."""
    found = (entry or {}).get("per_row")
    if not isinstance(found, dict):
        return None
    try:
        correct = [c == "1" for c in found["correct"]]
        margin = None if found.get("margin") is None else [float(v) for v in found["margin"].split()]
        gold = [float(v) for v in found["gold_loglikelihood"].split()]
        gold_bytes = [int(v) for v in found["gold_bytes"].split()]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    n = entry.get("n")
    if any(len(values) != n for values in (correct, gold, gold_bytes, margin or correct)):
        return None
    return PerRow(found["rows_sha256"], correct, margin, gold, gold_bytes)


def encode_per_document(per_document: list[tuple[float, int, int, int]]) -> dict[str, str]:
    """Each scored document's summed NLL (nats, 4 decimals), tokens and UTF-8 bytes, compact as
    ``per_row``: enough for a paired bootstrap over documents (``--gate paired``) without samples."""
    return {"nll": " ".join(f"{d[0]:.{PER_ROW_DECIMALS}f}" for d in per_document),
            "tokens": " ".join(str(d[1]) for d in per_document),
            "bytes": " ".join(str(d[2]) for d in per_document)}


def decode_per_document(entry: dict[str, Any] | None) -> list[tuple[float, int, int]] | None:
    """(NLL, tokens, bytes) per document of a split entry, or None where it has none or they do
    not hold one value per document."""
    found = (entry or {}).get("per_document")
    try:
        nll = [float(v) for v in found["nll"].split()]
        tokens = [int(v) for v in found["tokens"].split()]
        n_bytes = [int(v) for v in found["bytes"].split()]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not (len(nll) == len(tokens) == len(n_bytes) == entry.get("documents")):
        return None
    return list(zip(nll, tokens, n_bytes, strict=True))


def shape_name(batch: int, seq: int) -> str:
    return f"{batch}x{seq}"


def latency(batch: int, seq: int, stats: dict[str, Any], readings: dict[str, Any]) -> Fragment:
    """One shape's forward latency statistics (ms) and memory readings."""
    return {"latency": {shape_name(batch, seq): stats | {"timing": "taken", "batch": batch, "seq": seq} | readings}}


def throughput(stats: dict[str, Any], readings: dict[str, Any], *, batch: int, requested_batch: int, seq: int,
               notes: list[str]) -> Fragment:
    tokens_per_second = batch * seq / (stats["mean_ms"] / 1000)
    return {"throughput": stats | readings | {
        "timing": "taken", "batch": batch, "requested_batch": requested_batch, "seq": seq,
        "tokens_per_sec": tokens_per_second, "notes": list(notes)}}


def batch_scaling(seq: int, points: list[dict[str, Any]], stopped: str | None) -> Fragment:
    return {"batch_scaling": {"timing": "taken", "seq": seq, "points": points, "stopped": stopped}}


def timing_not_taken(family: str, reason: str, shape: tuple[int, int] | None = None) -> Fragment:
    """``family`` is latency (with its shape), throughput or batch_scaling."""
    entry = {"timing": "not taken", "reason": reason}
    return {family: {shape_name(*shape): entry}} if shape else {family: entry}


def gate_verdicts(gates: list[Gate]) -> Fragment:
    return {"gates": {g.name: {"ok": g.ok, "message": g.message} for g in gates}}


def samples_of(fragment: Fragment) -> dict[str, list[dict[str, Any]]]:
    return fragment.get(SAMPLES_KEY, {})


def without_samples(fragment: Fragment) -> Fragment:
    return {k: v for k, v in fragment.items() if k != SAMPLES_KEY}


# ---------------------------------------------------------------- building and merging records


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


def derive_fields(record: dict[str, Any], figures: list[Figure]) -> None:
    """Fields that follow from others, filled after every fragment is in: each flat field
    of the original schema from its figure, and the list of tasks that ran."""
    for figure in figures:
        if figure.legacy:
            record[figure.key] = figure.value(record)
    if record.get("smallbench"):
        record["smallbench_tasks"] = sorted(record["smallbench"])


def finalise(record: dict[str, Any], figures: list[Figure]) -> dict[str, Any]:
    """Derived fields, non-finite figures as null (listed under errors), keys in schema order."""
    derive_fields(record, figures)
    problems: list[str] = []
    record = replace_non_finite(record, found=problems)
    record["errors"] = list(record["errors"]) + [p for p in problems if p not in record["errors"]]
    return schema_order(record)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def merge_records(earlier: dict[str, Any], later: dict[str, Any], figures: list[Figure]) -> dict[str, Any]:
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
    mine_settings, their_settings = earlier.get("settings") or {}, later.get("settings") or {}
    changed = [k for k in FIGURE_SETTINGS if k in mine_settings and k in their_settings
               and mine_settings[k] != their_settings[k]]
    if changed:
        detail = ", ".join(f"{k} {their_settings[k]!r} vs {mine_settings[k]!r}" for k in changed)
        raise RecordMergeError(f"{later['checkpoint']['name']}: measured with other settings than the earlier "
                               f"record ({detail}); one record holds figures of one set of settings: use "
                               "another --run-id")
    merged = copy.deepcopy(earlier)
    given = {k: v for k, v in later.items()
             if k not in ("schema_version", "run_id", "timestamp", "experiment_name", "invocations", "complete",
                          "errors")}
    update = _drop_nulls(given)
    # a timing entry is one measurement: a later one replaces it whole (a "not taken" note must not linger)
    for shape, entry in update.pop("latency", {}).items():
        merged.setdefault("latency", {})[shape] = entry
    for key in ("throughput", "batch_scaling"):
        if key in update:
            merged[key] = update.pop(key)
    deep_merge(merged, update)
    _fill_missing(merged, given)  # a null the earlier record lacks is kept: shards merge to the whole run
    merged["errors"] = earlier.get("errors", []) + [e for e in later.get("errors", []) if e not in earlier["errors"]]
    merged["invocations"] = earlier.get("invocations", []) + [
        i for i in later.get("invocations", []) if i not in earlier.get("invocations", [])]
    merged["complete"] = bool(earlier.get("complete", True) and later.get("complete", True))
    derive_fields(merged, figures)
    return schema_order(merged)


def _fill_missing(base: dict[str, Any], given: dict[str, Any]) -> None:
    for key, value in given.items():
        if key not in base:
            base[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(base[key], dict):
            _fill_missing(base[key], value)


def schema_order(record: dict[str, Any]) -> dict[str, Any]:
    """Keys in the schema's order (then any extras), so records read and diff alike."""
    order = list(load_schema()["properties"])
    rank = {key: i for i, key in enumerate(order)}
    return dict(sorted(record.items(), key=lambda kv: (rank.get(kv[0], len(order)), kv[0])))
