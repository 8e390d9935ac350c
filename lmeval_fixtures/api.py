"""The library entry points for scripts, notebooks and training loops: no pytest, no files.

Each takes an in-memory ``torch.nn.Module`` (the native model, a Hugging Face causal
LM, or anything whose forward returns logits or an object with ``.logits``) and a
tokenizer (ours, a Hugging Face fast tokenizer, or a ``tokenizers.Tokenizer`` whose
BOS/EOS token is ``<|endoftext|>``).
"""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import Tokenizer

from .checkpoints import CheckpointSpec, discover_checkpoints
from .corpora import Document
from .hf_models import text_tokenizer
from .perplexity import PerplexityResult
from .perplexity import evaluate_perplexity as _evaluate_documents
from .settings import REFERENCE_DIR
from .smallbench import TaskResult, evaluate_task
from .tasks import TASKS, Task
from .timing import summarise_ms, time_rounds
from .tokenizer import TextTokenizer

TokenizerLike = TextTokenizer | Tokenizer


def as_text_tokenizer(tokenizer: TokenizerLike | Any, bos_token_id: int | None = None) -> TextTokenizer:
    """Ours as it is; a Hugging Face fast tokenizer with its BOS (else EOS) as the start token,
    as lm-evaluation-harness starts sequences; a ``tokenizers.Tokenizer`` with ``<|endoftext|>``."""
    if isinstance(tokenizer, TextTokenizer):
        return tokenizer
    if hasattr(tokenizer, "backend_tokenizer"):
        return text_tokenizer(tokenizer, "in-memory Hugging Face tokenizer")
    return TextTokenizer.from_json(tokenizer.to_str(), "in-memory tokenizer", bos_token_id)


def reference_checkpoints() -> list[CheckpointSpec]:
    """The embedded reference sweep (pass one to ``load_checkpoint``)."""
    return discover_checkpoints([REFERENCE_DIR])


def evaluate_perplexity(
    model: torch.nn.Module,
    tokenizer: TokenizerLike,
    documents: list[str] | list[Document],
    max_len: int,
    **options: Any,
) -> PerplexityResult:
    """Rolling-window perplexity of ``documents`` (plain strings are their own originals for byte and
    word counts). Options as ``perplexity.evaluate_perplexity``: stride, batch_tokens, max_eval_tokens."""
    docs = [d if isinstance(d, Document) else Document(text=d, original=d) for d in documents]
    was_training = model.training
    model.eval()
    try:
        return _evaluate_documents(model, as_text_tokenizer(tokenizer), docs, max_len, **options)
    finally:
        model.train(was_training)


def evaluate_smallbench(
    model: torch.nn.Module,
    tokenizer: TokenizerLike,
    task: str | Task,
    rows: list[dict],
    max_len: int,
    **options: Any,
) -> TaskResult:
    """Accuracy of one SmallBench task on ``rows`` (dicts with the task's fields and ``label``).
    Options as ``smallbench.evaluate_task``: prompt_set, fewshot, fewshot_pool, seed, max_samples."""
    declared = TASKS[task] if isinstance(task, str) else task
    was_training = model.training
    model.eval()
    try:
        return evaluate_task(model, as_text_tokenizer(tokenizer), declared, rows, max_len, **options)
    finally:
        model.train(was_training)


@torch.inference_mode()
def profile_latency(
    model: torch.nn.Module, batch: int = 1, seq: int = 128, rounds: int = 20, warmup: int = 3,
    vocab_size: int | None = None, seed: int = 0,
) -> dict[str, float | int]:
    """Forward latency over random ids, synchronising CUDA around each round (ms statistics).

    Without pytest-benchmark: for a quick reading inside a training loop. The pytest
    items use pytest-benchmark and record the same statistics.
    """
    parameter = next(model.parameters())
    vocab = vocab_size or getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is None:
        raise ValueError("pass vocab_size for a model without .config.vocab_size")
    ids = torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed)).to(parameter.device)
    timings = time_rounds(lambda: model(ids), parameter.device, rounds, warmup)
    return summarise_ms(timings) | {"batch": batch, "seq": seq}
