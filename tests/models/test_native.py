"""The native checkpoint format (``models.native``): ``save_checkpoint`` round trips, and every kind of bad
native file refused with one line naming the file (and the field) and saying what to do: config fields
of the wrong type or out of range, unknown keys, non-float weights, shapes the config does not imply,
and pickles that weights-only loading refuses, never run."""

import argparse
import json
import math
import os
import pickle
import random

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lmeval_fixtures.api import reference_checkpoints
from lmeval_fixtures.core.errors import CheckpointError
from lmeval_fixtures.models.loading import load_checkpoint
from lmeval_fixtures.models.model import Transformer
from lmeval_fixtures.models.native import save_checkpoint, training_metadata
from lmeval_fixtures.models.tokenizer import TextTokenizer

from ..helpers import (
    FIX_JSON,
    FIX_PT,
    REFUSED_PICKLE,
    RunsCode,
    RunsCodeHere,
    edit_config,
    logits,
    make_tokenizer,
    one_line,
    tiny_config,
    write_native_checkpoint,
)


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
@pytest.mark.parametrize("tied", [True, False])
def test_save_checkpoint_round_trips_weights_metadata_and_tokenizer(tmp_path, fmt, tied):
    tokenizer = make_tokenizer()
    model = Transformer(tiny_config(tokenizer.get_vocab_size(), tie_embeddings=tied))
    model.init_weights(2)
    facts = {"train_loss": 4.25, "step": 30, "seed": 2}
    path = save_checkpoint(model, tmp_path / "out", TextTokenizer.from_json(tokenizer.to_str(), "t"),
                           name="saved", fmt=fmt, metadata=facts)
    assert path == tmp_path / "out" / f"saved.{fmt}"
    assert (tmp_path / "out" / "tokenizer.json").is_file()
    loaded = load_checkpoint(path)
    assert loaded.identity["training"] == facts
    assert loaded.config == model.config
    for (name, expected), got in zip(model.state_dict().items(), loaded.model.state_dict().values(), strict=True):
        assert torch.equal(got, expected), name
    assert (loaded.model.lm_head.weight is loaded.model.embed_tokens.weight) == tied


def test_saved_checkpoints_hold_a_tied_head_once_in_the_requested_dtype(tmp_path):
    model = Transformer(tiny_config(320))
    model.init_weights(0)
    path = save_checkpoint(model, tmp_path, metadata={"train_loss": "5.000000"}, dtype=torch.float16)
    with safe_open(str(path), framework="pt") as handle:
        assert "lm_head.weight" not in handle.keys()  # noqa: SIM118
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float16}  # noqa: SIM118
        assert handle.metadata() == {"train_loss": "5.000000"}
    assert training_metadata({"train_loss": "5.000000"}) == {"train_loss": 5.0}
    assert json.loads((tmp_path / "config.json").read_text()) == model.config.to_dict()
    assert not (tmp_path / "tokenizer.json").exists()  # none given, none written


def test_save_checkpoint_refuses_what_it_cannot_write(tmp_path):
    model = Transformer(tiny_config(320))
    with pytest.raises(ValueError, match="fmt must be"):
        save_checkpoint(model, tmp_path, fmt="bin")
    with pytest.raises(ValueError, match="'model'"):
        save_checkpoint(model, tmp_path, fmt="pt", metadata={"model": 1})


def test_fp16_storage_is_cast_to_the_requested_dtype(tmp_path):
    path = write_native_checkpoint(tmp_path / "c", fmt="pt")
    payload = torch.load(path, weights_only=True)
    payload["model"] = {k: v.half() for k, v in payload["model"].items()}
    torch.save(payload, path)
    assert load_checkpoint(path).model.embed_tokens.weight.dtype == torch.float32


def test_corrupt_safetensors(tmp_path):
    path = write_native_checkpoint(tmp_path / "c")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
        load_checkpoint(path)


def test_config_vocabulary_smaller_than_tokenizer(tmp_path):
    path = write_native_checkpoint(tmp_path / "c")
    config = json.loads((path.parent / "config.json").read_text())
    config["vocab_size"] = 100
    (path.parent / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config\.json: .*shape|vocab"):
        load_checkpoint(path)


def test_absurd_config_is_refused_before_allocation(tmp_path):
    path = write_native_checkpoint(tmp_path / "c", fmt="pt")
    payload = torch.load(path, weights_only=True)
    payload["config"].update(d_model=2**20, n_heads=2**10, n_layers=10**6)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"c\.pt|model\.pt"):
        load_checkpoint(path)


BAD_FIELDS = [
    ("tie_embeddings", "false", 'field tie_embeddings must be true or false, got "false" (a string)'),
    ("tie_embeddings", "true", 'field tie_embeddings must be true or false, got "true" (a string)'),
    ("tie_embeddings", 0, "field tie_embeddings must be true or false, got 0 (an integer)"),
    ("tie_embeddings", 1, "field tie_embeddings must be true or false, got 1 (an integer)"),
    ("tie_embeddings", None, "field tie_embeddings must be true or false, got null"),
    ("vocab_size", "320", 'field vocab_size must be an integer from 1 to 1,073,741,824, got "320" (a string)'),
    ("vocab_size", 320.0, "field vocab_size must be an integer from 1 to 1,073,741,824, got 320.0 "
                          "(a float, not an integer)"),
    ("d_model", True, "field d_model must be an integer from 1 to 1,048,576, got true (a boolean)"),
    ("n_layers", 2.5, "field n_layers must be an integer from 1 to 65,536, got 2.5 (a number with a fraction)"),
    ("n_layers", 0, "field n_layers must be an integer from 1 to 65,536, got 0 (an integer)"),
    ("n_heads", -2, "field n_heads must be an integer from 1 to 65,536, got -2 (an integer)"),
    ("n_heads", [2], "field n_heads must be an integer from 1 to 65,536, got [2] (a list)"),
    ("max_seq_len", 2**21, "field max_seq_len must be an integer from 1 to 1,048,576, got 2097152 (an integer)"),
    ("max_seq_len", "64", 'field max_seq_len must be an integer from 1 to 1,048,576, got "64" (a string)'),
    ("rope_theta", 0, "field rope_theta must be a finite number greater than 0, got 0 (an integer)"),
    ("rope_theta", "1e4", 'field rope_theta must be a finite number greater than 0, got "1e4" (a string)'),
    ("rope_theta", math.inf, "field rope_theta must be a finite number greater than 0, got Infinity "
                             "(not a finite number)"),
    ("norm_eps", -1e-5, "field norm_eps must be a finite number greater than 0, got -1e-05 (a number with a "
                        "fraction)"),
    ("norm_eps", math.nan, "field norm_eps must be a finite number greater than 0, got NaN (not a finite number)"),
    ("norm_eps", False, "field norm_eps must be a finite number greater than 0, got false (a boolean)"),
    ("glu_expansion", 0.0, "field glu_expansion must be a finite number greater than 0, got 0.0 "
                           "(a float, not an integer)"),
    ("glu_expansion", {"x": 1}, 'field glu_expansion must be a finite number greater than 0, got {"x": 1} '
                                "(an object)"),
    ("glu_expansion", 1e-6, "field glu_expansion 1e-06 times d_model 32 rounds to a feed-forward width of 0"),
    ("bos_token_id", 320, "field bos_token_id must be a token id from 0 to vocab_size - 1 = 319, got 320 "
                          "(an integer)"),
    ("eos_token_id", -1, "field eos_token_id must be a token id from 0 to vocab_size - 1 = 319, got -1 (an integer)"),
    ("bos_token_id", 1.0, "field bos_token_id must be a token id from 0 to vocab_size - 1 = 319, got 1.0 "
                          "(a float, not an integer)"),
    ("d_ff", "64", 'field d_ff "64" (a string) disagrees with round(glu_expansion * d_model) = 64'),
    ("d_ff", 63, "field d_ff 63 (an integer) disagrees with round(glu_expansion * d_model) = 64"),
    ("tie_embedding", False, "unknown field 'tie_embedding' (did you mean tie_embeddings?); "
                             "remove it or correct its name"),
    ("dropout", 0.1, "unknown field 'dropout' (known: bos_token_id, d_ff, d_model, eos_token_id, glu_expansion, "
                     "max_seq_len, n_heads, n_layers, norm_eps, rope_theta, tie_embeddings, vocab_size); "
                     "remove it or correct its name"),
    ("n_layers", ..., "config lacks n_layers (required: vocab_size, d_model, n_layers, n_heads)"),
]


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
@pytest.mark.parametrize("key, value, problem", BAD_FIELDS, ids=[f"{k}={v!r}" for k, v, _ in BAD_FIELDS])
def test_every_config_field_is_type_and_range_checked(tmp_path, fmt, key, value, problem):
    path = write_native_checkpoint(tmp_path / "c", fmt=fmt, tie_embeddings=False)
    holder = edit_config(path, **{key: value})
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    fix = FIX_JSON if fmt == "safetensors" else FIX_PT
    assert one_line(caught) == f"{holder}: {problem}; {fix}"


def test_a_string_false_no_longer_ties_an_untied_model(tmp_path):
    """The case that gave a wrong perplexity: "false" is truthy, the file's lm_head was dropped."""
    path = write_native_checkpoint(tmp_path / "c", tie_embeddings=False)
    untied = load_checkpoint(path)
    assert untied.model.lm_head.weight is not untied.model.embed_tokens.weight
    edit_config(path, tie_embeddings="false")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert one_line(caught) == (f"{path.parent / 'config.json'}: field tie_embeddings must be true or false, "
                                f'got "false" (a string); {FIX_JSON}')


def test_valid_configs_load_with_unchanged_numbers(tmp_path):
    """Whole numbers for the float fields and a derived d_ff are still accepted, and give the same model."""
    path = write_native_checkpoint(tmp_path / "c", rope_theta=5000.0, tie_embeddings=False)
    expected = logits(load_checkpoint(path))
    edit_config(path, rope_theta=5000, glu_expansion=2, norm_eps=1e-5, d_ff=64)
    again = load_checkpoint(path)
    assert again.config.rope_theta == 5000 and again.config.d_ff == 64
    assert torch.equal(logits(again), expected)
    for spec in reference_checkpoints():  # the shipped checkpoints still load
        assert load_checkpoint(spec).config.vocab_size == 4096


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.bool])
def test_weights_that_are_not_floating_point_are_refused(tmp_path, fmt, dtype):
    path = write_native_checkpoint(tmp_path / "c", fmt=fmt)
    key = "layers.1.mlp.up_proj.weight"
    if fmt == "pt":
        payload = torch.load(path, weights_only=True)
        payload["model"][key] = payload["model"][key].to(dtype)
        torch.save(payload, path)
    else:
        tensors = load_file(str(path))
        tensors[key] = tensors[key].to(dtype)
        save_file(tensors, str(path))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    name = str(dtype).removeprefix("torch.")
    assert one_line(caught) == (f"{path}: weight {key} has dtype {name}, not a floating-point type; "
                                "re-save the checkpoint with float weights")


class _Payload:
    """Unpickling this runs os.system: the attack a weights-only load must refuse."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"config": {}, "model": _Payload(marker)}, handle)
    torch.save({"config": {}, "model": _Payload(marker)}, tmp_path / "evil2.pt")
    for candidate in (path, tmp_path / "evil2.pt"):
        with pytest.raises(CheckpointError, match=r"evil2?\.pt: (refused|not a PyTorch checkpoint)"):
            load_checkpoint(candidate)
    assert not marker.exists()


class Plain:
    """An ordinary object: harmless, but not a tensor."""


@pytest.mark.parametrize("payload", [
    lambda marker: RunsCode(marker),
    lambda marker: Plain(),
    lambda marker: argparse.Namespace(weights=1),
    lambda marker: print,
], ids=["runs-code", "plain-object", "namespace", "builtin-function"])
def test_a_refused_pickle_gets_our_line_not_torchs(tmp_path, payload):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    state = write_native_checkpoint(tmp_path / "ok", fmt="pt")
    good = torch.load(state, weights_only=True)
    torch.save(good | {"extra": payload(marker)}, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert one_line(caught) == (f'{path}: {REFUSED_PICKLE}; re-save the weights with torch.save({{"config": config, '
                                '"model": model.state_dict()})')
    assert "weights_only=False" not in str(caught.value) and not marker.exists()


def test_bytes_that_are_no_torch_file_say_so(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(300)) + b"x" * 10)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert one_line(caught).startswith(f"{path}: not a PyTorch checkpoint (")
    assert "weights_only" not in str(caught.value).replace("weights-only", "")


def test_pickled_payload_is_not_run_even_as_plain_pickle(tmp_path):
    from lmeval_fixtures.core.errors import CheckpointError
    from lmeval_fixtures.models.loading import load_checkpoint

    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"config": {}, "model": RunsCodeHere()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")
