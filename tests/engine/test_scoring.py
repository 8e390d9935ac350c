"""The log-likelihood engine (``engine.scoring``) against a naive scorer: each request alone, unbatched, float64."""

import random

import pytest
from tokenizers import Tokenizer, models

from lmeval_fixtures.engine.scoring import Request, encode_pair, score_requests, score_requests_naively
from lmeval_fixtures.models.model import Transformer
from lmeval_fixtures.models.tokenizer import TextTokenizer

from ..helpers import CONTEXTS, CONTINUATIONS, tiny_config, tiny_lm


@pytest.fixture(scope="module")
def engine():
    model, tokenizer = tiny_lm(max_seq_len=32, seed=5)
    requests = [Request(c, k) for c in CONTEXTS for k in CONTINUATIONS]
    return model, tokenizer, requests, score_requests_naively(model, tokenizer, requests, 32)


@pytest.mark.parametrize("batch_tokens", [1, 17, 64, 100000])
def test_every_loglikelihood_equals_the_naive_scorer(engine, batch_tokens):
    model, tokenizer, requests, naive = engine
    scores, stats = score_requests(model, tokenizer, requests, 32, batch_tokens=batch_tokens)
    assert len(scores) == len(requests)
    for got, want in zip(scores, naive, strict=True):
        assert got.logprob == pytest.approx(want.logprob, abs=1e-5)
        assert got.is_greedy == want.is_greedy
        assert got.n_tokens == want.n_tokens
    assert stats.contexts < len(requests)  # contexts were shared, not re-run per choice
    assert stats.truncated_contexts > 0


def test_order_does_not_change_results(engine):
    model, tokenizer, requests, naive = engine
    order = list(range(len(requests)))
    random.Random(0).shuffle(order)
    shuffled, _ = score_requests(model, tokenizer, [requests[i] for i in order], 32, batch_tokens=50)
    for position, index in enumerate(order):
        assert shuffled[position].logprob == pytest.approx(naive[index].logprob, abs=1e-5)


def test_multi_token_continuations_share_one_context_pass(engine):
    _, tokenizer, _, _ = engine
    model = Transformer(tiny_config(tokenizer.vocab_size, max_seq_len=128)).eval()
    model.init_weights(2)
    requests = [Request(CONTEXTS[0], c) for c in (" well-known crustacean", " not entailment", " yes")]
    scores, stats = score_requests(model, tokenizer, requests, 128)
    assert stats.contexts == 1 and stats.batches == 1 and stats.truncated_contexts == 0
    naive = score_requests_naively(model, tokenizer, requests, 128)
    assert [s.logprob for s in scores] == pytest.approx([s.logprob for s in naive], abs=1e-5)


def test_trailing_whitespace_moves_onto_the_continuation(engine):
    _, tokenizer, _, _ = engine
    context, continuation, separate = encode_pair(tokenizer, "The fox ", "jumps")
    assert context == tokenizer.encode("The fox")
    assert tokenizer.decode(continuation) == " jumps"
    assert not separate


def test_a_token_spanning_the_join_is_encoded_separately_and_counted():
    tok = Tokenizer(models.BPE(vocab={"<|endoftext|>": 0, "a": 1, "b": 2, "ab": 3}, merges=[("a", "b")]))
    tokenizer = TextTokenizer.from_json(tok.to_str(), "join-test")
    assert encode_pair(tokenizer, "a", "b") == ([1], [2], True)
    model = Transformer(tiny_config(4, max_seq_len=8)).eval()
    scores, stats = score_requests(model, tokenizer, [Request("a", "b"), Request("ab", "a")], 8)
    assert stats.separate_encodings == 1 and len(scores) == 2


def test_empty_continuation_is_refused(engine):
    _, tokenizer, _, _ = engine
    with pytest.raises(ValueError, match="continuation must not be empty"):
        encode_pair(tokenizer, "context", "")
