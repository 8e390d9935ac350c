"""Each SmallBench figure's definition, pinned on rows where the distinction matters.

The scores are scripted (the scoring engine is replaced by a table of log-likelihoods, so each
row is a worked example), and every expected figure is computed here from the definition in
docs/metrics.md by the simplest code that states it: acc the first argmax of the sums, acc_norm
the first argmax of each sum over the character length of the bare choice (not the delimiter,
not the scored continuation), standard errors as the sample standard deviation over sqrt(n)
(``statistics.stdev``, lm-evaluation-harness's ``mean_stderr``), gold bits per byte over the
UTF-8 bytes of the text scored. The rows are chosen so that acc and acc_norm disagree, ties fall
to the first choice, and counting the delimiter in acc_norm's lengths changes the answer.
"""

from __future__ import annotations

import math
import statistics

import pytest

from lmeval_fixtures.engine.scoring import Score, ScoringStats
from lmeval_fixtures.suite import smallbench
from lmeval_fixtures.suite.smallbench import evaluate_task
from lmeval_fixtures.suite.task_files import load_task_file
from lmeval_fixtures.suite.tasks import Prompt, Task

from ..helpers import jsonl, rows_of, write


def scripted(table: dict[tuple[str, str], float], seen: list | None = None):
    """A stand-in for ``score_requests``: each (context, continuation)'s log-likelihood from ``table``."""
    def score_requests(model, tokenizer, requests, max_len, **_):
        if seen is not None:
            seen.extend(requests)
        return [Score(table[(r.context, r.continuation)], False, 1) for r in requests], ScoringStats(len(requests))
    return score_requests


def first_argmax(values: list[float]) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:  # strictly greater: a tie keeps the earlier choice
            best = i
    return best


def reference(lls: list[list[float]], choices: list[list[str]], labels: list[int]) -> dict:
    """acc, acc_norm and their standard errors, from the definitions alone."""
    right = [float(first_argmax(ll) == g) for ll, g in zip(lls, labels, strict=True)]
    right_norm = [float(first_argmax([x / len(c) for x, c in zip(ll, cs, strict=True)]) == g)
                  for ll, cs, g in zip(lls, choices, labels, strict=True)]
    n = len(labels)
    return {"acc": sum(right) / n, "acc_norm": sum(right_norm) / n,
            "acc_stderr": statistics.stdev(right) / math.sqrt(n),
            "acc_norm_stderr": statistics.stdev(right_norm) / math.sqrt(n)}


# Choices "no" (2 characters) and "yes" (3), scored as " no" and " yes". Each row: (question,
# log-likelihoods of no / yes, gold, what acc predicts, what acc_norm predicts), worked by hand.
FIXED_ROWS = [
    # -2.1/2 = -1.05 < -3.0/3 = -1.0: acc_norm says yes; with the delimiter counted (-2.1/3 = -0.7 >
    # -3.0/4 = -0.75) it would say no, as acc does
    ("delimiter", [-2.1, -3.0], 1, 0, 1),
    # a tie of sums: acc takes the first (no); normalised, yes (-1.0 > -1.5)
    ("tie of sums", [-3.0, -3.0], 0, 0, 1),
    # a tie after normalising (-2/2 == -3/3 exactly): acc_norm takes the first (no)
    ("tie of norms", [-2.0, -3.0], 0, 0, 0),
    ("agree", [-5.0, -1.0], 1, 1, 1),
    # no is likelier in sum (-2.0 > -2.4), yes per character (-2.0/2 = -1.0 < -2.4/3 = -0.8); gold no
    ("acc only", [-2.0, -2.4], 0, 0, 1),
    ("plain no", [-0.5, -6.0], 0, 0, 0),
]
CONTEXT = "Q: {q}\nA:"


def fixed_task() -> Task:
    return Task("quiz2", "quiz2", ("", ""), ("q",), {"smallbench": Prompt(CONTEXT, ("no", "yes"))})


def run_fixed(monkeypatch, rows=FIXED_ROWS, **kwargs):
    table = {(CONTEXT.format(q=q), f" {c}"): ll for q, lls, *_ in rows for c, ll in zip(("no", "yes"), lls,
                                                                                        strict=True)}
    monkeypatch.setattr(smallbench, "score_requests", scripted(table))
    data = [{"q": q, "label": gold, "idx": i} for i, (q, _, gold, *_) in enumerate(rows)]
    return evaluate_task(None, None, fixed_task(), data, 64, **kwargs)


def test_acc_and_acc_norm_of_fixed_choices_of_unequal_length(monkeypatch):
    result = run_fixed(monkeypatch)
    # the hand-worked predictions first, then the figures from the simple reference
    assert [r.prediction() for r in result.rows] == [acc for *_, acc, _ in FIXED_ROWS]
    samples = result.samples()
    assert [s["prediction_norm"] for s in samples] == [norm for *_, norm in FIXED_ROWS]
    assert [s["correct_norm"] for s in samples] == [norm == g for _, _, g, _, norm in FIXED_ROWS]
    expected = reference([lls for _, lls, *_ in FIXED_ROWS], [["no", "yes"]] * len(FIXED_ROWS),
                         [g for _, _, g, *_ in FIXED_ROWS])
    summary = result.summary()
    assert (summary["correct"], summary["correct_norm"]) == (5, 4)  # by hand: rows 2-6 and 1, 3, 4, 6
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value, rel=1e-12), key
    assert summary["acc"] != summary["acc_norm"]  # these rows tell the two apart


def test_acc_norm_divides_by_the_bare_choice_not_the_continuation(monkeypatch):
    """The one row where it matters: gold yes, acc_norm right only with bare lengths (2 and 3)."""
    result = run_fixed(monkeypatch, FIXED_ROWS[:1])
    assert result.choice_lengths == [2, 3]
    assert (result.acc, result.acc_norm) == (0.0, 1.0)


def test_standard_errors_of_one_row_and_of_a_certain_figure(monkeypatch):
    one = run_fixed(monkeypatch, FIXED_ROWS[:1]).summary()
    assert one["acc_stderr"] is None and one["acc_norm_stderr"] is None  # n - 1 = 0: no standard error
    right = [("r1", [-1.0, -2.0], 0, 0, 0), ("r2", [-2.0, -1.0], 1, 1, 1)]
    certain = run_fixed(monkeypatch, right).summary()
    assert certain["acc"] == 1.0 and certain["acc_stderr"] == 0.0


def test_margin_and_its_standard_error(monkeypatch):
    summary = run_fixed(monkeypatch).summary()
    margins = [lls[g] - lls[1 - g] for _, lls, g, *_ in FIXED_ROWS]
    # by hand: ll[gold] - ll[other]
    assert margins == pytest.approx([-0.9, 0.0, 1.0, 4.0, 0.4, 5.5])
    assert summary["margin"] == pytest.approx(statistics.mean(margins), rel=1e-12)
    assert summary["margin_stderr"] == pytest.approx(statistics.stdev(margins) / math.sqrt(len(margins)), rel=1e-12)


def test_majority_rate_and_predicted_classes(monkeypatch):
    summary = run_fixed(monkeypatch).summary()
    labels = [g for _, _, g, *_ in FIXED_ROWS]
    assert summary["label_counts"] == [labels.count(0), labels.count(1)] == [4, 2]
    assert summary["majority_rate"] == pytest.approx(4 / 6)
    assert summary["acc_above_majority"] == pytest.approx(5 / 6 - 4 / 6)
    assert summary["prediction_counts"] == [5, 1] and summary["predicted_classes"] == 2
    assert summary["single_class"] is False


def test_gold_bits_per_byte_counts_utf8_bytes_of_the_scored_text(monkeypatch):
    choices = ("nö", "sí señor")  # 3 and 10 bytes, 2 and 8 characters
    prompt = Prompt("Frage: {q}\nAntwort:\n", choices)  # a trailing newline moves onto each continuation
    task = Task("umlaut", "umlaut", ("", ""), ("q",), {"smallbench": prompt})
    rows = [{"q": "eins", "label": 0, "idx": 0}, {"q": "zwei", "label": 1, "idx": 1}]
    table = {(prompt.context(r), " " + c): ll for r in rows for c, ll in zip(choices, (-1.0, -3.6), strict=True)}
    monkeypatch.setattr(smallbench, "score_requests", scripted(table))
    summary = evaluate_task(None, None, task, rows, 64).summary()
    gold_text = ["\n nö", "\n sí señor"]  # the context's newline, the delimiter and the gold choice
    gold_bytes = sum(len(t.encode("utf-8")) for t in gold_text)
    assert gold_bytes == 5 + 12  # by hand: newline, space, and ö / í, ñ of two bytes each
    assert summary["gold_bytes"] == gold_bytes
    assert summary["gold_bits_per_byte"] == pytest.approx((1.0 + 3.6) / math.log(2) / gold_bytes, rel=1e-12)
    # acc_norm divides by characters, not bytes: -1.0/2 = -0.5 < -3.6/8 = -0.45, where per byte (3, 10)
    # or per continuation (3, 9 characters) the first choice would win
    assert [s["prediction_norm"] for s in evaluate_task(None, None, task, rows, 64).samples()] == [1, 1]


# Rows that each give their own choices (a task file's choice_field), of unequal lengths, non-ASCII
# among them, and a delimiter other than a space: (question, choices, log-likelihoods, gold).
OWN_ROWS = [
    # -1.8/2 = -0.9 < -2.5/3 = -0.833: acc_norm takes "abc"; with the delimiter "->" counted,
    # -1.8/4 = -0.45 > -2.5/5 = -0.5: "xy"; acc takes "xy" (-1.8 > -2.5)
    ("q1", ["xy", "abc"], [-1.8, -2.5], 1),
    # three choices, "é" one character of two bytes: norms -3/1, -4/4 = -1.0, -3.3/3 = -1.1 (per byte
    # -1.5, -1.0, -0.825 would take "née"); acc: "é"
    ("q2", ["é", "four", "née"], [-3.0, -4.0, -3.3], 1),
    ("q3", ["abcd", "wxyz"], [-2.0, -2.0], 1),  # a tie: both take the first, which is wrong
    ("q4", ["a", "bb", "ccc", "dddd"], [-4.0, -3.0, -2.0, -1.0], 3),
]


def own_choices_task(tmp_path):
    jsonl(tmp_path / "own.jsonl", [{"q": q, "options": c, "answer": g} for q, c, _, g in OWN_ROWS])
    return load_task_file(write(tmp_path / "own.yaml", 'name: own\ndata: own.jsonl\ntemplate: "Q: {q}"\n'
                                "choice_field: options\nlabel_field: answer\ntarget_delimiter: \"->\"\n"))


def test_acc_norm_of_rows_with_their_own_choices(tmp_path, monkeypatch):
    task = own_choices_task(tmp_path)
    table = {(f"Q: {q}", "->" + c): ll for q, cs, lls, _ in OWN_ROWS for c, ll in zip(cs, lls, strict=True)}
    seen: list = []
    monkeypatch.setattr(smallbench, "score_requests", scripted(table, seen))
    result = evaluate_task(None, None, task, rows_of(task), 64)
    assert {(r.context, r.continuation) for r in seen} == set(table)  # every choice scored with the delimiter
    samples = result.samples()
    assert [s["prediction"] for s in samples] == [0, 0, 0, 3]  # by hand
    assert [s["prediction_norm"] for s in samples] == [1, 1, 0, 3]  # by hand
    assert [s["choices"] for s in samples] == [cs for _, cs, _, _ in OWN_ROWS]  # each row's own, not the task's
    expected = reference([lls for _, _, lls, _ in OWN_ROWS], [cs for _, cs, _, _ in OWN_ROWS],
                         [g for *_, g in OWN_ROWS])
    summary = result.summary()
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value, rel=1e-12), key
    assert (summary["acc"], summary["acc_norm"]) == (0.25, 0.75)
    # the gold texts as scored: "->abc", "->four", "->wxyz", "->dddd"
    assert summary["gold_bytes"] == 5 + 6 + 6 + 6
    margins = [-2.5 + 1.8, -4.0 + 3.0, 0.0, -1.0 + 2.0]
    assert summary["margin"] == pytest.approx(statistics.mean(margins), rel=1e-12)


def test_the_fewshot_prefix_is_k_solved_examples_then_the_row(monkeypatch):
    """Each shot is its context, the delimiter, its own gold choice and the few-shot delimiter;
    k distinct pool rows, never the evaluated one; the scored context is the prefix then the row."""
    prompt = Prompt("Q: {q}\nA:", ("no", "yes"), delimiter=" ", fewshot_delimiter="\n##\n")
    task = Task("shots", "shots", ("", ""), ("q",), {"smallbench": prompt})
    pool = [{"q": f"pool question {i}", "label": i % 2, "idx": i} for i in range(9)]
    rows = [pool[4], {"q": "fresh", "label": 1, "idx": 100}]
    solved = {f"Q: pool question {i}\nA: {['no', 'yes'][i % 2]}\n##\n" for i in range(9)}
    seen: list = []

    class Table(dict):
        def __missing__(self, key):
            return -1.0

    monkeypatch.setattr(smallbench, "score_requests", scripted(Table(), seen))
    for k in (1, 3, 8):
        seen.clear()
        evaluate_task(None, None, task, rows, 64, fewshot=k, fewshot_pool=pool, seed=5)
        for row in rows:
            contexts = {r.context for r in seen if r.context.endswith(prompt.context(row))}
            assert len(contexts) == 1
            prefix = contexts.pop()[:-len(prompt.context(row))]
            shots = [s + "\n##\n" for s in prefix.split("\n##\n")[:-1]]
            assert "".join(shots) == prefix and len(shots) == len(set(shots)) == k
            assert set(shots) <= solved
            assert f"Q: {row['q']}\nA:" not in prefix  # never the evaluated row itself


def test_per_row_values_are_accs_verdicts_margins_and_gold_facts(monkeypatch):
    """What the paired tests read back from a record: per row, in row order, idx and label, whether
    acc (not acc_norm) was right, ll[gold] - ll[other], ll[gold] and the gold text's UTF-8 bytes."""
    result = run_fixed(monkeypatch)
    per_row = result.per_row()
    assert per_row["idx"] == list(range(len(FIXED_ROWS)))
    assert per_row["label"] == [g for _, _, g, *_ in FIXED_ROWS]
    assert per_row["correct"] == [acc == g for _, _, g, acc, _ in FIXED_ROWS]
    assert per_row["correct"] != [norm == g for _, _, g, _, norm in FIXED_ROWS]  # acc's, not acc_norm's
    assert per_row["margin"] == pytest.approx([-0.9, 0.0, 1.0, 4.0, 0.4, 5.5])
    assert per_row["gold_loglikelihood"] == [lls[g] for _, lls, g, *_ in FIXED_ROWS]
    assert per_row["gold_bytes"] == [len(" yes") if g else len(" no") for _, _, g, *_ in FIXED_ROWS]
    assert set(per_row) == {"idx", "label", "correct", "margin", "gold_loglikelihood", "gold_bytes"}


def test_standard_errors_of_two_rows(monkeypatch):
    """n = 2, the least n with a standard error: margins -0.9 and 0.0, one row right of two."""
    two = run_fixed(monkeypatch, FIXED_ROWS[:2]).summary()
    assert two["margin_stderr"] == pytest.approx(statistics.stdev([-0.9, 0.0]) / math.sqrt(2), rel=1e-12)
    assert two["acc_stderr"] == pytest.approx(statistics.stdev([0.0, 1.0]) / math.sqrt(2), rel=1e-12)
    one = run_fixed(monkeypatch, FIXED_ROWS[:1]).summary()
    assert one["margin"] == pytest.approx(-0.9) and one["margin_stderr"] is None


def test_the_summary_field_by_field():
    """Every field of a task's summary, from a hand-made result: four rows (two choices "no"/"yes")."""
    from lmeval_fixtures.suite.smallbench import RowResult, TaskResult

    rows = [RowResult(0, 1, [-1.0, -2.5], [True, False], "Q: a\nA:"),  # acc 0 (wrong), norm -0.5 / -0.83: 0
            RowResult(1, 0, [-0.5, -3.0], [True, False], "Q: b\nA:"),  # right, right
            RowResult(2, 1, [-2.0, -2.7], [False, False], "Q: c\nA:"),  # acc 0 wrong; norm -1.0 / -0.9: 1 right
            RowResult(3, 1, [-1.25, -1.0], [False, True], "Q: d\nA:")]  # right, right
    stats = ScoringStats(requests=8, contexts=4, input_tokens=40, padded_tokens=48, batches=2, separate_encodings=1,
                         truncated_contexts=1, batch_tokens=64)
    result = TaskResult("boolq", "lm-eval", 2, rows, [2, 3], stats, 1.23456, max_samples=4, choices=("no", "yes"),
                        continuations=(" no", " yes"))
    margins = [-1.5, 2.5, -0.7, 0.25]
    expected = {
        "n": 4, "acc": 0.5, "acc_stderr": statistics.stdev([0, 1, 0, 1]) / 2,
        "acc_norm": 0.75, "acc_norm_stderr": statistics.stdev([0, 1, 1, 1]) / 2, "correct": 2, "correct_norm": 3,
        "gold_loglikelihood_sum": -2.5 - 0.5 - 2.7 - 1.0, "prompt_set": "lm-eval", "fewshot": 2, "max_samples": 4,
        "requests": 8, "contexts": 4, "input_tokens": 40, "padded_tokens": 48, "separate_encodings": 1,
        "truncated_contexts": 1, "seconds": 1.235, "batch_tokens": 64,
        "label_counts": [1, 3], "majority_rate": 0.75, "acc_above_majority": 0.5 - 0.75,
        "prediction_counts": [3, 1], "predicted_classes": 2, "single_class": False,
        "margin": statistics.mean(margins), "margin_stderr": statistics.stdev(margins) / 2,
        "gold_bytes": 4 + 3 + 4 + 4, "gold_bits_per_byte": 6.7 / (math.log(2) * 15),
    }
    summary = result.summary()
    assert set(summary) == set(expected)
    for key, value in expected.items():
        assert summary[key] == (value if isinstance(value, str) else pytest.approx(value, rel=1e-12)), key


def test_samples_field_by_field():
    import hashlib

    from lmeval_fixtures.suite.smallbench import RowResult, TaskResult

    rows = [RowResult(7, 1, [-2.1, -3.0], [False, True], "Q: ü\nA:")]  # acc says no, acc_norm yes
    result = TaskResult("t", "smallbench", 0, rows, [2, 3], ScoringStats(), 0.0, choices=("no", "yes"))
    [full] = result.samples()
    assert full == {"idx": 7, "label": 1, "loglikelihoods": [-2.1, -3.0], "greedy": [False, True], "prediction": 0,
                    "prediction_norm": 1, "correct": False, "correct_norm": True, "context": "Q: ü\nA:",
                    "choices": ["no", "yes"]}
    [hashed] = result.samples("hash")
    assert hashed["context_sha256"] == hashlib.sha256("Q: ü\nA:".encode()).hexdigest()
    assert hashed["choices_sha256"] == [hashlib.sha256(c.encode()).hexdigest() for c in ("no", "yes")]
    assert "context" not in hashed and "choices" not in hashed


def test_a_pool_row_equal_to_the_evaluated_row_is_never_a_shot():
    """The row itself, or a copy of it (the same dict read twice), is never one of its own shots."""
    from lmeval_fixtures.suite.smallbench import fewshot_prefix

    prompt = Prompt("Q: {q}\nA:", ("no", "yes"))
    row = {"q": "target", "label": 1, "idx": 3}
    for pool in ([dict(row), {"q": "other", "label": 0, "idx": 4}], [row, {"q": "other", "label": 0, "idx": 4}]):
        for seed in range(10):
            assert fewshot_prefix(prompt, pool, 1, seed, "t", row) == "Q: other\nA: no\n\n"
    with pytest.raises(ValueError, match="^t: --fewshot 2 needs at least 2 examples besides the row, found 1$"):
        fewshot_prefix(prompt, pool, 2, 0, "t", row)
    assert fewshot_prefix(prompt, pool, 0, 0, "t", row) == ""


def test_rows_without_an_idx_are_numbered_by_position_and_shots_need_a_pool(monkeypatch):
    table = {(CONTEXT.format(q=q), f" {c}"): -1.0 for q in ("a", "b") for c in ("no", "yes")}
    monkeypatch.setattr(smallbench, "score_requests", scripted(table))
    result = evaluate_task(None, None, fixed_task(), [{"q": "a", "label": 0}, {"q": "b", "label": 1}], 64)
    assert [r.idx for r in result.rows] == [0, 1]
    with pytest.raises(ValueError, match="^quiz2: --fewshot 1 needs the train split$"):
        evaluate_task(None, None, fixed_task(), [{"q": "a", "label": 0}], 64, fewshot=1)


def test_each_rows_shots_are_the_seeded_draw_for_that_task_and_row(monkeypatch):
    """evaluate_task's contexts are ``fewshot_prefix`` for the run's seed, the task's name and the row,
    then the row: by default seed 1234, the --seed default."""
    from lmeval_fixtures.suite.smallbench import fewshot_prefix

    prompt = Prompt(CONTEXT, ("no", "yes"))
    pool = [{"q": f"pool {i}", "label": i % 2, "idx": i} for i in range(12)]
    rows = [{"q": f"row {i}", "label": 0, "idx": 100 + i} for i in range(4)]
    seen: list = []

    class Table(dict):
        def __missing__(self, key):
            return -1.0

    monkeypatch.setattr(smallbench, "score_requests", scripted(Table(), seen))
    for seed, name in ((None, "quiz2"), (7, "quiz2"), (7, "other")):
        task = Task(name, name, ("", ""), ("q",), {"smallbench": prompt})
        seen.clear()
        evaluate_task(None, None, task, rows, 64, fewshot=3, fewshot_pool=pool,
                      **({} if seed is None else {"seed": seed}))
        expected = {fewshot_prefix(prompt, pool, 3, 1234 if seed is None else seed, name, r) + prompt.context(r)
                    for r in rows}
        assert {r.context for r in seen} == expected
    # the draw differs by seed and by task (so the assertions above can tell them apart)
    drawn = fewshot_prefix(prompt, pool, 3, 7, "quiz2", rows[0])
    assert drawn != fewshot_prefix(prompt, pool, 3, 1234, "quiz2", rows[0])
    assert drawn != fewshot_prefix(prompt, pool, 3, 7, "other", rows[0])


def test_what_evaluate_task_hands_the_scorer_and_keeps_from_it(monkeypatch):
    """The scorer gets the run's batch budget, progress callback and caches; each row keeps its own idx,
    its scores and greedy flags in choice order; the result names the task and prompt set, and the
    seconds the scoring took (a stubbed clock: 10.0 s before, 12.5 s after)."""
    calls: list[dict] = []
    greedy = {" no": True, " yes": False}

    def score_requests(model, tokenizer, requests, max_len, **kwargs):
        calls.append(kwargs | {"max_len": max_len})
        return [Score(-1.0 - i, greedy[r.continuation], 1) for i, r in enumerate(requests)], ScoringStats(len(requests))

    clock = iter([10.0, 12.5])
    monkeypatch.setattr(smallbench, "score_requests", score_requests)
    monkeypatch.setattr(smallbench.time, "perf_counter", lambda: next(clock))
    progress, caches = (lambda done, total: None), object()
    rows = [{"q": "a", "label": 0, "idx": 40}, {"q": "b", "label": 1, "idx": 7}]
    result = evaluate_task(None, None, fixed_task(), rows, 48, batch_tokens=99, progress=progress, caches=caches)
    [call] = calls
    assert call["batch_tokens"] == 99 and call["progress"] is progress and call["caches"] is caches
    assert call["max_len"] == 48
    assert [r.idx for r in result.rows] == [40, 7]
    assert [r.loglikelihoods for r in result.rows] == [[-1.0, -2.0], [-3.0, -4.0]]
    assert [r.greedy for r in result.rows] == [[True, False], [True, False]]
    assert (result.task, result.prompt_set, result.seconds) == ("quiz2", "smallbench", 2.5)
    assert result.summary()["seconds"] == 2.5


def test_rows_by_choice_count_and_default_continuations():
    from lmeval_fixtures.suite.smallbench import RowResult, TaskResult

    rows = [RowResult(0, 0, [-1.0, -2.0], [False] * 2, "Q:", ("a", "bé")),
            RowResult(1, 2, [-1.0, -2.0, -3.0], [False] * 3, "Q:", ("a", "b", "ç")),
            RowResult(2, 1, [-1.0, -2.0], [False] * 2, "Q:", ("x", "yz"))]
    result = TaskResult("t", "smallbench", 0, rows, [], ScoringStats(), 0.0)
    figures = result.row_choice_figures()
    assert figures == {"choices_per_row": True, "rows_by_choice_count": {"2": 2, "3": 1}}
    # no continuations recorded: " " + each row's own choice, so gold bytes " a", " ç", " yz"
    assert result.gold_bytes() == [2, 3, 3]
    fixed = TaskResult("t", "smallbench", 0, [RowResult(0, 1, [-1.0, -2.0], [False] * 2, "Q:")], [2, 3],
                       ScoringStats(), 0.0, choices=("no", "sí"))
    assert fixed.gold_bytes() == [len(" sí".encode())] and fixed.row_choice_figures() == {}


def test_each_row_draws_its_own_shots():
    from lmeval_fixtures.suite.smallbench import fewshot_prefix

    prompt = Prompt(CONTEXT, ("no", "yes"))
    pool = [{"q": f"pool {i}", "label": i % 2, "idx": i} for i in range(12)]
    prefixes = {fewshot_prefix(prompt, pool, 2, 7, "t", {"q": "same", "label": 0, "idx": 100 + i}) for i in range(6)}
    assert len(prefixes) > 1  # seeded by the row's idx: rows with the same text still differ


def test_a_task_of_one_choice_has_no_margin():
    from lmeval_fixtures.suite.smallbench import RowResult, TaskResult

    rows = [RowResult(i, 0, [-1.0 - i], [False], "Q:") for i in range(3)]
    summary = TaskResult("t", "smallbench", 0, rows, [3], ScoringStats(), 0.0, choices=("yes",)).summary()
    assert summary["margin"] is None and summary["margin_stderr"] is None
    assert summary["acc"] == 1.0 and summary["gold_bytes"] == 3 * len(" yes")


@pytest.mark.parametrize("delimiter", ["", " => ", "\n\n"])
def test_gold_bytes_of_a_fixed_choice_task_count_its_own_delimiter(monkeypatch, delimiter):
    """A task's one list of choices scored with a delimiter other than a space: the gold bytes (and gold
    bits per byte) count that delimiter, never the default " "."""
    choices = ("nö", "sí")
    prompt = Prompt("Q: {q}\nA:", choices, delimiter=delimiter)
    task = Task("delim", "delim", ("", ""), ("q",), {"smallbench": prompt})
    rows = [{"q": "one", "label": 0, "idx": 0}, {"q": "two", "label": 1, "idx": 1}]
    table = {(prompt.context(r), delimiter + c): ll for r in rows for c, ll in zip(choices, (-1.5, -2.5), strict=True)}
    monkeypatch.setattr(smallbench, "score_requests", scripted(table))
    result = evaluate_task(None, None, task, rows, 64)
    # by hand: "nö" and "sí" are 3 bytes each (ö, í two), the delimiter adds its own length
    assert result.gold_bytes() == [3 + len(delimiter.encode()), 3 + len(delimiter.encode())]
    summary = result.summary()
    assert summary["gold_bytes"] == 6 + 2 * len(delimiter.encode())
    assert summary["gold_bits_per_byte"] == pytest.approx((1.5 + 2.5) / math.log(2) / summary["gold_bytes"], rel=1e-12)


@pytest.mark.parametrize("k", [1, 3])
def test_the_result_and_summary_say_the_fewshot_and_seed_they_were_run_with(monkeypatch, k):
    table = {}

    class Table(dict):
        def __missing__(self, key):
            return -1.0

    monkeypatch.setattr(smallbench, "score_requests", scripted(Table(table)))
    pool = [{"q": f"pool {i}", "label": i % 2, "idx": i} for i in range(6)]
    result = evaluate_task(None, None, fixed_task(), [{"q": "x", "label": 0, "idx": 9}], 64, fewshot=k,
                           fewshot_pool=pool, seed=77)
    assert (result.fewshot, result.seed) == (k, 77)
    summary = result.summary()
    assert (summary["fewshot"], summary["fewshot_seed"]) == (k, 77)


def test_the_running_accuracy_predicts_from_each_rows_own_log_likelihoods():
    """Rows of 2, 3 and 2 choices, their scores arriving out of order: row 0's second choice is likelier
    (-1 > -3, gold 1: right), row 1's third (-0.5, gold 2: right), row 2's first (-2 > -2.5, gold 1:
    wrong). The accuracy after each complete row, worked by hand: 1, 1, 2/3."""
    from lmeval_fixtures.suite.smallbench import RunningAccuracy

    seen: list[dict[str, float]] = []
    running = RunningAccuracy([(0, 2), (2, 5), (5, 7)], [1, 2, 1], seen.append)
    running.scored([1, 4, 6], [-1.0, -0.5, -2.5])
    assert seen == []  # no row has every choice scored yet
    running.scored([0], [-3.0])
    running.scored([3, 2], [-0.75, -9.0])
    running.scored([5], [-2.0])
    assert seen == [{"acc": 1.0}, {"acc": 1.0}, {"acc": 2 / 3}]
    with pytest.raises(ValueError):  # a scorer handing fewer scores than requests: a bug said at once
        RunningAccuracy([(0, 2)], [0], seen.append).scored([0, 1], [-1.0])


def test_the_running_accuracy_of_rows_with_their_own_choices(tmp_path, monkeypatch):
    """Rows of 2, 3, 2 and 4 choices of their own: each row counts once its own choices are scored,
    and the last running accuracy is the task's acc (0.25 by hand, see OWN_ROWS)."""
    task = own_choices_task(tmp_path)
    table = {(f"Q: {q}", "->" + c): ll for q, cs, lls, _ in OWN_ROWS for c, ll in zip(cs, lls, strict=True)}

    def score_requests(model, tokenizer, requests, max_len, scored=None, **_):
        logprobs = [table[(r.context, r.continuation)] for r in requests]
        for start in range(0, len(requests), 3):  # three requests a batch: rows complete across batches
            scored(list(range(start, min(start + 3, len(requests)))), logprobs[start:start + 3])
        return [Score(x, False, 1) for x in logprobs], ScoringStats(len(requests))

    monkeypatch.setattr(smallbench, "score_requests", score_requests)
    seen: list[dict[str, float]] = []
    result = evaluate_task(None, None, task, rows_of(task), 64, live=seen.append)
    # 11 requests in batches 0-2, 3-5, 6-8, 9-10, each completing one row (q1, q2, q3, q4): q1-q3 wrong, q4 right
    assert seen == [{"acc": 0.0}, {"acc": 0.0}, {"acc": 0.0}, {"acc": 0.25}] and result.acc == 0.25


def test_the_default_batch_budget_is_the_documented_one():
    """evaluate_task's default token budget is --batch-tokens' default (docs/options.md: 16384)."""
    calls: list[dict] = []

    def score_requests(model, tokenizer, requests, max_len, **kwargs):
        calls.append(kwargs)
        return [Score(-1.0, False, 1) for _ in requests], ScoringStats(len(requests))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(smallbench, "score_requests", score_requests)
        evaluate_task(None, None, fixed_task(), [{"q": "a", "label": 0}], 48)
    assert calls[0]["batch_tokens"] == 16384


@pytest.mark.parametrize("k", [1, 4, 7])
def test_a_rows_shots_are_the_first_k_of_a_seeded_sample_of_k_plus_one_besides_the_row(k):
    """The draw, restated: Python's ``random.Random("seed:task:idx").sample`` of k + 1 pool positions,
    the evaluated row dropped if drawn, the first k kept, each written as context, delimiter, its own
    gold choice and the few-shot delimiter. (A sample of k + 2 differs: ``random.sample`` picks its
    algorithm by the count, so the first k are not the same, e.g. 5 against 6 of 40.)"""
    import random

    from lmeval_fixtures.suite.smallbench import fewshot_prefix

    prompt = Prompt("Q: {q}\nA:", ("no", "yes"), delimiter=" ", fewshot_delimiter="\n\n")
    pool = [{"q": f"pool {i}", "label": i % 2, "idx": i} for i in range(40)]
    for row in [pool[i] for i in range(0, 40, 3)] + [{"q": "fresh", "label": 1, "idx": 500}]:
        picks = random.Random(f"9:quiz:{row['idx']}").sample(range(40), k + 1)
        shots = [pool[i] for i in picks if pool[i] != row][:k]
        expected = "".join(f"Q: {s['q']}\nA: {('no', 'yes')[s['label']]}\n\n" for s in shots)
        assert fewshot_prefix(prompt, pool, k, 9, "quiz", row) == expected


def test_solved_examples_of_a_task_with_own_choices_answer_with_their_own_gold(tmp_path, monkeypatch):
    """A shot of a task whose rows give their own choices answers with its own gold choice (lm-eval's
    doc_to_choice of the shot), not the task's list (empty here) nor the evaluated row's."""
    task = own_choices_task(tmp_path)
    rows = rows_of(task)
    seen: list = []

    class Table(dict):
        def __missing__(self, key):
            return -1.0

    monkeypatch.setattr(smallbench, "score_requests", scripted(Table(), seen))
    evaluate_task(None, None, task, rows[:1], 64, fewshot=3, fewshot_pool=rows)
    [context] = {r.context for r in seen}
    # the three other rows, each "Q: <q>->" then its own gold choice (OWN_ROWS: four, wxyz, dddd)
    golds = {f"Q: {q}->{cs[g]}" for q, cs, _, g in OWN_ROWS[1:]}
    shots = context.removesuffix("Q: q1").split(task.prompts["smallbench"].fewshot_delimiter)[:-1]
    assert set(shots) == golds


def test_acc_norm_of_a_row_refuses_lengths_that_are_not_one_per_score():
    from lmeval_fixtures.suite.smallbench import RowResult

    row = RowResult(0, 0, [-1.0, -2.0, -6.0], [False] * 3, "Q:")
    assert row.prediction([1, 4, 2]) == 1  # -1/1 = -1 < -2/4 = -0.5 > -6/2 = -3: the second, worked by hand
    with pytest.raises(ValueError):
        row.prediction([1, 4])  # acc_norm over two of three scored choices would be a silent mistake
