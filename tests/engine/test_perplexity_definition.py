"""Each perplexity figure's definition, pinned on text where the distinction matters.

Bits per byte, byte and word perplexity divide one summed NLL by different counts: UTF-8 bytes
(not characters) and ``re.split(r"\\s+", text)`` pieces (empty edges included, as
lm-evaluation-harness counts them) of the original text; a document cut by ``--max-eval-tokens``
is counted on the decoded text of the tokens kept. The texts here are multi-byte and carry
leading and trailing whitespace, where characters and bytes, or words split other ways, differ.
Counts are worked by hand for small strings; the NLL comes from the simple reference scorer
(``helpers.reference_nll``), and top-k from a direct count over full logits.
"""

from __future__ import annotations

import math
import random
import re

import pytest
import torch

from lmeval_fixtures.engine.perplexity import Document, plan_windows, score_documents

from ..helpers import reference_nll, tiny_lm

MAX_LEN = 32


@pytest.fixture(scope="module")
def lm():
    return tiny_lm(max_seq_len=MAX_LEN, seed=5)


# (original text, UTF-8 bytes, words as lm-evaluation-harness splits them), counted by hand
HAND_COUNTED = [
    ("  naïve café  ", 16, 4),  # ï and é two bytes each; "", "naïve", "café", "" (edges count)
    ("Zürich\tund\nBern", 16, 3),  # ü two bytes; tab and newline are whitespace
    ("日本語 テキスト", 22, 2),  # seven CJK/kana characters of three bytes, one space
    ("plain", 5, 1),
    ("", 0, 1),  # re.split of nothing is one empty piece
    (" \n ", 3, 2),  # whitespace only: the two empty edges
    ("a  b", 4, 2),  # a run of whitespace is one separator
    ("€100 — “quoted”", 23, 3),  # €, the dash and the quotes three bytes each
]


@pytest.mark.parametrize("original, n_bytes, n_words", HAND_COUNTED)
def test_bytes_and_words_of_a_document(original, n_bytes, n_words):
    doc = Document(text="anything else", original=original)
    assert (doc.n_bytes, doc.n_words) == (n_bytes, n_words)


TEXTS = [
    "  The naïve café in Zürich serves crème brûlée.  ",
    "\tRobert Boulter — an English actor — said “hello” to 日本語.\n",
    "The quick brown fox jumps over the lazy dog. " * 3,
]


def test_figures_divide_the_reference_nll_by_bytes_words_and_tokens(lm):
    model, tokenizer = lm
    # what the model sees differs from what is counted (a detokenizer's work): counts follow the original
    docs = [Document(text=t.strip(), original=t) for t in TEXTS]
    result = score_documents(model, tokenizer, docs, MAX_LEN, batch_tokens=64)
    ids = [tokenizer.encode(d.text) for d in docs]
    nll = [reference_nll(model, i, tokenizer.bos_token_id, MAX_LEN, MAX_LEN) for i in ids]
    n_bytes = [len(t.encode("utf-8")) for t in TEXTS]
    n_words = [len(re.split(r"\s+", t)) for t in TEXTS]
    assert sum(n_bytes) > sum(len(t) for t in TEXTS)  # multi-byte text: bytes are not characters
    assert result.bytes == sum(n_bytes) and result.words == sum(n_words)
    assert result.tokens == sum(map(len, ids)) and result.documents == 3
    total = sum(nll)
    assert result.nll == pytest.approx(total, rel=1e-6)
    assert result.loss == pytest.approx(total / result.tokens, rel=1e-6)
    assert result.token_perplexity == pytest.approx(math.exp(total / result.tokens), rel=1e-6)
    assert result.bits_per_byte == pytest.approx(total / (math.log(2) * sum(n_bytes)), rel=1e-6)
    assert result.byte_perplexity == pytest.approx(math.exp(total / sum(n_bytes)), rel=1e-6)
    assert result.word_perplexity == pytest.approx(math.exp(total / sum(n_words)), rel=1e-6)
    for got, d_nll, d_ids, b, w in zip(result.per_document, nll, ids, n_bytes, n_words, strict=True):
        assert got[0] == pytest.approx(d_nll, rel=1e-6) and got[1:] == (len(d_ids), b, w)
    summary = result.summary()
    assert (summary["bytes"], summary["words"], summary["tokens"]) == (result.bytes, result.words, result.tokens)
    assert summary["nll_sum"] == result.nll and summary["bits_per_byte"] == result.bits_per_byte


@pytest.mark.parametrize("kept_tokens", [3, 9, 17])
def test_a_document_cut_short_is_counted_on_the_utf8_bytes_of_the_text_kept(lm, kept_tokens):
    model, tokenizer = lm
    first = "crème brûlée ist süß; 日本語のテキスト " * 2
    docs = [Document(text=first, original="an original much longer than what is kept " * 3),
            Document(text="never reached", original="never reached")]
    result = score_documents(model, tokenizer, docs, MAX_LEN, max_eval_tokens=kept_tokens)
    kept_ids = tokenizer.encode(first)[:kept_tokens]
    kept = tokenizer.decode(kept_ids)
    assert len(kept.encode("utf-8")) > len(kept)  # the text kept is multi-byte: the distinction matters
    assert result.documents == 1 and result.truncated_documents == 1 and result.tokens == kept_tokens
    assert result.bytes == len(kept.encode("utf-8"))
    assert result.words == len(re.split(r"\s+", kept))
    nll = reference_nll(model, kept_ids, tokenizer.bos_token_id, MAX_LEN, MAX_LEN)
    assert result.bits_per_byte == pytest.approx(nll / (math.log(2) * len(kept.encode("utf-8"))), rel=1e-6)
    assert result.word_perplexity == pytest.approx(math.exp(nll / len(re.split(r"\s+", kept))), rel=1e-6)
    assert result.per_document[0][1:] == (kept_tokens, len(kept.encode("utf-8")), len(re.split(r"\s+", kept)))


def test_a_document_that_fits_the_cap_keeps_its_original_counts(lm):
    model, tokenizer = lm
    docs = [Document(text="süß café", original="  süß   café  ")]
    n_tokens = len(tokenizer.encode("süß café"))
    result = score_documents(model, tokenizer, docs, MAX_LEN, max_eval_tokens=n_tokens)
    assert result.truncated_documents == 0
    assert (result.bytes, result.words) == (len("  süß   café  ".encode()), 4)


def direct_ranks(model, tokenizer, docs: list[Document]) -> list[int]:
    """Each target's rank: how many logits are strictly above its own (a tie at the top is rank 0,
    the first choice), over full logits, one window at a time."""
    ranks = []
    for doc in docs:
        ids = tokenizer.encode(doc.text)
        stream = [tokenizer.bos_token_id] + ids
        for w in plan_windows(len(ids), MAX_LEN):
            with torch.no_grad():
                logits = model(torch.tensor([stream[w.start: w.start + w.length]]))[0].double()
            for pos in range(w.length - w.n_scored, w.length):
                ranks.append(int((logits[pos] > logits[pos, stream[w.start + pos + 1]]).sum()))
    return ranks


def test_top1_and_top5_accuracy_by_rank(lm):
    """A random model ranks a target anywhere in its 320 tokens: some 800 tokens of text hold
    targets at rank 0, at ranks 1-4 and at rank 5, where top-1, top-5 and a top-6 would differ."""
    model, tokenizer = lm
    letters = random.Random(0)
    noise = "".join(letters.choice("abcdefghijklmnopqrstuvwxyz   ,.éü") for _ in range(1500))
    docs = [Document(t, t) for t in TEXTS + ["x", noise]]
    result = score_documents(model, tokenizer, docs, MAX_LEN)
    ranks = direct_ranks(model, tokenizer, docs)
    top1, top5 = sum(r < 1 for r in ranks), sum(r < 5 for r in ranks)
    assert len(ranks) == result.tokens and 0 < top1 < top5 < sum(r < 6 for r in ranks)  # the three differ here
    assert (result.top1, result.top5) == (top1, top5)
    assert result.top1_accuracy == pytest.approx(top1 / len(ranks))
    assert result.top5_accuracy == pytest.approx(top5 / len(ranks))
    summary = result.summary()
    assert (summary["top1_correct"], summary["top5_correct"]) == (top1, top5)
    assert summary["top1_accuracy"] == result.top1_accuracy and summary["top5_accuracy"] == result.top5_accuracy


def test_a_tie_at_the_top_counts_as_the_first_choice(lm):
    """Every logit equal (a zeroed tied embedding): no logit is above the target's, so every token is
    a top-1 hit, while the perplexity is the vocabulary size."""
    from lmeval_fixtures.models.model import Transformer

    from ..helpers import tiny_config

    _, tokenizer = lm
    model = Transformer(tiny_config(tokenizer.vocab_size, max_seq_len=MAX_LEN))
    torch.nn.init.zeros_(model.embed_tokens.weight)
    result = score_documents(model.eval(), tokenizer, [Document(TEXTS[0], TEXTS[0])], MAX_LEN)
    assert result.top1_accuracy == 1.0 and result.top5_accuracy == 1.0
    assert result.token_perplexity == pytest.approx(tokenizer.vocab_size, rel=1e-6)
    assert result.bits_per_byte == pytest.approx(result.tokens * math.log2(tokenizer.vocab_size)
                                                 / len(TEXTS[0].encode()), rel=1e-6)


def test_the_summary_and_samples_field_by_field():
    from lmeval_fixtures.engine.perplexity import PerplexityResult

    result = PerplexityResult(nll=12.0, tokens=6, bytes=10, words=4, documents=2, windows=3, stride=16,
                              context_length=32, truncated_documents=1, per_document=[(5.0, 2, 4, 1), (7.0, 4, 6, 3)],
                              top1=3, top5=5)
    expected = {"loss": 2.0, "token_perplexity": math.exp(2.0), "bits_per_byte": 12.0 / (math.log(2) * 10),
                "byte_perplexity": math.exp(1.2), "word_perplexity": math.exp(3.0), "nll_sum": 12.0, "tokens": 6,
                "bytes": 10, "words": 4, "documents": 2, "windows": 3, "stride": 16, "context_length": 32,
                "truncated_documents": 1, "top1_accuracy": 0.5, "top5_accuracy": 5 / 6, "top1_correct": 3,
                "top5_correct": 5}
    summary = result.summary()
    assert set(summary) == set(expected)
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value, rel=1e-12), key
    assert result.samples() == [{"document": 0, "nll": 5.0, "tokens": 2, "bytes": 4, "words": 1},
                                {"document": 1, "nll": 7.0, "tokens": 4, "bytes": 6, "words": 3}]


def test_an_empty_corpus_has_no_figures_rather_than_a_division_by_zero():
    from lmeval_fixtures.engine.perplexity import PerplexityResult

    empty = PerplexityResult(nll=0.0, tokens=0, bytes=0, words=0, documents=0, windows=0, stride=8, context_length=8)
    assert all(math.isnan(getattr(empty, f)) for f in ("loss", "bits_per_byte", "top1_accuracy", "top5_accuracy"))
    assert all(math.isnan(getattr(empty, f)) for f in ("token_perplexity", "byte_perplexity", "word_perplexity"))


@pytest.mark.parametrize("stride", [0, -1, 9])
def test_a_stride_outside_the_context_is_refused(stride):
    with pytest.raises(ValueError, match=rf"^stride must be in \[1, 8\], got {stride}$"):
        plan_windows(20, 8, stride)


def test_window_layout_by_hand():
    """10 tokens, context 4: the first window predicts 4; then disjoint, each filled back to a full
    context (lm-evaluation-harness's last window); with stride 3, three scored per window."""
    from lmeval_fixtures.engine.perplexity import Window

    assert plan_windows(10, 4) == [Window(0, 0, 4, 4), Window(0, 4, 4, 4), Window(0, 6, 4, 2)]
    assert plan_windows(10, 4, 3, document=2) == [Window(2, 0, 4, 4), Window(2, 3, 4, 3), Window(2, 6, 4, 3)]
    assert plan_windows(3, 4) == [Window(0, 0, 3, 3)] and plan_windows(0, 4) == []


def test_stride_one_is_allowed_and_a_cap_one_past_a_document_takes_one_token_of_the_next(lm):
    assert [w.n_scored for w in plan_windows(6, 4, 1)] == [4, 1, 1]
    model, tokenizer = lm
    docs = [Document("süß café", "süß café"), Document("naïve", "naïve")]
    first = len(tokenizer.encode("süß café"))
    capped = score_documents(model, tokenizer, docs, MAX_LEN, max_eval_tokens=first + 1)
    assert (capped.tokens, capped.documents, capped.truncated_documents) == (first + 1, 2, 1)


def test_a_run_cache_never_hands_one_corpus_the_encodings_of_another(lm):
    from lmeval_fixtures.engine.projection import EngineCaches

    model, tokenizer = lm
    caches = EngineCaches()
    a = score_documents(model, tokenizer, [Document(TEXTS[0], TEXTS[0])], MAX_LEN, caches=caches)
    b = score_documents(model, tokenizer, [Document(TEXTS[2], TEXTS[2])], MAX_LEN, caches=caches)
    assert (a.tokens, b.tokens) == (len(tokenizer.encode(TEXTS[0])), len(tokenizer.encode(TEXTS[2])))


def test_a_cap_over_many_documents_reads_each_once_in_order(lm):
    """Encoded a few documents at a time until the cap: 30 documents, a cap one token short of all."""
    model, tokenizer = lm
    texts = [f"document {i} über {'x' * (i % 5)}" for i in range(30)]
    lengths = [len(tokenizer.encode(t)) for t in texts]
    docs = [Document(t, t) for t in texts]
    result = score_documents(model, tokenizer, docs, MAX_LEN, max_eval_tokens=sum(lengths) - 1)
    assert [d[1] for d in result.per_document] == lengths[:-1] + [lengths[-1] - 1]
    assert result.per_document[5][2:] == (len(texts[5].encode()), len(re.split(r"\s+", texts[5])))


@pytest.mark.parametrize("whole", [1, 3, 4, 5, 12, 13])
def test_a_cap_that_ends_exactly_on_a_document_scores_the_documents_before_it_whole(lm, whole):
    """A cap equal to the tokens of the first ``whole`` documents of 20: those documents, none cut, and
    nothing of the next. The documents are encoded 4, then 8, ... at a time until the cap, so a cap that
    ends on such a batch (4, 12) leaves documents never encoded: they are not scored, and not an error."""
    model, tokenizer = lm
    texts = [f"line {i} café {'y' * (i % 3)}" for i in range(20)]
    lengths = [len(tokenizer.encode(t)) for t in texts]
    docs = [Document(t, t) for t in texts]
    result = score_documents(model, tokenizer, docs, MAX_LEN, max_eval_tokens=sum(lengths[:whole]))
    assert (result.documents, result.truncated_documents, result.tokens) == (whole, 0, sum(lengths[:whole]))
    assert result.bytes == sum(len(t.encode()) for t in texts[:whole])


def test_running_figures_over_the_tokens_scored_so_far():
    """Worked by hand: 2 nats over 1 token at 4 bytes a token is 2 / (ln 2 * 4) bits per byte and a
    perplexity of e**2; 6 nats over 3 tokens at 2.5 bytes is 6 / (ln 2 * 7.5) and e**2; nothing yet, none."""
    from lmeval_fixtures.engine.perplexity import running_figures

    assert running_figures(0.0, 0, 4.0) == {}
    one = running_figures(2.0, 1, 4.0)
    assert one["bpb"] == pytest.approx(2.0 / (math.log(2) * 4.0), rel=1e-12)
    assert one["ppl"] == pytest.approx(math.exp(2.0), rel=1e-12)
    three = running_figures(6.0, 3, 2.5)
    assert (three["bpb"], three["ppl"]) == pytest.approx((6.0 / (math.log(2) * 7.5), math.exp(2.0)), rel=1e-12)


class CountingTokenizer:
    """The tokenizer, with the size of every ``encode_batch`` call kept."""

    def __init__(self, tokenizer) -> None:
        self._tokenizer, self.batches = tokenizer, []

    def encode_batch(self, texts):
        self.batches.append(len(texts))
        return self._tokenizer.encode_batch(texts)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


# (where the cap ends, the encode_batch sizes): documents are read 4, then 8, 16, ... at a time and
# no further than the batch in which the cap is reached (a capped run reads only what it scores)
CAP_READS = [("inside document 0", [4]), ("end of document 3", [4]), ("one token into document 4", [4, 8]),
             ("inside document 11", [4, 8]), ("end of document 11", [4, 8]), ("inside document 12", [4, 8, 16]),
             ("beyond the corpus", [4, 8, 16, 2])]


@pytest.mark.parametrize("where, batches", CAP_READS)
def test_a_cap_reads_documents_in_doubling_batches_only_as_far_as_it_needs(lm, where, batches):
    model, tokenizer = lm
    texts = [f"row {i} naïve {'z' * (i % 4)}" for i in range(30)]
    lengths = [len(tokenizer.encode(t)) for t in texts]
    cap = {"inside document 0": lengths[0] - 1, "end of document 3": sum(lengths[:4]),
           "one token into document 4": sum(lengths[:4]) + 1, "inside document 11": sum(lengths[:12]) - 1,
           "end of document 11": sum(lengths[:12]), "inside document 12": sum(lengths[:12]) + 1,
           "beyond the corpus": sum(lengths) + 50}[where]
    counting = CountingTokenizer(tokenizer)
    result = score_documents(model, counting, [Document(t, t) for t in texts], MAX_LEN, max_eval_tokens=cap)
    assert counting.batches == batches
    assert result.tokens == min(cap, sum(lengths))
    whole = max(i for i in range(31) if sum(lengths[:i]) <= cap)
    assert result.documents == min(30, whole + (sum(lengths[:whole]) < cap))
