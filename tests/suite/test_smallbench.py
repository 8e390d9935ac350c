"""Evaluating a SmallBench task (``suite.smallbench``): accuracies from independently computed scores, shots,
the small-model figures (majority rate, margin, gold bits per byte) worked out by hand, and rows each
scored against their own choices (checked against the naive scorer and a hand computation)."""

from __future__ import annotations

import json
import math

import pytest

from lmeval_fixtures.engine.scoring import Request, score_requests_naively
from lmeval_fixtures.suite.smallbench import RowResult, evaluate_task, fewshot_prefix, stderr
from lmeval_fixtures.suite.task_files import load_task_file
from lmeval_fixtures.suite.tasks import TASKS

from ..helpers import HAND_ROWS, QUIZ, SHOTS, quiz_file, rows_of, task_result, tiny_lm

ROWS = [{"sentence": s, "label": i % 2, "idx": i} for i, s in enumerate([
    "a charming and often affecting journey", "unflinchingly bleak and desperate", "the fox jumps over the dog",
    "well-known lobster of the sea", "he had a guest role in 2000", "numbers like 1,000 and 3.14",
    "the quick brown fox", "an English film actor",
])]


@pytest.fixture(scope="module")
def tiny():
    return tiny_lm(max_seq_len=48, seed=11)


@pytest.mark.parametrize("prompt_set", ["smallbench", "lm-eval"])
def test_accuracies_match_a_naive_computation(tiny, prompt_set):
    model, tokenizer = tiny
    task = TASKS["sst2"]
    result = evaluate_task(model, tokenizer, task, ROWS, 48, prompt_set=prompt_set, batch_tokens=40)
    prompt = task.prompts[prompt_set]
    correct = correct_norm = 0
    for row, got in zip(ROWS, result.rows, strict=True):
        scores = score_requests_naively(model, tokenizer, [Request(prompt.context(row), " " + c)
                                                           for c in prompt.choices], 48)
        lls = [s.logprob for s in scores]
        assert got.loglikelihoods == pytest.approx(lls, abs=1e-5)
        correct += max(range(2), key=lambda i: lls[i]) == row["label"]
        normed = [ll / len(c) for ll, c in zip(lls, prompt.choices, strict=True)]
        correct_norm += max(range(2), key=lambda i: normed[i]) == row["label"]
    assert result.acc == correct / len(ROWS) and result.acc_norm == correct_norm / len(ROWS)
    summary = result.summary()
    assert summary["acc_stderr"] == pytest.approx(math.sqrt(result.acc * (1 - result.acc) / (len(ROWS) - 1)))
    assert summary["n"] == 8 and summary["prompt_set"] == prompt_set


def test_max_samples_takes_the_first_rows(tiny):
    model, tokenizer = tiny
    result = evaluate_task(model, tokenizer, TASKS["sst2"], ROWS, 48, max_samples=3)
    assert [r.idx for r in result.rows] == [0, 1, 2] and result.summary()["max_samples"] == 3


def test_fewshot_is_seeded_and_never_uses_the_evaluated_row():
    prompt = TASKS["sst2"].prompts["smallbench"]
    first = fewshot_prefix(prompt, ROWS, 3, 7, "sst2", ROWS[0])
    assert first == fewshot_prefix(prompt, ROWS, 3, 7, "sst2", ROWS[0])
    assert first != fewshot_prefix(prompt, ROWS, 3, 8, "sst2", ROWS[0])
    assert first.count("\n\n") == 3 and ROWS[0]["sentence"] not in first
    with pytest.raises(ValueError, match="needs at least 8 examples"):
        fewshot_prefix(prompt, ROWS, 8, 7, "sst2", ROWS[0])


def test_the_fewshot_delimiter_ends_each_solved_example():
    from lmeval_fixtures.suite.smallbench import fewshot_prefix
    from lmeval_fixtures.suite.tasks import Prompt

    prompt = Prompt("Q: {q}\nA:", ("no", "yes"), fewshot_delimiter="\n###\n")
    pool = [{"q": "one", "label": 1, "idx": 0}, {"q": "two", "label": 0, "idx": 1}]
    prefix = fewshot_prefix(prompt, pool, 2, 1234, "t", {"q": "three", "label": 0, "idx": 9})
    examples = {"Q: one\nA: yes\n###\n", "Q: two\nA: no\n###\n"}
    assert len(prefix) == sum(map(len, examples)) and all(e in prefix for e in examples)


def test_stderr_formula():
    assert stderr(0.5, 101) == pytest.approx(0.05)
    assert stderr(1.0, 1) is None


def test_rows_longer_than_the_window_are_cut_from_the_left_and_counted(tiny):
    model, tokenizer = tiny
    rows = [{"sentence": "lobster " * 80, "label": 0, "idx": 0}]
    result = evaluate_task(model, tokenizer, TASKS["sst2"], rows, 48)
    assert result.summary()["truncated_contexts"] == 2
    naive = score_requests_naively(model, tokenizer, [Request("Sentence: " + "lobster " * 80 + "\nSentiment:",
                                                              " negative")], 48)
    assert result.rows[0].loglikelihoods[0] == pytest.approx(naive[0].logprob, abs=1e-5)
    assert json.dumps(result.summary())


def test_majority_margin_and_gold_bits_per_byte_of_a_hand_example():
    figures = task_result(HAND_ROWS).summary()
    assert figures["label_counts"] == [1, 3] and figures["majority_rate"] == 0.75
    assert figures["acc"] == 0.5 and figures["acc_above_majority"] == -0.25
    assert figures["prediction_counts"] == [3, 1] and figures["predicted_classes"] == 2
    assert figures["single_class"] is False
    # margins -1.5, 2.5, -2.0, 0.25: mean -0.75 / 4; squared deviations from it sum to 12.421875
    assert figures["margin"] == pytest.approx(-0.1875, abs=1e-12)
    assert figures["margin_stderr"] == pytest.approx(math.sqrt(12.421875 / 3 / 4), rel=1e-12)
    # gold NLL 2.5 + 0.5 + 4.0 + 1.0 = 8 nats over 4 + 3 + 4 + 5 = 16 bytes
    assert figures["gold_bytes"] == 16
    assert figures["gold_bits_per_byte"] == pytest.approx(8.0 / (math.log(2) * 16), rel=1e-12)
    assert figures["gold_loglikelihood_sum"] == -8.0  # the figure it shares its sum with, unchanged


def test_gold_log_likelihood_sum_is_exactly_rounded():
    """Ten gold log-likelihoods of -0.1 add up to -0.9999999999999999 left to right (builtin sum
    before Python 3.12) and to -1.0 exactly rounded: the record holds -1.0 on every Python."""
    rows = [RowResult(i, 0, [-0.1, -5.0], [False, False], f"Q: {i}\nA:") for i in range(10)]
    figures = task_result(rows).summary()
    assert figures["gold_loglikelihood_sum"] == -1.0
    assert figures["gold_bits_per_byte"] == 1.0 / (math.log(2) * figures["gold_bytes"])


def test_margin_with_three_choices_is_against_the_best_other_choice():
    assert RowResult(0, 2, [-1.0, -3.0, -2.0], [False] * 3).margin() == -1.0
    assert RowResult(0, 0, [-1.0, -3.0, -2.0], [False] * 3).margin() == 1.0
    assert RowResult(0, 0, [-1.0], [False]).margin() is None


def first_max(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def test_each_row_is_scored_against_its_own_choices(tmp_path, tiny_lm):
    model, tokenizer = tiny_lm
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


def test_small_model_figures_count_choice_positions(tmp_path, tiny_lm):
    task = load_task_file(quiz_file(tmp_path))
    result = evaluate_task(*tiny_lm, task, rows_of(task), 128)
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


def test_a_shipped_task_keeps_one_list_and_its_record_fields(tiny_lm):
    rows = [{"sentence": f"the fox {i} jumps", "label": i % 2, "idx": i} for i in range(4)]
    result = evaluate_task(*tiny_lm, TASKS["sst2"], rows, 128)
    assert all(r.choices is None and r.continuations is None for r in result.rows)
    assert result.choices == ("negative", "positive") and not result.choices_per_row
    assert "choices_per_row" not in result.summary() and "rows_by_choice_count" not in result.summary()


def test_solved_examples_answer_with_their_own_choices(tmp_path, tiny_lm):
    task = load_task_file(quiz_file(tmp_path))
    pool = rows_of(task, "train")
    assert [task.prompts["smallbench"].row_choices(r) for r in pool] == [tuple(c) for _, c, _ in SHOTS]
    result = evaluate_task(*tiny_lm, task, rows_of(task), 128, fewshot=1, fewshot_pool=pool)
    shots = {f"Q: {q}\nA: {c[g]}\n\n" for q, c, g in SHOTS}  # "quick" and "yes": each shot's own gold
    for r, (question, _, _) in zip(result.rows, QUIZ, strict=True):
        assert r.context[:-len(f"Q: {question}\nA:")] in shots


def test_running_accuracy_counts_a_row_once_every_choice_is_scored():
    from lmeval_fixtures.suite.smallbench import RunningAccuracy

    seen: list[dict[str, float]] = []
    running = RunningAccuracy([(0, 2), (2, 5), (5, 7)], [0, 2, 1], seen.append)
    running.scored([0, 2], [-1.0, -4.0])  # no row complete yet: nothing to show
    assert seen == []
    running.scored([1, 3], [-2.0, -3.0])  # row 0: -1 > -2 predicts 0, right
    assert seen[-1] == {"acc": 1.0}
    running.scored([4, 5, 6], [-3.0, -1.0, -1.0])  # row 1: -4, -3, -3 ties to choice 1 (first maximum), wrong;
    assert seen[-1] == {"acc": 1 / 3}                # row 2: a tie predicts 0, wrong


def test_running_accuracy_ends_at_the_tasks_accuracy(tiny):
    model, tokenizer = tiny
    seen: list[dict[str, float]] = []
    result = evaluate_task(model, tokenizer, TASKS["sst2"], ROWS, 48, batch_tokens=40, live=seen.append)
    assert len(seen) > 1 and seen[-1]["acc"] == result.acc
