"""How the scorers talk to a model: hidden states first, vocabulary projection second.

Splitting the two lets a scorer project only the positions it scores onto the
vocabulary. Any ``nn.Module`` works: the native model exposes both halves; for
anything else the full logits are computed and the "head" is the identity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

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
