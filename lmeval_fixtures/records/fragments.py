"""The fragments items contribute to a record, built here so no item spells a schema key.

A benchmark item (shipped or a user's) measures one thing and hands back a small nested
dict; the run merges those in item-id order into the record (``record.deep_merge``),
so the record is the same whichever worker produced which fragment. Keeping every
builder in one place keeps the schema's shape in one place: an item says *what* it
measured (a corpus split, a task, a timing shape) and the builder says *where* that
lives in the record, with the data fingerprints and per-row values later stages need
(merge, gates, paired tests). Per-example samples ride along under a private key and
are written beside the record, never into it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..core.names import shape_name
from .codecs import encode_per_document, encode_per_row

if TYPE_CHECKING:
    from ..engine.perplexity import PerplexityResult
    from ..models.loading import LoadedCheckpoint
    from ..suite.corpora import Corpus
    from ..suite.smallbench import TaskResult
    from ..suite.tasks import Task
    from .gates import Gate


IDENTITY_ITEM = "~checkpoint"  # the item id of identity fragments: it sorts after every item, so they win merges
SAMPLES_KEY = "_samples"  # fragment key of per-example rows, written to samples-*.jsonl, not the record

Fragment = dict[str, Any]


# ---------------------------------------------------------------- fragment builders


def nest(path: Iterable[str], value: Any) -> Fragment:
    """``nest(("a", "b"), v)`` -> ``{"a": {"b": v}}``."""
    for part in reversed(tuple(path)):
        value = {part: value}
    return value


def identity(loaded: LoadedCheckpoint, worker: dict[str, Any] | None = None,
             training: dict[str, Any] | None = None) -> Fragment:
    """What a loaded checkpoint is: its identity, parameter allocation and training facts.

    ``training`` (from ``evaluate(training=...)`` or a ``MetricsLogger``, with its ``source``)
    replaces the facts stored with the weights: a training loop knows its last loss better
    than a checkpoint written some steps before."""
    shape = loaded.allocation
    checkpoint = loaded.identity if not training else loaded.identity | {"training": dict(training)}
    fragment = {
        "checkpoint": checkpoint,
        "total_params": shape.total_params,
        "embedding_params": shape.embedding_params,
        "non_embedding_params": shape.non_embedding_params,
        "embedding_ratio": shape.embedding_ratio,
        "d_model": shape.d_model, "d_ff": shape.d_ff, "n_layers": shape.n_layers, "n_heads": shape.n_heads,
        "vocab_size": shape.vocab_size, "glu_expansion": shape.glu_expansion,
        "train_loss": checkpoint.get("training", {}).get("train_loss"),
    }
    if worker:  # which worker evaluated this checkpoint, with how many threads, on which device
        fragment["environment"] = {"workers": {worker["id"]: worker}}
    return fragment


def load_failure(name: str, path: str, reason: str) -> Fragment:
    """A checkpoint that could not be loaded: its record names it and says why."""
    return {"checkpoint": {"name": name, "path": path}, "errors": [reason]}


def not_loaded(record: dict[str, Any]) -> str | None:
    """Why ``record``'s checkpoint was never loaded (the reason ``load_failure`` recorded), else None: a
    loaded checkpoint's identity names its weights' digest, which a load failure cannot."""
    errors = record.get("errors") or []
    return None if (record.get("checkpoint") or {}).get("sha256") or not errors else str(errors[0])


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
        fragment[SAMPLES_KEY] = {perplexity_samples_name(corpus, split): result.samples()}
    return fragment


def smallbench(task: Task, result: TaskResult, fingerprints: dict[str, str],
               log_samples: str | None = None) -> Fragment:
    """One task's figures (acc, acc_norm, standard errors, counts, the small-model figures) and its
    compact per-row values (``per_row``), so comparison.md can run paired tests without samples."""
    figures = result.summary() | {"per_row": encode_per_row(result.per_row())}
    fragment: Fragment = {"smallbench": {task.name: figures}, "data_fingerprints": dict(fingerprints)}
    if log_samples:
        fragment[SAMPLES_KEY] = {smallbench_samples_name(task.name): result.samples(log_samples)}
    return fragment


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


def perplexity_samples_name(corpus: Corpus, split: str) -> str:
    """The example set (``samples-<name>.jsonl``) of a corpus split's per-document values."""
    return f"perplexity-{split}" if corpus.legacy else f"perplexity-{corpus.name}-{split}"


def smallbench_samples_name(task: str) -> str:
    """The example set (``samples-<name>.jsonl``) of a task's per-row values."""
    return f"smallbench-{task}"


def samples_of(fragment: Fragment) -> dict[str, list[dict[str, Any]]]:
    return fragment.get(SAMPLES_KEY, {})


def without_samples(fragment: Fragment) -> Fragment:
    return {k: v for k, v in fragment.items() if k != SAMPLES_KEY}
