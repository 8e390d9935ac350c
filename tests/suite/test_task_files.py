"""--task-file FILE (``suite.task_files`` and the rows it reads, ``suite.doc_prompts``): our task-file format
and lm-evaluation-harness's multiple_choice YAML, every field each reads, each lm-eval feature refused
(one line naming the key), choices that differ from row to row (from a field or lm-eval's Jinja) and the
rows refused; and the proof that lm-eval's own glue/sst2, glue/rte and arc_easy files give what lm-eval
gives (skipped without lm-evaluation-harness)."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from lmeval_fixtures import Registry
from lmeval_fixtures.core.errors import DataError, DataUnavailable, TaskFileError, UsageError
from lmeval_fixtures.suite.declarations import declare
from lmeval_fixtures.suite.doc_prompts import DOC
from lmeval_fixtures.suite.figures import task_figure_key
from lmeval_fixtures.suite.smallbench import evaluate_task, fewshot_prefix
from lmeval_fixtures.suite.sources import Hub
from lmeval_fixtures.suite.task_files import load_task_file
from lmeval_fixtures.suite.task_rows import load_task_rows
from lmeval_fixtures.suite.tasks import TASKS

from ..helpers import (
    ARC_GOLD,
    QUIZ,
    REVIEWS,
    ROOT,
    arc_rows,
    arc_task_file,
    jsonl,
    lmeval_task,
    quiz_file,
    rows_of,
    write,
)


def test_our_format_reads_every_field(tmp_path):
    jsonl(tmp_path / "data/a.jsonl", [{"text": t, "gold": g} for t, g in REVIEWS[:2]])
    jsonl(tmp_path / "data/b.jsonl", [{"text": t, "gold": g} for t, g in REVIEWS[2:]])
    jsonl(tmp_path / "shots.jsonl", [{"text": "great fun", "gold": 1}, {"text": "a bore", "gold": 0}])  # or indices
    path = write(tmp_path / "reviews.yaml", "\n".join([
        "name: reviews",
        "label: My reviews",
        "data: [data/a.jsonl, data/b.jsonl]",
        "fewshot_data: shots.jsonl",
        'template: "Review: {text}\\nVerdict:"',
        "choices: [bad, good]",
        "label_field: gold",
        'target_delimiter: "\\n"',
        'fewshot_delimiter: "\\n\\n"',
    ]))
    task = load_task_file(path)
    assert (task.name, task.display, task.split, task.fewshot_split) == ("reviews", "My reviews", "validation", "train")
    assert task_figure_key(task) == "smallbench_reviews_acc" and task.num_fewshot is None
    prompt = task.prompts["smallbench"]
    assert task.prompts["lm-eval"] is prompt  # one prompt serves every --prompts set
    assert prompt.choices == ("bad", "good") and prompt.continuations() == ["\nbad", "\ngood"]
    rows, source = load_task_rows(task, "validation", None, Hub())
    assert [r["label"] for r in rows] == [1, 0, 1, 0] and [r["idx"] for r in rows] == [0, 1, 2, 3]
    assert rows[0][DOC] == {"text": REVIEWS[0][0], "gold": "good"}  # the document as read
    assert prompt.context(rows[0]) == f"Review: {REVIEWS[0][0]}\nVerdict:"
    assert set(source.fingerprints) == {"reviews/reviews.yaml", "reviews/validation/a.jsonl",
                                        "reviews/validation/b.jsonl"}
    assert [r["label"] for r in rows_of(task, "train")] == [1, 0]


def test_solved_examples_use_the_target_delimiter(tmp_path, tiny_lm):
    jsonl(tmp_path / "v.jsonl", [{"text": t, "label": g} for t, g in REVIEWS])
    jsonl(tmp_path / "t.jsonl", [{"text": "great fun", "label": "good"}, {"text": "a bore", "label": "bad"}])
    path = write(tmp_path / "t.yaml", "name: t\ndata: v.jsonl\nfewshot_data: t.jsonl\ntemplate: '{text} ->'\n"
                                      "choices: [bad, good]\ntarget_delimiter: ' => '\n")
    task = load_task_file(path)
    result = evaluate_task(*tiny_lm, task, rows_of(task), 128, fewshot=1, fewshot_pool=rows_of(task, "train"))
    for row in result.rows:
        shot, rest = row.context.split("\n\n")
        assert shot in ("great fun -> => good", "a bore -> => bad") and rest.endswith(" ->")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_our_format_reads_tables_and_a_choice_field(tmp_path, suffix):
    table = datasets.Dataset.from_dict({"n": [3, 4, 5], "options": [["odd", "even"]] * 3, "label": [0, 1, 0]})
    (table.to_csv if suffix == ".csv" else table.to_parquet)(str(tmp_path / f"rows{suffix}"))
    if suffix == ".csv":  # a CSV cell holds text, not a list: the choices come from the file
        path = write(tmp_path / "t.yaml", "name: parity\ndata: rows.csv\ntemplate: 'Is {n} odd or even?'\n"
                                          "choices: [odd, even]\n")
    else:
        path = write(tmp_path / "t.yaml", "name: parity\ndata: rows.parquet\ntemplate: 'Is {n} odd or even?'\n"
                                          "choice_field: options\n")
    task = load_task_file(path)
    assert task.prompts["smallbench"].choices == ("odd", "even")
    rows = rows_of(task)
    assert [task.prompts["smallbench"].context(r) for r in rows][0] == "Is 3 odd or even?"
    assert [r["label"] for r in rows] == [0, 1, 0]


def test_a_choice_field_that_differs_between_rows_gives_each_row_its_own(tmp_path):
    """(test_smallbench.py scores such tasks.)"""
    jsonl(tmp_path / "v.jsonl", [{"q": "x", "options": ["a", "b"], "label": 0},
                                 {"q": "y", "options": ["a", "c", "d"], "label": "d"}])
    path = write(tmp_path / "t.yaml", "name: t\ndata: v.jsonl\ntemplate: '{q}'\nchoice_field: options\n")
    task = load_task_file(path)
    assert task.prompts["smallbench"].choices == ()
    rows = rows_of(task)
    assert [task.prompts["smallbench"].row_choices(r) for r in rows] == [("a", "b"), ("a", "c", "d")]
    assert [r["label"] for r in rows] == [0, 2]


def test_rows_that_all_give_the_same_choices_keep_one_list(tmp_path, tiny_lm):
    same = [(q, ["yes", "no"], i % 2) for i, (q, _, _) in enumerate(QUIZ)]
    task = load_task_file(quiz_file(tmp_path, same))
    assert task.prompts["smallbench"].choices == ("yes", "no")
    result = evaluate_task(*tiny_lm, task, rows_of(task), 128)
    assert not result.choices_per_row and "choices_per_row" not in result.summary()


@pytest.mark.parametrize(("lines", "message"), [
    (["name: t", "data: v.jsonl", "template: '{q}'", "choices: [a, b]", "prompt: x"],
     "prompt: not a key of a task file"),
    (["data: v.jsonl", "template: '{q}'", "choices: [a, b]"], "name: missing"),
    (["name: t", "data: v.jsonl", "choices: [a, b]"], "template: missing"),
    (["name: t", "template: '{q}'", "choices: [a, b]"], "data: missing"),
    (["name: t", "data: v.jsonl", "template: '{q}'"], "choices: give either choices"),
    (["name: t", "data: v.jsonl", "template: '{q}'", "choices: [a]", "choice_field: c"], "choices: give either"),
    (["name: t", "data: v.jsonl", "template: '{q}'", "choices: [a, '']"], "choices: choices must give a non-empty"),
    (["name: t", "data: v.jsonl", "template: '{0}'", "choices: [a, b]"], "template: {0}: use plain {field}"),
    (["name: t", "data: v.jsonl", "template: '{q.upper}'", "choices: [a, b]"], "template: {q.upper}: use plain"),
    (["name: t", "data: v.jsonl", "template: 42", "choices: [a, b]"], "template: expected text, got int"),
    (["name: t", "data: gone.jsonl", "template: '{q}'", "choices: [a, b]"], "data: gone.jsonl does not exist"),
    (["name: t", "data: '*.parquet'", "template: '{q}'", "choices: [a, b]"], "data: *.parquet matches no file"),
    (["name: t", "data: v.txt", "template: '{q}'", "choices: [a, b]"], "data: use files of one kind"),
    (["name: t", "data: v.jsonl", "fewshot_data: v.csv", "template: '{q}'", "choices: [a, b]"],
     "fewshot_data: use files of the same kind as data"),
])
def test_our_format_refuses_what_cannot_work_naming_the_key(tmp_path, lines, message):
    jsonl(tmp_path / "v.jsonl", [{"q": "x", "label": 0}])
    write(tmp_path / "v.txt", "x")
    write(tmp_path / "v.csv", "q,label\nx,0\n")
    path = write(tmp_path / "t.yaml", "\n".join(lines) + "\n")
    with pytest.raises(TaskFileError) as caught:
        load_task_file(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("row", "message"), [
    ({"q": "x", "label": "maybe"}, r"row 0: label_field 'label' value 'maybe' is not one of the choices"),
    ({"q": "x", "label": 2}, r"row 0: label_field 'label' value 2 is not an index of the 2 choices"),
    ({"q": "x"}, r"row 0: label_field 'label' is not a field of the row \(fields: q\)"),
    ({"r": "x", "label": 0}, r"row 0: template refers to \{q\}, which is not a field of the row"),
    ({"q": None, "label": 0}, r"row 0: template refers to \{q\}, which is empty"),
])
def test_bad_rows_fail_the_item_naming_file_and_row(tmp_path, row, message):
    jsonl(tmp_path / "v.jsonl", [row])
    task = load_task_file(write(tmp_path / "t.yaml", "name: t\ndata: v.jsonl\ntemplate: '{q}'\nchoices: [a, b]\n"))
    with pytest.raises(DataError, match=rf"task 't' \(t.yaml\): \S*v.jsonl {message}"):
        rows_of(task)
    with pytest.raises(DataUnavailable, match="names no train data .*fewshot_data in our format"):
        rows_of(task, "train")


@pytest.mark.parametrize(("rows", "message"), [
    ([("a", ["x", "y"], 0), ("b", ["only"], 0)],
     r"row 1: it has 1 choice \['only'\]; a row needs at least 2 to be scored"),
    ([("a", ["x", "y"], 0), ("b", ["x", "y", "z"], 3)],
     r"row 1: label_field 'answer' value 3 is not an index of the 3 choices"),
    ([("a", ["x", "y", "z"], 2), ("b", ["x", "y"], 2)],
     r"row 1: label_field 'answer' value 2 is not an index of the 2 choices"),
    ([("a", ["x", "y"], "y"), ("b", ["p", "q"], "y")],
     r"row 1: label_field 'answer' value 'y' is not one of the choices \['p', 'q'\]"),
    ([("a", ["x", "y"], 0), ("b", [], 0)], r"row 1: choice_field 'options' must give a non-empty list"),
])
def test_a_row_that_cannot_be_scored_against_its_own_choices_fails_the_item(tmp_path, rows, message):
    task = load_task_file(quiz_file(tmp_path, rows))  # start-up reads the file; the item names the row
    with pytest.raises(DataError, match=rf"^task 'quiz' \(\S+.yaml\): \S*quiz.jsonl {message}") as caught:
        rows_of(task)
    assert "\n" not in str(caught.value)


def test_a_bad_solved_example_names_the_fewshot_file(tmp_path):
    task = load_task_file(quiz_file(tmp_path))
    jsonl(tmp_path / "shots.jsonl", [{"q": "x", "options": ["a", "b"], "answer": 0},
                                     {"q": "y", "options": ["a", "b"], "answer": "c"}])
    with pytest.raises(DataError, match=r"shots.jsonl row 1: label_field 'answer' value 'c' is not one of the "):
        rows_of(task, "train")


def test_lmeval_format_reads_its_fields_through_an_include(tmp_path):
    path = lmeval_task(tmp_path, "task_alias: Reviews\ntarget_delimiter: ':'\nnum_fewshot: 0")
    task = load_task_file(path)
    assert (task.name, task.display, task.split, task.fewshot_split, task.num_fewshot) == (
        "local_reviews", "Reviews", "validation", "train", 0)
    prompt = task.prompts["lm-eval"]
    assert prompt.choices == ("bad", "good") and prompt.continuations() == [":bad", ":good"]
    rows, source = load_task_rows(task, "validation", None, Hub())
    assert [r["label"] for r in rows] == [1, 0, 1, 0]
    assert prompt.context(rows[0]) == f"{REVIEWS[0][0]}\nQuestion: good or bad?\nAnswer:"
    assert set(source.fingerprints) == {"local_reviews/reviews.yaml", "local_reviews/include/reviews/default.yaml",
                                        "local_reviews/validation/validation.jsonl"}
    assert [r["label"] for r in rows_of(task, "train")] == [1, 0]


@pytest.mark.parametrize(("extra", "split", "fewshot_split"), [
    ("", "validation", "train"),
    ("test_split: train", "train", "train"),  # lm-eval evaluates test_split when there is one
    ("training_split: null", "validation", "validation"),  # few-shot falls back to the validation split
    ("fewshot_split: validation", "validation", "validation"),
])
def test_lmeval_splits(tmp_path, extra, split, fewshot_split):
    task = load_task_file(lmeval_task(tmp_path, extra))
    assert (task.split, task.fewshot_split) == (split, fewshot_split)


def test_lmeval_data_files_without_splits_are_the_train_split(tmp_path):
    path = lmeval_task(tmp_path)
    path.write_text(path.read_text().replace("{validation: validation.jsonl, train: train.jsonl}", "validation.jsonl"))
    with pytest.raises(TaskFileError, match=r"dataset_kwargs.data_files: has no validation split \(it has train\)"):
        load_task_file(path)
    path.write_text(path.read_text() + "validation_split: train\n")
    assert len(rows_of(load_task_file(path))) == 4


@pytest.mark.parametrize(("choice", "target", "labels"), [
    ("['bad', 'good']", "label", [1, 0, 1, 0]),
    ("{a: bad, b: good}", "label", [1, 0, 1, 0]),  # a mapping's values, as lm-eval reads one
    ("\"{{['bad', 'good']}}\"", "\"{{label}}\"", [1, 0, 1, 0]),  # rendered digits are an index
    ("\"{{['bad', 'good']}}\"", "\"{{['bad', 'good'][label]}}\"", [1, 0, 1, 0]),  # rendered text is a choice
    ("options", "answer", [1, 1, 1, 1]),  # field names; the choice field the same in every row
    ("\"{{options}}\"", "1", [1, 1, 1, 1]),  # an index for every row
])
def test_lmeval_doc_to_choice_and_doc_to_target_forms(tmp_path, choice, target, labels):
    rows = [{"sentence": t, "label": ["bad", "good"].index(g), "options": ["bad", "good"], "answer": "good"}
            for t, g in REVIEWS]
    path = lmeval_task(tmp_path, f"doc_to_choice: {choice}\ndoc_to_target: {target}", rows=rows)
    task = load_task_file(path)
    assert task.prompts["lm-eval"].choices == ("bad", "good")
    assert [r["label"] for r in rows_of(task)] == labels


def test_lmeval_doc_to_text_may_name_a_field(tmp_path):
    task = load_task_file(lmeval_task(tmp_path, "doc_to_text: sentence"))
    assert [task.prompts["lm-eval"].context(r) for r in rows_of(task)] == [t for t, _ in REVIEWS]


@pytest.mark.parametrize(("extra", "message"), [
    ("doc_to_choice: \"{{[sentence]}}\"", r"it has 1 choice \['a charming"),  # per-row choices, too few
    ("doc_to_target: \"{{[label]}}\"", "doc_to_target "),
    ("doc_to_target: \"{{label + 5}}\"", "doc_to_target "),
])
def test_lmeval_rows_that_cannot_be_scored(tmp_path, extra, message):
    path = lmeval_task(tmp_path, extra)
    where = r"task 'local_reviews' \(reviews.yaml\): \S+validation.jsonl row 0: "
    with pytest.raises(DataError, match=where + message):
        rows_of(load_task_file(path))


def test_lmeval_choices_read_from_each_row(tmp_path):
    task = load_task_file(lmeval_task(tmp_path, "doc_to_choice: \"{{[sentence, 'x']}}\"\ndoc_to_target: 1"))
    rows = rows_of(task)
    assert [task.prompts["lm-eval"].row_choices(r) for r in rows] == [(t, "x") for t, _ in REVIEWS]
    assert [r["label"] for r in rows] == [1, 1, 1, 1]


@pytest.mark.parametrize("target", [
    '"{{choices.label.index(answerKey)}}"',  # arc_easy's own: renders digits, an index
    '"{{choices.text[choices.label.index(answerKey)]}}"',  # renders the gold choice's text
    "answer_text",  # a field holding the gold choice's text
])
def test_lmeval_jinja_choices_per_row(tmp_path, tiny_lm, target):
    task = load_task_file(arc_task_file(tmp_path, target))
    prompt = task.prompts["lm-eval"]
    assert prompt.choices == () and task.split == "test"
    rows = rows_of(task)
    assert [r["label"] for r in rows] == ARC_GOLD
    assert [prompt.row_choices(r) for r in rows] == [tuple(r["choices"]["text"]) for r in arc_rows()]
    result = evaluate_task(*tiny_lm, task, rows, 128, prompt_set="lm-eval")
    assert [len(r.loglikelihoods) for r in result.rows] == [3, 4, 5, 4]
    assert [r.context for r in result.rows] == [f"Question: {r['question']}\nAnswer:" for r in arc_rows()]
    assert result.summary()["rows_by_choice_count"] == {"3": 1, "4": 2, "5": 1}


def test_lmeval_choices_from_a_list_of_fields(tmp_path):
    """piqa's form: ``{{[sol1, sol2]}}`` reads the document, so every row has its own two."""
    jsonl(tmp_path / "piqa.jsonl", [{"goal": "open a jar", "sol1": "twist the lid", "sol2": "eat the lid", "label": 0},
                                    {"goal": "dry a towel", "sol1": "soak it", "sol2": "hang it up", "label": 1}])
    path = write(tmp_path / "piqa.yaml", "\n".join([
        "task: local_piqa", "dataset_path: json", "output_type: multiple_choice",
        "dataset_kwargs: {data_files: {validation: piqa.jsonl}}", "validation_split: validation",
        'doc_to_text: "Question: {{goal}}\\nAnswer:"', 'doc_to_choice: "{{[sol1, sol2]}}"', "doc_to_target: label",
    ]) + "\n")
    task = load_task_file(path)
    rows = rows_of(task)
    assert [task.prompts["lm-eval"].row_choices(r) for r in rows] == [("twist the lid", "eat the lid"),
                                                                      ("soak it", "hang it up")]
    assert [r["label"] for r in rows] == [0, 1]


@pytest.mark.parametrize(("target", "message"), [
    ('"{{choices.label.index(answerKey) + 2}}"', r"row 1: doc_to_target 5 is not an index of the 4 choices"),
    ('"{{answerKey}}"', r"row 0: doc_to_target 'A' is not one of the choices \['the fox', 'the lobster', "
                        r"'the actor'\]"),
])
def test_lmeval_gold_outside_a_rows_own_choices(tmp_path, target, message):
    task = load_task_file(arc_task_file(tmp_path, target))
    with pytest.raises(DataError, match=rf"^task 'local_arc' \(\S+.yaml\): \S*arc.jsonl {message}") as caught:
        rows_of(task)
    assert "\n" not in str(caught.value)


def test_jinja_runs_in_a_sandbox(tmp_path):
    escape = "doc_to_text: \"{{ sentence.__class__.__mro__[1].__subclasses__() }}\""
    task = load_task_file(lmeval_task(tmp_path, escape))
    with pytest.raises(DataError, match=r"row 0: doc_to_text: SecurityError: access to attribute '__class__'"):
        rows_of(task)


REFUSED = [
    ("doc_to_text: !function utils.doc_to_text", "reviews.yaml: doc_to_text: !function utils.doc_to_text is not "
                                                 "supported (a task file is data"),
    ("process_docs: !function utils.process_docs", "process_docs: !function utils.process_docs is not supported"),
    ("process_docs: utils.process_docs", "process_docs: not supported (it runs Python code over the documents)"),
    ("process_results: x", "process_results: not supported"),
    ("filter_list: [{name: f, filter: [{function: take_first}]}]", "filter_list: not supported (filters apply"),
    ("fewshot_config: {sampler: first_n}", "fewshot_config: not supported (the suite draws its own"),
    ("gen_prefix: 'Answer:'", "gen_prefix: not supported"),
    ("generation_kwargs: {until: ['\\n']}", "generation_kwargs: not supported"),
    ("use_prompt: promptsource:x", "use_prompt: not supported"),
    ("doc_to_image: image", "doc_to_image: not supported"),
    ("custom_dataset: x", "custom_dataset: not supported"),
    ("anything_else: 1", "anything_else: not supported (not a key this suite reads)"),
    ("output_type: generate_until", "output_type: 'generate_until': only multiple_choice tasks are scored"),
    ("output_type: loglikelihood_rolling", "output_type: 'loglikelihood_rolling': only multiple_choice"),
    ("metric_list: [{metric: f1}]", "metric_list: metric 'f1' is not supported (the suite reports acc and acc_norm)"),
    ("metric_list: [{metric: acc_mutual_info}]", "metric_list: metric 'acc_mutual_info' is not supported"),
    ("metric_list: [{metric: acc, aggregation: median}]", "metric_list: acc: only the mean"),
    ("metric_list: [{metric: acc, ignore_case: true}]", "metric_list: acc: ignore_case is not supported"),
    ("description: 'Reviews follow.'", "description: not supported yet"),
    ("repeats: 3", "repeats: only 1"),
    ("unsafe_code: true", "unsafe_code: tasks that run code are not supported"),
    ("dataset_path: org/reviews", "dataset_path: 'org/reviews': only local files are read"),
    ("dataset_kwargs: null", "dataset_kwargs: name the local files"),
    ("dataset_kwargs: {data_files: validation.jsonl, field: rows}", "dataset_kwargs.field: not supported"),
    ("dataset_kwargs: {data_files: {validation: gone.jsonl}}", "dataset_kwargs.data_files: gone.jsonl does not exist"),
    ("doc_to_text: 0", "doc_to_text: 0: only a template or a field name is read"),
    ("doc_to_text: \"{{ sentence\"", "doc_to_text: Jinja syntax error on line 1"),
    ("doc_to_choice: \"{% for %}\"", "doc_to_choice: Jinja syntax error on line 1"),
    ("doc_to_choice: null", "doc_to_choice: missing (a multiple_choice task needs its choices)"),
    ("doc_to_target: [0, 1]", "doc_to_target: [0, 1]: expected a template, a field name or an index"),
    ("doc_to_target: null", "doc_to_target: missing"),
    ("task: [a, b]", "task: expected one task's name, got ['a', 'b'] (a group of tasks is not read)"),
    ("num_fewshot: -1", "num_fewshot: expected a whole number >= 0, got -1"),
    ("validation_split: null", "validation_split: neither validation_split nor test_split is given"),
]


@pytest.mark.parametrize(("extra", "message"), REFUSED, ids=[e.split(":")[0] + str(i) for i, (e, _) in
                                                            enumerate(REFUSED)])
def test_lmeval_features_we_do_not_run_are_one_line_naming_the_key(tmp_path, extra, message):
    path = lmeval_task(tmp_path, extra)
    with pytest.raises(TaskFileError) as caught:
        load_task_file(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(UsageError, match=r"^--task-file \S+\.yaml: "):
        declare(Registry.default(), [], [path])


def test_a_refused_key_of_an_included_file_names_that_file(tmp_path):
    path = lmeval_task(tmp_path, base="output_type: multiple_choice\nprocess_docs: !function utils.process_docs\n")
    with pytest.raises(TaskFileError, match=r"lm_eval_tasks/reviews/default.yaml: process_docs: !function"):
        load_task_file(path)


@pytest.mark.parametrize(("top", "message"), [
    ("include: missing.yaml\ntask: x\n", "include: missing.yaml does not exist"),
    ("include: loop.yaml\ntask: x\n", "includes itself (a cycle)"),
    ("task: [unclosed\n", "not valid YAML on line 2"),
    ("- a list\n", "expected a mapping of keys, got list"),
])
def test_includes_and_yaml_errors(tmp_path, top, message):
    write(tmp_path / "loop.yaml", "include: t.yaml\n")
    path = write(tmp_path / "t.yaml", top)
    with pytest.raises(TaskFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_task_file(path)


def lmeval_tasks_dir() -> Path | None:
    """lm-evaluation-harness's task folder: $LMEVAL_TASKS_DIR, an importable lm_eval, or the
    separate environment docs/crosscheck.md makes (../lmeval-venv)."""
    if os.environ.get("LMEVAL_TASKS_DIR"):
        return Path(os.environ["LMEVAL_TASKS_DIR"])
    spec = importlib.util.find_spec("lm_eval")
    if spec is not None and spec.origin:
        return Path(spec.origin).parent / "tasks"
    found = sorted(glob.glob(str(ROOT.parent / "lmeval-venv/lib/python*/site-packages/lm_eval/tasks")))
    return Path(found[-1]) if found else None


def equivalence_rows(task: str, tmp_path: Path) -> Path:
    """The first 24 validation rows of ../shared/data when present, else rows made here."""
    shared = ROOT.parent / "shared/data/smallbench" / task / "validation.jsonl"
    if shared.is_file():
        return write(tmp_path / f"{task}.jsonl", "".join(shared.read_text(encoding="utf-8").splitlines(True)[:24]))
    fields = TASKS[task].fields
    return jsonl(tmp_path / f"{task}.jsonl", [{f: f"{f} {i}: {REVIEWS[i % 4][0]}" for f in fields}
                                              | {"label": (i * 7) % 3 % 2, "idx": i} for i in range(12)])


@pytest.mark.parametrize("task", ["sst2", "rte"])
def test_lm_evals_own_glue_yaml_scores_as_prompts_lm_eval(tmp_path, tiny_lm, task):
    tasks_dir = lmeval_tasks_dir()
    source = tasks_dir / "glue" / task / "default.yaml" if tasks_dir else None
    if source is None or not source.is_file():
        pytest.skip("lm-evaluation-harness's task files not found: set LMEVAL_TASKS_DIR to lm_eval/tasks, install "
                    "lm_eval here, or make ../lmeval-venv (docs/crosscheck.md)")
    data = equivalence_rows(task, tmp_path)
    path = write(tmp_path / f"{task}.yaml", "\n".join([  # what scripts/crosscheck_lmeval.py gives lm-eval itself
        f"include: {source}", f"task: local_{task}", "dataset_path: json", "dataset_name: null",
        f"dataset_kwargs: {{data_files: {{validation: {data}}}}}", "training_split: null",
        "metric_list: [{metric: acc}, {metric: acc_norm}]",
    ]) + "\n")
    declared = load_task_file(path)
    shipped_rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    ours = evaluate_task(*tiny_lm, TASKS[task], shipped_rows, 128, prompt_set="lm-eval")
    theirs = evaluate_task(*tiny_lm, declared, rows_of(declared), 128, prompt_set="lm-eval")
    assert [r.context for r in theirs.rows] == [r.context for r in ours.rows]
    assert theirs.choices == ours.choices and [r.label for r in theirs.rows] == [r.label for r in ours.rows]
    assert [r.loglikelihoods for r in theirs.rows] == [r.loglikelihoods for r in ours.rows]
    assert (theirs.n, theirs.acc, theirs.acc_norm) == (ours.n, ours.acc, ours.acc_norm)


LMEVAL_SIDE = r"""
import json, sys
from lm_eval.api.task import ConfigurableTask
from lm_eval.tasks._yaml_loader import load_yaml

path, scores_file, out_file = sys.argv[1:4]
config = load_yaml(path, resolve_func=False)
for key in ("tag", "group", "task_list"):
    config.pop(key, None)
task = ConfigurableTask(config=config)
scores = json.loads(open(scores_file).read())
out = []
for i, doc in enumerate(task.eval_docs):
    context = task.fewshot_context(doc=doc, num_fewshot=0)
    requests = task.construct_requests(doc=doc, ctx=context, metadata=(task.config.task, i, 1))
    shot = "".join(m.to_text() for m in task.build_qa_turn(
        q=task.doc_to_text(doc), c=task.doc_to_choice(doc), a=task.doc_to_target(doc),
        tgt_delim=task.config.target_delimiter, few_delim=task.config.fewshot_delimiter))
    metrics = task.process_results(doc, [(ll, False) for ll in scores[i]])
    out.append({"requests": [list(r.arguments) for r in requests], "target": task.doc_to_target(doc),
                "choices": task.doc_to_choice(doc), "shot": shot, "acc": metrics["acc"],
                "acc_norm": metrics["acc_norm"]})
open(out_file, "w").write(json.dumps(out))
"""


def lmeval_python() -> str | None:
    """A Python that imports lm_eval: this one, $LMEVAL_PYTHON, or ../lmeval-venv's (docs/crosscheck.md)."""
    if importlib.util.find_spec("lm_eval") is not None:
        return sys.executable
    if os.environ.get("LMEVAL_PYTHON"):
        return os.environ["LMEVAL_PYTHON"]
    venv = ROOT.parent / "lmeval-venv/bin/python"
    return str(venv) if venv.is_file() else None


def test_lm_evals_own_arc_easy_yaml_builds_what_lm_eval_builds(tmp_path, tiny_lm):
    python = lmeval_python()
    tasks_dir = lmeval_tasks_dir()
    if tasks_dir is None and python is not None:
        tasks_dir = Path(subprocess.run([python, "-c", "import lm_eval, os; print(os.path.dirname(lm_eval.__file__))"],
                                        capture_output=True, text=True, check=True).stdout.strip()) / "tasks"
    source = tasks_dir / "arc" / "arc_easy.yaml" if tasks_dir else None
    if source is None or not source.is_file() or python is None:
        pytest.skip("lm-evaluation-harness not found: set LMEVAL_PYTHON to a Python that imports lm_eval (and "
                    "LMEVAL_TASKS_DIR to its lm_eval/tasks), install lm_eval here, or make ../lmeval-venv "
                    "(docs/crosscheck.md)")
    data = jsonl(tmp_path / "arc_easy.jsonl", arc_rows())
    path = write(tmp_path / "arc_easy_local.yaml", "\n".join([  # lm-eval's own file, pointed at local rows
        f"include: {source}", "task: local_arc_easy", "dataset_path: json", "dataset_name: null",
        f"dataset_kwargs: {{data_files: {{test: {data}}}}}", "training_split: null", "validation_split: null",
    ]) + "\n")
    task = load_task_file(path)
    prompt = task.prompts["lm-eval"]
    rows = rows_of(task)
    ours = evaluate_task(*tiny_lm, task, rows, 128, prompt_set="lm-eval")

    scores = write(tmp_path / "scores.json", json.dumps([r.loglikelihoods for r in ours.rows]))
    env = os.environ | {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    done = subprocess.run([python, "-c", LMEVAL_SIDE, str(path), str(scores), str(tmp_path / "theirs.json")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads((tmp_path / "theirs.json").read_text())

    assert len(theirs) == len(ours.rows) == len(arc_rows())
    for r, row, lm in zip(ours.rows, rows, theirs, strict=True):
        assert [[r.context, c] for c in ours.row_continuations(r)] == lm["requests"]  # contexts and continuations
        assert list(ours.row_choices(r)) == lm["choices"] and r.label == lm["target"]  # arc's target: an index
        assert prompt.context(row) + prompt.delimiter + prompt.row_choices(row)[row["label"]] \
            + prompt.fewshot_delimiter == lm["shot"]  # a solved example, as lm-eval writes one
    samples = ours.samples()
    assert [float(s["correct"]) for s in samples] == [lm["acc"] for lm in theirs]
    assert [float(s["correct_norm"]) for s in samples] == [lm["acc_norm"] for lm in theirs]  # per-row lengths
    # a solved example drawn by the suite is the one lm-eval writes
    pool = rows[:2]
    assert fewshot_prefix(prompt, pool, 1, 1234, task.name, pool[0]) == theirs[1]["shot"]
