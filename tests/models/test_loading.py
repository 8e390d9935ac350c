"""Loading native checkpoints, their identity, and every kind of bad input the issue names."""

import json
import os
import pickle

import pytest
import torch
from safetensors import safe_open

from lmeval_fixtures.core.errors import CheckpointError
from lmeval_fixtures.models.discovery import discover_checkpoints
from lmeval_fixtures.models.loading import CheckpointCache, load_checkpoint
from lmeval_fixtures.models.model import Transformer
from lmeval_fixtures.models.native import save_checkpoint, training_metadata
from lmeval_fixtures.models.tokenizer import TextTokenizer

from .conftest import SAMPLE_TEXT, make_tokenizer, tiny_config, write_native_checkpoint


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_loads_native_formats_with_identity(tmp_path, fmt):
    path = write_native_checkpoint(tmp_path / "run1", name="small", seed=4, fmt=fmt)
    loaded = load_checkpoint(path)
    assert loaded.name == "small"
    assert loaded.identity["sha256"] and len(loaded.identity["tokenizer_sha256"]) == 64
    assert loaded.identity["training"]["seed"] == 4
    assert loaded.config.total_params == sum(p.numel() for p in loaded.model.parameters())


def test_load_checkpoint_loads_anew_and_the_cache_once_per_key(tmp_path):
    path = write_native_checkpoint(tmp_path / "run1", seed=4)
    assert load_checkpoint(path) is not load_checkpoint(path)
    cache = CheckpointCache()
    first = cache.load(path)
    assert cache.load(tmp_path / "run1" / ".." / "run1" / path.name) is first  # the resolved path is the key
    assert cache.load(path, dtype="bfloat16") is not first
    cache.release(path)
    assert cache.load(path) is not first
    cache.release(path, dtype="float16")  # never loaded: nothing to do
    second = cache.load(path)
    cache.clear()
    assert cache.load(path) is not second


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


def test_folder_discovery_names_generic_stems_by_folder(tmp_path):
    write_native_checkpoint(tmp_path / "sweep" / "emb25")
    write_native_checkpoint(tmp_path / "sweep" / "emb50")
    write_native_checkpoint(tmp_path / "sweep", name="loose", fmt="pt")
    names = [s.name for s in discover_checkpoints([tmp_path / "sweep"])]
    assert names == ["loose", "emb25", "emb50"]


def test_nonexistent_path(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing\.pt: no such file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("just some text\n")
    with pytest.raises(CheckpointError, match=r"notes\.pt: not a PyTorch checkpoint"):
        load_checkpoint(bad)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(CheckpointError, match=r"notes\.txt: not a checkpoint"):
        load_checkpoint(other)


def test_corrupt_safetensors(tmp_path):
    path = write_native_checkpoint(tmp_path / "c")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
        load_checkpoint(path)


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


def test_config_vocabulary_smaller_than_tokenizer(tmp_path):
    path = write_native_checkpoint(tmp_path / "c")
    config = json.loads((path.parent / "config.json").read_text())
    config["vocab_size"] = 100
    (path.parent / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config\.json: .*shape|vocab"):
        load_checkpoint(path)


def test_vocabulary_mismatch_with_matching_weights(tmp_path):
    from .conftest import make_tokenizer

    path = write_native_checkpoint(tmp_path / "c", tokenizer=make_tokenizer(320))
    make_tokenizer(400).save(str(path.parent / "tokenizer.json"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: config vocab_size 320 is smaller than the "
                                              r"tokenizer's 400 tokens"):
        load_checkpoint(path)


def test_absurd_config_is_refused_before_allocation(tmp_path):
    path = write_native_checkpoint(tmp_path / "c", fmt="pt")
    payload = torch.load(path, weights_only=True)
    payload["config"].update(d_model=2**20, n_heads=2**10, n_layers=10**6)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"c\.pt|model\.pt"):
        load_checkpoint(path)


def test_unparseable_tokenizer(tmp_path):
    path = write_native_checkpoint(tmp_path / "c")
    (path.parent / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: not a valid tokenizer\.json"):
        load_checkpoint(path)


def test_nan_weights_are_refused(tmp_path):
    path = write_native_checkpoint(tmp_path / "c", fmt="pt")
    payload = torch.load(path, weights_only=True)
    payload["model"]["norm.weight"][0] = float("nan")
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="NaN or inf"):
        load_checkpoint(path)


def test_tokenizer_fingerprint_follows_encoding_not_serialisation(tokenizer_obj):
    plain = TextTokenizer.from_json(tokenizer_obj.to_str(), "a")
    tokenizer_obj.enable_truncation(4)  # settings that never apply to our encode calls, and are switched off
    truncating = TextTokenizer.from_json(tokenizer_obj.to_str(), "b")
    assert truncating.sha256 == plain.sha256
    assert len(truncating.encode(SAMPLE_TEXT)) > 4
    smaller = TextTokenizer.from_json(make_tokenizer(vocab_size=300).to_str(), "c")
    assert smaller.sha256 != plain.sha256
