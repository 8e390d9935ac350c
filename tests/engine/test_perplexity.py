"""Perplexity against a deliberately simple, independent computation.

The reference re-implements lm-evaluation-harness's rolling windows from their
published definition (``get_rolling_token_windows`` + ``make_disjoint_window``),
scores one window at a time with a float64 log-softmax over full logits, and
accumulates in float64: no batching, no sorting, no position selection.

Also: words and bytes are counted on the original text, and bits per byte's invariants."""

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lmeval_fixtures.engine.perplexity import Document, PerplexityResult, plan_windows, score_documents
from lmeval_fixtures.models.model import Transformer
from lmeval_fixtures.models.tokenizer import TextTokenizer

from ..helpers import SAMPLE_TEXT, make_tokenizer, reference_nll, tiny_config


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


def test_words_and_bytes_are_counted_on_the_original():
    doc = Document(text="naïve-word", original=" naïve @-@ word ")
    assert doc.n_bytes == len(" naïve @-@ word ".encode())
    assert doc.n_words == 5  # re.split(r"\s+") keeps the empty edges, as lm-evaluation-harness counts


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 20), st.integers(1, 10**6), st.integers(1, 10**6))
@example(14.0, 50, 1)  # about 1010 bits per byte: large, but 2 ** 1010 is still a float64
@example(15.0, 50, 1)  # about 1082: beyond float64
def test_bits_per_byte_invariants(loss, tokens, n_bytes):
    from lmeval_fixtures.engine.perplexity import PerplexityResult

    result = PerplexityResult(nll=loss * tokens, tokens=tokens, bytes=n_bytes, words=n_bytes, documents=1,
                              windows=1, stride=1, context_length=1)
    # bits per byte and byte perplexity carry the same information: 2 ** bpb == byte perplexity
    if result.bits_per_byte < 1023.99:  # 2 ** 1024 is beyond float64
        assert 2 ** result.bits_per_byte == pytest.approx(result.byte_perplexity, rel=1e-9)
    elif result.bits_per_byte > 1024.01:  # the perplexity is reported as overflowing, never as a wrong finite number
        assert result.byte_perplexity == math.inf
    else:  # at the edge of float64 either is right, but never a wrong finite number
        assert result.byte_perplexity == math.inf or result.byte_perplexity == pytest.approx(
            2 ** result.bits_per_byte, rel=1e-9)
    # bits/byte = token loss in bits x tokens per byte
    assert result.bits_per_byte == pytest.approx(loss / 0.6931471805599453 * tokens / n_bytes, rel=1e-9)


def test_running_figures_over_the_windows_done_end_at_the_result(setup):
    """The progress line's live figures: perplexity over the windows scored so far (their summed NLL over
    their tokens, recomputed here window by window from the reference), ending exactly at the result."""
    model, tokenizer, docs = setup
    seen: list[dict[str, float]] = []
    result = score_documents(model, tokenizer, docs, 32, batch_tokens=40, live=seen.append)
    assert len(seen) > 3  # one reading per batch
    assert seen[-1]["ppl"] == pytest.approx(result.token_perplexity, rel=1e-9)
    assert seen[-1]["bpb"] == pytest.approx(result.bits_per_byte, rel=1e-9)
    # the first batch holds the longest windows: full 32-token windows of the long document, whose NLL the
    # reference gives for its first window alone (a document of exactly 32 tokens)
    first_window = tokenizer.encode(docs[0].text)[:32]
    nll = reference_nll(model, first_window, tokenizer.bos_token_id, 32, 32)
    assert seen[0]["ppl"] == pytest.approx(math.exp(nll / 32), rel=1e-5)
