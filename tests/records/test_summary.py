"""summary.md (``records.summary``): every valid record renders; a task that predicts one class (or one choice
position) for every row is said so."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from lmeval_fixtures.core.schema import validate_record
from lmeval_fixtures.evaluation.run import Run
from lmeval_fixtures.records.fragments import load_failure, smallbench
from lmeval_fixtures.records.summary import render_summary
from lmeval_fixtures.suite.registry import Registry
from lmeval_fixtures.suite.smallbench import RowResult
from lmeval_fixtures.suite.tasks import TASKS

from ..helpers import FIGURES, ROOT, RUN, build, split_figures, task_result

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


SECTIONS = ["## Latency and throughput", "## Training", "## Reproducibility", "## Full model configuration",
            "## Items"]


def test_a_full_run_has_training_reproducibility_and_configuration_sections_after_the_figures():
    record = json.loads((ROOT / "reports/baselines/ci/ref-e25/metrics.json").read_text())
    text = render_summary(record, Registry.default().figure_table([record]), Registry.default())
    assert [text.index(s) for s in SECTIONS] == sorted(text.index(s) for s in SECTIONS)
    training = section(text, "## Training")
    assert "| train loss | 5.4297 |" in training
    assert f"| train perplexity | {math.exp(5.429708):.4f} |" in training  # exp(train loss), computed here
    assert "| source | checkpoint metadata |" in training
    assert "| step | 400 |" in training and "| tokens seen | 3,276,800 |" in training
    assert "not recorded" not in text
    reproducibility = section(text, "## Reproducibility")
    for row in ["| seed | 1234 |", "| git commit | d0ac4776ea5c93d6ed11b82081cc629eaa154ce1 |", "| device | cpu |",
                "| dtype | float32 |", "| python | 3.11.7 |", "| torch | 2.13.0+cpu |", "| tokenizers | 0.23.3 |",
                "| wikitext-2-raw/test.txt | `173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08` |",
                "Arguments (as recorded):\n\n```\nbenchmarks --data-dir ../shared/data --max-eval-tokens 20000 "
                "--max-samples 200 -p no:xdist -p no:cacheprovider --update-baseline ci\n```"]:
        assert row in reproducibility, row
    config = section(text, "## Full model configuration")
    block = config.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block) == record["checkpoint"]["config"]


def test_a_partial_run_says_what_was_not_recorded_instead_of_leaving_sections_out():
    failed = build([("b", "~checkpoint", load_failure("b", "/x/b.pt", "b: cannot load"))])["b"]
    failed["invocations"] = []
    text = render_summary(failed, FIGURES, Registry.default())
    assert [text.index(s) for s in SECTIONS] == sorted(text.index(s) for s in SECTIONS)
    assert "Train loss: not recorded (the checkpoint's metadata holds none" in section(text, "## Training")
    reproducibility = section(text, "## Reproducibility")
    assert "| git commit | not recorded |" in reproducibility  # RUN has no git commit
    assert "| seed | 1 |" in reproducibility
    assert "Data fingerprints: not recorded (no data was read)." in reproducibility
    assert "Command line: not recorded." in reproducibility
    assert section(text, "## Full model configuration").strip() == "_not recorded_ (checkpoint not loaded)"


def test_training_facts_given_by_the_loop_say_so_and_a_config_with_backticks_keeps_its_fence():
    loaded = {"checkpoint": {"name": "a", "path": "(in memory)", "config": {"note": "a ``` b ````"},
                             "training": {"train_loss": 2.0, "step": 7, "source": "MetricsLogger"}},
              "train_loss": 2.0, "total_params": 10}
    record = build([("a", "~checkpoint", loaded)])["a"]
    text = render_summary(record, FIGURES, Registry.default())
    training = section(text, "## Training")
    assert "| source | MetricsLogger |" in training and "| step | 7 |" in training
    assert f"| train perplexity | {math.exp(2.0):.4f} |" in training
    config = section(text, "## Full model configuration")
    assert config.strip().startswith("`````json\n") and config.strip().endswith("\n`````")


def section(text: str, heading: str) -> str:
    """The text of one ``## `` section of summary.md."""
    return text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]


def test_the_command_line_and_the_suites_arguments_of_each_invocation():
    record = build([("a", "t::x", {})], run=RUN | {"command": ["python -m pytest", "benchmarks", "-k", "a b"],
                                                    "args": ["benchmarks", "-k", "a b"]})["a"]
    record["invocations"].append({"timestamp": "t", "command": ["train.py", "--lr", "3e-4"],
                                  "args": ["lmeval_fixtures.evaluate", "<in-memory Transformer>", "name='step-3'"]})
    text = section(render_summary(record, FIGURES, Registry.default()), "## Reproducibility")
    assert ("Command lines that produced the run:\n\n```\npython -m pytest benchmarks -k 'a b'\n```\n\n"
            "```\ntrain.py --lr 3e-4\n```\n\nArguments to the suite:\n\n"
            "```\nlmeval_fixtures.evaluate(<in-memory Transformer>, name='step-3')\n```") in text
    assert "Arguments to the suite" not in text.split("train.py")[0]  # pytest's arguments are the command's
