"""How the scorers talk to a model: hidden states first, vocabulary projection second.

Splitting the two lets a scorer project only the positions it scores onto the
vocabulary. Any ``nn.Module`` works: the native model exposes both halves; a
Hugging Face causal LM is seen through ``hf_adapter.CausalLMAdapter``, which
knows what is particular to Hugging Face; for anything else the full logits are
computed and the "head" is the identity.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .hf_adapter import CausalLMAdapter, is_hf_causal_lm

Head = Callable[[torch.Tensor], torch.Tensor]


def split_forward(model: torch.nn.Module) -> tuple[Callable[..., torch.Tensor], Head]:
    """Return (ids -> per-position features, selected features -> logits)."""
    if hasattr(model, "hidden_states") and hasattr(model, "logits_from_hidden"):
        return model.hidden_states, model.logits_from_hidden
    if is_hf_causal_lm(model):
        adapter = CausalLMAdapter(model)
        return adapter.hidden_states, adapter.logits_from_hidden

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
    """The smallest chunk tried: about 2^20 logits (4 MB of float32), which stays in cache,
    in whole ``GRID_ROWS`` blocks.

    Measured on the project's CPU, 16384 rows with ranks: vocabulary 4096, 0.18 s at 1024
    rows against 0.14 s at 256; vocabulary 32000, 3.46 s at 1024 rows against 1.99 s at 128.
    """
    return GRID_ROWS * max(1, min(8, (1 << 20) // max(1, vocab_size) // GRID_ROWS))


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
    are the measurement: each candidate (the cache-sized chunk, 4x and 16x it) is timed over a
    block of as many rows as the largest takes, on real work, and the fastest per row is used.
    The best one's own blocks keep its reading current, so a slowdown shows at once; the
    others are probed in turn once the best has worked ``PROBE_EVERY`` times as long as the
    last probe took, so probing costs about a ninth of the time whatever a block costs, and a
    candidate that became faster is noticed within a second or two. Timing whole blocks, not
    single chunks, keeps what switching sizes costs out of the comparison. The results do not
    depend on the chunk (chunks are whole blocks of rows on a fixed grid, ``chunk_bounds``;
    ``test_lm_interface`` checks it on the machine that runs the tests), only the time does.
    One chooser per vocabulary size lives for the process, so that short calls (a SmallBench
    batch) start from what longer ones learned.
    """

    PROBE_EVERY = 8

    def __init__(self, vocab_size: int) -> None:
        base = chunk_rows(vocab_size)
        self.candidates = (base, base * 4, base * 16)
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
            elif self.exploited_seconds >= self.PROBE_EVERY * self.last_probe_seconds:
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


_CHOOSERS: dict[int, ChunkChooser] = {}


def chunk_chooser(vocab_size: int) -> ChunkChooser:
    if vocab_size not in _CHOOSERS:
        _CHOOSERS[vocab_size] = ChunkChooser(vocab_size)
    return _CHOOSERS[vocab_size]


def _is_argmax(logits: torch.Tensor, target: torch.Tensor, target_logit: torch.Tensor) -> torch.Tensor:
    """``logits.argmax(-1) == target``, as lm-evaluation-harness tests greediness (the first
    maximum wins a tie), from a plain maximum, which is many times cheaper than ``argmax`` on
    a CPU: only rows whose target reaches the maximum are looked at again with ``argmax``."""
    at_max = logits.amax(dim=-1) == target_logit
    rows = at_max.nonzero()[:, 0]
    if len(rows):
        at_max[rows] = logits[rows].argmax(dim=-1) == target[rows]
    return at_max


def target_logprobs(
    head: Head,
    features: torch.Tensor,
    targets: torch.Tensor,
    *,
    with_greedy: bool = False,
    with_rank: bool = False,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """float32 log-probability of each target, for (N, d) features; optionally whether it is
    the argmax (lm-evaluation-harness's greedy test) and its rank (how many logits beat it:
    rank 0 is a top-1 hit, rank < 5 a top-5 hit).

    The vocabulary projection and a fused cross-entropy run chunk by chunk, so each
    chunk of logits is consumed while still in cache and no (N, vocab) log-softmax
    is ever materialised: on a CPU this is several times cheaper than projecting
    everything and then normalising. Greedy flags and ranks come from the same chunk.
    ``chunk`` rows at a time (rounded up to whole ``GRID_ROWS`` blocks; see ``chunk_bounds``);
    by default chosen by measurement on a CPU (``ChunkChooser``) and cache-sized elsewhere.
    """
    n, device = features.shape[0], features.device
    logprobs = torch.empty(n, dtype=torch.float32, device=device)
    greedy = torch.empty(n, dtype=torch.bool, device=device) if with_greedy else None
    rank = torch.empty(n, dtype=torch.long, device=device) if with_rank else None
    chooser: ChunkChooser | None = None
    start, rows = 0, chunk or GRID_ROWS
    while start < n:
        stop = chunk_bounds(start, rows, n)
        began = time.perf_counter()
        logits = head(features[start:stop]).float()
        target = targets[start:stop]
        logprobs[start:stop] = -F.cross_entropy(logits, target, reduction="none")
        if greedy is not None or rank is not None:
            target_logit = logits.gather(1, target[:, None])
        if greedy is not None:
            greedy[start:stop] = _is_argmax(logits, target, target_logit[:, 0])
        if rank is not None:
            # logits - target > 0 exactly where logit > target (IEEE subtraction of unequal finite
            # floats is never zero), counted in float32 (exact below 2^24 columns): on a CPU about a
            # third of the time of comparing with a broadcast column and summing booleans
            rank[start:stop] = (logits - target_logit).gt_(0).sum(dim=-1)
        if chooser is not None:
            chooser.observe(stop - start, rows, time.perf_counter() - began)
        start = stop
        if chunk:
            continue
        if device.type == "cpu":  # synchronous, so the clock sees the work
            chooser = chooser or chunk_chooser(logits.shape[-1])
            rows = chooser.next_rows(n - start)
        else:
            rows = chunk_rows(logits.shape[-1])
    return logprobs, greedy, rank
