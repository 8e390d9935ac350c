"""The tokenizer wrapper (``models.tokenizer``): its fingerprint, an unreadable tokenizer.json, and a Hugging
Face tokenizer that adds a BOS used as lm-evaluation-harness uses it."""

import pytest

from lmeval_fixtures.core.errors import CheckpointError
from lmeval_fixtures.engine.perplexity import Document, score_documents
from lmeval_fixtures.engine.scoring import Request, score_requests
from lmeval_fixtures.models.loading import load_checkpoint
from lmeval_fixtures.models.tokenizer import TextTokenizer

from ..helpers import (
    CONTEXT,
    CONTEXTS,
    CONTINUATIONS,
    SAMPLE_TEXT,
    direct_loglikelihood,
    lm_eval_encode,
    make_tokenizer,
    reference_nll,
    write_hf_llama,
    write_native_checkpoint,
)


def test_unparseable_tokenizer(tmp_path):
    path = write_native_checkpoint(tmp_path / "c")
    (path.parent / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: not a valid tokenizer\.json"):
        load_checkpoint(path)


def test_tokenizer_fingerprint_follows_encoding_not_serialisation(tokenizer_obj):
    plain = TextTokenizer.from_json(tokenizer_obj.to_str(), "a")
    tokenizer_obj.enable_truncation(4)  # settings that never apply to our encode calls, and are switched off
    truncating = TextTokenizer.from_json(tokenizer_obj.to_str(), "b")
    assert truncating.sha256 == plain.sha256
    assert len(truncating.encode(SAMPLE_TEXT)) > 4
    smaller = TextTokenizer.from_json(make_tokenizer(vocab_size=300).to_str(), "c")
    assert smaller.sha256 != plain.sha256


def test_a_tokenizer_that_adds_bos_is_used_as_lm_eval_uses_it(tmp_path):
    """lm-eval 0.4.13's HFLM encodes with the tokenizer's special tokens (``tokenizer.encode(text)``)."""
    transformers = pytest.importorskip("transformers")
    folder, model = write_hf_llama(tmp_path / "bos-llama", adds_bos=True)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    assert hf_tokenizer.encode("The fox.")[0] == 0  # the template really adds it
    loaded = load_checkpoint(folder)
    assert loaded.tokenizer.add_special_tokens and loaded.identity["tokenizer_adds_special_tokens"]
    requests = [Request(c, k) for c in CONTEXTS for k in CONTINUATIONS]
    scores, _ = score_requests(loaded.model, loaded.tokenizer, requests, CONTEXT)
    for request, score in zip(requests, scores, strict=True):
        context, continuation = lm_eval_encode(hf_tokenizer, request.context, request.continuation)
        assert score.logprob == pytest.approx(direct_loglikelihood(model, context, continuation), abs=1e-4)
    text = SAMPLE_TEXT
    result = score_documents(loaded.model, loaded.tokenizer, [Document(text, text)], CONTEXT)
    expected = reference_nll(lambda ids: model(ids).logits, hf_tokenizer.encode(text), 0, CONTEXT, CONTEXT)
    assert result.nll == pytest.approx(expected, rel=1e-6)
    plain = load_checkpoint(write_hf_llama(tmp_path / "plain-llama")[0])
    assert not plain.tokenizer.add_special_tokens  # a template that adds nothing changes nothing
    assert plain.tokenizer.sha256 != loaded.tokenizer.sha256
