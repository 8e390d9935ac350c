"""A Hugging Face causal LM behind the two-halves interface (``models.hf_adapter``), on a tiny random Llama:
perplexity and packed continuations equal direct scoring of the raw model; a model that changes its
logits after the head is scored whole (needs transformers)."""

import pytest
import torch

from lmeval_fixtures.engine.perplexity import Document, score_documents
from lmeval_fixtures.engine.scoring import Request, score_requests
from lmeval_fixtures.models.hf_adapter import CausalLMAdapter
from lmeval_fixtures.models.loading import load_checkpoint

from ..helpers import (
    CONTEXT,
    CONTEXTS,
    CONTINUATIONS,
    SAMPLE_TEXT,
    direct_loglikelihood,
    lm_eval_encode,
    reference_nll,
    write_hf_llama,
)

transformers = pytest.importorskip("transformers")


def test_perplexity_equals_lm_eval_windows_over_the_raw_model(hf_folder):
    folder, model = hf_folder
    loaded = load_checkpoint(folder)
    assert isinstance(loaded.model, CausalLMAdapter) and loaded.model.split
    text = SAMPLE_TEXT * 2
    result = score_documents(loaded.model, loaded.tokenizer, [Document(text, text)], CONTEXT, batch_tokens=50)
    tokens = loaded.tokenizer.encode(text)
    assert len(tokens) > 3 * CONTEXT  # several rolling windows
    expected = reference_nll(lambda ids: model(ids).logits, tokens, 0, CONTEXT, CONTEXT)
    assert result.nll == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("batch_tokens", [7, 100000])
def test_packed_multi_token_continuations_equal_direct_scoring(hf_folder, batch_tokens):
    folder, model = hf_folder
    loaded = load_checkpoint(folder)
    requests = [Request(c, k) for c in CONTEXTS for k in CONTINUATIONS]
    scores, stats = score_requests(loaded.model, loaded.tokenizer, requests, CONTEXT, batch_tokens=batch_tokens)
    assert stats.contexts < len(requests)  # continuations really were packed behind shared contexts
    for request, score in zip(requests, scores, strict=True):
        context, continuation = lm_eval_encode(loaded.tokenizer, request.context, request.continuation)
        assert score.logprob == pytest.approx(direct_loglikelihood(model, context, continuation), abs=1e-4)


class ScaledLlama(transformers.LlamaForCausalLM):
    """Does something after the head, as Gemma-2's soft-capping does: the split must not be used."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = out.logits * 2.0
        return out


def test_models_that_change_logits_after_the_head_are_scored_whole(tmp_path):
    _, model = write_hf_llama(tmp_path / "scaled", model_class=ScaledLlama)
    adapter = CausalLMAdapter(model)
    assert not adapter.split
    ids = torch.tensor([[0, 5, 9, 11]])
    with torch.no_grad():
        assert torch.equal(adapter(ids), model(ids).logits)
