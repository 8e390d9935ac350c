"""Regression gates (``records.gates``): a figure against a baseline or a floor, refused when measured otherwise.
(Gates through a run: e2e/test_ci_gate.py and e2e/test_paired_gate.py.)"""

import json

import pytest

from lmeval_fixtures.core.errors import BaselineError
from lmeval_fixtures.records.gates import GatePolicy, gates_for, load_baseline
from lmeval_fixtures.suite.registry import Registry

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


# ---- issue 25: a baseline gates only what it measured, and only for the checkpoint it names ------------


@pytest.mark.parametrize("fragment, says", [
    ({"latency": {"1x128": {"timing": "taken", "mean_ms": 10.0}}}, "latency_batch1_seq128 is not in it"),
    ({"throughput": {"timing": "taken", "tokens_per_sec": 10.0}}, "throughput_tokens_per_sec is not in it"),
    ({"smallbench": {"rte": {"acc": 0.5, "acc_stderr": 0.1, "prompt_set": "smallbench", "fewshot": 0,
                             "max_samples": None}}, "data_fingerprints": {}}, "is not in it"),
])
def test_a_gated_figure_the_baseline_lacks_fails_with_one_line(fragment, says):
    baseline = {"_source": "b.json", "environment": CPU, "data_fingerprints": {},
                "smallbench": {"sst2": {"acc": 0.5}}, "latency": {"1x256": {"timing": "taken", "mean_ms": 1.0}}}
    gates = gates_for(fragment, FIGURES, baseline, policy(), CPU)
    assert gates and all(not g.ok for g in gates)
    assert all(says in g.message and "refused" in g.message and "\n" not in g.message for g in gates)


def test_a_timing_the_baseline_did_not_take_fails():
    baseline = {"_source": "b.json", "environment": CPU,
                "latency": {"1x128": {"timing": "not taken", "reason": "xdist"}}}
    [gate] = gates_for({"latency": {"1x128": {"timing": "taken", "mean_ms": 5.0}}}, FIGURES, baseline, policy(), CPU)
    assert not gate.ok and "latency_batch1_seq128 is not taken there" in gate.message


@pytest.mark.parametrize("theirs, mine, ok", [(1234, 1234, True), (1234, 99, False), (None, 99, False)])
def test_a_baseline_drawn_with_another_seed_under_fewshot_is_refused(theirs, mine, ok):
    summary = {"acc": 0.5, "acc_stderr": 0.02, "prompt_set": "smallbench", "fewshot": 2, "max_samples": None}
    baseline = {"_source": "b", "data_fingerprints": {}, "environment": CPU,
                "smallbench": {"sst2": summary | ({"fewshot_seed": theirs} if theirs is not None else {})}}
    fragment = {"smallbench": {"sst2": summary | {"fewshot_seed": mine}}, "data_fingerprints": {}}
    [gate] = gates_for(fragment, FIGURES, baseline, policy(), CPU)
    assert gate.ok is ok
    if not ok:
        assert "measured with other fewshot_seed than the baseline (fewshot_seed 99 vs " in gate.message


@pytest.mark.parametrize("holder, asked", [("e25", "e35"), ("e35", "e25"), ("a", "b")])
def test_a_folder_record_of_another_checkpoint_is_refused(tmp_path, holder, asked):
    from ..helpers import build, write_report

    record = build([(holder, "~checkpoint", {"checkpoint": {"name": holder, "path": "p", "sha256": "1" * 64}})])[holder]
    write_report(record, tmp_path / "base" / asked)
    before = (tmp_path / "base" / asked / "metrics.json").read_bytes()
    with pytest.raises(BaselineError) as refused:
        load_baseline(tmp_path / "base", asked)
    assert str(refused.value) == (f"{tmp_path / 'base' / asked / 'metrics.json'}: holds the baseline of checkpoint "
                                  f"{holder!r}, not {asked!r}; refresh the folder with --update-baseline (it writes "
                                  "each record under its own name)")
    assert (tmp_path / "base" / asked / "metrics.json").read_bytes() == before
