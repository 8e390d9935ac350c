"""A Hugging Face causal LM behind the native two-halves interface (see ``lm_interface``).

Duck-typed throughout, so that neither this module nor ``lm_interface``, which
hands it any Hugging Face model a caller passes in memory, ever imports
transformers; ``hf_models`` wraps every folder it loads in the same adapter.
"""

from __future__ import annotations

import torch


def is_hf_causal_lm(model: torch.nn.Module) -> bool:
    """What a transformers ``PreTrainedModel`` with a head has: its body's name and its output embedding."""
    return hasattr(model, "get_output_embeddings") and hasattr(model, "base_model_prefix")


class CausalLMAdapter(torch.nn.Module):
    """A Hugging Face causal LM behind the native interface.

    ``hidden_states`` runs the body (``model.model`` for Llama) with explicit
    positions and an additive 4-D mask, which is how packed SmallBench rows keep
    their continuations apart; ``logits_from_hidden`` is the output embedding.
    Some architectures do more after the head (Gemma-2 soft-caps, Cohere scales the
    logits), so the split is used only when it reproduces ``model(ids).logits`` on a
    probe; otherwise the body returns full logits and the head is the identity.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.wrapped = model
        self.config = model.config
        body = getattr(model, model.base_model_prefix, None)
        head = model.get_output_embeddings()
        self.__dict__["_parts"] = (body, head)  # not registered twice as sub-modules
        self.split = body is not None and head is not None and self._split_reproduces_logits()

    @torch.inference_mode()
    def _split_reproduces_logits(self) -> bool:
        vocab = self.config.vocab_size
        ids = (torch.arange(8) * 7919 % vocab)[None].to(next(self.wrapped.parameters()).device)
        try:
            split = self._parts[1](self._parts[0](input_ids=ids, use_cache=False)[0]).float()
        except (TypeError, RuntimeError, ValueError):
            return False
        full = self.wrapped(input_ids=ids, use_cache=False).logits.float()
        return split.shape == full.shape and torch.allclose(split, full, rtol=1e-3, atol=1e-3)

    def _additive(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        if mask is None:
            return None
        dtype = next(self.wrapped.parameters()).dtype
        blocked = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)
        return blocked[:, None]  # (batch, 1, query, key)

    def hidden_states(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``attention_mask``: boolean (batch, query, key), True where a query may attend."""
        kwargs = {"input_ids": input_ids, "position_ids": position_ids,
                  "attention_mask": self._additive(attention_mask), "use_cache": False}
        if self.split:
            return self._parts[0](**kwargs)[0]
        return self.wrapped(**kwargs).logits

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._parts[1](hidden) if self.split else hidden

    @property
    def output_projection(self) -> torch.nn.Module | None:
        """The output embedding, when ``logits_from_hidden`` is just that layer."""
        return self._parts[1] if self.split else None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.logits_from_hidden(self.hidden_states(input_ids))
