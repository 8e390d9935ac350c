"""Perplexity against a deliberately simple, independent computation.

The reference re-implements lm-evaluation-harness's rolling windows from their
published definition (``get_rolling_token_windows`` + ``make_disjoint_window``),
scores one window at a time with a float64 log-softmax over full logits, and
accumulates in float64: no batching, no sorting, no position selection.
"""

import math

import pytest
import torch

from lmeval_fixtures.engine.perplexity import Document, PerplexityResult, plan_windows, score_documents
from lmeval_fixtures.models.model import Transformer
from lmeval_fixtures.models.tokenizer import TextTokenizer

from .conftest import SAMPLE_TEXT, make_tokenizer, tiny_config


def rolling_windows(tokens, prefix, max_len, context_len):
    pred_len = max_len - context_len + 1
    first = min(max_len, len(tokens))
    yield [prefix] + tokens[: first - 1], tokens[:first]
    predicted = first
    while predicted < len(tokens):
        n = min(len(tokens) - predicted, pred_len)
        end = predicted + n
        yield tokens[end - max_len - 1 : end - 1], tokens[end - n : end]
        predicted += n


def reference_nll(model, tokens, prefix, max_len, stride):
    total = 0.0
    for context, continuation in rolling_windows(tokens, prefix, max_len, max_len - stride + 1):
        context = context[: len(context) - (len(continuation) - 1)]  # make_disjoint_window
        full = (context + continuation)[-(max_len + 1):]
        inputs = torch.tensor([full[:-1]])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(inputs)[0].double(), dim=-1)
        n = len(continuation)
        scored = logprobs[-n:]
        for row, target in zip(scored, continuation, strict=True):
            total -= row[target].item()
    return total


@pytest.fixture(scope="module")
def setup():
    tok = make_tokenizer()
    tokenizer = TextTokenizer.from_json(tok.to_str(), "test", tok.token_to_id("<|endoftext|>"))
    model = Transformer(tiny_config(tok.get_vocab_size(), max_seq_len=32)).eval()
    model.init_weights(3)
    lines = SAMPLE_TEXT.splitlines()
    texts = [SAMPLE_TEXT * 3, lines[0], "", lines[1] + " " + lines[2], "x"]
    return model, tokenizer, [Document(text=t, original=t + " extra") for t in texts]


@pytest.mark.parametrize("stride, batch_tokens", [
    (None, 1), (None, 40), (None, 100000), (32, 40), (20, 100000), (7, 40), (1, 100000),
])
def test_equals_the_simple_reference(setup, stride, batch_tokens):
    model, tokenizer, docs = setup
    result = score_documents(model, tokenizer, docs, 32, stride=stride, batch_tokens=batch_tokens)
    expected = sum(reference_nll(model, tokenizer.encode(d.text), tokenizer.bos_token_id, 32, stride or 32)
                   for d in docs if d.text)
    assert result.nll == pytest.approx(expected, rel=1e-6)
    assert result.tokens == sum(len(tokenizer.encode(d.text)) for d in docs)
    assert result.bytes == sum(len(d.original.encode()) for d in docs)
    assert result.words == sum(d.n_words for d in docs)
    assert result.token_perplexity == pytest.approx(math.exp(expected / result.tokens), rel=1e-6)
    assert result.bits_per_byte == pytest.approx(expected / math.log(2) / result.bytes, rel=1e-6)
    assert result.word_perplexity == pytest.approx(math.exp(expected / result.words), rel=1e-6)


@pytest.mark.parametrize("n_tokens, max_len, stride", [(1, 8, 8), (8, 8, 8), (9, 8, 8), (50, 8, 8), (50, 8, 3)])
def test_windows_predict_every_token_once(n_tokens, max_len, stride):
    predicted = []
    for w in plan_windows(n_tokens, max_len, stride):
        assert w.length <= max_len and w.start >= 0
        predicted += list(range(w.start + w.length - w.n_scored, w.start + w.length))  # stream index - 1
    assert predicted == list(range(n_tokens))


def test_uniform_model_has_perplexity_of_the_vocabulary(setup):
    _, tokenizer, docs = setup
    model = Transformer(tiny_config(tokenizer.vocab_size, max_seq_len=32))
    torch.nn.init.zeros_(model.embed_tokens.weight)  # tied head: every logit is 0
    result = score_documents(model.eval(), tokenizer, docs, 32)
    assert result.token_perplexity == pytest.approx(tokenizer.vocab_size, rel=1e-6)


def test_token_cap_cuts_in_document_order(setup):
    model, tokenizer, docs = setup
    first = len(tokenizer.encode(docs[0].text))
    capped = score_documents(model, tokenizer, docs, 32, max_eval_tokens=first + 3)
    assert capped.tokens == first + 3
    assert capped.documents == 2 and capped.truncated_documents == 1
    whole = score_documents(model, tokenizer, docs[:1], 32)
    assert capped.per_document[0] == pytest.approx(whole.per_document[0])


def test_top1_and_top5_accuracy_match_a_direct_count(setup):
    model, tokenizer, docs = setup
    result = score_documents(model, tokenizer, docs, 32, batch_tokens=40)
    top1 = top5 = 0
    for doc in docs:
        ids = tokenizer.encode(doc.text)
        stream = [tokenizer.bos_token_id] + ids
        for w in plan_windows(len(ids), 32):
            with torch.no_grad():
                logits = model(torch.tensor([stream[w.start : w.start + w.length]]))[0]
            for pos in range(w.length - w.n_scored, w.length):
                best = torch.topk(logits[pos], 5).indices.tolist()
                target = stream[w.start + pos + 1]
                top1 += best[0] == target
                top5 += target in best
    assert (result.top1, result.top5) == (top1, top5)
    assert result.top1_accuracy == pytest.approx(top1 / result.tokens)


def test_a_diverged_model_reports_infinite_perplexity_not_an_overflow():
    result = PerplexityResult(nll=1e6, tokens=10, bytes=10, words=1, documents=1, windows=1, stride=1,
                              context_length=1)
    assert result.token_perplexity == math.inf and result.word_perplexity == math.inf
    assert PerplexityResult(nll=2.0, tokens=2, bytes=2, words=2, documents=1, windows=1, stride=1,
                            context_length=1).token_perplexity == math.e
