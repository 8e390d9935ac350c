"""The run (``evaluation.run``): its records do not depend on the order fragments arrive in, nor on which
worker recorded them."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lmeval_fixtures.evaluation.run import Run

from ..helpers import RUN

fragment_values = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                            st.text(max_size=5))


fragments = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.text(alphabet="xyz:[]", min_size=1, max_size=6),
              st.dictionaries(st.sampled_from(["validation", "test", "extra"]),
                              st.dictionaries(st.sampled_from(["loss", "bits_per_byte", "note"]), fragment_values,
                                              max_size=2), max_size=2)
              .map(lambda splits: {"perplexity": splits})),
    max_size=8, unique_by=lambda f: (f[0], f[1]))


@settings(max_examples=60, deadline=None)
@given(fragments, st.randoms(use_true_random=False))
def test_records_do_not_depend_on_fragment_order_or_sharding(items, random):
    def build(order):
        run = Run(RUN)
        run.absorb(order)
        return run.records()

    whole = build(items)
    shuffled = list(items)
    random.shuffle(shuffled)
    assert build(shuffled) == whole
    # fragments recorded by workers, shipped as JSON (as with each test report), absorbed by one controller
    half = len(items) // 2
    controller = Run(RUN)
    for part in (items[:half], items[half:]):
        worker = Run({})
        for fragment in part:
            worker.record(*fragment)
        controller.absorb(json.loads(json.dumps(worker.take_pending())))
    assert controller.records() == whole


def test_a_run_whose_every_item_skipped_writes_nothing_and_says_why(tmp_path):
    run = Run(dict(RUN))
    run.add_outcome("a", "test_perplexity[a-validation]", "skipped", "WikiText-2: no --data-dir and no hub", 0.1)
    run.add_outcome("a", "test_smallbench[a-sst2]", "skipped", "SST-2: no --data-dir and no hub", 0.1)
    done = run.finish(tmp_path / "reports" / "r1", history=tmp_path / "reports" / "history.jsonl",
                      compare_by="val_bits_per_byte", run_id="r1")
    assert done.nothing_measured == ("lmeval-fixtures: every selected item (2) skipped, so nothing was measured and "
                                     "no report or history line was written; the first reason: WikiText-2: no "
                                     "--data-dir and no hub")
    assert not done.paths and not done.errors and not (tmp_path / "reports").exists()
    run.add_outcome("a", "test_latency[a-1x128]", "failed", "timer broken", 0.1)  # anything not skipped: reported
    assert run.nothing_measured() is None
    done = run.finish(tmp_path / "reports" / "r1", history=tmp_path / "reports" / "history.jsonl",
                      compare_by="val_bits_per_byte", run_id="r1")
    assert done.nothing_measured is None and (tmp_path / "reports" / "history.jsonl").is_file()
