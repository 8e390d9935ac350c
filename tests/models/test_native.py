"""Hostile checkpoints, by class: each class of bad input is refused with one line naming the file
(and the field) and saying what to do, and a bad checkpoint fails only its own items.

1. config fields of the wrong type or out of range, unknown keys, non-float weights;
2. checkpoints whose names collide;
3. FIFOs, devices and sockets where a file is expected;
4. pickles that weights-only loading refuses (native .pt, Hugging Face pytorch_model.bin);
5. a native config.json that carries Hugging Face markers (model_type, architectures);
6. export-hf into the source checkpoint's folder, or into a folder that is not empty.
"""

import argparse
import json
import math
import os
import random
import socket
import threading
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from lmeval_fixtures.api import reference_checkpoints
from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.core.errors import CheckpointError
from lmeval_fixtures.core.files import sha256_file
from lmeval_fixtures.models.discovery import checkpoint_name, checkpoint_names, discover_checkpoints, is_hf_folder
from lmeval_fixtures.models.loading import load_checkpoint
from lmeval_fixtures.models.model import ModelConfig

from .conftest import make_tokenizer, tiny_config, write_native_checkpoint
from .test_plugin import BENCHMARK, suite  # noqa: F401 (the fixture: benchmark and WikiText data)

FIX_JSON = "correct config.json"
FIX_PT = "re-save the checkpoint with a corrected config"
REFUSED = "refused: the pickle holds objects other than tensors (weights-only loading)"
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no os.mkfifo on this platform")


def one_line(exc_info: pytest.ExceptionInfo) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def edit_config(path: Path, **changes) -> Path:
    """Rewrite the config of the checkpoint at ``path`` (config.json beside it, or the .pt's own);
    a value of ``...`` deletes the key. Returns the file that holds the config."""
    def apply(config: dict) -> dict:
        for key, value in changes.items():
            if value is ...:
                config.pop(key, None)
            else:
                config[key] = value
        return config

    if path.suffix == ".pt":
        payload = torch.load(path, weights_only=True)
        payload["config"] = apply(payload["config"])
        torch.save(payload, path)
        return path
    config_file = path.parent / "config.json"
    config_file.write_text(json.dumps(apply(json.loads(config_file.read_text()))))
    return config_file


def logits(loaded, length: int = 12) -> torch.Tensor:
    ids = torch.arange(length)[None] % loaded.config.vocab_size
    with torch.no_grad():
        return loaded.model(ids)


def load_within(path: Path, seconds: float = 30.0):
    """load_checkpoint in a thread, so that a regression (opening a FIFO) fails instead of hanging."""
    outcome: dict = {}

    def run():
        try:
            outcome["loaded"] = load_checkpoint(path)
        except Exception as exc:  # handed to the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"loading {path} hangs"
    return outcome


# 1. Config fields: type and range, unknown keys, non-float weights ---------------------------

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


def test_model_config_checks_direct_construction_too():
    with pytest.raises(ValueError, match=r'^field tie_embeddings must be true or false, got "no" \(a string\)$'):
        tiny_config(320, tie_embeddings="no")
    with pytest.raises(ValueError, match=r"^field n_layers must be an integer"):
        ModelConfig(vocab_size=320, d_model=32, n_layers=2.0, n_heads=2)


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


# 2. Names: unique, stable, one path component -----------------------------------------------

ROOT = Path("/lmeval-names")


def test_colliding_stems_take_their_folders():
    paths = [ROOT / "d1/a.safetensors", ROOT / "d2/a.safetensors", ROOT / "d3/a-2.safetensors"]
    assert checkpoint_names(paths) == ["d1-a", "d2-a", "a-2"]
    assert checkpoint_names(paths[::-1]) == ["a-2", "d2-a", "d1-a"]  # the same name per path, in any order


@pytest.mark.parametrize("paths, names", [
    # a derived name never takes one that another checkpoint has on its own
    (["/d1/a.pt", "/x/d1-a.pt", "/d2/a.pt"], ["d1-a-2", "d1-a", "d2-a"]),
    (["r/d1/a.pt", "r/x/d1-a.pt", "r/d2/a.pt"], ["r-d1-a", "d1-a", "d2-a"]),
    # as many folders as it takes; generic stems are named by their folder, then its parents
    (["x/d/a.pt", "y/d/a.pt"], ["x-d-a", "y-d-a"]),
    (["s/emb/model.safetensors", "t/emb/model.safetensors"], ["s-emb", "t-emb"]),
    # files of one folder that share a stem: their format; the same path twice: -2
    (["d/a.pt", "d/a.safetensors", "e/x/a.pt"], ["d-a-pt", "d-a-safetensors", "x-a"]),
    (["d/a.pt", "d/a.pt"], ["a", "a-2"]),
    # report folders on case-insensitive file systems
    (["d1/Run.pt", "d2/run.pt"], ["d1-Run", "d2-run"]),
    # unique stems and the reference layout never change
    (["u/one.pt", "v/two.safetensors"], ["one", "two"]),
    (["ref/ref-e25/model.safetensors", "ref/ref-e35/model.safetensors"], ["ref-e25", "ref-e35"]),
])
def test_name_rules(paths, names):
    absolute = [ROOT / p for p in paths]
    assert checkpoint_names(absolute) == names
    assert sorted(checkpoint_names(absolute[::-1])) == sorted(names)


def test_names_are_one_path_component(tmp_path, monkeypatch):
    (tmp_path / "top" / "inner").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "top" / "inner")
    assert checkpoint_name(Path(".")) == "inner"
    assert checkpoint_name(Path("..")) == "top"
    assert checkpoint_name(Path("/")) == "root"
    assert checkpoint_name(Path("/model.pt")) == "model"
    assert checkpoint_names([Path("."), Path("../inner")]) == ["inner", "inner-2"]  # one folder, twice


def test_reference_names_do_not_change():
    assert [spec.name for spec in reference_checkpoints()] == ["ref-e25", "ref-e35", "ref-e50"]


def test_folder_discovery_goes_through_the_same_rule(tmp_path):
    for folder in ("sweep/d1", "sweep/d2"):
        write_native_checkpoint(tmp_path / folder, name="a")
    write_native_checkpoint(tmp_path / "sweep" / "d3", name="a-2")
    write_native_checkpoint(tmp_path / "other" / "d1", name="a")
    specs = discover_checkpoints([tmp_path / "sweep", tmp_path / "other"])
    names = {spec.name: spec.path.relative_to(tmp_path).as_posix() for spec in specs}
    assert names == {"sweep-d1-a": "sweep/d1/a.safetensors", "d2-a": "sweep/d2/a.safetensors",
                     "a-2": "sweep/d3/a-2.safetensors", "other-d1-a": "other/d1/a.safetensors"}


FOLDER = st.sampled_from(["d1", "d2", "D1", "a", "model", "x-y", "runs"])
STEM = st.sampled_from(["a", "A", "a-2", "d1-a", "model", "weights", "b", "x-y-a"])
PATHS = st.lists(st.tuples(st.lists(FOLDER, max_size=3), STEM, st.sampled_from([".pt", ".safetensors"])),
                 min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(PATHS, st.randoms(use_true_random=False))
def test_names_are_unique_stable_and_valid_for_any_paths(specs, shuffler):
    paths = [ROOT.joinpath(*folders, stem + suffix) for folders, stem, suffix in specs]
    names = checkpoint_names(paths)
    assert len({name.casefold() for name in names}) == len(names)
    assert all(name and "/" not in name and name not in (".", "..") for name in names)
    order = list(range(len(paths)))
    shuffler.shuffle(order)
    shuffled = checkpoint_names([paths[i] for i in order])
    by_path = {}
    for i, name in zip(order, shuffled, strict=True):
        by_path.setdefault(paths[i], set()).add(name)
    for path, name in zip(paths, names, strict=True):
        if paths.count(path) == 1:
            assert by_path[path] == {name}  # order-independent (a path given twice is one path)
    alone = [checkpoint_name(p) for p in paths]
    for own, name in zip(alone, names, strict=True):
        if [a.casefold() for a in alone].count(own.casefold()) == 1:
            assert name == own  # a name no other checkpoint shares never changes


def records(root: Path, run_id: str) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text())
            for path in sorted((root / "reports" / run_id).glob("*/metrics.json"))}




def test_colliding_names_each_keep_their_own_report(suite):
    tokenizer = make_tokenizer()
    paths = {"d1-a": write_native_checkpoint(suite.path / "d1", name="a", seed=1, tokenizer=tokenizer),
             "d2-a": write_native_checkpoint(suite.path / "d2", name="a", seed=2, tokenizer=tokenizer),
             "a-2": write_native_checkpoint(suite.path / "d3", name="a-2", seed=3, tokenizer=tokenizer)}
    args = [arg for path in paths.values() for arg in ("--checkpoint", str(path))]
    result = suite.runpytest(*args, "--data-dir", "data", "--run-id", "names", "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*test_perplexity?d1-a-validation?*", "*test_perplexity?a-2-test?*"])
    found = records(suite.path, "names")
    assert sorted(found) == sorted(paths)
    for name, path in paths.items():
        assert found[name]["checkpoint"]["path"] == str(path)
        assert found[name]["val_perplexity"] is not None and found[name]["test_perplexity"] is not None
    assert len({record["val_perplexity"] for record in found.values()}) == 3  # three models, three figures


@needs_fifo
def test_bad_checkpoints_among_good_ones_fail_alone(suite):
    """A wrong-typed config, an unknown key, integer weights and a FIFO, beside good checkpoints
    (one with Hugging Face markers): every good one is reported with figures, each bad one
    fails with its line."""
    tokenizer = make_tokenizer()
    good = {"good": write_native_checkpoint(suite.path / "good", name="good", seed=1, tokenizer=tokenizer),
            "marked": write_native_checkpoint(suite.path / "marked", name="marked", seed=2, tokenizer=tokenizer)}
    edit_config(good["marked"], model_type="lmeval-native", architectures=["Transformer"])
    bad = {}
    path = write_native_checkpoint(suite.path / "tie", name="tie", tie_embeddings=False)
    holder = edit_config(path, tie_embeddings="false")
    bad["tie"] = (path, f'{holder}: field tie_embeddings must be true or false, got "false" (a string); {FIX_JSON}')
    path = write_native_checkpoint(suite.path / "typo", name="typo", fmt="pt")
    edit_config(path, n_layer=2)
    bad["typo"] = (path, f"{path}: unknown field 'n_layer' (did you mean n_layers?); remove it or correct its "
                         f"name; {FIX_PT}")
    path = write_native_checkpoint(suite.path / "ints", name="ints", fmt="pt")
    payload = torch.load(path, weights_only=True)
    payload["model"]["norm.weight"] = payload["model"]["norm.weight"].long()
    torch.save(payload, path)
    bad["ints"] = (path, f"{path}: weight norm.weight has dtype int64, not a floating-point type; "
                         "re-save the checkpoint with float weights")
    path = suite.path / "pipe.safetensors"
    os.mkfifo(path)
    bad["pipe"] = (path, f"{path}: not a regular file (a named pipe (FIFO)); copy its content to a regular file "
                         "and pass that")
    every = [*good.values(), *(p for p, _ in bad.values())]
    args = [arg for path in every for arg in ("--checkpoint", str(path))]
    result = suite.runpytest(*args, "--data-dir", "data", "--run-id", "mixed")
    result.assert_outcomes(passed=2 * len(good), errors=2 * len(bad))
    found = records(suite.path, "mixed")
    assert sorted(found) == sorted([*good, *bad])
    for name in good:
        assert found[name]["val_perplexity"] is not None and not found[name].get("errors"), name
    for name, (_, message) in bad.items():
        assert found[name]["errors"] == [message], name
        result.stdout.fnmatch_lines([f"*{message}*"])


# 3. FIFOs, devices and sockets --------------------------------------------------------------

@needs_fifo
@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_a_fifo_checkpoint_is_refused_before_it_is_opened(tmp_path, fmt):
    path = tmp_path / f"pipe.{fmt}"
    os.mkfifo(path)
    outcome = load_within(path)
    assert str(outcome["error"]) == (f"{path}: not a regular file (a named pipe (FIFO)); copy its content to a "
                                     "regular file and pass that")
    assert [spec.path for spec in discover_checkpoints([tmp_path])] == [path]  # found, so it fails with its line


@needs_fifo
@pytest.mark.parametrize("beside", ["config.json", "tokenizer.json"])
def test_a_fifo_beside_the_weights_is_refused(tmp_path, beside):
    path = write_native_checkpoint(tmp_path / "c")
    (path.parent / beside).unlink()
    os.mkfifo(path.parent / beside)
    outcome = load_within(path)
    assert str(outcome["error"]).startswith(f"{path.parent / beside}: not a regular file (a named pipe (FIFO));")


def test_a_device_and_a_socket_are_refused(tmp_path, monkeypatch):
    if os.path.exists("/dev/null"):
        assert str(load_within(Path("/dev/null"))["error"]).startswith(
            "/dev/null: not a regular file (a character device);")
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no Unix sockets on this platform")
    monkeypatch.chdir(tmp_path)  # socket paths are short
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("sock.pt")
        assert str(load_within(Path("sock.pt"))["error"]) == ("sock.pt: not a regular file (a socket); copy its "
                                                              "content to a regular file and pass that")


@needs_fifo
def test_a_fifo_in_a_hugging_face_folder_is_refused(tmp_path):
    folder = write_hf_folder(tmp_path / "hf")
    (folder / "tokenizer.json").unlink()
    os.mkfifo(folder / "tokenizer.json")
    assert str(load_within(folder)["error"]).startswith(f"{folder / 'tokenizer.json'}: not a regular file")


# 4. Pickles that weights-only loading refuses -----------------------------------------------

class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


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
    assert one_line(caught) == (f'{path}: {REFUSED}; re-save the weights with torch.save({{"config": config, '
                                '"model": model.state_dict()})')
    assert "weights_only=False" not in str(caught.value) and not marker.exists()


def test_bytes_that_are_no_torch_file_say_so(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(300)) + b"x" * 10)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert one_line(caught).startswith(f"{path}: not a PyTorch checkpoint (")
    assert "weights_only" not in str(caught.value).replace("weights-only", "")


def write_hf_folder(folder: Path, bin_payload=None) -> Path:
    """A tiny random Llama folder; with ``bin_payload`` its weights are a pytorch_model.bin holding that."""
    transformers = pytest.importorskip("transformers")
    tokenizer = make_tokenizer()
    config = transformers.LlamaConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                      max_position_embeddings=32, bos_token_id=0, eos_token_id=0)
    transformers.LlamaForCausalLM(config).save_pretrained(str(folder))
    special = tokenizer.id_to_token(0)
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=special,
                                         eos_token=special).save_pretrained(str(folder))
    if bin_payload is not None:
        (folder / "model.safetensors").unlink()
        torch.save(bin_payload, folder / "pytorch_model.bin")
    return folder


def test_a_hugging_face_bin_that_is_refused_gets_our_line(tmp_path):
    marker = tmp_path / "pwned"
    folder = write_hf_folder(tmp_path / "hf", bin_payload={"model.embed_tokens.weight": RunsCode(marker)})
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(folder)
    assert one_line(caught) == (f"{folder / 'pytorch_model.bin'}: {REFUSED}; re-save the model with "
                                "save_pretrained(folder), which writes safetensors")
    assert not marker.exists()


# 5. A native config.json with Hugging Face markers ------------------------------------------

def test_a_native_config_with_hf_markers_is_native_whichever_path_is_passed(tmp_path):
    path = write_native_checkpoint(tmp_path / "native", seed=3)
    expected = logits(load_checkpoint(path))
    edit_config(path, model_type="lmeval-native", architectures=["Transformer"])
    assert not is_hf_folder(path.parent)
    [spec] = discover_checkpoints([path.parent])
    assert (spec.name, spec.path) == ("native", path)
    assert torch.equal(logits(load_checkpoint(spec)), expected)
    assert torch.equal(logits(load_checkpoint(path)), expected)
    with pytest.raises(CheckpointError) as caught:  # load_checkpoint takes a file: it says which
        load_checkpoint(path.parent)
    assert one_line(caught) == (f"{path.parent}: a folder of native checkpoints (model.safetensors); "
                                "pass one of its files")


def test_a_mixed_config_tells_the_same_story_from_both_sides(tmp_path):
    """Markers, every native field, and a key no native config has: a Hugging Face folder. The
    file's message and the folder's both name the key; removing it makes the file load."""
    pytest.importorskip("transformers")
    path = write_native_checkpoint(tmp_path / "mixed")
    holder = edit_config(path, model_type="lmeval-native", hidden_act="silu")
    assert is_hf_folder(path.parent)
    with pytest.raises(CheckpointError) as from_file:
        load_checkpoint(path)
    assert one_line(from_file) == (
        f"{path}: {path.parent} is a Hugging Face folder (its config.json has model_type or architectures, and "
        "'hidden_act', which no native config has); pass the folder, or remove those keys to load this file as "
        "a native checkpoint")
    with pytest.raises(CheckpointError) as from_folder:
        load_checkpoint(path.parent)
    message = one_line(from_folder)
    assert message.startswith(f"{path.parent}: ")  # whatever transformers could not load first
    assert message.endswith("; config.json also has every native field: remove 'hidden_act' to load "
                            "model.safetensors as a native checkpoint")
    edit_config(holder.parent / "model.safetensors", hidden_act=...)
    assert load_checkpoint(path).config is not None and not is_hf_folder(path.parent)


def test_a_hugging_face_config_is_still_a_hugging_face_folder(tmp_path):
    folder = write_hf_folder(tmp_path / "llama")
    assert is_hf_folder(folder)
    assert [spec.path for spec in discover_checkpoints([folder])] == [folder]


# 6. export-hf never overwrites the source, nor a non-empty folder without --force ------------

@pytest.fixture
def source(tmp_path):
    pytest.importorskip("transformers")
    path = write_native_checkpoint(tmp_path / "X", name="model", seed=2)
    return path, {p.name: sha256_file(p) for p in path.parent.iterdir()}


@pytest.mark.parametrize("where", ["same", "parent", "symlink"])
def test_export_into_the_source_folder_is_refused_and_the_source_kept(tmp_path, source, capsys, where):
    path, before = source
    out = {"same": path.parent, "parent": tmp_path, "symlink": tmp_path / "link"}[where]
    if where == "symlink":
        out.symlink_to(path.parent, target_is_directory=True)
    assert cli(["export-hf", str(path), str(out), "--force"]) == 2
    line = capsys.readouterr().err.strip()
    assert line == (f"lmeval-fixtures export-hf: {out}: holds the source checkpoint {path.resolve()}, which the "
                    "export would overwrite; pass another folder")
    assert {p.name: sha256_file(p) for p in path.parent.iterdir()} == before


def test_export_into_a_non_empty_folder_needs_force(tmp_path, source, capsys):
    path, _ = source
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert cli(["export-hf", str(path), str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"lmeval-fixtures export-hf: {out}: not empty (holds notes.txt); pass a new or empty folder, "
        "or --force (force=True) to write into it")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert cli(["export-hf", str(path), str(out), "--force"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(["export-hf", str(path), str(empty)]) == 0  # an empty folder needs no --force


def test_export_onto_a_file_is_refused(tmp_path, source, capsys):
    path, _ = source
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert cli(["export-hf", str(path), str(target), "--force"]) == 2
    assert capsys.readouterr().err.strip() == (f"lmeval-fixtures export-hf: {target}: exists and is not a folder; "
                                               "pass a new or empty folder")
