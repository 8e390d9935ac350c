"""A linear head projected a vocabulary block at a time (``engine.vocab_blocks``), against its whole logits
normalised in float64; ties across blocks; only a plain linear layer is blocked."""

import pytest
import torch

from lmeval_fixtures.engine.projection import (
    target_logprobs,
)
from lmeval_fixtures.engine.vocab_blocks import VOCAB_BLOCK

from ..helpers import linear_head


@pytest.mark.parametrize("vocab", [50, 3000, 2 * VOCAB_BLOCK + 77])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_bias", [False, True])
def test_a_linear_head_a_block_at_a_time_gives_the_direct_figures(vocab, dtype, with_bias):
    """Against the whole logits of the same layer, normalised in float64."""
    generator = torch.Generator().manual_seed(vocab)
    weight = (torch.randn(vocab, 32, generator=generator) * 0.3).to(dtype)
    bias = torch.randn(vocab, generator=generator).to(dtype) if with_bias else None
    head = linear_head(weight, bias)
    features = torch.randn(700, 32, generator=generator).to(dtype)
    targets = torch.randint(0, vocab, (700,), generator=generator)
    logprobs, greedy, rank = target_logprobs(head, features, targets, with_greedy=True, with_rank=True)
    with torch.no_grad():
        logits = head(features).double()
    target_logit = logits.gather(1, targets[:, None])
    expected = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]
    assert logprobs.dtype == torch.float32
    assert torch.allclose(logprobs.double(), expected, rtol=0, atol=4e-6)
    assert torch.equal(greedy, logits.argmax(-1) == targets)
    assert torch.equal(rank, (logits > target_logit).sum(-1))


def test_ties_across_vocabulary_blocks_count_as_lm_eval_counts_them():
    """Integer logits: every row's maximum is reached in several blocks. The first maximum wins
    greedy even when it lies in an earlier block than the target."""
    generator = torch.Generator().manual_seed(5)
    vocab = 2 * VOCAB_BLOCK + 77
    head = linear_head(torch.randint(0, 3, (vocab, 8), generator=generator).float())
    features = torch.eye(8).repeat(60, 1)  # each row reads one column of integer logits
    targets = torch.randint(0, vocab, (480,), generator=generator)
    top = head.weight.detach().T.argmax(-1)  # first maximum of each column
    targets[:8] = top + VOCAB_BLOCK  # a later maximum in the next block, if it ties there
    targets[8:16] = top  # the first maximum itself
    logprobs, greedy, rank = target_logprobs(head, features, targets, with_greedy=True, with_rank=True)
    with torch.no_grad():
        logits = head(features)
    assert torch.equal(greedy, logits.argmax(-1) == targets)
    assert torch.equal(rank, (logits > logits.gather(1, targets[:, None])).sum(-1))
    at_max = logits.gather(1, targets[:, None])[:, 0] == logits.amax(-1)
    assert bool((at_max & ~greedy).any()) and bool(greedy.any())


def test_only_a_plain_linear_layer_is_projected_a_block_at_a_time():
    class Scaled(torch.nn.Linear):  # computes otherwise, as a quantised layer may
        def forward(self, x):
            return super().forward(x) * 2

    generator = torch.Generator().manual_seed(9)
    head = Scaled(16, 300)
    features = torch.randn(200, 16, generator=generator)
    targets = torch.randint(0, 300, (200,), generator=generator)
    logprobs, _, _ = target_logprobs(head, features, targets)
    with torch.no_grad():
        expected = torch.log_softmax(head(features).double(), -1).gather(1, targets[:, None])[:, 0]
    assert torch.allclose(logprobs.double(), expected, atol=4e-6)
