"""Loading a checkpoint (``models.loading``): native formats with their identity, the cache, hub ids through
the cache, and paths that are not checkpoints (missing, of another kind, FIFOs, devices, sockets) refused
before anything is opened."""

import os
import socket
from pathlib import Path

import pytest

from lmeval_fixtures.core.errors import CheckpointError
from lmeval_fixtures.models.discovery import CheckpointSpec, discover_checkpoints
from lmeval_fixtures.models.loading import CheckpointCache, load_checkpoint

from ..helpers import MAIN, load_within, needs_fifo, nll, snapshot_of, write_native_checkpoint


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
