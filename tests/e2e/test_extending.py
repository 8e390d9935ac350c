"""A fifth task and a second corpus, each one declaration in a conftest, reach every surface."""

import json
import math
import statistics

import pytest

from lmeval_fixtures import Corpus, Prompt, Registry, Task
from lmeval_fixtures.core.errors import RegistryError

from .conftest import halve_baseline_bits_per_byte
from .test_gates import lay_out_suite

CONFTEST = '''
from lmeval_fixtures import Corpus, Prompt, Task
from lmeval_fixtures.suite.sources import text_files


def pytest_lmeval_register(registry, config):
    registry.add_task(Task("toy", "toy", ("", ""), ("sentence",),
                           {"smallbench": Prompt("Sentence: {sentence}\\nToy:", ("no", "yes"))}, label="Toy"))
    registry.add_corpus(Corpus("toy", "Toy corpus", read=text_files("toy/{split}.txt")))
'''


@pytest.fixture
def suite(pytester, offline):
    suite = lay_out_suite(pytester)
    suite.makeconftest(CONFTEST)
    rows = [{"sentence": f"the toy {i} is {'good' if i % 2 else 'bad'}", "label": i % 2, "idx": i} for i in range(9)]
    folder = suite.path / "data/smallbench/toy"
    folder.mkdir(parents=True)
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for split, words in (("validation", "fox dog sea"), ("test", "lobster claws legs")):
        docs = [f"A toy document {i} about the {words}.\nIts second line, {i}." for i in range(4)]
        (suite.path / "data/toy").mkdir(exist_ok=True)
        (suite.path / f"data/toy/{split}.txt").write_text("\n\n".join(docs) + "\n")
    from .conftest import write_native_checkpoint

    write_native_checkpoint(suite.path / "ck" / "b", seed=2)
    return suite


def test_a_declared_task_and_corpus_appear_in_every_surface(suite):
    args = ["--checkpoint", "ck", "--data-dir", "data"]
    result = suite.runpytest(*args, "--run-id", "base")
    # per checkpoint: 2 WikiText splits + 2 toy splits + 4 tasks + the toy task
    result.assert_outcomes(passed=18)
    record = json.loads((suite.path / "reports/base/a/metrics.json").read_text())
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

    summary = (suite.path / "reports/base/a/summary.md").read_text()
    assert "## Perplexity (Toy corpus)" in summary and "| toy | smallbench | 0 | 9 |" in summary
    assert "Average accuracy over the 5 tasks (sst2, rte, boolq, mrpc, toy)" in summary
    comparison = (suite.path / "reports/base/comparison.md").read_text()
    header = next(line for line in comparison.splitlines() if line.startswith("| checkpoint"))
    assert "| Toy |" in header and "| toy val bits/byte |" in header and "| toy test ppl |" in header
    history = [json.loads(line) for line in (suite.path / "reports/history.jsonl").read_text().splitlines()]
    assert all(line["toy_val_bits_per_byte"] is not None for line in history)

    # a gate on each, against the first run's records
    gated = suite.runpytest(*args, "--run-id", "gated", "--baseline", "reports/base")
    gated.assert_outcomes(passed=18)
    gates = json.loads((suite.path / "reports/gated/a/metrics.json").read_text())["gates"]
    assert gates["smallbench_toy_acc"]["ok"] and gates["toy_val_bits_per_byte"]["ok"]
    assert gates["toy_test_perplexity"]["ok"] and gates["val_perplexity"]["ok"]

    # and a regression on the new corpus fails its item, naming the figure
    halve_baseline_bits_per_byte(suite.path / "reports/base/a/metrics.json", "toy")
    worse = suite.runpytest(*args, "--run-id", "worse", "--baseline", "reports/base", "-m", "perplexity")
    worse.assert_outcomes(passed=7, failed=1)
    worse.stdout.fnmatch_lines(["*toy_test_bits_per_byte * REGRESSED beyond baseline*"])


def test_clashing_declarations_are_refused():
    registry = Registry.default()
    with pytest.raises(RegistryError, match="task 'sst2' is already declared"):
        registry.add_task(Task("sst2", "x", ("", ""), ("sentence",), {"smallbench": Prompt("{sentence}", ("a",))}))
    with pytest.raises(RegistryError, match="task 'sst2b': its figure key smallbench_sentiment_acc is already"):
        registry.add_task(Task("sst2b", "sentiment", ("", ""), ("s",), {"smallbench": Prompt("{s}", ("a",))}))
    with pytest.raises(RegistryError, match="corpus 'wikitext' is already declared"):
        registry.add_corpus(Corpus("wikitext", "again", read=lambda *a: ([], None)))
    with pytest.raises(RegistryError, match="declare how to read it"):
        registry.add_corpus(Corpus("nothing", "no reader"))
    registry.add_task(Task("only-house", "only-house", ("", ""), ("s",), {"smallbench": Prompt("{s}", ("a",))}))
    with pytest.raises(RegistryError, match="--prompts lm-eval: task\\(s\\) only-house declare no such prompt set"):
        registry.check_prompts("lm-eval")


def test_a_conftest_declaring_a_clash_is_a_usage_error(pytester, offline):
    pytester.makeconftest('''
from lmeval_fixtures import Corpus

def pytest_lmeval_register(registry, config):
    registry.add_corpus(Corpus("wikitext", "again", read=lambda *a: None))
''')
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*corpus 'wikitext' is already declared*"])
