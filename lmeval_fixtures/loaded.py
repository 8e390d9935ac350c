"""What every checkpoint loader shares, native or Hugging Face.

The error it raises, the allocation it reports, the digest it records and the
checks a loaded model must pass live here rather than in either loader, so
that ``checkpoints`` (which dispatches to the Hugging Face loader) and
``hf_models`` both import them without importing each other.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .model import ModelConfig

if TYPE_CHECKING:  # tokenizer.py imports special_file_message from here
    from .tokenizer import TextTokenizer

SPECIAL_FILE_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                      (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
REFUSED_PICKLE = "refused: the pickle holds objects other than tensors (weights-only loading)"


class CheckpointError(Exception):
    """A checkpoint that cannot be evaluated; the message is one line naming the file."""


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


def special_file_message(path: Path) -> str | None:
    """The one-line refusal of a path that is neither a regular file nor a folder, else None.

    Decided by ``os.stat`` alone, never by opening: opening a FIFO blocks until a writer
    comes (the whole session hangs), and a device can be read forever. A path that cannot
    be stat'ed gives None, so that the reader's own "missing" message applies.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = next((name for is_kind, name in SPECIAL_FILE_KINDS if is_kind(mode)), "not a regular file")
    return f"{path}: not a regular file ({kind}); copy its content to a regular file and pass that"


def default_file_mode() -> int:
    """The permissions ``open`` gives a new file under the user's umask (mkstemp and some writers
    make files private, so a CI artifact step or a colleague could not read them)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def require_regular(path: Path) -> None:
    """``special_file_message`` as a ``CheckpointError``."""
    message = special_file_message(path)
    if message is not None:
        raise CheckpointError(message)


def sha256_file(path: Path) -> str:
    """Digest read in 1 MiB blocks, so a large weights file is never held in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
