"""Hugging Face hub model ids as checkpoints (``--checkpoint EleutherAI/pythia-14m``), offline.

Each test lays out a Hugging Face cache of its own (``models--owner--name/refs``, ``blobs``,
``snapshots/<commit>`` holding links to the blobs, as huggingface_hub writes it) with a tiny
random Llama in it, and points ``HF_HUB_CACHE`` at it with ``HF_HUB_OFFLINE=1``: nothing
is ever requested from the network.
"""

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from lmeval_fixtures.core.errors import CheckpointError
from lmeval_fixtures.core.schema import validate_record
from lmeval_fixtures.engine.perplexity import Document, score_documents
from lmeval_fixtures.models.discovery import CheckpointSpec, checkpoint_names, discover_checkpoints
from lmeval_fixtures.models.hf_models import HubModel, hub_snapshot, parse_hub_id
from lmeval_fixtures.models.loading import CheckpointCache, load_checkpoint

from .conftest import SAMPLE_TEXT, write_wikitext
from .test_hf_checkpoints import CONTEXT, write_hf_llama
from .test_plugin import BENCHMARK  # the perplexity benchmark, wherever the suite keeps it

huggingface_hub = pytest.importorskip("huggingface_hub")
pytest.importorskip("transformers")

MAIN = "a1" * 20  # commits: 40 hex digits, as in the hub's cache
STEP1 = "b2" * 20


def cache_model(cache: Path, repo_id: str, commit: str, refs: tuple[str, ...] = ("main",), seed: int = 0) -> Path:
    """One commit of ``repo_id`` in the cache at ``cache``, named by ``refs``; returns its snapshot folder.

    The files are blobs named by content with relative links from the snapshot, as
    huggingface_hub stores them (so the loader's digests read through links)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    staging = repo / "staging"
    write_hf_llama(staging, seed=seed)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in sorted(staging.iterdir()):
        blob = repo / "blobs" / f"{commit[:8]}-{file.name}"
        file.rename(blob)
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    staging.rmdir()
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An offline Hugging Face cache holding ``acme/tiny-llama`` at two commits (main, step1)."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache_model(cache, "acme/tiny-llama", MAIN, seed=0)
    cache_model(cache, "acme/tiny-llama", STEP1, refs=("step1",), seed=1)
    return cache


def snapshot_of(cache: Path, commit: str) -> Path:
    return cache / "models--acme--tiny-llama" / "snapshots" / commit


def nll(loaded) -> float:
    text = SAMPLE_TEXT * 2
    return score_documents(loaded.model, loaded.tokenizer, [Document(text, text)], CONTEXT).nll


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


def test_discovery_names_a_model_id_without_touching_the_cache(tmp_path, monkeypatch):
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


def test_a_model_id_loads_as_its_snapshot_folder_does(hub_cache):
    [spec] = discover_checkpoints(["acme/tiny-llama"])
    assert (spec.name, spec.hub_id) == ("tiny-llama", "acme/tiny-llama")
    loaded = load_checkpoint(spec)
    direct = load_checkpoint(snapshot_of(hub_cache, MAIN))
    assert loaded.path == snapshot_of(hub_cache, MAIN)
    assert loaded.allocation == direct.allocation
    assert nll(loaded) == nll(direct)
    identity = loaded.identity
    assert (identity["name"], identity["hub_id"], identity["revision"]) == ("tiny-llama", "acme/tiny-llama", MAIN)
    assert identity["path"] == str(snapshot_of(hub_cache, MAIN)) and identity["format"] == "hf"
    for key in ("sha256", "tokenizer_sha256", "config"):
        assert identity[key] == direct.identity[key], key
    assert "hub_id" not in direct.identity
    assert load_checkpoint("acme/tiny-llama").name == "tiny-llama"  # a plain string too


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


def test_a_renamed_spec_without_hub_id_still_loads_from_the_hub(hub_cache):
    """A copy made with only name and path (as a caller renaming a checkpoint might) is the same model."""
    loaded = CheckpointCache().load(CheckpointSpec("mine", Path("acme/tiny-llama")))
    assert (loaded.name, loaded.identity["hub_id"], loaded.identity["revision"]) == ("mine", "acme/tiny-llama", MAIN)


def test_the_cache_shares_one_model_per_id(hub_cache):
    cache = CheckpointCache()
    [main, step1] = discover_checkpoints(["acme/tiny-llama", "acme/tiny-llama@step1"])
    assert (main.name, step1.name) == ("acme-tiny-llama", "tiny-llama-step1")  # colliding names both qualify
    assert cache.load(main) is cache.load(main)
    assert cache.load(step1) is not cache.load(main)


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


def test_a_model_id_runs_through_the_suite_into_the_record(pytester, offline, hub_cache):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    write_wikitext(pytester.path / "data")
    result = pytester.runpytest("--checkpoint", "acme/tiny-llama@step1", "--checkpoint", "acme/missing",
                                "--data-dir", "data", "--run-id", "r")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(["*acme/missing: not in the Hugging Face cache and HF_HUB_OFFLINE is set*"])
    record = json.loads((pytester.path / "reports" / "r" / "tiny-llama" / "metrics.json").read_text())
    validate_record(record)
    assert (record["checkpoint"]["hub_id"], record["checkpoint"]["revision"]) == ("acme/tiny-llama", STEP1)
    assert record["val_loss"] is not None
    missing = json.loads((pytester.path / "reports" / "r" / "missing" / "metrics.json").read_text())
    validate_record(missing)
    assert missing["checkpoint"]["path"] == "acme/missing"
