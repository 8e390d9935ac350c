"""Hugging Face folders as checkpoints, on a tiny random Llama built here (needs transformers)."""

import json
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import processors

from lmeval_fixtures.api import evaluate_smallbench
from lmeval_fixtures.core.errors import CheckpointError
from lmeval_fixtures.core.schema import validate_record
from lmeval_fixtures.engine.perplexity import Document, score_documents
from lmeval_fixtures.engine.scoring import Request, score_requests
from lmeval_fixtures.models.discovery import discover_checkpoints
from lmeval_fixtures.models.hf_adapter import CausalLMAdapter
from lmeval_fixtures.models.hf_export import export_hf
from lmeval_fixtures.models.loading import load_checkpoint

from .conftest import SAMPLE_TEXT, make_tokenizer, write_native_checkpoint, write_wikitext
from .test_perplexity import reference_nll
from .test_scoring import CONTEXTS, CONTINUATIONS

transformers = pytest.importorskip("transformers")

D_MODEL, D_FF, LAYERS, HEADS, CONTEXT = 32, 80, 2, 4, 24


def write_hf_llama(folder, tied=True, seed=0, model_class=None, adds_bos=False):
    """A random LlamaForCausalLM with our test tokenizer, saved as a Hugging Face folder;
    ``adds_bos``: the tokenizer puts its BOS in front of every encoding, as Llama's does."""
    tokenizer = make_tokenizer()
    if adds_bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{tokenizer.id_to_token(0)} $A", special_tokens=[(tokenizer.id_to_token(0), 0)])
    config = transformers.LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=D_MODEL, intermediate_size=D_FF,
        num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
        max_position_embeddings=CONTEXT, tie_word_embeddings=tied, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(seed)
    model = (model_class or transformers.LlamaForCausalLM)(config).eval()
    model.save_pretrained(str(folder))
    special = tokenizer.id_to_token(0)
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=special,
                                         eos_token=special).save_pretrained(str(folder))
    return folder, model


@pytest.fixture
def hf_folder(tmp_path):
    return write_hf_llama(tmp_path / "tiny-llama")


def direct_loglikelihood(model, context, continuation):
    """Context and continuation in one sequence, straight through ``model(ids).logits``, float64."""
    ids = torch.tensor([(context + continuation)[-(CONTEXT + 1):][:-1]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)[-len(continuation):]
    return logprobs.gather(1, torch.tensor(continuation)[:, None]).sum().item()


def lm_eval_encode(tokenizer, context, continuation):
    """lm-evaluation-harness's ``_encode_pair``, written out: trailing whitespace moves onto the
    continuation, which is what the whole string encodes to after the context's tokens.
    ``tokenizer.encode`` stands for HFLM's ``tok_encode``."""
    if not context:
        return [0], tokenizer.encode(continuation)
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole, head = tokenizer.encode(context + continuation), tokenizer.encode(context)
    return head, whole[len(head):]


def test_a_tokenizer_that_adds_bos_is_used_as_lm_eval_uses_it(tmp_path):
    """lm-eval 0.4.13's HFLM encodes with the tokenizer's special tokens (``tokenizer.encode(text)``)."""
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


def config_param_count(tied):
    """Llama's parameter arithmetic, written out independently of any loaded tensor."""
    vocab = make_tokenizer().get_vocab_size()
    per_layer = 4 * D_MODEL * D_MODEL + 3 * D_MODEL * D_FF + 2 * D_MODEL
    embedding = vocab * D_MODEL * (1 if tied else 2)
    return embedding, embedding + LAYERS * per_layer + D_MODEL


@pytest.mark.parametrize("tied", [True, False])
def test_allocation_follows_the_config_arithmetic(tmp_path, tied):
    folder, _ = write_hf_llama(tmp_path / "m", tied=tied)
    loaded = load_checkpoint(folder)
    embedding, total = config_param_count(tied)
    shape = loaded.allocation
    assert (shape.total_params, shape.embedding_params) == (total, embedding)
    assert (shape.d_model, shape.d_ff, shape.n_layers, shape.n_heads) == (D_MODEL, D_FF, LAYERS, HEADS)
    assert shape.glu_expansion == pytest.approx(D_FF / D_MODEL)
    assert shape.max_seq_len == CONTEXT
    assert loaded.identity["format"] == "hf" and loaded.identity["config"]["model_type"] == "llama"
    assert loaded.config is None


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


def test_library_takes_an_in_memory_model_and_tokenizer(hf_folder):
    folder, model = hf_folder
    rows = [{"sentence1": "The fox jumps.", "sentence2": "A fox is jumping over the dog.", "label": 0},
            {"sentence1": "Robert Boulter is an actor.", "sentence2": "He is a lobster.", "label": 1}]
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    direct = evaluate_smallbench(model, tokenizer, "rte", rows, CONTEXT, prompt_set="lm-eval")
    loaded = load_checkpoint(folder)
    suite = evaluate_smallbench(loaded.model, loaded.tokenizer, "rte", rows, CONTEXT, prompt_set="lm-eval")
    assert [r.loglikelihoods for r in direct.rows] == [r.loglikelihoods for r in suite.rows]
    for row in direct.rows:
        for choice, value in zip(direct.choices, row.loglikelihoods, strict=True):
            context, continuation = lm_eval_encode(loaded.tokenizer, row.context, " " + choice)
            assert value == pytest.approx(direct_loglikelihood(model, context, continuation), abs=1e-4)


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


def test_a_folder_of_native_and_hf_checkpoints_is_discovered(tmp_path):
    write_hf_llama(tmp_path / "sweep" / "llama-a")
    native = write_native_checkpoint(tmp_path / "sweep" / "native-b", seed=1)
    specs = discover_checkpoints([tmp_path / "sweep"])
    assert [(s.name, s.path) for s in specs] == [("llama-a", tmp_path / "sweep" / "llama-a"), ("native-b", native)]


def test_without_transformers_the_message_says_what_to_install(hf_folder, monkeypatch):
    folder, _ = hf_folder
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(CheckpointError, match=r"tiny-llama: a Hugging Face folder needs transformers: "
                                              r"pip install 'lmeval-fixtures\[hf\]'"):
        load_checkpoint(folder)


def test_bad_hf_folders_are_one_line_errors(hf_folder):
    folder, _ = hf_folder
    with pytest.raises(CheckpointError, match="part of a Hugging Face folder; pass the folder"):
        load_checkpoint(folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="already a Hugging Face folder"):
        export_hf(folder, folder.parent / "again")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(folder)
    assert str(caught.value).startswith(f"{folder}: cannot load as a Hugging Face causal LM (")
    assert "\n" not in str(caught.value)


def test_native_checkpoint_and_its_export_give_the_same_record(pytester, offline):
    """The same items and the same record for a native checkpoint and its Hugging Face export."""
    pytester.makepyfile(test_perplexity=(Path(__file__).parents[1] / "benchmarks" / "test_perplexity.py").read_text())
    write_wikitext(pytester.path / "data")
    native = write_native_checkpoint(pytester.path / "native", name="twin", seed=4, max_seq_len=32)
    export_hf(native, pytester.path / "twin-hf")
    result = pytester.runpytest("--checkpoint", str(native), "--checkpoint", str(pytester.path / "twin-hf"),
                                "--data-dir", "data", "--run-id", "r")
    result.assert_outcomes(passed=4)
    records = {}
    for name in ("twin", "twin-hf"):
        records[name] = json.loads((pytester.path / "reports" / "r" / name / "metrics.json").read_text())
        validate_record(records[name])
    a, b = records["twin"], records["twin-hf"]
    assert b["checkpoint"]["format"] == "hf"
    # the same tokenizer, re-serialised by transformers: still comparable by token perplexity
    assert a["checkpoint"]["tokenizer_sha256"] == b["checkpoint"]["tokenizer_sha256"]
    assert "val ppl" in (pytester.path / "reports" / "r" / "comparison.md").read_text()
    for key in ("total_params", "embedding_params", "d_model", "d_ff", "n_layers", "n_heads", "vocab_size"):
        assert a[key] == b[key], key
    for key in ("val_loss", "val_bits_per_byte", "test_word_perplexity"):
        assert b[key] == pytest.approx(a[key], rel=1e-6), key
