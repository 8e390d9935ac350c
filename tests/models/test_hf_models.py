"""Hugging Face folders and hub model ids as checkpoints (``models.hf_models``; needs transformers and
huggingface_hub). Hub tests lay out a Hugging Face cache of their own (``hub_cache``) with
``HF_HUB_OFFLINE=1``, or stand in for ``snapshot_download``: nothing is requested from the network."""

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from lmeval_fixtures.core.errors import CheckpointError
from lmeval_fixtures.core.files import sha256_file
from lmeval_fixtures.models.hf_export import export_hf
from lmeval_fixtures.models.hf_models import HubModel, hub_snapshot, parse_hub_id
from lmeval_fixtures.models.loading import load_checkpoint

from ..helpers import (
    CONTEXT,
    D_FF,
    D_MODEL,
    HEADS,
    LAYERS,
    MAIN,
    REFUSED_PICKLE,
    STEP1,
    RunsCode,
    load_within,
    make_tokenizer,
    needs_fifo,
    nll,
    one_line,
    snapshot_of,
    write_hf_folder,
    write_hf_llama,
)

huggingface_hub = pytest.importorskip("huggingface_hub")


transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize(("value", "expected"), [
    ("EleutherAI/pythia-14m", HubModel("EleutherAI", "pythia-14m")),
    ("EleutherAI/pythia-1.4b@step1000", HubModel("EleutherAI", "pythia-1.4b", "step1000")),
    ("acme/m@refs/pr/1", HubModel("acme", "m", "refs/pr/1")),
    ("runs/a.safetensors", None), ("runs/a.pt", None), ("d/config.json", None),  # mistyped files stay files
    ("a/b/c", None), ("/abs/b", None), ("./a/b", None), ("~/b", None), ("plain", None),
    ("a--b/c", None), ("a/b..c", None), ("a/b.git", None), ("a/b@", None), ("a b/c", None),
])
def test_what_has_the_shape_of_a_model_id(value, expected):
    assert parse_hub_id(value) == expected


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


@needs_fifo
def test_a_fifo_in_a_hugging_face_folder_is_refused(tmp_path):
    folder = write_hf_folder(tmp_path / "hf")
    (folder / "tokenizer.json").unlink()
    os.mkfifo(folder / "tokenizer.json")
    assert str(load_within(folder)["error"]).startswith(f"{folder / 'tokenizer.json'}: not a regular file")


def test_a_hugging_face_bin_that_is_refused_gets_our_line(tmp_path):
    marker = tmp_path / "pwned"
    folder = write_hf_folder(tmp_path / "hf", bin_payload={"model.embed_tokens.weight": RunsCode(marker)})
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(folder)
    assert one_line(caught) == (f"{folder / 'pytorch_model.bin'}: {REFUSED_PICKLE}; re-save the model with "
                                "save_pretrained(folder), which writes safetensors")
    assert not marker.exists()


def test_a_revision_is_a_branch_tag_or_commit(hub_cache):
    step1 = load_checkpoint("acme/tiny-llama@step1")
    assert step1.name == "tiny-llama" and step1.identity["revision"] == STEP1
    by_commit = load_checkpoint(f"acme/tiny-llama@{STEP1}")
    assert by_commit.identity["revision"] == STEP1 and by_commit.path == snapshot_of(hub_cache, STEP1)
    assert nll(step1) == nll(by_commit) == nll(load_checkpoint(snapshot_of(hub_cache, STEP1)))
    assert nll(step1) != nll(load_checkpoint("acme/tiny-llama"))  # another commit, other weights


@pytest.mark.parametrize("value", ["EleutherAI/pythia-14m", "acme/tiny-llama@step2"])
def test_offline_and_not_cached_is_one_line_saying_what_to_do(hub_cache, value):
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(value)
    assert str(caught.value) == (f"{value}: not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                                 "run once online or pass a local folder")


def test_without_transformers_the_message_names_the_id_and_the_extra(hub_cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(CheckpointError, match=r"^acme/tiny-llama: a Hugging Face hub model needs transformers: "
                                              r"pip install 'lmeval-fixtures\[hf\]'$"):
        load_checkpoint("acme/tiny-llama")


def test_a_snapshot_that_is_not_a_causal_lm_folder_names_the_id(hub_cache):
    (snapshot_of(hub_cache, MAIN) / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"^acme/tiny-llama: .*is not a Hugging Face causal-LM folder"):
        load_checkpoint("acme/tiny-llama")
    (snapshot_of(hub_cache, STEP1) / "model.safetensors").unlink()
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint("acme/tiny-llama@step1")
    assert str(caught.value).startswith(f"acme/tiny-llama@step1: {snapshot_of(hub_cache, STEP1)}: cannot load")
    assert "\n" not in str(caught.value)


class FakeHub:
    """``snapshot_download`` standing in for the hub: records each call, returns ``folder`` or raises."""

    def __init__(self, folder: Path | None = None, error: Exception | None = None) -> None:
        self.folder, self.error, self.calls = folder, error, []

    def __call__(self, repo_id, **options):
        self.calls.append((repo_id, options))
        if self.error is not None:
            raise self.error
        return str(self.folder)


def online(monkeypatch, fake: FakeHub) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)


def test_online_only_the_needed_files_are_fetched_into_the_cache_named_now(tmp_path, monkeypatch):
    folder = tmp_path / "snapshots" / MAIN
    write_hf_llama(folder)
    fake = FakeHub(folder)
    online(monkeypatch, fake)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_snapshot(HubModel("acme", "tiny-llama", "step1")) == folder
    [(repo_id, options)] = fake.calls  # safetensors found: no second call for .bin weights
    assert repo_id == "acme/tiny-llama" and options["revision"] == "step1"
    assert options["cache_dir"] == str(tmp_path / "home" / "hub") and options["local_files_only"] is False
    assert options["ignore_patterns"] == ["*/*"]  # top level only
    allowed = options["allow_patterns"]
    assert {"config.json", "generation_config.json", "tokenizer.json", "*.safetensors"} <= set(allowed)
    assert "*.bin" not in allowed


def test_bin_weights_are_fetched_only_when_there_are_no_safetensors(tmp_path, monkeypatch):
    folder = tmp_path / "snapshots" / MAIN
    folder.mkdir(parents=True)
    fake = FakeHub(folder)
    online(monkeypatch, fake)
    hub_snapshot(HubModel("acme", "old-model"))
    assert [options["revision"] for _, options in fake.calls] == [None, MAIN]  # the same commit, twice
    assert "*.bin" in fake.calls[1][1]["allow_patterns"]
    assert "*.safetensors" not in fake.calls[1][1]["allow_patterns"]


def http_error(kind: str, message: str) -> Exception:
    response = SimpleNamespace(headers={}, request=None, status_code=404)
    return getattr(huggingface_hub.errors, kind)(message, response=response)


@pytest.mark.parametrize(("error", "expected"), [
    (lambda: http_error("RepositoryNotFoundError", "404 Client Error.\nRepository Not Found"),
     "acme/nope@v9: no such file or folder, nor a model on the Hugging Face hub (a private one needs hf auth login); "
     "check the path or the model id"),
    (lambda: http_error("RevisionNotFoundError", "404 Client Error.\nRevision Not Found"),
     "acme/nope@v9: the Hugging Face hub has no revision 'v9' of acme/nope; pass one of its branches, tags or commits"),
    (lambda: http_error("GatedRepoError", "403"),
     "acme/nope@v9: a gated model; accept its terms on huggingface.co and log in (hf auth login), or pass a local "
     "folder"),
    (lambda: huggingface_hub.errors.LocalEntryNotFoundError("Got: ConnectError\nAn error happened"),
     "acme/nope@v9: not in the Hugging Face cache and the hub cannot be reached (LocalEntryNotFoundError); run once "
     "online or pass a local folder"),
])
def test_hub_failures_are_one_line_errors(tmp_path, monkeypatch, error, expected):
    online(monkeypatch, FakeHub(error=error()))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint("acme/nope@v9")
    assert str(caught.value) == expected


# ---- issue 25: a folder changed while transformers reads it is refused, not named by the other bytes ---


@pytest.mark.parametrize("changed", ["model.safetensors", "config.json", "tokenizer.json"])
def test_a_hugging_face_folder_changed_while_it_loads_is_refused(hf_folder, monkeypatch, changed):
    folder, _ = hf_folder
    original = (folder / changed).read_bytes()
    real = transformers.AutoModelForCausalLM.from_pretrained

    def load_then_change(*args, **kwargs):
        model = real(*args, **kwargs)
        (folder / changed).write_bytes(original + b" ")  # another writer, mid-load
        return model

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", load_then_change)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(folder)
    assert str(refused.value) == (f"{folder}: {changed} changed while the folder was loading; evaluate it again "
                                  "once it is fully written")


def test_a_hugging_face_identity_names_weights_config_and_tokenizer_files(hf_folder):
    folder, _ = hf_folder
    identity = load_checkpoint(folder).identity
    assert identity["config_sha256"] == sha256_file(folder / "config.json")
    before = dict(identity)
    (folder / "tokenizer_config.json").write_text((folder / "tokenizer_config.json").read_text() + "\n")
    after = load_checkpoint(folder).identity
    assert after["tokenizer_file_sha256"] != before["tokenizer_file_sha256"]
    assert after["sha256"] == before["sha256"] and after["config_sha256"] == before["config_sha256"]
