"""SmallBench task evaluation: accuracies from independently computed scores, and bad data."""

import json
import math

import pytest

from lmeval_fixtures.core.errors import DataError
from lmeval_fixtures.engine.scoring import Request, score_requests_naively
from lmeval_fixtures.models.model import Transformer
from lmeval_fixtures.models.tokenizer import TextTokenizer
from lmeval_fixtures.suite.smallbench import evaluate_task, fewshot_prefix, stderr
from lmeval_fixtures.suite.task_rows import load_task_rows, read_task_file
from lmeval_fixtures.suite.tasks import TASKS

from .conftest import make_tokenizer, tiny_config

ROWS = [{"sentence": s, "label": i % 2, "idx": i} for i, s in enumerate([
    "a charming and often affecting journey", "unflinchingly bleak and desperate", "the fox jumps over the dog",
    "well-known lobster of the sea", "he had a guest role in 2000", "numbers like 1,000 and 3.14",
    "the quick brown fox", "an English film actor",
])]


@pytest.fixture(scope="module")
def tiny():
    tok = make_tokenizer()
    tokenizer = TextTokenizer.from_json(tok.to_str(), "test")
    model = Transformer(tiny_config(tok.get_vocab_size(), max_seq_len=48)).eval()
    model.init_weights(11)
    return model, tokenizer


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


def test_lm_eval_prompts_are_lm_evaluation_harness_text():
    row = {"sentence1": "A man.", "sentence2": "A person", "passage": "P", "question": "q", "sentence": "s"}
    assert TASKS["rte"].prompts["lm-eval"].context(row) == "A man.\nQuestion: A person True or False?\nAnswer:"
    assert TASKS["boolq"].prompts["lm-eval"].context(row) == "P\nQuestion: q?\nAnswer:"
    assert TASKS["sst2"].prompts["lm-eval"].continuations() == [" negative", " positive"]
    assert TASKS["rte"].prompts["lm-eval"].choices == ("True", "False")


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


def test_stderr_formula():
    assert stderr(0.5, 101) == pytest.approx(0.05)
    assert stderr(1.0, 1) is None


def write_rows(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("lines, message", [
    (['{"sentence": "ok", "label": 0}', '{"label": 1}'], r"sst2/validation\.jsonl:2: missing field\(s\) sentence"),
    (['{"sentence": "ok", "label": 2}'], r"validation\.jsonl:1: label 2 out of range for sst2 \(0\.\.1\)"),
    (['{"sentence": "ok", "label": 0}', "{not json"], r"validation\.jsonl:2: invalid JSON"),
    ([], r"validation\.jsonl: no rows"),
    (['{"sentence": 5, "label": 0}'], r"validation\.jsonl:1: field sentence must be a string"),
])
def test_bad_rows_are_named_by_file_and_line(tmp_path, lines, message):
    path = write_rows(tmp_path / "smallbench" / "sst2" / "validation.jsonl", lines)
    with pytest.raises(DataError, match=message):
        read_task_file(path, TASKS["sst2"])


def test_non_utf8_data_is_an_error(tmp_path):
    path = tmp_path / "smallbench" / "sst2" / "validation.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"sentence": "caf\xe9", "label": 0}\n')
    with pytest.raises(DataError, match=r"validation\.jsonl: not UTF-8 \(byte 17, line 1\)"):
        load_task_rows(TASKS["sst2"], "validation", tmp_path)


def test_rows_longer_than_the_window_are_cut_from_the_left_and_counted(tiny):
    model, tokenizer = tiny
    rows = [{"sentence": "lobster " * 80, "label": 0, "idx": 0}]
    result = evaluate_task(model, tokenizer, TASKS["sst2"], rows, 48)
    assert result.summary()["truncated_contexts"] == 2
    naive = score_requests_naively(model, tokenizer, [Request("Sentence: " + "lobster " * 80 + "\nSentiment:",
                                                              " negative")], 48)
    assert result.rows[0].loglikelihoods[0] == pytest.approx(naive[0].logprob, abs=1e-5)
    assert json.dumps(result.summary())
