"""An item that raises what the suite never raises on purpose (a bug) is reported as an error
with its traceback, under pytest and under ``evaluate()``, never as a usage or data error."""

import json

import pytest

from lmeval_fixtures.core.errors import DataError, LmevalError
from lmeval_fixtures.evaluation import items

from ..helpers import write_native_checkpoint, write_wikitext

PERPLEXITY_ITEMS = "from lmeval_fixtures.benchmarks.test_perplexity import test_perplexity  # noqa: F401\n"
BROKEN_ITEM = '''
import pytest

from lmeval_fixtures.evaluation import items


def boom(*args, **kwargs):
    raise ValueError("boom")


@pytest.fixture(autouse=True)
def broken_perplexity(monkeypatch):
    monkeypatch.setattr(items, "perplexity", boom)
'''


def boom(*args, **kwargs):
    raise ValueError("boom")


@pytest.fixture
def laid_out(pytester, offline):
    """The packaged perplexity items, their data and checkpoint ``ck/a``."""
    pytester.makepyfile(test_perplexity=PERPLEXITY_ITEMS)
    write_wikitext(pytester.path / "data")
    write_native_checkpoint(pytester.path / "ck" / "a", seed=1)
    return pytester


def test_under_pytest_a_bug_in_an_item_fails_it_with_its_traceback(laid_out):
    laid_out.makeconftest(BROKEN_ITEM)
    result = laid_out.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "r")
    result.assert_outcomes(failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # not USAGE_ERROR, not INTERNAL_ERROR
    result.stdout.fnmatch_lines(['*raise ValueError("boom")*', "E*ValueError: boom"])  # the traceback
    assert "usage error" not in result.stdout.str().lower() + result.stderr.str().lower()
    record = json.loads((laid_out.path / "reports/r/a/metrics.json").read_text())
    assert [(item["outcome"], item["reason"]) for item in record["items"].values()] == [
        ("failed", "ValueError: boom")] * 2


def test_under_evaluate_a_bug_is_recorded_as_an_error_and_raised_with_its_traceback(laid_out, monkeypatch):
    from lmeval_fixtures import evaluate

    monkeypatch.chdir(laid_out.path)
    monkeypatch.setattr(items, "perplexity", boom)
    with pytest.raises(ValueError) as caught:
        evaluate("ck", families=("perplexity", "smallbench"), data_dir="data", max_samples=2, run_id="lib")
    assert str(caught.value) == "boom" and type(caught.value) is ValueError
    assert not isinstance(caught.value, LmevalError)  # a bug, not a usage or data error
    assert any(entry.name == "boom" for entry in caught.traceback)  # raised again with its own traceback
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert not notes or "evaluate::test_perplexity.py::test_perplexity[a-validation]" in notes
    # the other items still ran, and the reports were written before the bug surfaced
    record = json.loads((laid_out.path / "reports/lib/a/metrics.json").read_text())
    outcomes = {item: (entry["outcome"], entry["reason"]) for item, entry in record["items"].items()}
    assert outcomes["evaluate::test_perplexity.py::test_perplexity[a-validation]"] == ("error", "ValueError: boom")
    assert outcomes["evaluate::test_perplexity.py::test_perplexity[a-test]"] == ("error", "ValueError: boom")
    smallbench = [outcome for item, outcome in outcomes.items() if "test_smallbench" in item]
    assert smallbench and all(outcome == "skipped" for outcome, _ in smallbench)  # no SmallBench data here


def test_under_evaluate_an_error_of_the_family_fails_its_item_with_one_line(laid_out, monkeypatch):
    from lmeval_fixtures import evaluate

    def bad_data(*args, **kwargs):
        raise DataError("data/wikitext-2-raw/validation.txt: not UTF-8")

    monkeypatch.chdir(laid_out.path)
    monkeypatch.setattr(items, "perplexity", bad_data)
    done = evaluate("ck", families=("perplexity",), data_dir="data", run_id="fam")  # nothing raised
    outcomes = {(entry["outcome"], entry["reason"]) for entry in done.records["a"]["items"].values()}
    assert outcomes == {("failed", "data/wikitext-2-raw/validation.txt: not UTF-8")}
    assert done.errors == []
