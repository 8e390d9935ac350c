"""One measurement identity behind the result cache (issue 25 items 1-2): the bytes loaded, hashed in
the read that loads them; every file a checkpoint or corpus is read from and every figure-changing
setting in the key; a cache folder it did not make refused with its files kept; entries whose figures
contradict each other never served."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmeval_fixtures.api import evaluate
from lmeval_fixtures.core.errors import CheckpointError, UsageError
from lmeval_fixtures.core.files import sha256_file
from lmeval_fixtures.evaluation.result_cache import (
    MARKER,
    CacheFolderRefused,
    ResultCache,
    claim_folder,
    unaccounted,
)
from lmeval_fixtures.models import native
from lmeval_fixtures.models.loading import load_checkpoint

from ..helpers import cached_items, edit_config, go_offline, write_native_checkpoint

DOCS = ["The river ran past the old mill and the miller watched it go.",
        "Seven birds sat on the wire; one flew to the field and came back.",
        "A quiet town keeps its bells for Sundays and its lamps for winter."]


@pytest.fixture(scope="module", autouse=True)
def no_hub():
    """WikiText is not laid out here: its items skip at once instead of asking the hub."""
    with pytest.MonkeyPatch.context() as patch:
        go_offline(patch)
        patch.delenv("LMEVAL_DATA_DIR", raising=False)
        yield


def corpus_file(folder: Path, docs: list[str] = DOCS) -> Path:
    path = folder / "held.txt"
    path.write_text("\n\n".join(docs) + "\n")
    return path


def held_out(checkpoint: Path, corpus: Path, cache: Path, **options) -> tuple[dict, set[str]]:
    """One perplexity run over ``corpus`` with ``cache``: the record's held-out test split and the items served."""
    done = evaluate(checkpoint, families=["perplexity"], corpus=[f"held={corpus}"], cache_dir=cache,
                    report_dir=cache.parent / "reports", history=False, **options)
    assert not done.errors, done.errors
    record, = done.records.values()
    return record.get("corpora", {}).get("held", {}).get("test"), cached_items(record)  # None: nothing measured


# ---- cache, wrong figure: everything the checkpoint is read from is in the key ------------------------


@pytest.mark.parametrize("change", [{"rope_theta": 500.0}, {"norm_eps": 1e-3}, {"rope_theta": 10000.5}])
@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_an_edited_config_misses_the_cache_and_gives_the_true_figure(tmp_path, change, fmt):
    checkpoint = write_native_checkpoint(tmp_path / "ck", fmt=fmt)
    corpus, cache = corpus_file(tmp_path), tmp_path / "cache"
    first, served = held_out(checkpoint, corpus, cache)
    assert not served
    edit_config(checkpoint, **change)
    second, served = held_out(checkpoint, corpus, cache)
    true, _ = held_out(checkpoint, corpus, tmp_path / "fresh-cache")
    assert not served  # the old figure is never served for the edited checkpoint
    assert second["bits_per_byte"] == true["bits_per_byte"] != first["bits_per_byte"]


def test_an_edited_tokenizer_file_misses_the_cache(tmp_path):
    checkpoint = write_native_checkpoint(tmp_path / "ck")
    corpus, cache = corpus_file(tmp_path), tmp_path / "cache"
    held_out(checkpoint, corpus, cache)
    tokenizer = checkpoint.parent / "tokenizer.json"
    tokenizer.write_text(json.dumps(json.loads(tokenizer.read_text()), indent=1))  # same tokens, other bytes
    assert not held_out(checkpoint, corpus, cache)[1]
    assert held_out(checkpoint, corpus, cache)[1] == {"perplexity:held:test"}  # and is a hit once cached


# ---- cache, race: the digest is of the bytes loaded, even when the file is replaced meanwhile ----------


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_a_file_replaced_while_it_loads_is_named_by_the_bytes_loaded(tmp_path, monkeypatch, fmt):
    checkpoint = write_native_checkpoint(tmp_path / "ck", seed=1, fmt=fmt)
    loaded_file = sha256_file(checkpoint)
    other = write_native_checkpoint(tmp_path / "other", seed=2, fmt=fmt)
    real = native.load_safetensors if fmt == "safetensors" else native.torch.load

    def load_then_replace(*args, **kwargs):
        found = real(*args, **kwargs)
        shutil.copyfile(other, checkpoint)  # the file changes after its tensors were read
        return found

    if fmt == "safetensors":
        monkeypatch.setattr(native, "load_safetensors", load_then_replace)
    else:
        monkeypatch.setattr(native.torch, "load", load_then_replace)
    loaded = load_checkpoint(checkpoint)
    monkeypatch.undo()
    assert sha256_file(checkpoint) != loaded_file  # the file on disk is the other one now
    assert loaded.identity["sha256"] == loaded_file  # the record names what was scored
    reference = load_checkpoint(write_native_checkpoint(tmp_path / "ck2", seed=1, fmt=fmt))  # the file loaded
    for mine, theirs in zip(loaded.model.parameters(), reference.model.parameters(), strict=True):
        assert torch.equal(mine, theirs)


# ---- the property: any single-byte change in any file read, and any figure setting, misses -------------


@pytest.fixture(scope="module")
def laid_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity")
    checkpoint = write_native_checkpoint(root / "ck", seed=3)
    corpus = corpus_file(root)
    cache = root / "cache"
    _, served = held_out(checkpoint, corpus, cache)
    assert not served
    return root, checkpoint, corpus, cache


FILES = ("model.safetensors", "config.json", "tokenizer.json", "held.txt")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(FILES), where=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255))
def test_any_single_byte_change_in_a_file_read_misses_the_cache(laid_out, which, where, flip):
    root, checkpoint, corpus, cache = laid_out
    path = corpus if which == "held.txt" else checkpoint.parent / which
    original = path.read_bytes()
    at = int(where * len(original))
    changed = bytearray(original)
    changed[at] ^= flip
    path.write_bytes(bytes(changed))
    try:
        try:
            _, served = held_out(checkpoint, corpus, cache)
        except (CheckpointError, UsageError):
            return  # bytes that cannot be read at all: refused before anything is measured
        # bytes that cannot be loaded give no figure (the record says why); any that can give their own
        assert not served, f"{which} byte {at} changed, yet the cached figure was served"
    finally:
        path.write_bytes(original)
        shutil.rmtree(root / "reports", ignore_errors=True)


@pytest.mark.parametrize("setting", [{"seed": 7, "fewshot": 0}, {"max_eval_tokens": 40}, {"ppl_stride": 8},
                                     {"detokenize": "off"}, {"dtype": "bfloat16"}, {"batch_tokens": 64}])
def test_each_figure_changing_setting_misses_the_cache(laid_out, setting):
    root, checkpoint, corpus, cache = laid_out
    assert held_out(checkpoint, corpus, cache)[1] == {"perplexity:held:test"}  # unchanged: a hit
    assert not held_out(checkpoint, corpus, cache, **setting)[1]


def test_a_seed_misses_where_shots_are_drawn(tmp_path):
    from ..helpers import write_smallbench

    write_smallbench(tmp_path / "data")
    checkpoint = write_native_checkpoint(tmp_path / "ck")
    options = {"families": ["smallbench"], "data_dir": tmp_path / "data", "cache_dir": tmp_path / "cache",
               "report_dir": tmp_path / "r", "history": False, "max_samples": 4, "fewshot": 1}
    evaluate(checkpoint, **options)
    again, = evaluate(checkpoint, **options).records.values()
    assert "smallbench:sst2" in cached_items(again) and again["smallbench"]["sst2"]["fewshot_seed"] == 1234
    other, = evaluate(checkpoint, **options, seed=99).records.values()
    assert "smallbench:sst2" not in cached_items(other)
    assert other["smallbench"]["sst2"]["fewshot_seed"] == 99


# ---- forged or foreign entries ------------------------------------------------------------------------


def forge(cache: Path, edit) -> None:
    """Edit every entry's fragment with ``edit`` and recompute its payload digest, as a forger would."""
    from lmeval_fixtures.evaluation.result_cache import digest

    for path in cache.glob("*/*.json"):
        entry = json.loads(path.read_text())
        edit(entry["fragment"])
        entry["payload_sha256"] = digest(entry["fragment"])
        path.write_text(json.dumps(entry))


def held_split(fragment: dict) -> dict:
    return fragment["corpora"]["held"]["test"]


@pytest.mark.parametrize("edit", [
    lambda f: held_split(f).update(bits_per_byte=1.0, token_perplexity=10.0),
    lambda f: held_split(f).update(token_perplexity=10.0),
    lambda f: held_split(f).update(loss=held_split(f)["loss"] / 2),
    lambda f: held_split(f).update(nll_sum=held_split(f)["nll_sum"] / 2, loss=held_split(f)["loss"] / 2),
    lambda f: held_split(f)["per_document"].update(tokens="1 1 1"),
], ids=["bpb-and-ppl", "ppl", "loss", "sums", "per-document"])
def test_an_entry_whose_figures_contradict_each_other_is_recomputed(tmp_path, edit):
    checkpoint, corpus, cache = write_native_checkpoint(tmp_path / "ck"), corpus_file(tmp_path), tmp_path / "cache"
    true, _ = held_out(checkpoint, corpus, cache)
    forge(cache, edit)
    again, served = held_out(checkpoint, corpus, cache)
    assert not served and again["bits_per_byte"] == true["bits_per_byte"]


def test_a_task_entry_whose_accuracy_is_not_its_counts_is_not_accounted_for():
    per_row = {"correct": "101", "gold_loglikelihood": "-1 -2 -3", "gold_bytes": "1 1 1", "rows_sha256": "r"}
    entry = {"smallbench": {"sst2": {"n": 3, "correct": 2, "acc": 2 / 3, "correct_norm": 1, "acc_norm": 1 / 3,
                                     "per_row": per_row}}}
    assert unaccounted(entry) is None
    for forged, says in [({"acc": 1.0}, "acc 1.0 is not correct/n"), ({"acc_norm": 0.9}, "acc_norm 0.9"),
                         ({"correct": 3, "acc": 1.0}, "per-row values do not add up"), ({"n": 0}, "no row count"),
                         ({"per_row": {k: v for k, v in per_row.items() if k != "rows_sha256"}}, "do not add up")]:
        bad = {"smallbench": {"sst2": entry["smallbench"]["sst2"] | forged}}
        assert says in unaccounted(bad)


@pytest.mark.parametrize("layout", [
    {"a/b.json": "{}", "a/c.json": "[]"},  # the user's */*.json, which pruning used to delete
    {"notes.txt": "mine"},
    {"ab/" + "0" * 64 + ".json": "{}", "ab/readme.md": "mine"},  # entries' names, and one file that is not
    {"deep/er/x.json": "{}"},
])
def test_a_folder_of_foreign_files_is_refused_and_its_files_survive(tmp_path, layout):
    folder = tmp_path / "mine"
    for name, text in layout.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(CacheFolderRefused) as refused:
        ResultCache(folder, max_bytes=1)
    line = str(refused.value)
    assert "\n" not in line and line.startswith(f"--cache-dir {folder}: not a result cache (no {MARKER} marker")
    # and a whole run refuses it at start-up, before anything is measured, keeping every file
    checkpoint, corpus = write_native_checkpoint(tmp_path / "ck"), corpus_file(tmp_path)
    with pytest.raises(UsageError, match="not a result cache"):
        evaluate(checkpoint, families=["perplexity"], corpus=[f"held={corpus}"], cache_dir=folder, cache_max_mb=1,
                 report_dir=tmp_path / "r", history=False)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_folder_other_users_may_write_is_refused(tmp_path, mode):
    folder = tmp_path / "shared"
    claim_folder(folder)  # made by the cache: its marker is there
    os.chmod(folder, mode)
    with pytest.raises(CacheFolderRefused, match=f"other users may write into it \\(mode {mode:o}\\)"):
        ResultCache(folder, max_bytes=1 << 20)
    assert (folder / MARKER).is_file()


def test_pruning_removes_only_entries(tmp_path):
    folder = tmp_path / "cache"
    claim_folder(folder)
    cache = ResultCache(folder, max_bytes=0)
    stray = folder / "ab" / "stray.json"  # not an entry's name: written by someone else after the claim
    stray.parent.mkdir()
    stray.write_text("{}")
    from lmeval_fixtures.evaluation.result_cache import CacheKey

    fragment = {"note": "no figures"}
    cache.put(CacheKey({"checkpoint": {"sha256": "a"}}), fragment)
    assert stray.is_file() and (folder / MARKER).is_file()
    assert not [p for p in folder.glob("*/*.json") if p != stray]  # the entry itself was pruned (bound 0)


def test_a_run_that_stores_nothing_makes_no_cache_folder(tmp_path):
    ResultCache(tmp_path / "reports" / ".cache", max_bytes=1 << 20)
    assert not (tmp_path / "reports").exists()


def test_a_folder_the_cache_wrote_before_markers_is_adopted(tmp_path):
    folder = tmp_path / "old"
    entry = folder / "ab" / ("ab" + "1" * 62 + ".json")
    entry.parent.mkdir(parents=True)
    entry.write_text("{}")
    ResultCache(folder, max_bytes=1 << 20)
    assert (folder / MARKER).is_file() and entry.is_file()


def test_perplexity_figures_follow_from_their_sums():
    nll, tokens, n_bytes = 30.0, 10, 40
    entry = {"nll_sum": nll, "tokens": tokens, "bytes": n_bytes, "loss": nll / tokens,
             "token_perplexity": math.exp(nll / tokens), "bits_per_byte": nll / (math.log(2) * n_bytes),
             "documents": 2, "per_document": {"nll": "10.0000 20.0000", "tokens": "4 6", "bytes": "15 25"}}
    assert unaccounted({"perplexity": {"validation": entry}}) is None
    assert "per-document sums" in unaccounted({"p": entry | {"per_document": {"nll": "10 21", "tokens": "4 6",
                                                                              "bytes": "15 25"}}})


# ---- a task's declaration names no place and no process ---------------------------------------------------


def test_the_same_task_file_in_two_folders_is_the_same_input_and_other_content_is_not(tmp_path):
    """A task file's reader held absolute paths, so the digest of a task item's inputs differed between two
    checkouts of the same files (a baseline made on one machine, the CI run on another: "data differs"),
    and between xdist workers for a task whose reader is a function (its memory address)."""
    from lmeval_fixtures.suite.task_files import load_task_file

    from ..helpers import lmeval_task

    for name in ("here", "there"):
        lmeval_task(tmp_path / name)
    ck = write_native_checkpoint(tmp_path / "ck")
    digests = []
    for name in ("here", "there"):
        done = evaluate(ck, families=["smallbench"], task_file=[tmp_path / name / "local/reviews.yaml"],
                        report_dir=tmp_path / "reports", run_id=name, history=False, no_cache=True)
        record, = done.records.values()
        digests.append(record["inputs_sha256"])
    assert digests[0] == digests[1] and len(digests[0]) == 1
    here, there = (load_task_file(tmp_path / name / "local/reviews.yaml") for name in ("here", "there"))
    assert here.read.origin != there.read.origin and here.declaration() == there.declaration()
    edited = tmp_path / "there/lm_eval_tasks/reviews/default.yaml"
    edited.write_text(edited.read_text().replace("good or bad?", "good or bad ?"))
    assert load_task_file(tmp_path / "there/local/reviews.yaml").declaration() != here.declaration()


def test_a_reader_function_is_declared_by_its_name_not_its_address():
    import functools

    from lmeval_fixtures.suite.tasks import TASKS

    def make_reader():
        def read_rows(split, data_dir, hub):
            return [], None
        return read_rows

    first, second = make_reader(), make_reader()  # two objects of one function, as two processes hold it
    assert first is not second
    sst2 = TASKS["sst2"]
    assert sst2.declaration() == repr(sst2)  # the shipped tasks' digests as before
    mine = [dataclasses.replace(sst2, read=reader) for reader in (first, second, functools.partial(first))]
    assert mine[0].declaration() == mine[1].declaration() == mine[2].declaration()
    assert "0x" not in mine[0].declaration()

    def other_rows(split, data_dir, hub):
        return [], None
    assert dataclasses.replace(sst2, read=other_rows).declaration() != mine[0].declaration()
