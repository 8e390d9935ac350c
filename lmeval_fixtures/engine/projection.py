"""How the scorers talk to a model: hidden states first, vocabulary projection second.

Splitting the two lets a scorer project only the positions it scores onto the
vocabulary. Any ``nn.Module`` works: the native model exposes both halves; a
Hugging Face causal LM is seen through ``hf_adapter.CausalLMAdapter``, which
knows what is particular to Hugging Face; for anything else the full logits are
computed and the "head" is the identity.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..models.hf_adapter import CausalLMAdapter, is_hf_causal_lm
from . import projection_threads
from .target_facts import count_above, greedy_from_maximum
from .vocab_blocks import BlockedProjection, is_blocked_head, is_plain_linear, slice_logits

Head = Callable[[torch.Tensor], torch.Tensor]


def split_forward(model: torch.nn.Module) -> tuple[Callable[..., torch.Tensor], Head]:
    """Return (ids -> per-position features, selected features -> logits).

    Where the head is known to be a plain linear layer (``output_projection``), the layer
    itself is returned, so that ``target_logprobs`` can project it a block at a time.
    """
    if is_hf_causal_lm(model) and not hasattr(model, "hidden_states"):
        model = CausalLMAdapter(model)
    if hasattr(model, "hidden_states") and hasattr(model, "logits_from_hidden"):
        projection = getattr(model, "output_projection", None)
        return model.hidden_states, projection if is_plain_linear(projection) else model.logits_from_hidden

    def full_logits(input_ids: torch.Tensor, position_ids: torch.Tensor | None = None,
                    attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is not None:
            raise TypeError(f"{type(model).__name__} takes token ids only, but continuations of several tokens are "
                            "scored in packed rows: use the native model or a Hugging Face causal LM, "
                            "or give the module hidden_states(ids, position_ids, attention_mask) and "
                            "logits_from_hidden(hidden)")
        out = model(input_ids)
        return out.logits if hasattr(out, "logits") else out

    return full_logits, lambda features: features


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


GRID_ROWS = 128


def chunk_rows(vocab_size: int) -> int:
    """The smallest whole-logits chunk tried: about 2^20 logits (4 MB of float32), which stays
    in cache, in whole ``GRID_ROWS`` blocks.

    Measured on the project's CPU, 16384 rows with ranks: vocabulary 4096, 0.18 s at 1024
    rows against 0.14 s at 256; vocabulary 32000, 3.46 s at 1024 rows against 1.99 s at 128.
    """
    return GRID_ROWS * max(1, min(8, (1 << 20) // max(1, vocab_size) // GRID_ROWS))


def chunk_candidates(vocab_size: int, *, blocked: bool, workers: int = 1) -> tuple[int, ...]:
    """The row chunks the chooser tries.

    Whole logits: the cache-sized chunk, 4x and 16x it. Vocabulary blocks (``vocab_blocks``),
    which keep only a block in cache, whatever the rows: the most rows whose logits fit in
    one of ``workers`` slice buffers (``vocab_blocks.slice_logits``), a half and a quarter of
    it (bigger matrix products run faster per row).
    """
    if not blocked:
        base = chunk_rows(vocab_size)
        return (base, base * 4, base * 16)
    most = GRID_ROWS * max(1, slice_logits(workers) // max(1, vocab_size) // GRID_ROWS)
    return tuple(sorted({max(GRID_ROWS, most // share // GRID_ROWS * GRID_ROWS) for share in (4, 2, 1)}))


def chunk_bounds(start: int, rows: int, n: int) -> int:
    """Where the chunk from ``start`` ends: after whole ``GRID_ROWS`` blocks, with the last,
    partial block (``n % GRID_ROWS`` rows) always projected on its own.

    A matrix product's rounding depends on how many rows it has (a CPU library computes
    rows in register blocks, and a remainder of a few rows, or a single row, takes another
    kernel): so that a row's figures never depend on the chunk, which is chosen by timing,
    every row is projected either in a product of whole blocks or in the same partial block,
    at the same place, whatever the chunk.
    """
    rows = -(-rows // GRID_ROWS) * GRID_ROWS
    whole_end = n - n % GRID_ROWS
    if start >= whole_end:
        return n
    return min(start + rows, whole_end)


class ChunkChooser:
    """Chooses the projection chunk by measuring it, as it goes, under the current conditions.

    On a quiet CPU small, cache-sized chunks are fastest; with another process competing for
    the cores, each chunk's parallel region waits on a descheduled thread, and 128-row chunks
    took 3.07 s against 0.81 s as one call. No fixed rule wins both, so the chunks themselves
    are the measurement: each candidate (``chunk_candidates``) is timed over a
    block of as many rows as the largest takes, on real work, and the fastest per row is used.
    The best one's own blocks keep its reading current, so a slowdown shows at once; the
    others are probed in turn once the best has worked ``PROBE_EVERY`` times as long as the
    last probe took, so probing costs about a ninth of the time whatever a block costs, and a
    candidate that became faster is noticed within a second or two. Timing whole blocks, not
    single chunks, keeps what switching sizes costs out of the comparison. The results do not
    depend on the chunk (chunks are whole blocks of rows on a fixed grid, ``chunk_bounds``;
    ``test_lm_interface`` checks it on the machine that runs the tests), only the time does.
    One chooser per vocabulary size and projection form lives as long as its ``EngineCaches``
    (a run's), so that short calls (a SmallBench batch) start from what longer ones learned.
    """

    PROBE_EVERY = 8

    def __init__(self, candidates: tuple[int, ...]) -> None:
        self.candidates = candidates
        self.block = self.candidates[-1]  # rows per reading
        self.seconds_per_row: dict[int, float] = {}
        self.current: int | None = None
        self.probing = False
        self.probes = 0
        self.last_probe_seconds = 0.0
        self.exploited_seconds = 0.0  # on the best candidate since the last probe
        self._rows = 0
        self._seconds = 0.0

    def best(self) -> int:
        return min(self.seconds_per_row, key=self.seconds_per_row.__getitem__)

    def next_rows(self, remaining: int) -> int:
        if self.current is None:
            untried = [c for c in self.candidates if c not in self.seconds_per_row]
            if untried:
                self.current, self.probing = untried[0], True
            elif len(self.candidates) > 1 and self.exploited_seconds >= self.PROBE_EVERY * self.last_probe_seconds:
                others = [c for c in self.candidates if c != self.best()]
                self.current, self.probing = others[self.probes % len(others)], True
                self.probes += 1
            else:
                self.current, self.probing = self.best(), False
        return self.current

    def observe(self, rows: int, requested: int, seconds: float) -> None:
        if requested != self.current:
            return
        self._rows += rows
        self._seconds += seconds
        if self._rows >= self.block:
            self.seconds_per_row[requested] = self._seconds / self._rows
            if self.probing:
                self.last_probe_seconds, self.exploited_seconds = self._seconds, 0.0
            else:
                self.exploited_seconds += self._seconds
            self.current, self._rows, self._seconds = None, 0, 0.0


class EngineCaches:
    """What the scoring engine keeps between calls, for speed only (never a figure): the chunk
    choosers (``ChunkChooser``, by vocabulary size and projection form), the token lists of
    recently scored documents (``perplexity``) and the one-core thread pools
    (``projection_threads``).

    Owned by whoever runs the calls: a run's ``Inputs`` holds one for its process, so the
    short calls of a run (a SmallBench batch) start from what its longer ones learned, the
    checkpoints of a sweep share their corpora's encodings, and a second run in the same
    process starts clean. A caller that passes none gets one for that call only; a library
    caller who scores many times keeps one and passes it (``caches=``).
    """

    ENCODED_KEEP = 4  # document sets whose token lists are kept (a run's corpora splits, usually)

    def __init__(self) -> None:
        self.choosers: dict[tuple[int, bool, int], ChunkChooser] = {}
        self.encoded: dict[tuple[object, ...], list[list[int]]] = {}
        self.pools = projection_threads.ThreadPools()

    def chooser(self, vocab_size: int, *, blocked: bool, workers: int = 1) -> ChunkChooser:
        key = (vocab_size, blocked, workers if blocked else 1)
        if key not in self.choosers:
            self.choosers[key] = ChunkChooser(chunk_candidates(vocab_size, blocked=blocked, workers=workers))
        return self.choosers[key]

    def encodings(self, key: tuple[object, ...], encode: Callable[[], list[list[int]]]) -> list[list[int]]:
        """The token lists kept under ``key``, or ``encode()``'s, kept (the oldest of
        ``ENCODED_KEEP`` sets is dropped); a copy each time, so a caller may change it."""
        if key not in self.encoded:
            while len(self.encoded) >= self.ENCODED_KEEP:
                self.encoded.pop(next(iter(self.encoded)))
            self.encoded[key] = encode()
        return [list(ids) for ids in self.encoded[key]]

    def close(self) -> None:
        """Let the thread pools' threads end; what was learned and encoded is kept."""
        self.pools.close()


def chunk_chooser(vocab_size: int, *, blocked: bool, workers: int = 1,
                  caches: EngineCaches | None = None) -> ChunkChooser:
    """The chooser of ``caches`` for this vocabulary size and projection form (a new one without)."""
    return (caches if caches is not None else EngineCaches()).chooser(vocab_size, blocked=blocked, workers=workers)


def target_logprobs(
    head: Head,
    features: torch.Tensor,
    targets: torch.Tensor,
    *,
    with_greedy: bool = False,
    with_rank: bool = False,
    chunk: int | None = None,
    caches: EngineCaches | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """float32 log-probability of each target, for (N, d) features; optionally whether it is
    the argmax (lm-evaluation-harness's greedy test) and its rank (how many logits beat it:
    rank 0 is a top-1 hit, rank < 5 a top-5 hit).

    The vocabulary projection and the normalisation run chunk by chunk, so no (N, vocab)
    log-softmax is ever materialised: on a CPU this is several times cheaper than
    projecting everything and then normalising. A linear head on a CPU is projected a
    vocabulary block at a time (``vocab_blocks``), its chunks spread over threads that each
    run on one core (``projection_threads``); any other head gives a chunk's whole logits,
    normalised by a fused cross-entropy. Greedy flags and ranks come from the same chunk.
    ``chunk`` rows at a time (rounded up to whole ``GRID_ROWS`` blocks; see
    ``chunk_bounds``); by default chosen by measurement on a CPU (``ChunkChooser``) and
    cache-sized elsewhere. ``caches``: the caller's choosers and threads (``EngineCaches``; a
    run's), so that what one call learned serves the next; without, this call's own.
    """
    caches = caches if caches is not None else EngineCaches()
    if is_blocked_head(head, features):
        return _blocked_logprobs(head, features, targets, with_greedy=with_greedy, with_rank=with_rank, chunk=chunk,
                                 caches=caches)
    n, device = features.shape[0], features.device
    logprobs = torch.empty(n, dtype=torch.float32, device=device)
    greedy = torch.empty(n, dtype=torch.bool, device=device) if with_greedy else None
    rank = torch.empty(n, dtype=torch.long, device=device) if with_rank else None
    chooser: ChunkChooser | None = None
    rows = chunk or GRID_ROWS
    start = 0
    while start < n:
        stop = chunk_bounds(start, rows, n)
        began = time.perf_counter()
        target = targets[start:stop]
        logits = head(features[start:stop]).float()
        vocab = logits.shape[-1]
        scored = _score_logits(logits, target, with_greedy=with_greedy, with_rank=with_rank)
        logprobs[start:stop] = scored[0]
        if greedy is not None:
            greedy[start:stop] = scored[1]
        if rank is not None:
            rank[start:stop] = scored[2]
        if chooser is not None:
            chooser.observe(stop - start, rows, time.perf_counter() - began)
        start = stop
        if chunk:
            continue
        if device.type == "cpu":  # synchronous, so the clock sees the work
            chooser = chooser or chunk_chooser(vocab, blocked=False, caches=caches)
            rows = chooser.next_rows(n - start)
        else:
            rows = chunk_rows(vocab)
    return logprobs, greedy, rank


def row_slices(n: int, rows: int, workers: int) -> list[tuple[int, int]]:
    """The chunks of ``n`` rows (``chunk_bounds``), at most ``rows`` each and small enough that
    every worker gets one when ``n`` is short."""
    rows = min(rows, -(-n // (workers * GRID_ROWS)) * GRID_ROWS)
    slices, start = [], 0
    while start < n:
        stop = chunk_bounds(start, rows, n)
        slices.append((start, stop))
        start = stop
    return slices


def _blocked_logprobs(head: torch.nn.Linear, features: torch.Tensor, targets: torch.Tensor, *, with_greedy: bool,
                      with_rank: bool, chunk: int | None, caches: EngineCaches,
                      ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``target_logprobs`` for a linear head on a CPU: row slices projected a vocabulary block at
    a time, each on one core, by as many threads as this process has (``projection_threads``)."""
    n, vocab = features.shape[0], head.weight.shape[0]
    if n == 0:
        return (torch.empty(0), torch.empty(0, dtype=torch.bool) if with_greedy else None,
                torch.empty(0, dtype=torch.long) if with_rank else None)
    workers = projection_threads.worker_count()
    chooser = None if chunk else chunk_chooser(vocab, blocked=True, workers=workers, caches=caches)
    rows = chunk or chooser.next_rows(n)
    slices = row_slices(n, rows, workers)
    buffer_rows = max(stop - start for start, stop in slices)
    projections: dict[int, BlockedProjection] = {}  # each thread's buffers, for this call only

    def score(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        mine = projections.get(threading.get_ident())
        if mine is None:
            mine = projections[threading.get_ident()] = BlockedProjection(head, buffer_rows)
        return mine.score(features[start:stop], targets[start:stop], with_greedy=with_greedy, with_rank=with_rank)

    began = time.perf_counter()
    scored = projection_threads.map_on_one_core(score, slices, workers, caches.pools)
    if chooser is not None:
        chooser.observe(n, rows, time.perf_counter() - began)
    logprobs = torch.cat([s[0] for s in scored])
    greedy = torch.cat([s[1] for s in scored]) if with_greedy else None
    rank = torch.cat([s[2] for s in scored]) if with_rank else None
    return logprobs, greedy, rank


def _score_logits(logits: torch.Tensor, target: torch.Tensor, *, with_greedy: bool,
                  with_rank: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """A chunk's whole float32 logits: fused cross-entropy, and greedy flags and ranks from them."""
    logprob = -F.cross_entropy(logits, target, reduction="none")
    if not (with_greedy or with_rank):
        return logprob, None, None
    target_logit = logits.gather(1, target[:, None])
    greedy = (greedy_from_maximum(logits.amax(dim=-1), target_logit[:, 0], target, logits.__getitem__)
              if with_greedy else None)
    rank = count_above(logits, target_logit, torch.empty_like(logits)) if with_rank else None
    return logprob, greedy, rank
