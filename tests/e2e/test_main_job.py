"""The main job end to end, through pytester: the benchmarks run on checkpoints and data made here and their
figures reach the record; the library's ``evaluate()`` writes the record the pytest run writes."""

import json
import math

import pytest

from ..helpers import BENCHMARK, ROOT, write_native_checkpoint, write_wikitext


def test_without_data_items_skip_with_what_to_pass(ppl_suite):
    ckpt = write_native_checkpoint(ppl_suite.path / "ck" / "a")
    result = ppl_suite.runpytest("--checkpoint", str(ckpt), "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*pass --data-dir DIR holding wikitext-2-raw/validation.txt*"])
    # every item skipped: nothing was measured, so no report and no history line, and the run fails (issue 27)
    result.stdout.fnmatch_lines(["*every selected item (2) skipped, so nothing was measured*"])
    assert result.ret == 1 and not (ppl_suite.path / "reports").exists()


def test_token_cap_and_stride_are_recorded(ppl_suite):
    ckpt = write_native_checkpoint(ppl_suite.path / "ck" / "a")
    result = ppl_suite.runpytest("--checkpoint", str(ckpt), "--data-dir", "data", "--max-eval-tokens", "50",
                             "--ppl-stride", "16", "--detokenize", "off", "--run-id", "fixed")
    result.assert_outcomes(passed=2)
    record = json.loads((ppl_suite.path / "reports/fixed/a/metrics.json").read_text())
    split = record["perplexity"]["validation"]
    assert split["tokens"] == 50 and split["max_eval_tokens"] == 50 and split["stride"] == 16
    assert split["detokenized"] is False and record["settings"]["ppl_stride"] == 16


def test_smallbench_items_fill_the_record(suite):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "r", "-m", "smallbench",
                             "--prompts", "lm-eval", "--fewshot", "2", "--max-samples", "5")
    result.assert_outcomes(passed=4)
    record = json.loads((suite.path / "reports/r/a/metrics.json").read_text())
    assert record["smallbench_avg_acc"] == pytest.approx(
        sum(record[f"smallbench_{k}_acc"] for k in ("sentiment", "nli", "qa", "paraphrase")) / 4)
    assert record["smallbench"]["boolq"]["n"] == 5 and record["smallbench"]["boolq"]["prompt_set"] == "lm-eval"
    assert record["smallbench"]["rte"]["fewshot"] == 2
    assert "smallbench/boolq/train.jsonl" in record["data_fingerprints"]
    assert "## SmallBench" in (suite.path / "reports/r/a/summary.md").read_text()


def test_an_article_many_windows_long_is_scored_in_full(ppl_suite):
    article = " = Long = \n" + " the fox jumps over the lazy dog ." * 400 + "\n"
    (ppl_suite.path / "data/wikitext-2-raw/validation.txt").write_text(article)
    ckpt = write_native_checkpoint(ppl_suite.path / "ck" / "a")  # a 64-token context
    ppl_suite.runpytest("--checkpoint", str(ckpt), "--data-dir", "data", "--run-id", "l").assert_outcomes(passed=2)
    split = json.loads((ppl_suite.path / "reports/l/a/metrics.json").read_text())["perplexity"]["validation"]
    assert split["windows"] > 50 and split["tokens"] > 50 * 64


def test_bytes_that_carry_no_text_score_as_the_text_is_meant(pytester, offline):
    """CRLF line ends, a UTF-8 byte-order mark, a last line without its line end: the same figures."""
    pytester.makepyfile(test_perplexity=BENCHMARK)
    changes = {"crlf": lambda b: b.replace(b"\n", b"\r\n"), "bom": lambda b: b"\xef\xbb\xbf" + b,
               "eof": lambda b: b.rstrip(b"\n")}
    write_wikitext(pytester.path / "lf")
    for run, change in changes.items():
        write_wikitext(pytester.path / run)
        for split in ("validation", "test"):
            path = pytester.path / run / "wikitext-2-raw" / f"{split}.txt"
            path.write_bytes(change(path.read_bytes()))
    write_native_checkpoint(pytester.path / "ck" / "a", seed=3)
    for run in ("lf", *changes):
        pytester.runpytest("--checkpoint", "ck", "--data-dir", run, "--run-id", run).assert_outcomes(passed=2)
    lf = json.loads((pytester.path / "reports/lf/a/metrics.json").read_text())
    assert math.isfinite(lf["val_perplexity"]) and "data_notes" not in lf["perplexity"]["test"]
    for run, says in (("crlf", "CRLF"), ("bom", "byte-order mark"), ("eof", "no line end after the last line")):
        other = json.loads((pytester.path / f"reports/{run}/a/metrics.json").read_text())
        assert other["val_perplexity"] == lf["val_perplexity"]
        assert other["perplexity"]["test"]["bytes"] == lf["perplexity"]["test"]["bytes"]
        assert says in other["perplexity"]["validation"]["data_notes"][0]
        assert other["data_fingerprints"] != lf["data_fingerprints"]  # a different file, honestly fingerprinted


def test_the_same_checkpoint_named_twice_is_evaluated_once(suite):
    result = suite.runpytest("--checkpoint", "ck/a", "--checkpoint", "ck/a/model.safetensors", "--checkpoint", "ck",
                             "--data-dir", "data", "-m", "perplexity", "--run-id", "twice")
    result.assert_outcomes(passed=2)
    assert sorted(p.name for p in (suite.path / "reports/twice").iterdir() if p.is_dir()) == ["a"]


def load_compare_records():
    """scripts/compare_records.py, the before/after comparison of the refactor, as a module."""
    import importlib.util

    path = ROOT / "scripts" / "compare_records.py"
    spec = importlib.util.spec_from_file_location("compare_records", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluate_writes_the_record_the_pytest_path_writes(pytester, offline, monkeypatch):
    """No pytest in the library call: the same checkpoint and data give a metrics.json that
    validates and equals the pytest run's, field by field (timings and run identity aside)."""
    import json

    from lmeval_fixtures import evaluate
    from lmeval_fixtures.core.schema import validate_record

    from ..helpers import lay_out_suite

    suite = lay_out_suite(pytester)
    options = {"data_dir": "data", "max_samples": 6, "log_samples": "full", "run_id": "lib"}
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--max-samples", "6", "--log-samples",
                    "--run-id", "plugin").assert_outcomes(passed=6)
    monkeypatch.chdir(suite.path)
    done = evaluate(suite.path / "ck", families=("perplexity", "smallbench"), **options)
    assert done.errors == [] and sorted(done.records) == ["a"]
    ours = json.loads((suite.path / "reports/lib/a/metrics.json").read_text())
    validate_record(ours)
    theirs = json.loads((suite.path / "reports/plugin/a/metrics.json").read_text())
    assert [item["outcome"] for item in ours["items"].values()] == ["passed"] * 6
    assert len(theirs["items"]) == 6
    for record in (ours, theirs):
        record.pop("items")  # pytest node ids vs the library's item ids
    differences, compared = load_compare_records().compare(theirs, ours)
    assert differences == [] and compared > 150
    # the per-example rows are the same files
    for name in ("samples-smallbench-sst2.jsonl", "samples-perplexity-validation.jsonl"):
        assert (suite.path / "reports/lib/a" / name).read_text() == (suite.path / "reports/plugin/a" / name).read_text()
    assert (suite.path / "reports/lib/a/summary.md").is_file()
