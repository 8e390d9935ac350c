"""The chunked vocabulary projection against a direct float64 log-softmax."""

import pytest
import torch

from lmeval_fixtures.lm_interface import chunk_rows, target_logprobs


@pytest.mark.parametrize("vocab, chunk", [(50, None), (50, 7), (3000, None), (3000, 1000)])
def test_chunks_give_the_direct_log_probabilities_greedy_flags_and_ranks(vocab, chunk):
    generator = torch.Generator().manual_seed(vocab)
    weight = torch.randn(vocab, 16, generator=generator)
    features = torch.randn(1500, 16, generator=generator)  # several chunks of any size used here
    targets = torch.randint(0, vocab, (1500,), generator=generator)
    logprobs, greedy, rank = target_logprobs(lambda h: h @ weight.T, features, targets,
                                             with_greedy=True, with_rank=True, chunk=chunk)
    logits = (features @ weight.T).double()
    expected = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]
    assert torch.allclose(logprobs.double(), expected, atol=1e-4)
    assert torch.equal(greedy, logits.argmax(-1) == targets)
    assert torch.equal(rank, (logits > logits.gather(1, targets[:, None])).sum(-1))


def test_chunk_rows_keep_about_a_million_logits():
    assert chunk_rows(4096) == 256
    assert chunk_rows(32000) == 128  # never fewer rows than 128: small matmuls are slow
    assert chunk_rows(50) == 1024  # never more than 1024
