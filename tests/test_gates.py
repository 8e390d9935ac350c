"""Regression gates, end to end: a run, then the same run gated against it."""

import json
from pathlib import Path

import pytest

from lmeval_fixtures.gates import (
    BaselineError,
    accuracy_gates,
    load_baseline,
    perplexity_gates,
)

from .conftest import write_native_checkpoint, write_wikitext
from .test_plugin import BENCHMARK

SMALLBENCH = (Path(__file__).parents[1] / "benchmarks" / "test_smallbench.py").read_text()


def test_perplexity_gate_passes_within_and_fails_beyond_tolerance():
    figures = {"token_perplexity": 101.0, "bits_per_byte": 2.0, "stride": 64, "context_length": 64,
               "max_eval_tokens": None, "detokenized": True}
    baseline = {"_source": "base.json", "data_fingerprints": {"f": "abc"},
                "perplexity": {"validation": figures | {"token_perplexity": 100.0}}}
    ok = perplexity_gates("validation", "val", figures, {"f": "abc"}, baseline, 0.02)
    assert [g.ok for g in ok] == [True, True]
    bad = perplexity_gates("validation", "val", figures, {"f": "abc"}, baseline, 0.005)
    assert not bad[0].ok and "val_perplexity 101 REGRESSED beyond baseline 100" in bad[0].message
    assert "base.json" in bad[0].message


def test_baseline_on_other_data_or_settings_is_refused():
    figures = {"token_perplexity": 1.0, "bits_per_byte": 1.0, "stride": 64, "context_length": 64,
               "max_eval_tokens": None, "detokenized": True}
    baseline = {"_source": "b.json", "data_fingerprints": {"f": "abc"}, "perplexity": {"validation": dict(figures)}}
    refused = perplexity_gates("validation", "val", figures, {"f": "xyz"}, baseline, 0.1)
    assert not refused[0].ok and "refused: f differs" in refused[0].message
    other = perplexity_gates("validation", "val", figures | {"stride": 32}, {"f": "abc"}, baseline, 0.1)
    assert not other[0].ok and "other stride" in other[0].message


def test_accuracy_gate_counts_standard_errors():
    summary = {"acc": 0.50, "acc_stderr": 0.02, "prompt_set": "smallbench", "fewshot": 0}
    baseline = {"_source": "b", "data_fingerprints": {}, "smallbench": {"sst2": {"acc": 0.53, "prompt_set":
                                                                                "smallbench", "fewshot": 0}}}
    assert accuracy_gates("sst2", summary, {}, baseline, 2.0, None)[0].ok  # 0.50 >= 0.53 - 2*0.02
    failed = accuracy_gates("sst2", summary, {}, baseline, 1.0, None)[0]
    assert not failed.ok and "limit 0.5100" in failed.message
    floor = accuracy_gates("sst2", summary, {}, None, 2.0, 0.6)
    assert not floor[0].ok and "BELOW the floor 0.6000" in floor[0].message


def test_corrupt_or_unknown_baselines_are_refused(tmp_path):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{oops")
    with pytest.raises(BaselineError, match=r"corrupt\.json: baseline is not valid JSON"):
        load_baseline(corrupt, "a")
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(BaselineError, match=r"future\.json: baseline schema_version 99 is not 1"):
        load_baseline(future, "a")
    assert load_baseline(tmp_path, "absent") is None


def lay_out_suite(pytester):
    """The perplexity and SmallBench benchmarks, their data, and checkpoint ``ck/a``."""
    pytester.makepyfile(test_perplexity=BENCHMARK, test_smallbench=SMALLBENCH)
    write_wikitext(pytester.path / "data")
    write_smallbench(pytester.path / "data")
    write_native_checkpoint(pytester.path / "ck" / "a", seed=1)
    return pytester


@pytest.fixture
def suite(pytester, offline):
    return lay_out_suite(pytester)


def write_smallbench(data: Path, rows: int = 12) -> None:
    fields = {"sst2": ("sentence",), "rte": ("sentence1", "sentence2"), "mrpc": ("sentence1", "sentence2"),
              "boolq": ("passage", "question")}
    for task, names in fields.items():
        folder = data / "smallbench" / task
        folder.mkdir(parents=True, exist_ok=True)
        for split in ("validation", "train"):
            lines = []
            for i in range(rows):
                row = {name: f"the fox {i} jumps over the lazy dog number {i % 3}" for name in names}
                lines.append(json.dumps(row | {"label": i % 2, "idx": i}))
            (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


def test_a_run_gates_against_its_own_baseline_and_fails_on_regression(suite):
    args = ["--checkpoint", "ck", "--data-dir", "data"]
    suite.runpytest(*args, "--run-id", "base").assert_outcomes(passed=6)
    suite.runpytest(*args, "--run-id", "same", "--baseline", "reports/base").assert_outcomes(passed=6)
    record = json.loads((suite.path / "reports/same/a/metrics.json").read_text())
    assert record["gates"]["val_perplexity"]["ok"] and record["gates"]["sst2_acc"]["ok"]

    # make the baseline better than this model can be: the gates must fail, with the figures in the message
    path = suite.path / "reports/base/a/metrics.json"
    base = json.loads(path.read_text())
    base["perplexity"]["validation"]["token_perplexity"] /= 2
    base["smallbench"]["sst2"]["acc"] = 1.0
    path.write_text(json.dumps(base))
    result = suite.runpytest(*args, "--run-id", "worse", "--baseline", "reports/base")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(["*val_perplexity * REGRESSED beyond baseline *", "*sst2_acc * REGRESSED beyond*"])
    worse = json.loads((suite.path / "reports/worse/a/metrics.json").read_text())
    assert worse["gates"]["val_perplexity"]["ok"] is False and worse["val_perplexity"] is not None

    # a baseline made on other data is refused, not compared
    (suite.path / "data/wikitext-2-raw/validation.txt").write_text(" = Other = \n text . \n")
    refused = suite.runpytest(*args, "--run-id", "other", "--baseline", "reports/base", "-m", "perplexity")
    refused.stdout.fnmatch_lines(["*refused: wikitext-2-raw/validation.txt differs*"])


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


def test_bad_task_data_fails_that_task_with_file_and_line(suite):
    bad = suite.path / "data/smallbench/rte/validation.jsonl"
    bad.write_text(bad.read_text() + '{"sentence1": "x", "sentence2": "y", "label": 7, "idx": 99}\n')
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "-m", "smallbench")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*rte/validation.jsonl:13: label 7 out of range for rte (0..1)*"])


def test_latency_gate_needs_the_same_device_and_dtype():
    from lmeval_fixtures.gates import latency_gates, throughput_gates

    baseline = {"_source": "b", "environment": {"device": "cpu", "dtype": "float32"},
                "latency": {"1x128": {"timing": "taken", "mean_ms": 10.0}},
                "throughput": {"timing": "taken", "tokens_per_sec": 1000.0}}
    env = {"device": "cpu", "dtype": "float32"}
    assert latency_gates("1x128", {"mean_ms": 12.0}, env, baseline, 0.25)[0].ok
    slow = latency_gates("1x128", {"mean_ms": 13.0}, env, baseline, 0.25)[0]
    assert not slow.ok and "REGRESSED" in slow.message
    other = latency_gates("1x128", {"mean_ms": 1.0}, {"device": "cuda", "dtype": "float32"}, baseline, 0.25)[0]
    assert not other.ok and "refused: measured with device 'cpu'" in other.message
    assert throughput_gates(800.0, env, baseline, 0.25)[0].ok
    assert not throughput_gates(700.0, env, baseline, 0.25)[0].ok
