"""Checkpoint discovery and naming (``models.discovery``): names unique, stable and one path component; folders
of native and Hugging Face checkpoints; hub ids named without touching the cache; a native config.json with
Hugging Face markers is still native."""

import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmeval_fixtures.core.errors import CheckpointError
from lmeval_fixtures.models.discovery import (
    checkpoint_name,
    checkpoint_names,
    checkpoint_problem,
    discover_checkpoints,
    hub_model_of,
    is_hf_folder,
)
from lmeval_fixtures.models.hf_models import HubModel
from lmeval_fixtures.models.loading import load_checkpoint

from ..helpers import (
    MAIN,
    edit_config,
    logits,
    nll,
    one_line,
    snapshot_of,
    write_hf_folder,
    write_hf_llama,
    write_native_checkpoint,
)


def test_folder_discovery_names_generic_stems_by_folder(tmp_path):
    write_native_checkpoint(tmp_path / "sweep" / "emb25")
    write_native_checkpoint(tmp_path / "sweep" / "emb50")
    write_native_checkpoint(tmp_path / "sweep", name="loose", fmt="pt")
    names = [s.name for s in discover_checkpoints([tmp_path / "sweep"])]
    assert names == ["loose", "emb25", "emb50"]


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


def test_a_folder_of_native_and_hf_checkpoints_is_discovered(tmp_path):
    write_hf_llama(tmp_path / "sweep" / "llama-a")
    native = write_native_checkpoint(tmp_path / "sweep" / "native-b", seed=1)
    specs = discover_checkpoints([tmp_path / "sweep"])
    assert [(s.name, s.path) for s in specs] == [("llama-a", tmp_path / "sweep" / "llama-a"), ("native-b", native)]


def test_discovery_names_a_model_id_without_touching_the_cache(tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "nowhere"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", None)  # any call would fail
    specs = discover_checkpoints(["EleutherAI/pythia-14m", "runs/missing.safetensors"])
    assert [(s.name, s.hub_id) for s in specs] == [("pythia-14m", "EleutherAI/pythia-14m"), ("missing", None)]
    assert specs[0].path == Path("EleutherAI/pythia-14m")
    assert not (tmp_path / "nowhere").exists()


def test_model_ids_that_share_a_name_are_told_apart(tmp_path):
    local = tmp_path / "runs" / "pythia-14m.safetensors"
    hub = [HubModel("EleutherAI", "pythia-14m"), HubModel("other", "pythia-14m")]
    assert checkpoint_names(hub) == ["EleutherAI-pythia-14m", "other-pythia-14m"]
    steps = [HubModel("EleutherAI", "pythia-14m", "step1000"), HubModel("EleutherAI", "pythia-14m", "step2000")]
    assert checkpoint_names(steps) == ["pythia-14m-step1000", "pythia-14m-step2000"]
    assert checkpoint_names(steps[::-1]) == ["pythia-14m-step2000", "pythia-14m-step1000"]
    assert checkpoint_names([hub[0], local]) == ["EleutherAI-pythia-14m", "runs-pythia-14m"]
    commit = HubModel("EleutherAI", "pythia-14m", MAIN)
    assert checkpoint_names([commit, hub[0]]) == [f"pythia-14m-{MAIN[:12]}", "EleutherAI-pythia-14m"]
    named = discover_checkpoints(["acme/m@v1", "acme/m@v1", "acme/m@refs/pr/1"])  # the same id twice: once
    assert [s.name for s in named] == ["m-v1", "m-refs-pr-1"]


def test_an_existing_path_shaped_like_a_model_id_is_a_path(hub_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_hf_llama(tmp_path / "acme" / "tiny-llama", seed=2)
    [spec] = discover_checkpoints(["acme/tiny-llama"])
    assert spec.hub_id is None and spec.path == Path("acme/tiny-llama")
    loaded = load_checkpoint(spec)
    assert "hub_id" not in loaded.identity and loaded.path == Path("acme/tiny-llama")
    assert nll(loaded) != nll(load_checkpoint(snapshot_of(hub_cache, MAIN)))
    shutil.rmtree(tmp_path / "acme")
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "tiny-llama").symlink_to(tmp_path / "gone")  # a broken link is still a path
    with pytest.raises(CheckpointError, match=r"^acme/tiny-llama: no such file or folder$"):
        load_checkpoint("acme/tiny-llama")


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


@pytest.mark.parametrize("value, expected", [
    ("runs/step100", "runs/step100: no such file or folder (runs/ is a folder here, so this names a path in it)"),
    ("runs/step-100@v1", "runs/step-100@v1: no such file or folder (runs/ is a folder here, so this names a path "
                         "in it)"),
    ("runs/sub/step100", "runs/sub/step100: no such file or folder"),
    ("./acme/model", "./acme/model: no such file or folder"),
    ("/nonexistent/a/b", "/nonexistent/a/b: no such file or folder"),
    ("~nobody-here/x", "~nobody-here/x: no such file or folder"),
    ("missing.safetensors", "missing.safetensors: no such file or folder"),
    ("acme/model.safetensors", "acme/model.safetensors: no such file or folder"),
    ("step100", "step100: no such file or folder"),
])
def test_a_name_that_can_only_be_a_local_path_and_is_missing_is_refused(tmp_path, monkeypatch, value, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert checkpoint_problem(value) == expected
    assert hub_model_of(value) is None


@pytest.mark.parametrize("value", ["acme/model", "EleutherAI/pythia-14m@step1000", "acme/m@refs/pr/1"])
def test_the_hub_form_is_a_model_id_only_where_no_folder_of_its_owner_exists(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    assert checkpoint_problem(value) is None and hub_model_of(value) is not None
    (tmp_path / value.partition("/")[0]).mkdir()
    assert checkpoint_problem(value).startswith(f"{value}: no such file or folder (")
