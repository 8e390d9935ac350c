"""Task files whose choices differ from row to row (issue 16): each row is scored against its own
choices, checked against the naive scorer and a hand computation of acc and acc_norm; choices from a
field and from lm-eval's Jinja (``{{choices.text}}``, a target as an index or as text); the rows we
refuse; the record, summary.md and comparison.md end to end; the cache key; and lm-eval's own
``arc_easy`` YAML against what lm-eval's ``ConfigurableTask`` builds for the same documents."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmeval_fixtures import Registry
from lmeval_fixtures.api import evaluate
from lmeval_fixtures.core.errors import DataError
from lmeval_fixtures.core.schema import validate_record
from lmeval_fixtures.engine.scoring import Request, score_requests_naively
from lmeval_fixtures.evaluation.result_cache import digest
from lmeval_fixtures.suite.doc_prompts import CHOICES
from lmeval_fixtures.suite.smallbench import evaluate_task, fewshot_prefix
from lmeval_fixtures.suite.task_files import load_task_file
from lmeval_fixtures.suite.tasks import TASKS

from .test_task_files import ROOT, jsonl, lmeval_tasks_dir, rows_of, tiny, write  # noqa: F401 (tiny: a fixture)

# (question, its own choices, the gold index): 2, 4 and 3 choices
QUIZ = [
    ("Which animal jumps over the dog?", ["the fox", "the lobster"], 0),
    ("What is 3.14 close to?", ["one", "two", "three", "pi itself"], 3),
    ("Where does a lobster live?", ["in the sea", "in a tree", "on the moon"], 0),
    ("Who is Robert Boulter?", ["an English actor", "a crustacean"], 0),
    ("How many legs?", ["1,000", "two", "none", "eight"], 1),
]
SHOTS = [("What is the fox?", ["quick", "slow", "lazy"], 0), ("Is the dog lazy?", ["no", "yes"], 1)]


def quiz_file(folder: Path, rows=QUIZ, extra: str = "") -> Path:
    jsonl(folder / "quiz.jsonl", [{"q": q, "options": c, "answer": g} for q, c, g in rows])
    jsonl(folder / "shots.jsonl", [{"q": q, "options": c, "answer": g} for q, c, g in SHOTS])
    text = ('name: quiz\ndata: quiz.jsonl\nfewshot_data: shots.jsonl\ntemplate: "Q: {q}\\nA:"\n'
            "choice_field: options\nlabel_field: answer\n")
    return write(folder / "quiz.yaml", text + extra)


def first_max(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


# ------------------------------------------------------------------ scoring


def test_each_row_is_scored_against_its_own_choices(tmp_path, tiny):
    model, tokenizer = tiny
    task = load_task_file(quiz_file(tmp_path))
    prompt = task.prompts["smallbench"]
    assert prompt.choices == ()  # no one list: the rows' differ
    rows = rows_of(task)
    assert [prompt.row_choices(r) for r in rows] == [tuple(c) for _, c, _ in QUIZ]
    assert [r["label"] for r in rows] == [g for _, _, g in QUIZ]
    result = evaluate_task(model, tokenizer, task, rows, 128)

    hand_acc = hand_norm = 0
    for r, (question, choices, gold) in zip(result.rows, QUIZ, strict=True):
        assert r.context == f"Q: {question}\nA:" and r.label == gold
        assert r.choices == tuple(choices) and r.continuations == tuple(" " + c for c in choices)
        naive = score_requests_naively(model, tokenizer, [Request(r.context, " " + c) for c in choices], 128)
        assert r.loglikelihoods == pytest.approx([s.logprob for s in naive], abs=1e-5)
        # by hand: the argmax of the sums, and of each sum over the length of this row's own choice string
        hand_acc += first_max([s.logprob for s in naive]) == gold
        hand_norm += first_max([s.logprob / len(c) for s, c in zip(naive, choices, strict=True)]) == gold
    assert (result.correct, result.correct_norm) == (hand_acc, hand_norm)
    assert (result.acc, result.acc_norm) == (hand_acc / len(QUIZ), hand_norm / len(QUIZ))

    samples = result.samples()
    assert [s["choices"] for s in samples] == [c for _, c, _ in QUIZ]
    for s, r, (_, choices, _) in zip(samples, result.rows, QUIZ, strict=True):
        assert s["prediction_norm"] == first_max([ll / len(c) for ll, c in zip(r.loglikelihoods, choices,
                                                                                strict=True)])
    assert [len(s["choices_sha256"]) for s in result.samples("hash")] == [2, 4, 3, 2, 4]
    assert result.gold_bytes() == [len((" " + c[g]).encode()) for _, c, g in QUIZ]


def test_small_model_figures_count_choice_positions(tmp_path, tiny):
    task = load_task_file(quiz_file(tmp_path))
    result = evaluate_task(*tiny, task, rows_of(task), 128)
    figures = result.summary()
    predictions = [first_max(r.loglikelihoods) for r in result.rows]
    assert figures["label_counts"] == [3, 1, 0, 1]  # gold positions 0, 3, 0, 0, 1; as long as the longest list
    assert figures["majority_rate"] == 3 / 5 and figures["acc_above_majority"] == result.acc - 3 / 5
    assert figures["prediction_counts"] == [predictions.count(i) for i in range(4)]
    assert figures["predicted_classes"] == len(set(predictions))
    assert figures["single_class"] == (len(set(predictions)) == 1)
    assert figures["choices_per_row"] is True and figures["rows_by_choice_count"] == {"2": 2, "3": 1, "4": 2}
    per_row = result.per_row()
    assert per_row["gold_loglikelihood"] == [r.loglikelihoods[g] for r, (_, _, g) in zip(result.rows, QUIZ,
                                                                                          strict=True)]
    assert per_row["gold_bytes"] == result.gold_bytes()


def test_a_shipped_task_keeps_one_list_and_its_record_fields(tiny):
    rows = [{"sentence": f"the fox {i} jumps", "label": i % 2, "idx": i} for i in range(4)]
    result = evaluate_task(*tiny, TASKS["sst2"], rows, 128)
    assert all(r.choices is None and r.continuations is None for r in result.rows)
    assert result.choices == ("negative", "positive") and not result.choices_per_row
    assert "choices_per_row" not in result.summary() and "rows_by_choice_count" not in result.summary()


def test_rows_that_all_give_the_same_choices_keep_one_list(tmp_path, tiny):
    same = [(q, ["yes", "no"], i % 2) for i, (q, _, _) in enumerate(QUIZ)]
    task = load_task_file(quiz_file(tmp_path, same))
    assert task.prompts["smallbench"].choices == ("yes", "no")
    result = evaluate_task(*tiny, task, rows_of(task), 128)
    assert not result.choices_per_row and "choices_per_row" not in result.summary()


def test_solved_examples_answer_with_their_own_choices(tmp_path, tiny):
    task = load_task_file(quiz_file(tmp_path))
    pool = rows_of(task, "train")
    assert [task.prompts["smallbench"].row_choices(r) for r in pool] == [tuple(c) for _, c, _ in SHOTS]
    result = evaluate_task(*tiny, task, rows_of(task), 128, fewshot=1, fewshot_pool=pool)
    shots = {f"Q: {q}\nA: {c[g]}\n\n" for q, c, g in SHOTS}  # "quick" and "yes": each shot's own gold
    for r, (question, _, _) in zip(result.rows, QUIZ, strict=True):
        assert r.context[:-len(f"Q: {question}\nA:")] in shots


# ------------------------------------------------------------------ lm-eval's Jinja


def arc_rows() -> list[dict]:
    """Rows in ARC's schema: choices.text and choices.label per row (3 to 5 of them), answerKey."""
    return [
        {"id": "q0", "question": "Which animal jumps over the dog?",
         "choices": {"text": ["the fox", "the lobster", "the actor"], "label": ["A", "B", "C"]}, "answerKey": "A"},
        {"id": "q1", "question": "What is 3.14 close to?",
         "choices": {"text": ["one", "two", "three", "pi"], "label": ["A", "B", "C", "D"]}, "answerKey": "D"},
        {"id": "q2", "question": "Where does a lobster live?",
         "choices": {"text": ["sea", "tree", "moon", "desert", "sky"], "label": ["1", "2", "3", "4", "5"]},
         "answerKey": "1"},
        {"id": "q3", "question": "How many legs?",
         "choices": {"text": ["1,000", "two", "none", "eight"], "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
    ]


ARC_GOLD = [0, 3, 0, 1]


def arc_task_file(folder: Path, target: str) -> Path:
    """Our own lm-eval-style file over ``arc_rows``, ``doc_to_choice: "{{choices.text}}"`` as arc_easy's."""
    jsonl(folder / "arc.jsonl", [r | {"answer_text": r["choices"]["text"][g]} for r, g in zip(arc_rows(), ARC_GOLD,
                                                                                                strict=True)])
    return write(folder / "arc.yaml", "\n".join([
        "task: local_arc", "dataset_path: json", "dataset_name: null", "output_type: multiple_choice",
        "dataset_kwargs: {data_files: {test: arc.jsonl}}", "test_split: test",
        'doc_to_text: "Question: {{question}}\\nAnswer:"', 'doc_to_choice: "{{choices.text}}"',
        f"doc_to_target: {target}",
    ]) + "\n")


@pytest.mark.parametrize("target", [
    '"{{choices.label.index(answerKey)}}"',  # arc_easy's own: renders digits, an index
    '"{{choices.text[choices.label.index(answerKey)]}}"',  # renders the gold choice's text
    "answer_text",  # a field holding the gold choice's text
])
def test_lmeval_jinja_choices_per_row(tmp_path, tiny, target):
    task = load_task_file(arc_task_file(tmp_path, target))
    prompt = task.prompts["lm-eval"]
    assert prompt.choices == () and task.split == "test"
    rows = rows_of(task)
    assert [r["label"] for r in rows] == ARC_GOLD
    assert [prompt.row_choices(r) for r in rows] == [tuple(r["choices"]["text"]) for r in arc_rows()]
    result = evaluate_task(*tiny, task, rows, 128, prompt_set="lm-eval")
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


# ------------------------------------------------------------------ what is refused


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
    with pytest.raises(DataError, match=rf"^task 'quiz': \S*quiz.jsonl {message}") as caught:
        rows_of(task)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("target", "message"), [
    ('"{{choices.label.index(answerKey) + 2}}"', r"row 1: doc_to_target 5 is not an index of the 4 choices"),
    ('"{{answerKey}}"', r"row 0: doc_to_target 'A' is not one of the choices \['the fox', 'the lobster', "
                        r"'the actor'\]"),
])
def test_lmeval_gold_outside_a_rows_own_choices(tmp_path, target, message):
    task = load_task_file(arc_task_file(tmp_path, target))
    with pytest.raises(DataError, match=rf"^task 'local_arc': \S*arc.jsonl {message}") as caught:
        rows_of(task)
    assert "\n" not in str(caught.value)


def test_a_bad_solved_example_names_the_fewshot_file(tmp_path):
    task = load_task_file(quiz_file(tmp_path))
    jsonl(tmp_path / "shots.jsonl", [{"q": "x", "options": ["a", "b"], "answer": 0},
                                     {"q": "y", "options": ["a", "b"], "answer": "c"}])
    with pytest.raises(DataError, match=r"shots.jsonl row 1: label_field 'answer' value 'c' is not one of the "):
        rows_of(task, "train")


# ------------------------------------------------------------------ cache key


def test_the_rows_the_cache_key_digests_hold_each_rows_choices(tmp_path):
    task = load_task_file(quiz_file(tmp_path))
    rows = rows_of(task)
    assert all(r[CHOICES] == tuple(c) for r, (_, c, _) in zip(rows, QUIZ, strict=True))
    changed = [dict(r) for r in rows]
    changed[1][CHOICES] = ("one", "two", "three", "pi")  # the same document, other choices
    assert digest([changed, None]) != digest([rows, None])


def test_a_rerun_takes_a_per_row_task_from_the_cache_and_a_changed_choice_misses(tmp_path):
    from .conftest import write_native_checkpoint

    write_native_checkpoint(tmp_path / "ck" / "a", seed=1)
    path = quiz_file(tmp_path / "quiz")
    options = {"families": ("smallbench",), "registry": Registry(), "task_file": [str(path)], "history": False,
               "report_dir": tmp_path / "reports"}

    def run(run_id: str) -> dict:
        done = evaluate(tmp_path / "ck" / "a", run_id=run_id, **options)
        assert not done.errors
        return done.records["a"]

    first, second = run("one"), run("two")
    assert not first.get("cache") and set(second["cache"]) == {"smallbench:quiz"}
    assert second["smallbench"]["quiz"]["choices_per_row"] is True
    assert second["smallbench"]["quiz"]["acc_norm"] == first["smallbench"]["quiz"]["acc_norm"]
    changed = [(q, c if i != 1 else ["one", "two", "three", "pi"], g) for i, (q, c, g) in enumerate(QUIZ)]
    quiz_file(tmp_path / "quiz", changed)
    assert not run("three").get("cache")


# ------------------------------------------------------------------ end to end


def test_per_row_choice_tasks_reach_the_record_summary_and_comparison(pytester, offline):
    from .conftest import write_native_checkpoint
    from .test_gates import lay_out_suite

    suite = lay_out_suite(pytester)
    write_native_checkpoint(suite.path / "ck" / "b", seed=2)
    quiz_file(suite.path / "quiz")
    arc_task_file(suite.path / "arc", '"{{choices.label.index(answerKey)}}"')
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "-m", "smallbench", "--run-id", "r",
                             "--task-file", "quiz/quiz.yaml", "--task-file", "arc/arc.yaml", "--log-samples")
    result.assert_outcomes(passed=12)
    for name in ("a", "b"):
        record = json.loads((suite.path / f"reports/r/{name}/metrics.json").read_text())
        validate_record(record)
        quiz, arc = record["smallbench"]["quiz"], record["smallbench"]["local_arc"]
        assert quiz["n"] == 5 and quiz["rows_by_choice_count"] == {"2": 2, "3": 1, "4": 2}
        assert quiz["choices_per_row"] is True and arc["choices_per_row"] is True and len(quiz["label_counts"]) == 4
        assert "choices_per_row" not in record["smallbench"]["sst2"]
        samples = [json.loads(line) for line in (suite.path / f"reports/r/{name}/samples-smallbench-quiz.jsonl")
                   .read_text().splitlines()]
        assert [s["choices"] for s in samples] == [c for _, c, _ in QUIZ]
        summary = (suite.path / f"reports/r/{name}/summary.md").read_text()
        assert "| quiz | smallbench | 0 | 5 |" in summary
        note = next(line for line in summary.splitlines() if line.startswith("Choices vary per row in "))
        assert "quiz (2-4 choices per row)" in note and "local_arc (3-5 choices per row)" in note
        assert "sst2" not in note and "acc_norm divides each choice's log-likelihood by the length" in note
    comparison = (suite.path / "reports/r/comparison.md").read_text()
    note = next(line for line in comparison.splitlines() if line.startswith("Choices vary per row in "))
    assert "quiz (2-4 choices per row)" in note and "local_arc (3-5 choices per row)" in note


def test_summary_names_the_position_a_single_class_per_row_task_predicts():
    from lmeval_fixtures.records.summary import _single_class_lines

    bench = {"quiz": {"single_class": True, "prediction_counts": [0, 5], "n": 5, "acc": 0.2, "prompt_set": "x",
                      "choices_per_row": True, "rows_by_choice_count": {"2": 5}}}
    line = _single_class_lines(bench, Registry())[1]
    assert "quiz predicts the same choice position for every row (choice 1 of each row's own list" in line


# ------------------------------------------------------------------ lm-eval's own arc_easy


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


def test_lm_evals_own_arc_easy_yaml_builds_what_lm_eval_builds(tmp_path, tiny):
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
    ours = evaluate_task(*tiny, task, rows, 128, prompt_set="lm-eval")

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
