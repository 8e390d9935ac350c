"""Rolling-window perplexity over documents, batched across documents.

Definitions (docs/design.md, "Metrics"): each document is scored from the BOS/EOS
token; every token is predicted exactly once. With the default stride (the
model's context length) windows are disjoint in the way lm-evaluation-harness's
``loglikelihood_rolling`` makes them, including its last window, which is
filled back to a full context and scores only the remaining tokens. A smaller
stride conditions each window on more preceding text. Sums are float64.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch

from ..core.numerics import safe_exp
from ..models.tokenizer import TextTokenizer
from .batching import length_batches
from .memory_fit import largest_fitting
from .projection import EngineCaches, model_device, split_forward, target_logprobs


@dataclass(frozen=True)
class Document:
    """One scored unit: ``text`` is what the model sees; counts come from ``original``."""

    text: str
    original: str

    @property
    def n_bytes(self) -> int:
        return len(self.original.encode("utf-8"))

    @property
    def n_words(self) -> int:
        # lm-evaluation-harness counts re.split(r"\s+", page) pieces, empty edges included.
        return len(re.split(r"\s+", self.original))


@dataclass(frozen=True)
class Window:
    """``stream[start:start+length]`` is the input (stream = [BOS] + document tokens);
    the last ``n_scored`` positions are scored, each predicting the next stream token."""

    document: int
    start: int
    length: int
    n_scored: int


def plan_windows(n_tokens: int, max_len: int, stride: int | None = None, document: int = 0) -> list[Window]:
    """Windows covering ``n_tokens`` document tokens, each predicted exactly once."""
    stride = max_len if stride is None else stride
    if not 1 <= stride <= max_len:
        raise ValueError(f"stride must be in [1, {max_len}], got {stride}")
    if n_tokens == 0:
        return []
    first = min(max_len, n_tokens)
    windows = [Window(document, 0, first, first)]
    predicted = first
    while predicted < n_tokens:
        n_scored = min(n_tokens - predicted, stride)
        end = predicted + n_scored  # targets are stream[predicted+1 : end+1]
        windows.append(Window(document, end - max_len, max_len, n_scored))
        predicted = end
    return windows


@dataclass
class PerplexityResult:
    nll: float  # summed negative log-likelihood, nats, float64
    tokens: int
    bytes: int
    words: int
    documents: int
    windows: int
    stride: int
    context_length: int
    truncated_documents: int = 0
    per_document: list[tuple[float, int, int, int]] = field(default_factory=list)  # nll, tokens, bytes, words
    top1: int = 0  # tokens whose target was the model's first choice
    top5: int = 0  # ... among its five highest logits

    # Empty corpora give NaN (recorded as null, and the item fails on it), never a ZeroDivisionError.
    @property
    def loss(self) -> float:
        return _ratio(self.nll, self.tokens)

    @property
    def token_perplexity(self) -> float:
        return safe_exp(self.loss)

    @property
    def bits_per_byte(self) -> float:
        return _ratio(self.nll, math.log(2) * self.bytes)

    @property
    def byte_perplexity(self) -> float:
        return safe_exp(_ratio(self.nll, self.bytes))

    @property
    def word_perplexity(self) -> float:
        return safe_exp(_ratio(self.nll, self.words))

    @property
    def top1_accuracy(self) -> float:
        return _ratio(self.top1, self.tokens)

    @property
    def top5_accuracy(self) -> float:
        return _ratio(self.top5, self.tokens)

    def samples(self) -> list[dict[str, float | int]]:
        """One row per document: what the paired bootstrap over documents needs."""
        return [{"document": i, "nll": nll, "tokens": tokens, "bytes": n_bytes, "words": words}
                for i, (nll, tokens, n_bytes, words) in enumerate(self.per_document)]

    def summary(self) -> dict[str, float | int]:
        return {
            "loss": self.loss, "token_perplexity": self.token_perplexity, "bits_per_byte": self.bits_per_byte,
            "byte_perplexity": self.byte_perplexity, "word_perplexity": self.word_perplexity,
            "nll_sum": self.nll, "tokens": self.tokens, "bytes": self.bytes, "words": self.words,
            "documents": self.documents, "windows": self.windows, "stride": self.stride,
            "context_length": self.context_length, "truncated_documents": self.truncated_documents,
            "top1_accuracy": self.top1_accuracy, "top5_accuracy": self.top5_accuracy,
            "top1_correct": self.top1, "top5_correct": self.top5,
        }


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def _encoded(tokenizer: TextTokenizer, texts: tuple[str, ...], caches: EngineCaches) -> list[list[int]]:
    """Token lists of ``texts``, kept in ``caches`` by (tokenizer fingerprint, texts): the checkpoints
    of a sweep usually share a tokenizer, and each would otherwise encode the same splits again
    (about a second per WikiText-2 split on a 2-core CPU)."""
    key = (tokenizer.sha256, bool(tokenizer.add_special_tokens), texts)
    return caches.encodings(key, lambda: tokenizer.encode_batch(list(texts)))


def _encoded_until(tokenizer: TextTokenizer, documents: list[Document], budget: int) -> Iterator[list[int]]:
    """Token lists of the documents in order, encoded a few at a time until ``budget`` tokens."""
    step, start, seen = 4, 0, 0
    while start < len(documents) and seen < budget:
        for ids in tokenizer.encode_batch([d.text for d in documents[start:start + step]]):
            seen += len(ids)
            yield list(ids)
        start += step
        step *= 2


def _doc_tokens(
    tokenizer: TextTokenizer, documents: list[Document], max_eval_tokens: int | None, caches: EngineCaches,
) -> tuple[list[list[int]], list[tuple[int, int]], int]:
    """Token lists and (bytes, words) per document, cut to ``max_eval_tokens`` in order.

    A document cut short is counted on the text of the tokens kept (decoded), since
    its original no longer matches what is scored.
    """
    if max_eval_tokens is None:
        encoded: Iterable[list[int]] = _encoded(tokenizer, tuple(d.text for d in documents), caches)
    else:  # a token cap reads only as far as it needs (a quick run should be quick)
        encoded = _encoded_until(tokenizer, documents, max_eval_tokens)
    token_lists, counts, truncated = [], [], 0
    budget = max_eval_tokens
    for doc, ids in zip(documents, encoded, strict=False):
        if budget is not None and budget <= 0:
            break
        if budget is not None and len(ids) > budget:
            ids = ids[:budget]
            kept = tokenizer.decode(ids)
            counts.append((len(kept.encode("utf-8")), len(re.split(r"\s+", kept))))
            truncated += 1
        else:
            counts.append((doc.n_bytes, doc.n_words))
        token_lists.append(ids)
        if budget is not None:
            budget -= len(ids)
    return token_lists, counts, truncated


def running_figures(nll: float, scored_tokens: int, bytes_per_token: float) -> dict[str, float]:
    """Bits per byte and token perplexity over the windows scored so far, for the progress line:
    perplexity exactly (their tokens), bits per byte with the corpus's mean bytes per token for
    the bytes those windows cover (exact once every window is scored, an estimate before)."""
    if scored_tokens == 0:
        return {}
    bits = _ratio(nll, math.log(2) * scored_tokens * bytes_per_token)
    return {"bpb": bits, "ppl": safe_exp(nll / scored_tokens)}


@torch.inference_mode()
def score_documents(
    model: torch.nn.Module,
    tokenizer: TextTokenizer,
    documents: list[Document],
    max_len: int,
    *,
    stride: int | None = None,
    batch_tokens: int = 16384,
    max_eval_tokens: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    caches: EngineCaches | None = None,
    live: Callable[[dict[str, float]], None] | None = None,
) -> PerplexityResult:
    """Score ``documents`` and return summed NLL with token, byte and word counts.

    Windows from all documents are sorted by length and cut into batches of at most
    ``batch_tokens`` input tokens (``batching.length_batches``); right padding never
    changes a result because attention is causal and only real positions are scored. A budget
    that runs out of memory is halved until one fits (``memory_fit.largest_fitting``).
    ``caches``: what scoring keeps between calls (``projection.EngineCaches``: encodings, chunk
    choosers, threads), a run's; without, this call's own. ``live``: given the running figures
    after each batch (``running_figures``), before ``progress``.
    """
    caches = caches if caches is not None else EngineCaches()
    token_lists, counts, truncated = _doc_tokens(tokenizer, documents, max_eval_tokens, caches)
    bytes_per_token = sum(b for b, _ in counts) / max(1, sum(len(ids) for ids in token_lists))
    streams = [torch.tensor([tokenizer.bos_token_id] + ids, dtype=torch.long) for ids in token_lists]
    windows = [w for i, ids in enumerate(token_lists) for w in plan_windows(len(ids), max_len, stride, i)]
    windows.sort(key=lambda w: (-w.length, w.document, w.start))
    hidden_fn, head_fn = split_forward(model)
    device = model_device(model)

    def score_windows(budget: int) -> tuple[torch.Tensor, int, int]:
        doc_nll = torch.zeros(len(token_lists), dtype=torch.float64)
        top1 = top5 = 0  # next-token accuracy counts, from the same pass
        scored_tokens = 0  # for the live figures; a retry at half the budget starts them again
        for indices in length_batches([w.length for w in windows], budget):
            batch = windows[indices.start:indices.stop]
            width = batch[0].length
            index = indices.stop
            inputs = torch.zeros((len(batch), width + 1), dtype=torch.long)
            scored = torch.zeros((len(batch), width), dtype=torch.bool)
            owner = torch.empty((len(batch), width), dtype=torch.long)
            for row, w in enumerate(batch):
                inputs[row, : w.length + 1] = streams[w.document][w.start : w.start + w.length + 1]
                scored[row, w.length - w.n_scored : w.length] = True
                owner[row] = w.document
            features = hidden_fn(inputs[:, :-1].to(device))
            targets = inputs[:, 1:]
            if not bool(scored.all()):  # project only the scored positions onto the vocabulary
                features, targets, owner = features[scored.to(device)], targets[scored], owner[scored]
            logprobs, _, rank = target_logprobs(head_fn, features.reshape(-1, features.shape[-1]),
                                                targets.reshape(-1).to(device), with_rank=True, caches=caches)
            doc_nll.index_add_(0, owner.reshape(-1), -logprobs.double().cpu())
            top1 += int((rank == 0).sum())
            top5 += int((rank < 5).sum())
            scored_tokens += sum(w.n_scored for w in batch)
            if live is not None:
                live(running_figures(float(doc_nll.sum()), scored_tokens, bytes_per_token))
            if progress is not None:
                progress(index, len(windows))
        return doc_nll, top1, top5

    # out of memory: every window again at half the budget, until it fits (memory_fit)
    (doc_nll, top1, top5), _ = largest_fitting(score_windows, batch_tokens)

    per_document = [(doc_nll[i].item(), len(ids), *counts[i]) for i, ids in enumerate(token_lists)]
    return PerplexityResult(
        nll=float(doc_nll.sum().item()),
        tokens=sum(len(ids) for ids in token_lists),
        bytes=sum(b for b, _ in counts),
        words=sum(w for _, w in counts),
        documents=len(token_lists),
        windows=len(windows),
        stride=max_len if stride is None else stride,
        context_length=max_len,
        truncated_documents=truncated,
        per_document=per_document,
        top1=top1,
        top5=top5,
    )
