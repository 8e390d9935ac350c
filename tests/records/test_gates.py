"""Regression gates, end to end: a run, then the same run gated against it."""

import json
from pathlib import Path

import pytest

from lmeval_fixtures.core.errors import BaselineError
from lmeval_fixtures.records.gates import GatePolicy, gates_for, load_baseline
from lmeval_fixtures.suite.registry import Registry

from .conftest import write_native_checkpoint, write_wikitext
from .test_plugin import BENCHMARK

SMALLBENCH = (Path(__file__).parents[1] / "benchmarks" / "test_smallbench.py").read_text()
FIGURES = Registry.default().figure_table(latency_shapes=[(1, 128)])
CPU = {"device": "cpu", "dtype": "float32"}


def policy(ppl=0.01, acc_se=2.0, min_acc=None, latency=0.25) -> GatePolicy:
    return GatePolicy(ppl, acc_se, min_acc, latency)


def by_name(gates) -> dict:
    return {g.name: g for g in gates}


def test_perplexity_gate_passes_within_and_fails_beyond_tolerance():
    figures = {"token_perplexity": 101.0, "bits_per_byte": 2.0, "stride": 64, "context_length": 64,
               "max_eval_tokens": None, "detokenized": True}
    fragment = {"perplexity": {"validation": figures}, "data_fingerprints": {"f": "abc"}}
    baseline = {"_source": "base.json", "data_fingerprints": {"f": "abc"}, "environment": CPU,
                "perplexity": {"validation": figures | {"token_perplexity": 100.0}}}
    ok = gates_for(fragment, FIGURES, baseline, policy(ppl=0.02), CPU)
    assert sorted(g.name for g in ok) == ["val_bits_per_byte", "val_perplexity"] and all(g.ok for g in ok)
    bad = by_name(gates_for(fragment, FIGURES, baseline, policy(ppl=0.005), CPU))
    assert not bad["val_perplexity"].ok and bad["val_bits_per_byte"].ok
    assert "val_perplexity 101 REGRESSED beyond baseline 100" in bad["val_perplexity"].message
    assert "base.json" in bad["val_perplexity"].message
    assert gates_for(fragment, FIGURES, None, policy(), CPU) == []  # no baseline, no floor: nothing to gate


def test_baseline_on_other_data_or_settings_is_refused():
    figures = {"token_perplexity": 1.0, "bits_per_byte": 1.0, "stride": 64, "context_length": 64,
               "max_eval_tokens": None, "detokenized": True}
    baseline = {"_source": "b.json", "data_fingerprints": {"f": "abc"}, "environment": CPU,
                "perplexity": {"validation": dict(figures)}}
    fragment = {"perplexity": {"validation": figures}, "data_fingerprints": {"f": "xyz"}}
    refused = gates_for(fragment, FIGURES, baseline, policy(ppl=0.1), CPU)
    assert refused and all(not g.ok and "refused: f differs" in g.message for g in refused)
    fragment = {"perplexity": {"validation": figures | {"stride": 32}}, "data_fingerprints": {"f": "abc"}}
    other = gates_for(fragment, FIGURES, baseline, policy(ppl=0.1), CPU)
    assert other and all(not g.ok and "other stride" in g.message for g in other)


def test_accuracy_gate_counts_standard_errors_and_the_floor_keeps_its_own_verdict():
    summary = {"acc": 0.50, "acc_stderr": 0.02, "prompt_set": "smallbench", "fewshot": 0, "max_samples": None}
    fragment = {"smallbench": {"sst2": summary}, "data_fingerprints": {}}
    baseline = {"_source": "b", "data_fingerprints": {}, "environment": CPU,
                "smallbench": {"sst2": summary | {"acc": 0.53}}}
    [ok] = gates_for(fragment, FIGURES, baseline, policy(acc_se=2.0), CPU)  # 0.50 >= 0.53 - 2*0.02
    assert ok.ok and ok.name == "smallbench_sentiment_acc"
    [failed] = gates_for(fragment, FIGURES, baseline, policy(acc_se=1.0), CPU)
    assert not failed.ok and "limit 0.5100" in failed.message
    both = by_name(gates_for(fragment, FIGURES, baseline, policy(min_acc=0.6), CPU))
    assert both["smallbench_sentiment_acc"].ok
    assert not both["smallbench_sentiment_acc_floor"].ok
    assert "BELOW the floor 0.6000" in both["smallbench_sentiment_acc_floor"].message
    other_prompts = baseline | {"smallbench": {"sst2": summary | {"prompt_set": "lm-eval"}}}
    [refused] = gates_for(fragment, FIGURES, other_prompts, policy(), CPU)
    assert not refused.ok and "measured with other prompt_set" in refused.message
    [other_dtype] = gates_for(fragment, FIGURES, baseline, policy(), {"device": "cpu", "dtype": "bfloat16"})
    assert not other_dtype.ok and "measured with dtype 'float32', this run uses 'bfloat16'" in other_dtype.message


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
    assert record["gates"]["val_perplexity"]["ok"] and record["gates"]["smallbench_sentiment_acc"]["ok"]

    # make the baseline better than this model can be: the gates must fail, with the figures in the message
    path = suite.path / "reports/base/a/metrics.json"
    base = json.loads(path.read_text())
    base["perplexity"]["validation"]["token_perplexity"] /= 2
    base["smallbench"]["sst2"]["acc"] = 1.0
    path.write_text(json.dumps(base))
    result = suite.runpytest(*args, "--run-id", "worse", "--baseline", "reports/base")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(["*val_perplexity * REGRESSED beyond baseline *",
                                 "*smallbench_sentiment_acc * REGRESSED beyond*"])
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
    result.assert_outcomes(passed=3, errors=1)  # bad input errors at set-up, as a bad checkpoint does
    result.stdout.fnmatch_lines(["*rte/validation.jsonl:13: label 7 out of range for rte (0..1)*"])


def test_latency_gate_needs_the_same_device_and_dtype():
    baseline = {"_source": "b", "environment": CPU,
                "latency": {"1x128": {"timing": "taken", "mean_ms": 10.0}},
                "throughput": {"timing": "taken", "tokens_per_sec": 1000.0}}

    def latency(ms, environment=CPU):
        [gate] = gates_for({"latency": {"1x128": {"timing": "taken", "mean_ms": ms}}}, FIGURES, baseline,
                           policy(latency=0.25), environment)
        return gate

    assert latency(12.0).ok and latency(12.0).name == "latency_batch1_seq128"
    assert not latency(13.0).ok and "REGRESSED" in latency(13.0).message
    other = latency(1.0, {"device": "cuda", "dtype": "float32"})
    assert not other.ok and "refused: measured with device 'cpu'" in other.message

    def throughput(tokens):
        [gate] = gates_for({"throughput": {"timing": "taken", "tokens_per_sec": tokens}}, FIGURES, baseline,
                           policy(latency=0.25), CPU)
        return gate

    assert throughput(800.0).ok and not throughput(700.0).ok
    not_taken = {"latency": {"1x128": {"timing": "not taken", "reason": "xdist"}}}
    assert gates_for(not_taken, FIGURES, baseline, policy(), CPU) == []
