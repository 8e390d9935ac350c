"""The body of each evaluation item, free of pytest: the shipped benchmarks and the library
API run the same code, so both write the same figures.

Each function measures and returns an ``ItemResult``: the fragment to record, what must
hold (``problems``: empty when the figures are sound) and, where one was computed, the
measured result object. The caller records the fragment first and then fails on a
problem, so a broken figure is both kept and reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.names import shape_name
from ..engine.memory_fit import is_out_of_memory
from ..engine.perplexity import PerplexityResult, score_documents
from ..engine.projection import EngineCaches
from ..engine.timing import MemoryWatch, RoundPolicy, summarise_ms, time_rounds
from ..models.loading import LoadedCheckpoint
from ..records import fragments
from ..records.alike import INPUTS, measurement_identity, value_sha256
from ..suite.smallbench import TaskResult, evaluate_task
from .inputs import CorpusSplit, TaskData
from .result_cache import CacheKey, ResultCache, item_key, texts_digest
from .settings import Settings

# times model(ids): (model, ids, round policy) -> statistics in ms (timing.summarise_ms plus "timer")
ForwardTimer = Callable[[torch.nn.Module, torch.Tensor, RoundPolicy], dict[str, Any]]
Progress = Callable[[int, int], None]
LiveFigures = Callable[[dict[str, float]], None]  # running figures (bits per byte, accuracy) while an item scores


@dataclass(frozen=True)
class ItemResult:
    """What every item returns: the ``fragment`` to record, the ``problems`` that make its figures
    unsound (empty when they are sound), and the measured ``result`` object where one was
    computed (``PerplexityResult``, ``TaskResult``; None for a cache hit and the timed items)."""

    fragment: fragments.Fragment
    problems: list[str] = field(default_factory=list)
    result: PerplexityResult | TaskResult | None = None

    @property
    def failure(self) -> str | None:
        """The problems as one line, or None when there are none."""
        return "; ".join(self.problems) or None


def perplexity_refusal(loaded: LoadedCheckpoint, settings: Settings) -> str | None:
    """Why this checkpoint's perplexity cannot be measured with these settings (one line), or None."""
    if settings.ppl_stride is not None and settings.ppl_stride > loaded.max_seq_len:
        return (f"--ppl-stride {settings.ppl_stride} exceeds {loaded.name}'s context of {loaded.max_seq_len} tokens; "
                f"use a stride of at most {loaded.max_seq_len}")
    return None


def cache_key(loaded: LoadedCheckpoint, settings: Settings, item: str, inputs: str) -> CacheKey | None:
    """What an evaluation item's figures depend on: the measurement's one identity
    (``alike.measurement_identity``: the bytes of weights, config and tokenizer loaded, the
    inputs' digest, the figure-changing settings, the context, the metric version), and what
    the fragment holds beside its figures (batch_tokens, log_samples); not the thread count."""
    recorded = settings.as_record()
    return item_key(measurement_identity(item, loaded.identity, inputs, recorded, loaded.max_seq_len)
                    | {"batch_tokens": recorded.get("batch_tokens"), "log_samples": recorded.get("log_samples")})


def corpus_inputs(data: CorpusSplit) -> str:
    """The digest of what a perplexity item reads: the documents scored (and the originals bytes
    and words are counted on) and the content of every file read, by content, never by name."""
    return value_sha256({"scored": texts_digest([d.text for d in data.documents]),
                         "originals": texts_digest([d.original for d in data.documents]),
                         "detokenized": data.detokenized, "notes": list(data.source.notes),
                         "files": sorted(data.source.fingerprints.values())})


def task_inputs(data: TaskData) -> str:
    """The digest of what a task item reads: the task's declaration (prompts, choices, template,
    reader rules: ``Task.declaration``, which names no place or process), the rows scored with
    their labels and choices, the shots' pool, and the content of every file read."""
    return value_sha256({"task": data.task.declaration(), "rows": value_sha256([data.rows, data.fewshot_pool]),
                         "files": sorted(data.source.fingerprints.values())})


def _cached(cache: ResultCache | None, key: CacheKey | None, item: str) -> fragments.Fragment | None:
    hit = cache.get(key) if cache is not None else None
    if hit is None:
        return None
    return hit.fragment | {"cache": {item: {"from_run": hit.run_id, "created": hit.created, "key": key.hexdigest}}}


def perplexity(loaded: LoadedCheckpoint, data: CorpusSplit, settings: Settings, progress: Progress | None = None,
               cache: ResultCache | None = None, engine: EngineCaches | None = None,
               live: LiveFigures | None = None) -> ItemResult:
    """A cached entry (same weights, tokenizer, texts and settings) is returned as it was
    recorded, with no result object; ``cache`` in the fragment says from which run. ``engine``:
    the run's scoring caches (``Inputs.engine``); ``live``: the running figures while it scores."""
    item = f"perplexity:{data.corpus.name}:{data.split}"
    inputs = corpus_inputs(data)
    key = None if cache is None else cache_key(loaded, settings, item, inputs)
    hit = _cached(cache, key, item)
    if hit is not None:
        return ItemResult(hit)
    start = time.perf_counter()
    result = score_documents(loaded.model, loaded.tokenizer, data.documents, loaded.max_seq_len,
                             stride=settings.ppl_stride, batch_tokens=settings.batch_tokens,
                             max_eval_tokens=settings.max_eval_tokens, progress=progress, caches=engine, live=live)
    seconds = time.perf_counter() - start
    fragment = fragments.perplexity(data.corpus, data.split, result, detokenized=data.detokenized,
                                 max_eval_tokens=settings.max_eval_tokens, seconds=seconds,
                                 fingerprints=data.source.fingerprints, log_samples=settings.log_samples,
                                 data_notes=data.source.notes) | {INPUTS: {item: inputs}}
    problems = []
    where = f"{data.corpus.label} {data.split}"
    if result.tokens == 0:
        problems.append(f"no tokens scored in {where}")
    elif not math.isfinite(result.loss):
        problems.append(f"{loaded.name}: {where} loss is {result.loss} (weights or numerics broken)")
    elif not math.isfinite(result.token_perplexity):
        problems.append(f"{loaded.name}: {where} perplexity overflows (loss {result.loss:.1f} nats/token); loss "
                        "and bits per byte are recorded")
    if not problems and cache is not None:
        cache.put(key, fragment)
    return ItemResult(fragment, problems, result)


def smallbench(loaded: LoadedCheckpoint, data: TaskData, settings: Settings, progress: Progress | None = None,
               cache: ResultCache | None = None, engine: EngineCaches | None = None,
               live: LiveFigures | None = None) -> ItemResult:
    item = f"smallbench:{data.task.name}"
    # the rows digested are the rows scored, each with its label and, where a task file's rows give
    # their own choices, those choices (row["choices"]); the task's repr holds its prompts and choices
    inputs = task_inputs(data)
    key = None if cache is None else cache_key(loaded, settings, item, inputs)
    hit = _cached(cache, key, item)
    if hit is not None:
        return ItemResult(hit)
    result = evaluate_task(
        loaded.model, loaded.tokenizer, data.task, data.rows, loaded.max_seq_len,
        prompt_set=settings.prompts, fewshot=settings.fewshot, fewshot_pool=data.fewshot_pool, seed=settings.seed,
        max_samples=settings.max_samples, batch_tokens=settings.batch_tokens, progress=progress, caches=engine,
        live=live,
    )
    fragment = fragments.smallbench(data.task, result, data.source.fingerprints, settings.log_samples) | {
        INPUTS: {item: inputs}}
    problems = []
    if result.n == 0:
        problems.append(f"{data.task.name}: no rows evaluated")
    elif not all(math.isfinite(ll) for row in result.rows for ll in row.loglikelihoods):
        problems.append(f"{loaded.name} {data.task.name}: non-finite log-likelihoods (weights or numerics broken)")
    if not problems and cache is not None:
        cache.put(key, fragment)
    return ItemResult(fragment, problems, result)


def too_long(loaded: LoadedCheckpoint, seq: int) -> str | None:
    """Why a timing at sequence ``seq`` cannot be taken on this model (a skip), or None."""
    if seq > loaded.max_seq_len:
        return f"sequence {seq} exceeds {loaded.name}'s context of {loaded.max_seq_len}"
    return None


def random_ids(loaded: LoadedCheckpoint, batch: int, seq: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, loaded.allocation.vocab_size, (batch, seq), generator=generator).to(loaded.device)


def latency(loaded: LoadedCheckpoint, batch: int, seq: int, settings: Settings, timer: ForwardTimer) -> ItemResult:
    ids = random_ids(loaded, batch, seq, settings.seed)
    memory = MemoryWatch(loaded.device)
    memory.start()
    policy = settings.latency_policy
    stats = timer(loaded.model, ids, policy)
    problems = [] if min(policy.least, policy.most) <= stats["rounds"] <= policy.most and stats["mean_ms"] > 0 else [
        f"latency {shape_name(batch, seq)}: {stats['rounds']} rounds, mean {stats['mean_ms']} ms (timer broken)"]
    return ItemResult(fragments.latency(batch, seq, stats, memory.read()), problems)


def throughput(loaded: LoadedCheckpoint, settings: Settings, timer: ForwardTimer) -> ItemResult:
    """Tokens per second at --throughput-shape, halving the batch until it fits."""
    requested, seq = settings.throughput_shape
    batch, notes = requested, []
    while True:
        memory = MemoryWatch(loaded.device)
        memory.start()
        try:
            ids = random_ids(loaded, batch, seq, settings.seed)
            stats = timer(loaded.model, ids, settings.throughput_policy)
            break
        except Exception as exc:  # only running out of memory is handled; everything else fails the item
            if not is_out_of_memory(exc) or batch == 1:
                raise
            notes.append(f"batch {batch} did not fit ({type(exc).__name__}); halved")
            batch //= 2
            if loaded.device.type == "cuda":
                torch.cuda.empty_cache()
    return ItemResult(fragments.throughput(stats, memory.read(), batch=batch, requested_batch=requested, seq=seq,
                                           notes=notes))


def batch_scaling(loaded: LoadedCheckpoint, settings: Settings, progress: Progress | None = None) -> ItemResult:
    """Tokens per second for each batch size of --batch-sweep, stopping at the first that does not fit."""
    seq = settings.throughput_shape[1]
    points, stopped = [], None
    for done, batch in enumerate(settings.batch_sweep):
        if progress is not None:
            progress(done, len(settings.batch_sweep))
        ids = random_ids(loaded, batch, seq, settings.seed)
        try:
            with torch.inference_mode():
                stats = summarise_ms(time_rounds(lambda ids=ids: loaded.model(ids), loaded.device,
                                                 settings.throughput_policy))
        except Exception as exc:  # only running out of memory ends the sweep cleanly
            if not is_out_of_memory(exc):
                raise
            stopped = f"batch {batch} did not fit ({type(exc).__name__})"
            break
        points.append({"batch": batch, "tokens_per_sec": batch * seq / (stats["mean_ms"] / 1000),
                       "mean_ms": stats["mean_ms"], "rounds": stats["rounds"]})
    return ItemResult(fragments.batch_scaling(seq, points, stopped),
                      [] if points else [stopped or "no batch size timed"])
