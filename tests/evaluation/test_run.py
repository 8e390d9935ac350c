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
