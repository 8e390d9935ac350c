"""The log-likelihood engine: batched, sorted, prefix-shared.

Public contract (as lm-evaluation-harness's ``loglikelihood``): a request is a
(context, continuation) pair of strings; its result is the sum of the
log-probabilities of the continuation's tokens given the context, and whether
every continuation token is the model's greedy (argmax) choice.

Tokenization follows lm-evaluation-harness exactly: trailing whitespace of the
context moves onto the continuation, context+continuation is encoded whole and
split at the length of the encoded context; an empty context becomes the BOS/EOS
token. When the split leaves the continuation empty (one token spans the join),
the two parts are encoded separately and the event is counted. When
context+continuation exceeds the window, the context is cut from the left
exactly as lm-evaluation-harness cuts it (``(ctx + cont)[-(L + 1):][:-1]``).

The work done is one pass per distinct (truncated) context: all continuations of
that context are packed into the same row after it, each attending to the
context and to its own earlier tokens only (a block mask), with positions that
continue from the context. Single-token continuations are scored from the
context's last position. Only the scored positions are projected onto the
vocabulary, and log-probabilities come from a chunked, fused float32 cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..models.tokenizer import TextTokenizer
from .batching import length_batches
from .memory_fit import largest_fitting
from .projection import EngineCaches, model_device, split_forward, target_logprobs

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Request:
    context: str
    continuation: str


@dataclass(frozen=True)
class Score:
    logprob: float
    is_greedy: bool
    n_tokens: int


@dataclass
class ScoringStats:
    requests: int = 0
    contexts: int = 0  # distinct (truncated) contexts, i.e. packed rows
    input_tokens: int = 0  # tokens through the model, padding excluded
    padded_tokens: int = 0  # tokens through the model, padding included
    batches: int = 0
    separate_encodings: int = 0  # joins where the continuation came back empty
    truncated_contexts: int = 0
    batch_shapes: list[tuple[int, int]] = field(default_factory=list)  # (rows, width) of each forward
    batch_tokens: int = 0  # the token budget the batches were cut to: the one asked for, or less if it did not fit


@dataclass
class _Encoded:
    context: tuple[int, ...]
    continuation: tuple[int, ...]


def _move_whitespace(context: str, continuation: str) -> tuple[str, str]:
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def scored_continuation(context: str, continuation: str) -> str:
    """The text whose tokens a request's score covers: the continuation with the context's
    trailing whitespace moved onto it, as ``encode_pairs`` moves it (nothing moves after an
    empty context). Per-byte figures of a continuation count the UTF-8 bytes of this text."""
    return _move_whitespace(context, continuation)[1] if context else continuation


def encode_pairs(tokenizer: TextTokenizer, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int], bool]]:
    """Token ids of each (context, continuation) as lm-evaluation-harness splits them.

    Each item is ``(context_ids, continuation_ids, encoded_separately)``. Encoding is
    batched, and each distinct context is encoded once however many choices it has.
    """
    moved = []
    for context, continuation in pairs:
        if not continuation:
            raise ValueError("a continuation must not be empty")
        moved.append(_move_whitespace(context, continuation) if context else ("", continuation))
    distinct = sorted({context for context, _ in moved if context})
    context_ids = dict(zip(distinct, tokenizer.encode_batch(distinct), strict=True))
    wholes = tokenizer.encode_batch([context + continuation for context, continuation in moved if context])
    encoded, whole_index = [], 0
    for context, continuation in moved:
        if not context:  # empty context: the BOS/EOS token stands in for it
            encoded.append(([tokenizer.bos_token_id], tokenizer.encode(continuation), False))
            continue
        ctx = context_ids[context]
        cont = wholes[whole_index][len(ctx):]
        whole_index += 1
        if cont:
            encoded.append((ctx, cont, False))
        else:  # one token spans the join: encode the parts separately
            encoded.append((ctx, tokenizer.encode(continuation), True))
    return encoded


def encode_pair(tokenizer: TextTokenizer, context: str, continuation: str) -> tuple[list[int], list[int], bool]:
    """One pair; see ``encode_pairs``."""
    return encode_pairs(tokenizer, [(context, continuation)])[0]


def _truncate(context: list[int], continuation: list[int], max_len: int) -> tuple[tuple[int, ...], bool]:
    """The context lm-evaluation-harness feeds for this request: input = (ctx + cont)[-(L+1):][:-1]."""
    if len(continuation) > max_len:
        raise ValueError(f"continuation of {len(continuation)} tokens does not fit the window of {max_len}")
    keep = max_len + 1 - len(continuation)
    if len(context) > keep:
        return tuple(context[-keep:]), True
    return tuple(context), False


@dataclass
class _Row:
    """One packed row: a context followed by the inner tokens of each continuation."""

    context: tuple[int, ...]
    requests: list[int] = field(default_factory=list)  # request indices

    def layout(self, continuations: Sequence[tuple[int, ...]]) -> tuple[list[int], list[int], list[int]]:
        """(token ids, position ids, segment ids: 0 for the context, i+1 for continuation i)."""
        ids = list(self.context)
        positions = list(range(len(self.context)))
        segments = [0] * len(self.context)
        for k, index in enumerate(self.requests, start=1):
            inner = continuations[index][:-1]
            ids += inner
            positions += range(len(self.context), len(self.context) + len(inner))
            segments += [k] * len(inner)
        return ids, positions, segments


def _block_mask(segments: torch.Tensor) -> torch.Tensor:
    """(batch, length, length): causal, and a continuation token sees only the context and its own segment."""
    length = segments.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segments.device).tril()
    query, key = segments[:, :, None], segments[:, None, :]
    return causal & ((key == 0) | (key == query))


@torch.inference_mode()
def score_requests(
    model: torch.nn.Module,
    tokenizer: TextTokenizer,
    requests: Sequence[Request],
    max_len: int,
    *,
    batch_tokens: int = 16384,
    progress: Progress | None = None,
    caches: EngineCaches | None = None,
    scored: Callable[[list[int], list[float]], None] | None = None,
) -> tuple[list[Score], ScoringStats]:
    """Score every request; results do not depend on batch size or order beyond float rounding.
    A budget that runs out of memory is halved until one fits (``memory_fit.largest_fitting``);
    ``stats.batch_tokens`` says which did.
    ``caches``: what scoring keeps between calls (``projection.EngineCaches``), a run's; without,
    this call's own. ``scored(indices, logprobs)``: after each batch, the requests it finished
    and their summed log-likelihoods (running figures), before ``progress``."""
    caches = caches if caches is not None else EngineCaches()
    stats = ScoringStats(requests=len(requests))
    rows = _packed_rows(tokenizer, requests, max_len, stats)
    # out of memory: the whole call again at half the budget, until it fits (memory_fit)
    return largest_fitting(lambda budget: _score_rows(model, rows, len(requests), budget, stats, progress, caches,
                                                       scored),
                           batch_tokens)[0]


@dataclass(frozen=True)
class _PackedRows:
    laid_out: list[tuple[_Row, list[int], list[int], list[int]]]  # longest first
    continuations: list[tuple[int, ...]]


def _packed_rows(tokenizer: TextTokenizer, requests: Sequence[Request], max_len: int,
                 stats: ScoringStats) -> _PackedRows:
    """Each distinct (truncated) context once, its requests' continuations packed after it."""
    encoded: list[_Encoded] = []
    pairs = encode_pairs(tokenizer, [(r.context, r.continuation) for r in requests])
    for context, continuation, separate in pairs:
        truncated_context, cut = _truncate(context, continuation, max_len)
        stats.separate_encodings += separate
        stats.truncated_contexts += cut
        encoded.append(_Encoded(truncated_context, tuple(continuation)))

    rows: dict[tuple[int, ...], _Row] = {}
    for index, item in enumerate(encoded):
        rows.setdefault(item.context, _Row(item.context)).requests.append(index)
    continuations = [item.continuation for item in encoded]
    laid_out = [(row, *row.layout(continuations)) for row in rows.values()]
    laid_out.sort(key=lambda r: (-len(r[1]), r[1]))  # longest first; ties in a fixed order
    stats.contexts = len(laid_out)
    return _PackedRows(laid_out, continuations)


def _score_rows(model: torch.nn.Module, rows: _PackedRows, n_requests: int, batch_tokens: int, stats: ScoringStats,
                progress: Progress | None, caches: EngineCaches,
                scored: Callable[[list[int], list[float]], None] | None) -> tuple[list[Score], ScoringStats]:
    """The forward passes of ``score_requests`` at one token budget (its batch counts start from zero)."""
    laid_out, continuations = rows.laid_out, rows.continuations
    stats.batch_tokens, stats.batches, stats.input_tokens, stats.padded_tokens = batch_tokens, 0, 0, 0
    stats.batch_shapes = []
    hidden_fn, head_fn = split_forward(model)
    device = model_device(model)
    logprobs = torch.zeros(n_requests, dtype=torch.float64)
    misses = torch.zeros(n_requests, dtype=torch.long)  # non-greedy tokens per request
    done = 0
    for indices in length_batches([len(r[1]) for r in laid_out], batch_tokens):
        batch = laid_out[indices.start:indices.stop]
        width = len(batch[0][1])
        stats.batches += 1
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        positions = torch.zeros((len(batch), width), dtype=torch.long)
        segments = torch.full((len(batch), width), -1, dtype=torch.long)  # padding: its own segment
        rows_idx, cols_idx, targets, owners = [], [], [], []
        for b, (row, row_ids, row_positions, row_segments) in enumerate(batch):
            n = len(row_ids)
            ids[b, :n] = torch.tensor(row_ids)
            positions[b, :n] = torch.tensor(row_positions)
            segments[b, :n] = torch.tensor(row_segments)
            stats.input_tokens += n
            context_end = len(row.context) - 1
            offset = len(row.context)
            for index in row.requests:
                cont = continuations[index]
                cols = [context_end] + list(range(offset, offset + len(cont) - 1))
                offset += len(cont) - 1
                rows_idx += [b] * len(cont)
                cols_idx += cols
                targets += cont
                owners += [index] * len(cont)
        stats.padded_tokens += ids.numel()
        stats.batch_shapes.append((len(batch), width))
        packed = bool((segments > 0).any())
        ids, positions, segments = ids.to(device), positions.to(device), segments.to(device)
        if packed:
            features = hidden_fn(ids, position_ids=positions, attention_mask=_block_mask(segments))
        else:
            features = hidden_fn(ids)
        selected = features[torch.tensor(rows_idx, device=device), torch.tensor(cols_idx, device=device)]
        target = torch.tensor(targets, device=device)
        token_logprob, token_greedy, _ = target_logprobs(head_fn, selected, target, with_greedy=True,
                                                          caches=caches)
        owner = torch.tensor(owners)
        logprobs.index_add_(0, owner, token_logprob.double().cpu())
        misses.index_add_(0, owner, (~token_greedy).long().cpu())
        done += sum(len(row.requests) for row, *_ in batch)
        if scored is not None:
            finished = [index for row, *_ in batch for index in row.requests]
            scored(finished, logprobs[finished].tolist())
        if progress is not None:
            progress(done, n_requests)

    scores = [Score(logprobs[i].item(), bool(misses[i] == 0), len(continuations[i])) for i in range(n_requests)]
    return scores, stats


@torch.inference_mode()
def score_requests_naively(
    model: torch.nn.Module, tokenizer: TextTokenizer, requests: Sequence[Request], max_len: int
) -> list[Score]:
    """One forward pass per request, batch 1, full log-softmax in float64: the baseline the
    original design shipped, kept as the reference the engine is tested and timed against."""
    device = model_device(model)
    hidden_fn, head_fn = split_forward(model)
    scores = []
    for request in requests:
        context, continuation, _ = encode_pair(tokenizer, request.context, request.continuation)
        full = (context + continuation)[-(max_len + 1):]
        inputs = torch.tensor([full[:-1]], device=device)
        logprobs = torch.log_softmax(head_fn(hidden_fn(inputs))[0].double(), dim=-1)
        tail = logprobs[-len(continuation):]
        target = torch.tensor(continuation, device=device)
        total = tail.gather(1, target[:, None]).sum().item()
        scores.append(Score(total, bool((tail.argmax(-1) == target).all()), len(continuation)))
    return scores
