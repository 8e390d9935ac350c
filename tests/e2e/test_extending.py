"""Extending the suite, through pytester: a task and a corpus declared in a conftest, --corpus and --task-file
(our format, lm-eval's, choices per row) reach the record, summary, comparison, history and gates; bad
declarations are usage errors naming the conftest."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from lmeval_fixtures.core.schema import validate_record

from ..helpers import (
    BENCHMARK,
    DOCS,
    QUIZ,
    REVIEWS,
    arc_task_file,
    halve_baseline_bits_per_byte,
    jsonl,
    lay_out_suite,
    lmeval_task,
    quiz_file,
    write,
    write_native_checkpoint,
    write_wikitext,
)

CONFTEST = '''
from lmeval_fixtures import Corpus, Prompt, Task
from lmeval_fixtures.suite.sources import text_files


def pytest_lmeval_register(registry, config):
    registry.add_task(Task("toy", "toy", ("", ""), ("sentence",),
                           {"smallbench": Prompt("Sentence: {sentence}\\nToy:", ("no", "yes"))}, label="Toy"))
    registry.add_corpus(Corpus("toy", "Toy corpus", read=text_files("toy/{split}.txt")))
'''


@pytest.fixture
def declared(pytester, offline):
    declared = lay_out_suite(pytester)
    declared.makeconftest(CONFTEST)
    rows = [{"sentence": f"the toy {i} is {'good' if i % 2 else 'bad'}", "label": i % 2, "idx": i} for i in range(9)]
    folder = declared.path / "data/smallbench/toy"
    folder.mkdir(parents=True)
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for split, words in (("validation", "fox dog sea"), ("test", "lobster claws legs")):
        docs = [f"A toy document {i} about the {words}.\nIts second line, {i}." for i in range(4)]
        (declared.path / "data/toy").mkdir(exist_ok=True)
        (declared.path / f"data/toy/{split}.txt").write_text("\n\n".join(docs) + "\n")
    from ..helpers import write_native_checkpoint

    write_native_checkpoint(declared.path / "ck" / "b", seed=2)
    return declared


def test_a_declared_task_and_corpus_appear_in_every_surface(declared):
    args = ["--checkpoint", "ck", "--data-dir", "data"]
    result = declared.runpytest(*args, "--run-id", "base")
    # per checkpoint: 2 WikiText splits + 2 toy splits + 4 tasks + the toy task
    result.assert_outcomes(passed=18)
    record = json.loads((declared.path / "reports/base/a/metrics.json").read_text())
    assert record["items"]["test_perplexity.py::test_perplexity[a-toy-validation]"]["outcome"] == "passed"

    # the record: nested figures, fingerprints, the task list
    toy = record["corpora"]["toy"]["validation"]
    assert toy["documents"] == 4 and toy["bits_per_byte"] > 0 and toy["detokenized"] is False
    assert toy["bits_per_byte"] == pytest.approx(toy["nll_sum"] / math.log(2) / toy["bytes"])
    assert "toy/validation.txt" in record["data_fingerprints"]
    assert record["smallbench"]["toy"]["n"] == 9 and "toy" in record["smallbench_tasks"]
    # the average covers all five tasks, not the four shipped ones
    accs = [record["smallbench"][t]["acc"] for t in ("sst2", "rte", "boolq", "mrpc", "toy")]
    assert record["smallbench_avg_acc"] == pytest.approx(statistics.fmean(accs))

    summary = (declared.path / "reports/base/a/summary.md").read_text()
    assert "## Perplexity (Toy corpus)" in summary and "| toy | smallbench | 0 | 9 |" in summary
    assert "Average accuracy over the 5 tasks (sst2, rte, boolq, mrpc, toy)" in summary
    comparison = (declared.path / "reports/base/comparison.md").read_text()
    header = next(line for line in comparison.splitlines() if line.startswith("| checkpoint"))
    assert "| Toy |" in header and "| toy val bits/byte |" in header and "| toy test ppl |" in header
    history = [json.loads(line) for line in (declared.path / "reports/history.jsonl").read_text().splitlines()]
    assert all(line["toy_val_bits_per_byte"] is not None for line in history)

    # a gate on each, against the first run's records
    gated = declared.runpytest(*args, "--run-id", "gated", "--baseline", "reports/base")
    gated.assert_outcomes(passed=18)
    gates = json.loads((declared.path / "reports/gated/a/metrics.json").read_text())["gates"]
    assert gates["smallbench_toy_acc"]["ok"] and gates["toy_val_bits_per_byte"]["ok"]
    assert gates["toy_test_perplexity"]["ok"] and gates["val_perplexity"]["ok"]

    # and a regression on the new corpus fails its item, naming the figure
    halve_baseline_bits_per_byte(declared.path / "reports/base/a/metrics.json", "toy")
    worse = declared.runpytest(*args, "--run-id", "worse", "--baseline", "reports/base", "-m", "perplexity")
    worse.assert_outcomes(passed=7, failed=1)
    worse.stdout.fnmatch_lines(["*toy_test_bits_per_byte * REGRESSED beyond baseline*"])


def test_a_conftest_declaring_a_clash_is_a_usage_error(pytester, offline):
    pytester.makeconftest('''
from lmeval_fixtures import Corpus

def pytest_lmeval_register(registry, config):
    registry.add_corpus(Corpus("wikitext", "again", read=lambda *a: None))
''')
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*corpus 'wikitext' is already declared*"])


@pytest.mark.parametrize("declaration, says", [
    ('registry.add_task(Task("avg", "avg", ("", ""), ("sentence",), {"smallbench": Prompt("{sentence}", ("a", "b"))}))',
     "its figure key smallbench_avg_acc is already another figure's"),
    ('registry.add_task(Task("../../x", "x", ("", ""), ("sentence",), {"smallbench": Prompt("{sentence}", ("a",))}))',
     "task '../../x': use one plain name"),
    ('registry.add_corpus(Corpus("a/b", "x", read=text_files("x/{split}.txt")))', "corpus 'a/b': use one plain name"),
    ('registry.add_corpus(Corpus("c", "x", read=text_files("x/{split}.txt"), splits=("../v",)))',
     "corpus 'c': split '../v': use one plain name"),
    ('registry.add_task(Task("t", "t", ("", ""), ("sentence",), {"smallbench": Prompt("S: {sentnce}", ("a",))}))',
     "refers to {sentnce}, which is not a field of the task (fields: sentence)"),
    ('registry.add_task(Task("t", "t", ("", ""), ("sentence",), {"smallbench": Prompt("{0} {", ("a",))}))',
     "does not parse"),
    ('registry.add_task(Task("t", "t", ("", ""), ("sentence",), {"smallbench": Prompt("{sentence.upper}", ("a",))}))',
     "refers to {sentence.upper}"),
    ('registry.add_corpus(Corpus("val", "x", read=text_files("x/{split}.txt"), splits=("bits",)))', None),
])
def test_bad_declarations_are_usage_errors_naming_the_conftest(pytester, offline, declaration, says):
    pytester.makeconftest(f'''
from lmeval_fixtures import Corpus, Prompt, Task
from lmeval_fixtures.suite.sources import text_files

def pytest_lmeval_register(registry, config):
    {declaration}
''')
    result = pytester.runpytest()
    if says is None:  # an odd but harmless name is accepted
        assert result.ret != pytest.ExitCode.USAGE_ERROR
        return
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*conftest.py: *{says}*"])


def test_a_conftest_below_the_root_cannot_declare_in_silence(pytester, offline):
    pytester.makepyfile(test_x="def test_x(): pass")
    sub = pytester.mkpydir("sub")
    (sub / "conftest.py").write_text('''
from lmeval_fixtures import Prompt, Task

def pytest_lmeval_register(registry, config):
    registry.add_task(Task("late", "late", ("", ""), ("s",), {"smallbench": Prompt("{s}", ("a",))}))
''')
    (sub / "test_y.py").write_text("def test_y(): pass\n")
    result = pytester.runpytest()
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*sub/conftest.py: declares tasks or corpora*declare them in the conftest.py at the "
                                 "root of the run*"])


def test_a_corpus_reader_that_fails_is_one_line(pytester, offline):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    pytester.makeconftest('''
from lmeval_fixtures import Corpus

def explode(split, data_dir, hub):
    raise RuntimeError("reader exploded\\nsecond line")

def pytest_lmeval_register(registry, config):
    registry.add_corpus(Corpus("boom", "Boom", read=explode, splits=("validation",)))
''')
    write_wikitext(pytester.path / "data")
    write_native_checkpoint(pytester.path / "ck" / "a")
    result = pytester.runpytest("--checkpoint", "ck", "--data-dir", "data")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*corpus 'boom': its reader failed on validation (RuntimeError: reader exploded)*"])
    assert "Traceback" not in result.stdout.str()


@pytest.fixture
def own_corpus(pytester, offline):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    write_wikitext(pytester.path / "data")
    for name, seed in (("a", 1), ("b", 2)):
        write_native_checkpoint(pytester.path / "ck" / name, seed=seed)
    (pytester.path / "own").mkdir()
    (pytester.path / "own" / "validation.txt").write_text("\n\n".join(DOCS) + "\n")
    (pytester.path / "own" / "test.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    return pytester


def test_a_corpus_option_reaches_record_summary_comparison_history_and_gates(own_corpus):
    args = ["--checkpoint", "ck", "--data-dir", "data", "--corpus", "own=own"]
    own_corpus.runpytest(*args, "--run-id", "base").assert_outcomes(passed=8)
    record = json.loads((own_corpus.path / "reports/base/a/metrics.json").read_text())
    own = record["corpora"]["own"]
    assert own["validation"]["documents"] == 3 and own["test"]["documents"] == 3
    assert own["test"]["bits_per_byte"] > 0 and own["test"]["detokenized"] is False
    assert {"own/validation/validation.txt", "own/test/test.jsonl"} <= record["data_fingerprints"].keys()
    assert "## Perplexity (own)" in (own_corpus.path / "reports/base/a/summary.md").read_text()
    comparison = (own_corpus.path / "reports/base/comparison.md").read_text()
    header = next(line for line in comparison.splitlines() if line.startswith("| checkpoint"))
    assert "| own val bits/byte |" in header and "| own test ppl |" in header
    history = [json.loads(line) for line in (own_corpus.path / "reports/history.jsonl").read_text().splitlines()]
    assert len(history) == 2
    assert all(line["own_val_bits_per_byte"] > 0 and line["own_test_perplexity"] > 1 for line in history)

    halve_baseline_bits_per_byte(own_corpus.path / "reports/base/a/metrics.json", "own")
    gated = own_corpus.runpytest(*args, "--run-id", "gated", "--baseline", "reports/base", "-k", "own-test")
    gated.assert_outcomes(passed=1, failed=1)
    gated.stdout.fnmatch_lines(["*own_test_bits_per_byte * REGRESSED beyond baseline*"])


def test_the_ini_declares_corpora_and_bad_values_are_usage_errors(own_corpus):
    own_corpus.makeini("[pytest]\nlmeval_corpora =\n    own=own\n    notes=own/validation.txt:lines\n")
    collected = own_corpus.runpytest("--checkpoint", "ck/a", "--collect-only", "-q")
    collected.stdout.fnmatch_lines(["*test_perplexity[[]a-own-validation[]]", "*test_perplexity[[]a-own-test[]]",
                                    "*test_perplexity[[]a-notes-validation[]]"])
    bad = own_corpus.runpytest("--checkpoint", "ck/a", "--corpus", "own=nothing.txt", "--collect-only")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--corpus 'own=nothing.txt': nothing.txt does not exist*"])
    own_corpus.makeini("[pytest]\nlmeval_task_files = tasks/gone.yaml\n")  # the task files' ini key, wired the same way
    missing = own_corpus.runpytest("--checkpoint", "ck/a", "--collect-only")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*ini lmeval_task_files */tasks/gone.yaml: no such file*"])


def test_task_files_reach_the_record_summary_and_average(pytester, offline):
    from ..helpers import lay_out_suite

    suite = lay_out_suite(pytester)
    jsonl(suite.path / "mine/v.jsonl", [{"text": t, "label": g} for t, g in REVIEWS])
    write(suite.path / "mine/ours.yaml", "name: ours\nlabel: Ours\ndata: v.jsonl\ntemplate: 'Review: {text}'\n"
                                         "choices: [bad, good]\n")
    lmeval_task(suite.path / "theirs")
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "-m", "smallbench", "--run-id", "r",
                             "--task-file", "mine/ours.yaml", "--task-file", "theirs/local/reviews.yaml")
    result.assert_outcomes(passed=6)
    record = json.loads((suite.path / "reports/r/a/metrics.json").read_text())
    assert record["smallbench"]["ours"]["n"] == 4 and record["smallbench"]["local_reviews"]["n"] == 4
    assert {"ours/ours.yaml", "ours/validation/v.jsonl", "local_reviews/reviews.yaml"} <= set(
        record["data_fingerprints"])
    accs = [record["smallbench"][t]["acc"] for t in ("sst2", "rte", "boolq", "mrpc", "ours", "local_reviews")]
    assert record["smallbench_avg_acc"] == pytest.approx(sum(accs) / 6)
    summary = (suite.path / "reports/r/a/summary.md").read_text()
    assert "| ours | smallbench | 0 | 4 |" in summary and "| local_reviews | smallbench | 0 | 4 |" in summary


def test_per_row_choice_tasks_reach_the_record_summary_and_comparison(pytester, offline):
    from ..helpers import lay_out_suite, write_native_checkpoint

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
