"""Timings that admit their noise (records/timing_noise.py over engine.timing.timing_noise): the spread and
the machine's load recorded, a noisy timing flagged (its own spread, or a shorter sequence slower than a longer
one), comparison.md bolding a timing only where the difference stands out of both timings' noise, and the latency
gate saying it does not judge a noisy timing."""

from __future__ import annotations

import math
import statistics

import pytest

from lmeval_fixtures.core.schema import validate_record
from lmeval_fixtures.engine.timing import NOISY_SPREAD, NOISY_STDDEV, summarise_ms, timing_noise, with_load
from lmeval_fixtures.records.comparison import render_comparison, verdict
from lmeval_fixtures.records.gates import GatePolicy, gates_for
from lmeval_fixtures.records.summary import render_summary
from lmeval_fixtures.records.timing_noise import noisy_timings, stands_out
from lmeval_fixtures.suite.figures import by_key
from lmeval_fixtures.suite.registry import Registry

SHAPES = [(1, 128), (1, 512)]
FIGURES = Registry.default().figure_table(latency_shapes=SHAPES)
CPU = {"device": "cpu", "dtype": "float32"}


def timing(mean: float, stddev: float = 0.0, rounds: int = 20, median: float | None = None, iqr: float = 0.0,
           seq: int = 128) -> dict:
    return {"timing": "taken", "mean_ms": mean, "median_ms": median or mean, "stddev_ms": stddev, "iqr_ms": iqr,
            "p95_ms": mean, "p99_ms": mean, "min_ms": mean, "max_ms": mean, "rounds": rounds, "batch": 1, "seq": seq,
            "timer": "time.perf_counter"}


def test_the_rounds_spread_is_recorded_and_judged_by_the_documented_thresholds():
    steady = summarise_ms([0.010, 0.0101, 0.0099, 0.010, 0.0102])
    ms = sorted(t * 1000 for t in [0.010, 0.0101, 0.0099, 0.010, 0.0102])
    assert steady["iqr_ms"] == pytest.approx(ms[3] - ms[1])  # five rounds: the quartiles are rounds 2 and 4
    assert steady["noisy"] is None
    busy = summarise_ms([0.010, 0.011, 0.030, 0.009, 0.025])  # quartiles 10 and 25 ms (rounds 2 and 4 sorted)
    assert busy["iqr_ms"] == pytest.approx(15.0) and busy["noisy"].startswith("noisy: rounds spread 1.36")
    outliers = summarise_ms([0.010] * 18 + [0.100, 0.110])  # quartiles untouched, two rounds far out
    assert outliers["iqr_ms"] == 0.0
    ratio = statistics.stdev([10.0] * 18 + [100.0, 110.0]) / statistics.fmean([10.0] * 18 + [100.0, 110.0])
    assert ratio > NOISY_STDDEV and outliers["noisy"] == f"noisy: standard deviation {ratio:.2f} of the mean " \
                                                         f"(above {NOISY_STDDEV})"
    # the rule reads the statistics alone, so a record written before "noisy" existed is judged alike
    assert timing_noise({"median_ms": 10.0, "iqr_ms": 10.0 * NOISY_SPREAD}) is None
    assert timing_noise({"median_ms": 10.0, "iqr_ms": 10.0 * NOISY_SPREAD * 1.01}) is not None
    assert timing_noise({"mean_ms": 10.0, "stddev_ms": 4.0}) is None


def test_each_timing_records_the_machine_load_around_it(monkeypatch):
    loads = iter([(0.5, 0.4, 0.3), (3.25, 1.0, 0.5)])
    monkeypatch.setattr("lmeval_fixtures.engine.timing.os.getloadavg", lambda: next(loads))
    monkeypatch.setattr("lmeval_fixtures.engine.timing.os.cpu_count", lambda: 2)
    stats = with_load(lambda: summarise_ms([0.01, 0.01]))
    assert (stats["load_before"], stats["load_after"], stats["cpus"]) == (0.5, 3.25, 2)
    record = {"latency": {"1x128": stats | {"timing": "taken", "batch": 1, "seq": 128, "timer": "t"}}}
    summary = "\n".join(line for line in _summary(record).splitlines() if "load" in line)
    assert "Machine load (1-minute average, 2 cores) around each timing: 1x128 0.5 to 3.25." in summary


def test_a_shorter_sequence_slower_than_a_longer_one_flags_both():
    record = {"latency": {"1x128": timing(285.6, 24.0), "1x512": timing(163.5, 10.0, seq=512),
                          "4x64": timing(500.0, 1.0) | {"batch": 4, "seq": 64}}}  # another batch: not compared
    found = noisy_timings(record)
    assert set(found) == {"latency_batch1_seq128", "latency_batch1_seq512"}
    assert found["latency_batch1_seq128"] == ("noisy: 1x128 (286 ms) slower than the longer 1x512 (164 ms); the "
                                              "machine was likely busy")
    assert noisy_timings({"latency": {"1x128": timing(100.0), "1x512": timing(300.0, seq=512)}}) == {}
    # its own spread flags one timing; a timing not taken is never judged
    spread = {"latency": {"1x128": timing(10.0, median=10.0, iqr=5.0),
                          "1x512": {"timing": "not taken", "reason": "xdist"}},
              "throughput": timing(50.0, stddev=40.0) | {"tokens_per_sec": 1000.0}}
    assert set(noisy_timings(spread)) == {"latency_batch1_seq128", "throughput_tokens_per_sec"}


def test_the_difference_must_stand_out_of_both_timings_noise():
    # standard errors of the means: 2/sqrt(16) = 0.5 ms and 1.5/sqrt(9) = 0.5 ms; their combination 0.707 ms
    a, b = timing(10.0, 2.0, rounds=16), timing(11.0, 1.5, rounds=9)
    z = 1.0 / math.hypot(0.5, 0.5)
    assert z < 1.96 and not stands_out(10.0, a, 11.0, b)
    c = timing(11.5, 1.5, rounds=9)
    assert 1.5 / math.hypot(0.5, 0.5) > 1.96 and stands_out(10.0, a, 11.5, c)
    assert not stands_out(10.0, {"timing": "taken", "mean_ms": 10.0}, 20.0, c)  # no statistics: no verdict


def _record(name: str, ms: float, stddev: float, rounds: int = 20, **entry) -> dict:
    return {"run_id": "r", "data_fingerprints": {}, "checkpoint": {"name": name, "tokenizer_sha256": "t"},
            "latency": {"1x128": timing(ms, stddev, rounds) | entry}, "latency_batch1_seq128": ms}


def test_comparison_bolds_a_timing_only_where_it_stands_out_of_the_noise():
    figure = by_key(FIGURES)["latency_batch1_seq128"]
    busy = [_record("a", 64.75, 51.0, rounds=5), _record("b", 70.0, 40.0, rounds=5)]
    label = {id(r): r["checkpoint"]["name"] for r in busy}
    found = verdict(figure, busy, label)
    assert not found.bold and found.why == "noisy timing (a, b)"
    text = render_comparison(busy, FIGURES, "latency_batch1_seq128")
    assert "**64.750**" not in text and "- latency 1x128 ms: a 64.750 vs runner-up b 70.000: noisy timing (a, b); " \
                                         "not bolded" in text
    close = [_record("a", 10.0, 1.0), _record("b", 10.2, 1.0)]  # 0.2 ms apart, standard error 0.32 ms
    label = {id(r): r["checkpoint"]["name"] for r in close}
    assert verdict(figure, close, label).why == "within the two timings' noise at the 0.05 level"
    apart = [_record("a", 10.0, 1.0), _record("b", 11.0, 1.0)]
    label = {id(r): r["checkpoint"]["name"] for r in apart}
    assert verdict(figure, apart, label).bold
    assert "**10.000**" in render_comparison(apart, FIGURES, "latency_batch1_seq128")


def test_the_latency_gate_says_it_does_not_judge_a_noisy_timing():
    baseline = {"_source": "b", "environment": CPU, "latency": {"1x128": timing(10.0, 0.5)}}
    policy = GatePolicy(0.01, 2.0, None, 0.25)
    [noisy] = gates_for({"latency": {"1x128": timing(40.0, 0.5, median=40.0, iqr=30.0)}}, FIGURES, baseline,
                        policy, CPU)
    assert noisy.ok and noisy.message.startswith("latency_batch1_seq128: not judged: this run's timing is noisy: ")
    noisy_baseline = baseline | {"latency": {"1x128": timing(10.0, 9.0, median=10.0, iqr=6.0)}}
    [theirs] = gates_for({"latency": {"1x128": timing(40.0, 0.5)}}, FIGURES, noisy_baseline, policy, CPU)
    assert theirs.ok and "not judged: the baseline's (b) timing is noisy" in theirs.message
    [steady] = gates_for({"latency": {"1x128": timing(40.0, 0.5)}}, FIGURES, baseline, policy, CPU)
    assert not steady.ok and "REGRESSED" in steady.message  # a steady timing is judged as before


def _summary(record: dict) -> str:
    full = {"run_id": "r", "timestamp": "t", "git_commit": None, "complete": True, "errors": [], "items": {},
            "checkpoint": {"name": "a", "path": "a", "sha256": None}, "total_params": None,
            "environment": {"device": "cpu", "dtype": "float32", "torch": "x"}} | record
    return render_summary(full, FIGURES, Registry.default())


def test_summary_flags_noisy_timings():
    text = _summary({"latency": {"1x128": timing(285.6, 24.0) | {"timer": "t"},
                                 "1x512": timing(163.5, 10.0, seq=512) | {"timer": "t"}}})
    assert "**Noisy timings** (gates do not judge them; comparison.md does not bold them):" in text
    assert "- latency_batch1_seq128: noisy: 1x128 (286 ms) slower than the longer 1x512 (164 ms)" in text
    assert "Noisy timings" not in _summary({"latency": {"1x128": timing(100.0, 1.0) | {"timer": "t"}}})


def test_the_new_timing_fields_validate_and_old_records_stay_valid():
    from ..helpers import build

    entry = summarise_ms([0.01, 0.012, 0.011]) | {"load_before": 0.5, "load_after": None, "cpus": 2,
                                                  "timing": "taken", "batch": 1, "seq": 128, "timer": "t"}
    validate_record(build([("a", "latency", {"latency": {"1x128": entry}})])["a"])
    old = {k: v for k, v in entry.items() if k not in ("iqr_ms", "noisy", "load_before", "load_after", "cpus")}
    validate_record(build([("a", "latency", {"latency": {"1x128": old}})])["a"])
    with pytest.raises(Exception, match="iqr_ms"):
        validate_record(build([("a", "latency", {"latency": {"1x128": entry | {"iqr_ms": -1.0}}})])["a"])
