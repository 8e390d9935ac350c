"""How the scorers talk to a model: hidden states first, vocabulary projection second.

Splitting the two lets a scorer project only the positions it scores onto the
vocabulary. Any ``nn.Module`` works: the native model exposes both halves; for
anything else the full logits are computed and the "head" is the identity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Head = Callable[[torch.Tensor], torch.Tensor]


def split_forward(model: torch.nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], Head]:
    """Return (ids -> per-position features, selected features -> logits)."""
    if hasattr(model, "hidden_states") and hasattr(model, "logits_from_hidden"):
        return model.hidden_states, model.logits_from_hidden

    def full_logits(input_ids: torch.Tensor) -> torch.Tensor:
        out = model(input_ids)
        return out.logits if hasattr(out, "logits") else out

    return full_logits, lambda features: features


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def target_logprobs(
    head: Head,
    features: torch.Tensor,
    targets: torch.Tensor,
    *,
    with_greedy: bool = False,
    with_rank: bool = False,
    chunk: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """float32 log-probability of each target, for (N, d) features; optionally whether it is
    the argmax (lm-evaluation-harness's greedy test) and its rank (how many logits beat it:
    rank 0 is a top-1 hit, rank < 5 a top-5 hit).

    The vocabulary projection and a fused cross-entropy run chunk by chunk, so each
    chunk of logits is consumed while still in cache and no (N, vocab) log-softmax
    is ever materialised: on a CPU this is several times cheaper than projecting
    everything and then normalising. Greedy flags and ranks come from the same chunk.
    """
    n, device = features.shape[0], features.device
    logprobs = torch.empty(n, dtype=torch.float32, device=device)
    greedy = torch.empty(n, dtype=torch.bool, device=device) if with_greedy else None
    rank = torch.empty(n, dtype=torch.long, device=device) if with_rank else None
    for start in range(0, n, chunk):
        logits = head(features[start : start + chunk]).float()
        target = targets[start : start + chunk]
        logprobs[start : start + chunk] = -F.cross_entropy(logits, target, reduction="none")
        if greedy is not None:
            greedy[start : start + chunk] = logits.argmax(dim=-1) == target
        if rank is not None:
            # int32 accumulation: several times faster than the default int64 sum on a CPU
            beaten_by = logits > logits.gather(1, target[:, None])
            rank[start : start + chunk] = beaten_by.sum(dim=-1, dtype=torch.int32)
    return logprobs, greedy, rank
