"""The record (``records.record``): fragments merged in any order, flat fields derived from the nested record,
non-finite figures nulled and listed, invocations merged."""

import json
import math

import pytest

from lmeval_fixtures.core.errors import RecordMergeError
from lmeval_fixtures.core.schema import ORIGINAL_FIELDS, validate_record
from lmeval_fixtures.records.record import merge_records

from ..helpers import FIGURES, RUN, build, split_figures, write_report


def test_fragments_merge_the_same_in_any_order():
    fragments = [
        ("a", "t::x[val]", {"perplexity": {"validation": split_figures(1.0)}, "errors": ["e1"]}),
        ("a", "t::x[test]", {"perplexity": {"test": split_figures(2.0)}, "errors": ["e1", "e2"]}),
        ("a", "~checkpoint", {"total_params": 10, "checkpoint": {"name": "a", "path": "p"}}),
    ]
    built = [build(order)["a"] for order in (fragments, fragments[::-1])]
    assert built[0] == built[1]
    record = built[0]
    assert set(record["perplexity"]) == {"validation", "test"}
    assert record["errors"] == ["e1", "e2"]
    assert all(key in record for key in ORIGINAL_FIELDS)


def test_flat_fields_are_derived_from_the_nested_record():
    record = build([("a", "t::v", {"perplexity": {"validation": split_figures(3.0)}}),
                    ("a", "t::s", {"smallbench": {t: {"acc": acc, "acc_stderr": 0.1} for t, acc in
                                                  (("sst2", 0.5), ("rte", 0.6), ("boolq", 0.7), ("mrpc", 0.8))}}),
                    ("a", "t::l", {"latency": {"1x128": {"timing": "taken", "mean_ms": 4.0}}}),
                    ("a", "~checkpoint", {"train_loss": 2.0})])["a"]
    assert record["val_loss"] == 3.0 and record["val_perplexity"] == 8.0 and record["val_bits_per_byte"] == 1.5
    assert record["test_loss"] is None  # not measured: null, never absent
    assert record["smallbench_sentiment_acc"] == 0.5 and record["smallbench_paraphrase_acc"] == 0.8
    assert record["smallbench_avg_acc"] == pytest.approx((0.5 + 0.6 + 0.7 + 0.8) / 4)
    assert record["latency_batch1_seq128"] == 4.0 and record["latency_batch1_seq512"] is None
    assert record["train_perplexity"] == pytest.approx(7.38905609893065)


def test_the_average_is_exactly_rounded_whatever_the_python():
    """These four accuracies (a real run's) add up one unit in the last place higher left to right,
    as builtin sum does before Python 3.12, than exactly rounded, as it does from 3.12 on: the
    record must hold the same float on both."""
    accs = {"sst2": 0.5091743119266054, "rte": 0.5270758122743683, "boolq": 0.3782874617737003,
            "mrpc": 0.3161764705882353}
    record = build([("a", "t::s", {"smallbench": {t: {"acc": acc} for t, acc in accs.items()}})])["a"]
    left_to_right = 0.0
    for acc in accs.values():
        left_to_right += acc
    assert left_to_right != math.fsum(accs.values())  # the case is a real one
    assert record["smallbench_avg_acc"] == math.fsum(accs.values()) / 4


def test_the_average_needs_every_task():
    record = build([("a", "t::s", {"smallbench": {"sst2": {"acc": 0.5}}})])["a"]
    assert record["smallbench_sentiment_acc"] == 0.5 and record["smallbench_avg_acc"] is None


def test_non_finite_figures_become_null_and_are_listed(tmp_path):
    record = build([("a", "t::x", {"perplexity": {"validation": split_figures(
        float("nan"), token_perplexity=float("inf"))}})])["a"]
    assert record["val_loss"] is None and record["val_perplexity"] is None
    assert record["perplexity"]["validation"]["loss"] is None
    assert any("perplexity.validation.loss is nan" in e for e in record["errors"])
    assert any("val_perplexity is inf" in e for e in record["errors"])
    paths = write_report(record, tmp_path / "a")
    text = paths[0].read_text()
    assert "NaN" not in text and "Infinity" not in text
    validate_record(json.loads(text))


def test_merging_invocations_keeps_earlier_figures_and_refuses_other_weights():
    identity = {"checkpoint": {"name": "a", "path": "p", "sha256": "aa"}}
    first = build([("a", "p", {"perplexity": {"validation": split_figures(1.0)}} | identity)])["a"]
    second = build([("a", "l", {"latency": {"1x128": {"timing": "taken", "mean_ms": 3.0}}} | identity)],
                   RUN | {"timestamp": "2026-01-02T00:00:00+00:00"})["a"]
    merged = merge_records(first, second, FIGURES)
    assert merged["val_loss"] == 1.0 and merged["latency_batch1_seq128"] == 3.0
    assert len(merged["invocations"]) == 2
    validate_record(merged)
    other = build([("a", "l", {"checkpoint": {"name": "a", "path": "p", "sha256": "bb"}})])["a"]
    with pytest.raises(RecordMergeError, match="weights differ"):
        merge_records(first, other, FIGURES)


# ---- issue 25: merge knows the shards from the records -----------------------------------------------


def sharded(name: str, *shards: str, commit: str | None = "c1") -> dict:
    return {"checkpoint": {"name": name},
            "invocations": [{"timestamp": "t", "git_commit": commit, "args": [], "shard": s} for s in shards]}


@pytest.mark.parametrize("records, problem", [
    ([sharded("a", "1/2"), sharded("a", "1/2")], "shard 2/2 missing (its items were not run); shard 1/2 given more "
                                                 "than once"),
    ([sharded("a", "1/3"), sharded("a", "3/3")], "shard 2/3 missing (its items were not run)"),
    ([sharded("a", "1/2"), sharded("a", "2/2"), sharded("a", "2/2")], "shard 2/2 given more than once"),
    ([sharded("a", "1/2"), sharded("a", "2/3")], "shards of different splits (1/2, 2/3)"),
    ([sharded("a", "1/2"), sharded("a", "2/2", commit="c2")], "shards made by different code (git commits c1, c2)"),
])
def test_shard_coverage_names_what_is_missing_repeated_or_made_otherwise(records, problem):
    from lmeval_fixtures.records.record import shard_coverage

    assert shard_coverage(records) == problem


def test_whole_shards_and_unsharded_records_have_no_problem():
    from lmeval_fixtures.records.record import shard_coverage

    assert shard_coverage([sharded("a", "1/2"), sharded("a", "2/2"), sharded("c")]) is None
    assert shard_coverage([sharded("a", "1/2", "2/2")]) is None  # one record already merged from both
    # a shard may hold only some checkpoints' items: shards count over the whole run
    assert shard_coverage([sharded("a", "1/3"), sharded("b", "2/3"), sharded("a", "3/3"), sharded("b", "3/3")]) is None
    assert shard_coverage([sharded("a", "1/2"), sharded("b", "1/2")]) == "shard 2/2 missing (its items were not run)"


@pytest.mark.parametrize("shard", ["1/100000000000", "1/10001", "²/3", "١/٢", "0/2", "3/2", "1/2/3", 5, ["1/2"], ""])
def test_a_shard_no_run_could_write_is_named_never_counted_up_to(shard):
    """A hand-edited record's shard is not trusted to say how many shards there are: ``1/100000000000``
    once meant a loop over a hundred billion names before ``merge`` said anything."""
    from lmeval_fixtures.records.record import shard_coverage

    problem = shard_coverage([sharded("a", shard), sharded("a", "1/2"), sharded("a", "2/2")])
    assert problem == f"shard {repr(shard)[:40]} is not I/N with 1 <= I <= N <= 10,000"


def test_many_missing_shards_are_named_five_and_counted():
    from lmeval_fixtures.records.record import shard_coverage

    assert shard_coverage([sharded("a", "2/10000")]) == ("shard 1/10000, 3/10000, 4/10000, 5/10000, 6/10000 and "
                                                         "9,994 more missing (its items were not run)")
