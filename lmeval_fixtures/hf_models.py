"""Hugging Face causal-LM folders as checkpoints (the ``hf`` extra).

A folder is read with ``AutoModelForCausalLM`` and ``AutoTokenizer`` from local
files only, with ``trust_remote_code=False``: like a native checkpoint it is
untrusted input, and nothing in it may run. The model is wrapped in
``CausalLMAdapter`` so that the scorers see the same two halves as the native
model, and the tokenizer's fast backend becomes a ``TextTokenizer``. The start
token and the context length follow lm-evaluation-harness's ``HFLM``, so both
tools score the same token sequences.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from .hf_adapter import CausalLMAdapter
from .loaded import REFUSED_PICKLE, Allocation, CheckpointError, check_loaded, require_regular, sha256_file
from .tokenizer import TextTokenizer

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
CONTEXT_ATTRIBUTES = ("n_positions", "max_position_embeddings", "n_ctx")  # HFLM's order
DEFAULT_CONTEXT = 2048  # HFLM's fallback when neither config nor tokenizer says


class MissingExtra(ImportError):
    """transformers is needed and not installed."""


def require_transformers(purpose: str) -> Any:
    """The transformers module, or an error saying which extra to install for ``purpose``."""
    try:
        import transformers
    except ImportError:
        raise MissingExtra(f"{purpose} needs transformers: pip install 'lmeval-fixtures[hf]'") from None
    return transformers


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def weights_sha256(folder: Path) -> str:
    """One digest over every weight file (name and sha256 of each), sharded or not."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    listing = "".join(f"{file.name}\0{sha256_file(file)}\n" for file in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def context_length(config: Any, tokenizer: Any) -> int:
    """The longest sequence scored in one window: what HFLM would use for this model."""
    for name in CONTEXT_ATTRIBUTES:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000_000:  # "no limit" is stored as a huge int
        return limit
    return DEFAULT_CONTEXT


def text_tokenizer(tokenizer: Any, source: str | Path) -> TextTokenizer:
    """The fast tokenizer's backend, with HFLM's prefix token (BOS, else EOS) as the start token,
    encoding as HFLM's ``tok_encode`` does by default: with the tokenizer's special tokens."""
    if not getattr(tokenizer, "is_fast", False):
        raise CheckpointError(f"{source}: needs a fast tokenizer (tokenizer.json); "
                              "save one with AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained()")
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if start is None:
        raise CheckpointError(f"{source}: the tokenizer has neither a BOS nor an EOS token to start sequences with")
    return TextTokenizer.from_json(tokenizer.backend_tokenizer.to_str(), f"{source} (tokenizer)", start,
                                   add_special_tokens=True)


def allocation(model: torch.nn.Module, max_seq_len: int) -> Allocation:
    """Counts from the loaded tensors (a tied head counted once); shape fields from the config."""
    config = model.config
    unique = {id(p): p.numel() for p in model.parameters()}
    inputs = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    embedding = inputs.numel()
    if head is not None and head.weight is not inputs:
        embedding += head.weight.numel()
    d_model = getattr(config, "hidden_size", None)
    d_ff = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
    gated = any(name.endswith("gate_proj.weight") for name, _ in model.named_parameters())
    return Allocation(
        total_params=sum(unique.values()), embedding_params=embedding, vocab_size=config.vocab_size,
        max_seq_len=max_seq_len, d_model=d_model, d_ff=d_ff,
        n_layers=getattr(config, "num_hidden_layers", None), n_heads=getattr(config, "num_attention_heads", None),
        glu_expansion=d_ff / d_model if gated and d_ff and d_model else None,
    )


def require_regular_entries(folder: Path) -> None:
    """Refuse a folder holding a FIFO, device or socket before transformers opens anything in it:
    which files it reads depends on the model, and opening a FIFO hangs the whole session."""
    for entry in sorted(folder.iterdir()):
        require_regular(entry)


def _refused_pickle(folder: Path, exc: BaseException) -> CheckpointError | None:
    """Our line when transformers' ``torch.load(weights_only=True)`` refused a ``.bin`` weights file,
    else None. torch's message, cut to a line, would read as advice to pass weights_only=False."""
    chain = [exc, exc.__cause__, exc.__context__]
    refused = any(isinstance(e, pickle.UnpicklingError) or "Weights only load failed" in str(e)
                  for e in chain if e is not None)
    if not refused:
        return None
    bins = sorted(p for p in folder.iterdir() if p.suffix == ".bin")
    culprit = folder / "pytorch_model.bin" if (folder / "pytorch_model.bin") in bins else (bins or [folder])[0]
    return CheckpointError(f"{culprit}: {REFUSED_PICKLE}; re-save the model with "
                           "save_pretrained(folder), which writes safetensors")


def _model_error(folder: Path, exc: BaseException) -> CheckpointError:
    refused = _refused_pickle(folder, exc)
    return refused or CheckpointError(f"{folder}: cannot load as a Hugging Face causal LM ({_first_line(exc)})")


def load_hf_folder(path: Path, device: str, dtype: torch.dtype) -> tuple[
        CausalLMAdapter, TextTokenizer, Allocation, dict[str, Any]]:
    """Model, tokenizer, allocation and identity of one folder; every failure is one line naming it."""
    try:
        transformers = require_transformers("a Hugging Face folder")
    except MissingExtra as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    require_regular_entries(path)
    options = {"local_files_only": True, "trust_remote_code": False}
    try:
        hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), **options)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... per backend
        raise CheckpointError(f"{path}: cannot load its tokenizer ({_first_line(exc)})") from None
    tokenizer = text_tokenizer(hf_tokenizer, path)
    bars = transformers.utils.logging
    shown = bars.is_progress_bar_enabled()
    bars.disable_progress_bar()  # a bar per checkpoint would interleave with pytest's output
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **options)
    except Exception as exc:
        raise _model_error(path, exc) from None
    finally:
        if shown:
            bars.enable_progress_bar()
    model = model.to(device).eval()
    check_loaded(path, model, tokenizer, model.config.vocab_size)
    identity = {
        "path": str(path),
        "format": "hf",
        "sha256": weights_sha256(path),
        "tokenizer_sha256": tokenizer.sha256,
        "tokenizer_adds_special_tokens": tokenizer.add_special_tokens,
        "config": json.loads(model.config.to_json_string(use_diff=True)),
        "training": {},
    }
    return CausalLMAdapter(model), tokenizer, allocation(model, context_length(model.config, hf_tokenizer)), identity
