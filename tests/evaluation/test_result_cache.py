"""The content-addressed result cache (``evaluation.result_cache``), through ``evaluate()``: a hit only when
nothing that changes a figure changed (weights, data, settings, a row's own choices), a corrupt entry
recomputed, the size bound kept. (Concurrent and killed runs: e2e/test_result_cache_runs.py.)"""

from __future__ import annotations

import json

import pytest

from lmeval_fixtures import Registry
from lmeval_fixtures.api import evaluate
from lmeval_fixtures.evaluation.result_cache import CacheKey, ResultCache, digest
from lmeval_fixtures.suite.doc_prompts import CHOICES
from lmeval_fixtures.suite.task_files import load_task_file

from ..helpers import QUIZ, cached_items, quiz_file, rows_of, write_native_checkpoint, write_smallbench, write_wikitext
from ..hostile_files import KINDS, ends_within, make_hostile

OPTIONS = {"families": ("perplexity", "smallbench"), "max_samples": 6, "history": False}


@pytest.fixture
def laid_out(tmp_path):
    write_wikitext(tmp_path / "data")
    write_smallbench(tmp_path / "data")
    write_native_checkpoint(tmp_path / "ck" / "a", seed=1)
    return tmp_path


def run(root, run_id: str, **options) -> dict:
    settings = OPTIONS | {"data_dir": root / "data", "report_dir": root / "reports", "run_id": run_id} | options
    done = evaluate(root / "ck" / "a", **settings)
    assert not done.errors
    return done.records["a"]


ALL_ITEMS = {"perplexity:wikitext:validation", "perplexity:wikitext:test", "smallbench:sst2", "smallbench:rte",
             "smallbench:boolq", "smallbench:mrpc"}


def test_an_unchanged_rerun_takes_every_evaluation_item_from_the_cache(laid_out):
    first = run(laid_out, "one")
    second = run(laid_out, "two")
    assert cached_items(first) == set() and cached_items(second) == ALL_ITEMS
    assert {e["from_run"] for e in second["cache"].values()} == {"one"}
    for key in ("val_bits_per_byte", "test_perplexity", "smallbench_sentiment_acc", "smallbench_qa_acc"):
        assert second[key] == first[key]
    assert second["perplexity"]["validation"]["nll_sum"] == first["perplexity"]["validation"]["nll_sum"]
    assert (laid_out / "reports" / ".cache").is_dir()


def test_one_changed_byte_in_the_weights_misses(laid_out):
    run(laid_out, "one")
    weights = laid_out / "ck" / "a" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0x01  # the last byte of the last tensor: a different model, same shapes
    weights.write_bytes(bytes(raw))
    assert cached_items(run(laid_out, "two")) == set()


def test_one_changed_byte_in_the_data_misses_only_that_datas_items(laid_out):
    run(laid_out, "one")
    sst2 = laid_out / "data" / "smallbench" / "sst2" / "validation.jsonl"
    sst2.write_text(sst2.read_text().replace("the fox 0 ", "the fox 0!", 1))
    wiki = laid_out / "data" / "wikitext-2-raw" / "test.txt"
    wiki.write_text(wiki.read_text().replace("the", "thE", 1))
    assert cached_items(run(laid_out, "two")) == ALL_ITEMS - {"smallbench:sst2", "perplexity:wikitext:test"}


@pytest.mark.parametrize(("setting", "value", "missed"), [
    ("max_samples", 5, {"smallbench:sst2", "smallbench:rte", "smallbench:boolq", "smallbench:mrpc"}),
    ("prompts", "lm-eval", {"smallbench:sst2", "smallbench:rte", "smallbench:boolq", "smallbench:mrpc"}),
    ("fewshot", 1, {"smallbench:sst2", "smallbench:rte", "smallbench:boolq", "smallbench:mrpc"}),
    ("max_eval_tokens", 50, {"perplexity:wikitext:validation", "perplexity:wikitext:test"}),
    ("ppl_stride", 32, {"perplexity:wikitext:validation", "perplexity:wikitext:test"}),
    ("detokenize", "off", {"perplexity:wikitext:validation", "perplexity:wikitext:test"}),
    ("dtype", "bfloat16", ALL_ITEMS),
    ("log_samples", "full", ALL_ITEMS),
])
def test_any_figure_changing_setting_misses(laid_out, setting, value, missed):
    run(laid_out, "one")
    second = run(laid_out, "two", **{setting: value})
    assert not (cached_items(second) & missed)


def test_refresh_and_no_cache(laid_out):
    run(laid_out, "one")
    assert cached_items(run(laid_out, "two", refresh=True)) == set()
    assert cached_items(run(laid_out, "three", no_cache=True)) == set()
    assert cached_items(run(laid_out, "four")) == ALL_ITEMS  # --refresh rewrote the entries; still valid


@pytest.mark.parametrize("damage", ["truncate", "garbage", "edit_figure", "other_key"])
def test_a_corrupt_entry_is_recomputed_never_trusted(laid_out, damage):
    first = run(laid_out, "one")
    entries = sorted((laid_out / "reports" / ".cache").glob("*/*.json"))
    assert len(entries) == len(ALL_ITEMS)
    for path in entries:
        text = path.read_text()
        entry = json.loads(text)
        if damage == "truncate":
            path.write_text(text[: len(text) // 2])
        elif damage == "garbage":
            path.write_bytes(b"\xff\xfe not json")
        elif damage == "edit_figure":  # a plausible entry whose payload no longer matches its digest
            path.write_text(text.replace('"acc": ', '"acc": 0.0 + ', 1) if '"acc": ' in text
                            else text.replace('"nll_sum": ', '"nll_sum": 1', 1))
        else:
            entry["key"]["item"] = "something else"
            path.write_text(json.dumps(entry))
    second = run(laid_out, "two")
    assert cached_items(second) == set()
    assert second["val_bits_per_byte"] == first["val_bits_per_byte"]
    assert cached_items(run(laid_out, "three")) == ALL_ITEMS  # recomputed entries were written back


def test_the_cache_stays_within_its_size_bound(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=3000)
    for i in range(20):
        cache.put(CacheKey({"item": i}), {"figures": "x" * 400})
    files = list(tmp_path.glob("*/*.json"))
    assert 0 < len(files) < 20 and sum(f.stat().st_size for f in files) <= 3000
    assert cache.get(CacheKey({"item": 19})) is not None  # the newest survive
    assert cache.get(CacheKey({"item": 0})) is None


def test_the_rows_the_cache_key_digests_hold_each_rows_choices(tmp_path):
    task = load_task_file(quiz_file(tmp_path))
    rows = rows_of(task)
    assert all(r[CHOICES] == tuple(c) for r, (_, c, _) in zip(rows, QUIZ, strict=True))
    changed = [dict(r) for r in rows]
    changed[1][CHOICES] = ("one", "two", "three", "pi")  # the same document, other choices
    assert digest([changed, None]) != digest([rows, None])


def test_a_rerun_takes_a_per_row_task_from_the_cache_and_a_changed_choice_misses(tmp_path):
    from ..helpers import write_native_checkpoint

    write_native_checkpoint(tmp_path / "ck" / "a", seed=1)
    path = quiz_file(tmp_path / "quiz")
    options = {"families": ("smallbench",), "registry": Registry(), "task_file": [str(path)], "history": False,
               "report_dir": tmp_path / "reports"}

    def run(run_id: str) -> dict:
        done = evaluate(tmp_path / "ck" / "a", run_id=run_id, **options)
        assert not done.errors
        return done.records["a"]

    first, second = run("one"), run("two")
    assert not first.get("cache") and set(second["cache"]) == {"smallbench:quiz"}
    assert second["smallbench"]["quiz"]["choices_per_row"] is True
    assert second["smallbench"]["quiz"]["acc_norm"] == first["smallbench"]["quiz"]["acc_norm"]
    changed = [(q, c if i != 1 else ["one", "two", "three", "pi"], g) for i, (q, c, g) in enumerate(QUIZ)]
    quiz_file(tmp_path / "quiz", changed)
    assert not run("three").get("cache")


@pytest.mark.parametrize("kind", KINDS)
def test_an_entry_a_neighbour_spoilt_is_a_miss_never_a_wait(tmp_path, kind):
    """A cache entry that is a FIFO, a device, a folder, a dangling link, ... is recomputed (a miss); before, a FIFO
    entry made the next run wait for ever on its read."""
    cache = ResultCache(tmp_path / "cache", max_bytes=1 << 20)
    cache.put(CacheKey({"item": 1}), {"figures": "x"})
    cache.put(CacheKey({"item": 2}), {"figures": "y"})
    entry = cache._path(CacheKey({"item": 1}))
    make_hostile(entry, kind)
    with ends_within(20):
        assert cache.get(CacheKey({"item": 1})) is None
    assert cache.get(CacheKey({"item": 2})).fragment == {"figures": "y"}  # the others still hit


@pytest.mark.parametrize("kind", KINDS)
def test_a_spoilt_marker_is_never_opened_to_read_and_the_cache_still_serves(tmp_path, kind):
    from lmeval_fixtures.evaluation.result_cache import MARKER

    folder = tmp_path / "cache"
    ResultCache(folder, max_bytes=1 << 20).put(CacheKey({"item": 1}), {"figures": "x"})
    make_hostile(folder / MARKER, kind)
    with ends_within(20):
        again = ResultCache(folder, max_bytes=1 << 20)
        assert again.get(CacheKey({"item": 1})).fragment == {"figures": "x"}
        again.put(CacheKey({"item": 2}), {"figures": "y"})
        assert again.get(CacheKey({"item": 2})).fragment == {"figures": "y"}
