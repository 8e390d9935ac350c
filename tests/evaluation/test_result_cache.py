"""The content-addressed result cache (issue 17): a hit only when nothing that changes a figure
changed, a corrupt entry recomputed, concurrent runs safe, a killed run resumed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lmeval_fixtures.api import evaluate
from lmeval_fixtures.evaluation.result_cache import CacheKey, ResultCache

from .conftest import write_native_checkpoint, write_wikitext
from .test_gates import lay_out_suite, write_smallbench

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


def cached_items(record: dict) -> set[str]:
    return set(record.get("cache") or {})


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


def test_two_concurrent_runs_sharing_a_cache_both_finish_with_equal_records(tmp_path):
    write_wikitext(tmp_path / "data")
    write_smallbench(tmp_path / "data")
    write_native_checkpoint(tmp_path / "ck" / "a", seed=1)
    (tmp_path / "conftest.py").write_text("pytest_plugins = ['lmeval_fixtures.plugin']\n")
    from .test_gates import SMALLBENCH
    from .test_plugin import BENCHMARK

    (tmp_path / "test_perplexity.py").write_text(BENCHMARK)
    (tmp_path / "test_smallbench.py").write_text(SMALLBENCH)
    commands = [[sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--checkpoint", "ck",
                 "--data-dir", "data", "--max-samples", "6", "--cache-dir", "shared-cache", "--report-dir", f"r{i}",
                 "--run-id", "same"] for i in (1, 2)]
    runs = [subprocess.Popen(c, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for c in commands]
    outputs = [p.communicate(timeout=600)[0] for p in runs]
    assert all(p.returncode == 0 for p in runs), outputs
    records = [json.loads((tmp_path / f"r{i}" / "same" / "a" / "metrics.json").read_text()) for i in (1, 2)]
    for key in ("val_bits_per_byte", "test_bits_per_byte", "smallbench_sentiment_acc", "smallbench_avg_acc"):
        assert records[0][key] == records[1][key] is not None
    for path in (tmp_path / "shared-cache").glob("*/*.json"):
        json.loads(path.read_text())  # every entry whole


def test_a_killed_run_resumes_with_only_the_rest_recomputed(pytester, offline):
    suite = lay_out_suite(pytester)
    suite.makeconftest(KILL_AFTER_THREE)  # SIGTERM as the fourth item starts, whatever the order
    args = ["--checkpoint", "ck", "--data-dir", "data", "--max-samples", "6"]
    killed = suite.runpytest_subprocess(*args, "--run-id", "killed")
    assert killed.ret == pytest.ExitCode.INTERRUPTED
    cut = json.loads((suite.path / "reports" / "killed" / "a" / "metrics.json").read_text())
    finished = {_cache_item(node) for node, item in cut["items"].items() if item["outcome"] == "passed"}
    finished.discard(None)
    assert len(finished) == 3  # three items finished, three never ran
    (suite.path / "conftest.py").unlink()
    resumed = suite.runpytest(*args, "--run-id", "resumed")
    resumed.assert_outcomes(passed=6)
    record = json.loads((suite.path / "reports" / "resumed" / "a" / "metrics.json").read_text())
    assert cached_items(record) == finished  # only what had not finished was computed again
    assert record["complete"] is True and record["smallbench_avg_acc"] is not None


KILL_AFTER_THREE = """
import os, signal

PASSED = []


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        PASSED.append(report.nodeid)


def pytest_runtest_setup(item):
    if len(PASSED) == 3:
        os.kill(os.getpid(), signal.SIGTERM)
"""


def _cache_item(nodeid: str) -> str | None:
    param = nodeid.partition("[a-")[2].rstrip("]")
    if "test_perplexity" in nodeid:
        return f"perplexity:wikitext:{param}"
    return f"smallbench:{param}" if "test_smallbench" in nodeid else None
