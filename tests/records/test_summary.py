"""summary.md (``records.summary``): every valid record renders; a task that predicts one class (or one choice
position) for every row is said so."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lmeval_fixtures.core.schema import validate_record
from lmeval_fixtures.evaluation.run import Run
from lmeval_fixtures.records.fragments import smallbench
from lmeval_fixtures.records.summary import render_summary
from lmeval_fixtures.suite.registry import Registry
from lmeval_fixtures.suite.smallbench import RowResult
from lmeval_fixtures.suite.tasks import TASKS

from ..helpers import FIGURES, RUN, split_figures, task_result

record_fragments = st.fixed_dictionaries({}, optional={
    "perplexity": st.fixed_dictionaries({"validation": st.builds(
        split_figures, st.floats(0, 50), token_perplexity=st.floats(1, 1e6) | st.none())}),
    "smallbench": st.fixed_dictionaries({"boolq": st.builds(
        lambda acc, n: {"n": n, "acc": acc, "acc_stderr": 0.01, "acc_norm": acc, "acc_norm_stderr": 0.01,
                        "prompt_set": "smallbench", "fewshot": 0}, st.floats(0, 1), st.integers(1, 5000))}),
    "total_params": st.integers(1, 10**9),
    "errors": st.lists(st.text(max_size=20), max_size=2),
})


@settings(max_examples=60, deadline=None)
@given(record_fragments)
def test_every_valid_record_validates_and_renders(fragment):
    run = Run(RUN)
    run.absorb([("a", "t::x", fragment)])
    record = run.records()["a"]
    validate_record(record)
    text = render_summary(record, FIGURES, Registry.default())
    assert text.startswith("# a: lmeval-fixtures summary")


def test_one_class_for_every_row_is_recorded_and_stated_in_the_summary():
    single = [RowResult(i, i % 2, [-1.0, -2.0 - i], [False, False], "Q:") for i in range(6)]
    mixed = [RowResult(i, i % 2, [-1.0, -2.0 + 2 * (i % 2)], [False, False], "Q:") for i in range(6)]
    fragments = [("a", "t::boolq", smallbench(TASKS["boolq"], task_result(single, ("no", "yes")), {})),
                 ("a", "t::sst2", smallbench(TASKS["sst2"], task_result(mixed, ("negative", "positive")), {}))]
    recorder = Run(RUN)
    recorder.absorb(fragments)
    record = recorder.records()["a"]
    validate_record(record)
    assert record["smallbench"]["boolq"]["single_class"] is True
    assert record["smallbench"]["boolq"]["predicted_classes"] == 1
    assert record["smallbench"]["sst2"]["single_class"] is False
    assert record["smallbench"]["sst2"]["predicted_classes"] == 2
    text = render_summary(record, Registry.default().figure_table([record]), Registry.default())
    assert '- boolq predicts one class for every row ("no" on all 6 rows): its accuracy 0.5000' in text
    assert "sst2 predicts one class" not in text
    assert "| majority | acc - majority | classes | margin | ± SE | gold bits/byte |" in text


def test_summary_names_the_position_a_single_class_per_row_task_predicts():
    from lmeval_fixtures.records.summary import _single_class_lines

    bench = {"quiz": {"single_class": True, "prediction_counts": [0, 5], "n": 5, "acc": 0.2, "prompt_set": "x",
                      "choices_per_row": True, "rows_by_choice_count": {"2": 5}}}
    line = _single_class_lines(bench, Registry())[1]
    assert "quiz predicts the same choice position for every row (choice 1 of each row's own list" in line
