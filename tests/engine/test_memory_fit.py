"""Scoring that runs out of memory (``engine.memory_fit``): the token budget is halved until one fits, and the
figures are those of a run at that budget, whatever budget was asked for (a fake out-of-memory model)."""

from __future__ import annotations

import pytest
import torch

from lmeval_fixtures.engine.memory_fit import largest_fitting
from lmeval_fixtures.engine.perplexity import Document, score_documents
from lmeval_fixtures.engine.scoring import Request, score_requests, score_requests_naively
from lmeval_fixtures.suite.smallbench import evaluate_task
from lmeval_fixtures.suite.tasks import TASKS

from ..helpers import CONTEXTS, CONTINUATIONS, tiny_lm

ROWS = [{"sentence": s, "label": i % 2, "idx": i} for i, s in enumerate([
    "a charming and often affecting journey", "unflinchingly bleak and desperate", "the fox jumps over the dog",
    "well-known lobster of the sea", "he had a guest role in 2000", "numbers like 1,000 and 3.14",
])]


def short_of_memory(model: torch.nn.Module, most_tokens: int) -> list[int]:
    """``model`` with a device that holds at most ``most_tokens`` tokens a forward pass: a larger batch raises
    the error CUDA raises. Returns the sizes of the passes tried, as they happen."""
    tried: list[int] = []
    real = model.hidden_states

    def hidden_states(ids: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        tried.append(ids.numel())
        if ids.numel() > most_tokens:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(ids, *args, **kwargs)

    model.hidden_states = hidden_states
    return tried


@pytest.fixture
def requests():
    return [Request(c, k) for c in CONTEXTS for k in CONTINUATIONS]


def test_scoring_halves_the_budget_until_it_fits_and_scores_as_at_that_budget(requests):
    model, tokenizer = tiny_lm(max_seq_len=32, seed=5)
    fitting, fitting_stats = score_requests(model, tokenizer, requests, 32, batch_tokens=64)
    tried = short_of_memory(model, most_tokens=64)
    scores, stats = score_requests(model, tokenizer, requests, 32, batch_tokens=1024)
    assert any(n > 64 for n in tried) and max(n for n in tried[-stats.batches:]) <= 64
    assert stats.batch_tokens == 64  # 1024, 512, 256, 128 ran out; 64 fits
    assert stats.batches == fitting_stats.batches and stats.batch_shapes == fitting_stats.batch_shapes
    assert scores == fitting  # exactly the figures of --batch-tokens 64: one budget for the whole call
    for got, want in zip(scores, score_requests_naively(model, tokenizer, requests, 32), strict=True):
        assert got.logprob == pytest.approx(want.logprob, abs=1e-5) and got.is_greedy == want.is_greedy


@pytest.mark.parametrize("asked", [1000, 16384])
def test_a_task_s_figures_do_not_depend_on_the_budget_asked_for(asked):
    model, tokenizer = tiny_lm(max_seq_len=48, seed=11)
    roomy = evaluate_task(model, tokenizer, TASKS["sst2"], ROWS, 48, batch_tokens=asked).summary()
    tried = short_of_memory(model, most_tokens=120)
    tight = evaluate_task(model, tokenizer, TASKS["sst2"], ROWS, 48, batch_tokens=asked).summary()
    assert any(n > 120 for n in tried) and tight["batch_tokens"] < asked and roomy["batch_tokens"] == asked
    for figure in ("acc", "acc_norm", "correct", "correct_norm", "n", "predicted_classes", "majority_rate"):
        assert tight[figure] == roomy[figure], figure
    for figure in ("margin", "gold_bits_per_byte", "gold_loglikelihood_sum"):
        assert tight[figure] == pytest.approx(roomy[figure], abs=1e-5), figure


def test_perplexity_halves_the_budget_too():
    model, tokenizer = tiny_lm(max_seq_len=32, seed=5)
    docs = [Document(text, text) for text in ("the quick brown fox jumps over the lazy dog " * 6,
                                              "lobster of the sea " * 9, "a short one")]
    fitting = score_documents(model, tokenizer, docs, 32, batch_tokens=32)
    short_of_memory(model, most_tokens=40)
    tight = score_documents(model, tokenizer, docs, 32, batch_tokens=4096)
    assert tight == fitting  # every window at the budget that fit (4096 ... 64 ran out, 32 fits)


def test_only_out_of_memory_is_retried():
    calls = []

    def broken(budget: int) -> None:
        calls.append(budget)
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        largest_fitting(broken, 1024)
    assert calls == [1024]


def test_out_of_memory_at_one_token_is_raised():
    calls = []

    def never_fits(budget: int) -> None:
        calls.append(budget)
        raise RuntimeError("DefaultCPUAllocator: not enough memory: out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        largest_fitting(never_fits, 8)
    assert calls == [8, 4, 2, 1]
