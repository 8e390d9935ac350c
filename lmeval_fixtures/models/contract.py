"""What every checkpoint loader shares, native or Hugging Face.

The allocation it reports and the checks a loaded model must pass live here
rather than in either loader, so that ``loading`` (which dispatches to the
Hugging Face loader) and ``hf_models`` both import them without importing
each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..core.errors import CheckpointError
from .model import ModelConfig

if TYPE_CHECKING:  # tokenizer.py imports special_file_message from here
    from .tokenizer import TextTokenizer

REFUSED_PICKLE = "refused: the pickle holds objects other than tensors (weights-only loading)"


@dataclass(frozen=True)
class Allocation:
    """How a model spends its parameters, for the record: the same fields for native and
    Hugging Face models (shape fields a foreign architecture does not have are None)."""

    total_params: int
    embedding_params: int
    vocab_size: int
    max_seq_len: int
    d_model: int | None = None
    d_ff: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    glu_expansion: float | None = None

    @classmethod
    def of_native(cls, config: ModelConfig) -> Allocation:
        return cls(total_params=config.total_params, embedding_params=config.embedding_params,
                   vocab_size=config.vocab_size, max_seq_len=config.max_seq_len, d_model=config.d_model,
                   d_ff=config.d_ff, n_layers=config.n_layers, n_heads=config.n_heads,
                   glu_expansion=config.glu_expansion)

    @property
    def non_embedding_params(self) -> int:
        return self.total_params - self.embedding_params

    @property
    def embedding_ratio(self) -> float:
        return self.embedding_params / self.total_params


def check_loaded(path: Path, model: torch.nn.Module, tokenizer: TextTokenizer, vocab_size: int) -> None:
    """Refuse a model that would only produce garbage figures, with one line naming ``path``.

    A tokenizer with more tokens than the embedding has rows emits ids the model cannot
    look up (an index error mid-run, or silently wrong rows on some devices); a NaN or
    inf weight turns every figure into NaN. Both are caught here, once, at load time.
    """
    if tokenizer.vocab_size > vocab_size:
        raise CheckpointError(f"{path}: config vocab_size {vocab_size} is smaller than the tokenizer's "
                              f"{tokenizer.vocab_size} tokens ({tokenizer.source})")
    for param in model.parameters():
        if not torch.isfinite(param).all():
            raise CheckpointError(f"{path}: weights contain NaN or inf")
