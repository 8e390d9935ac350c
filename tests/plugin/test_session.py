"""What the session adds under the results table (``plugin.session.notices``): items the result cache gave,
and timings that are noise, one line each."""

from __future__ import annotations

from lmeval_fixtures.plugin.session import notices


def test_notices_name_cache_hits_and_noisy_timings_per_checkpoint():
    steady = {"timing": "taken", "mean_ms": 10.0, "median_ms": 10.0, "stddev_ms": 0.1, "iqr_ms": 0.1, "rounds": 20,
              "batch": 1, "seq": 128}
    records = {
        "a": {"cache": {"perplexity:wikitext:validation": {"from_run": "one"}},
              "latency": {"1x128": steady, "1x512": steady | {"seq": 512, "mean_ms": 8.0, "median_ms": 8.0}}},
        "b": {"latency": {"1x128": steady}},
    }
    assert notices(records) == [
        "a: 1 item(s) from the result cache, not recomputed (--refresh recomputes): perplexity:wikitext:validation",
        "a: latency_batch1_seq128 noisy: 1x128 (10 ms) slower than the longer 1x512 (8 ms); the machine was likely "
        "busy",
        "a: latency_batch1_seq512 noisy: 1x128 (10 ms) slower than the longer 1x512 (8 ms); the machine was likely "
        "busy",
    ]
