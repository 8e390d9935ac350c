"""One start-up for pytest and ``evaluate()`` (``evaluation.startup.start_run``): the same
settings, registry and run; settings frozen once validated; each run's inputs own their caches."""

import dataclasses
import json

import pytest

from lmeval_fixtures.core.errors import UsageError
from lmeval_fixtures.evaluation import startup
from lmeval_fixtures.evaluation.inputs import Inputs
from lmeval_fixtures.evaluation.options import option_values
from lmeval_fixtures.evaluation.settings import settings_from_options
from lmeval_fixtures.evaluation.startup import IniDefaults, start_run

from ..helpers import SAMPLE_TEXT, make_tokenizer, tiny_config, write_native_checkpoint, write_wikitext

PERPLEXITY_ITEMS = "from lmeval_fixtures.benchmarks.test_perplexity import test_perplexity  # noqa: F401\n"


def test_pytest_and_evaluate_start_the_same_run_through_one_start_up(pytester, offline, monkeypatch):
    from lmeval_fixtures import api, evaluate
    from lmeval_fixtures.plugin import session

    pytester.makepyfile(test_perplexity=PERPLEXITY_ITEMS)
    write_wikitext(pytester.path / "data")
    write_native_checkpoint(pytester.path / "ck" / "a", seed=1)
    started = []

    def recording(*args, **kwargs):
        context = startup.start_run(*args, **kwargs)
        started.append(context)
        return context

    monkeypatch.setattr(session, "start_run", recording)
    monkeypatch.setattr(api, "start_run", recording)
    pytester.runpytest("--checkpoint", "ck", "--data-dir", "data", "--max-samples", "3", "--run-id", "by-pytest",
                       "--strict-skips").assert_outcomes(passed=2)
    monkeypatch.chdir(pytester.path)
    done = evaluate("ck", families=("perplexity",), data_dir="data", max_samples=3, run_id="by-evaluate",
                    strict_skips=True)
    assert done.errors == []
    by_pytest, by_evaluate = started
    unnamed = [dataclasses.replace(context.settings, run_id=None) for context in started]
    assert unnamed[0] == unnamed[1]
    assert by_pytest.settings.strict_skips and by_evaluate.settings.strict_skips
    for context in started:
        assert sorted(context.registry.tasks) == ["boolq", "mrpc", "rte", "sst2"]
        assert sorted(context.registry.corpora) == ["wikitext"]
    assert [f.key for f in by_pytest.figures] == [f.key for f in by_evaluate.figures]
    assert by_pytest.run.metadata["settings"] == by_evaluate.run.metadata["settings"]
    assert (by_pytest.run.run_id, by_evaluate.run.run_id) == ("by-pytest", "by-evaluate")
    assert by_pytest.inputs.cache.run_id == "by-pytest" and by_evaluate.inputs.cache.run_id == "by-evaluate"
    # and both wrote the same figures
    ours, theirs = (json.loads((pytester.path / f"reports/{run}/a/metrics.json").read_text())
                    for run in ("by-evaluate", "by-pytest"))
    assert ours["perplexity"] == theirs["perplexity"]


def test_start_up_takes_the_callers_parts_in_order(tmp_path):
    seen = []

    def complete(settings):
        seen.append("complete")
        return dataclasses.replace(settings, extra=settings.extra | {"worker": {"id": "gw1"}})

    def register(registry):
        seen.append("register")
        assert "sst2" in registry.tasks  # the shipped suite, before the options' declarations

    values = option_values(cache_dir=str(tmp_path / "cache"))
    worker = start_run(values, report_root=tmp_path, source_root=tmp_path, args=["x"], register=register,
                       complete=complete, is_worker=True, worker_run_id="controller-run")
    assert seen == ["complete", "register"]
    assert worker.settings.extra == {"worker": {"id": "gw1"}}
    assert worker.run.metadata == {}  # a worker only records and ships fragments
    assert worker.inputs.cache.run_id == "controller-run"
    controller = start_run(values, report_root=tmp_path, source_root=tmp_path, args=["x", "y"],
                           ini=IniDefaults(strict_skips=True))
    assert controller.run.metadata["args"] == ["x", "y"] and controller.inputs.cache.run_id == controller.run.run_id
    assert controller.settings.strict_skips  # the ini's lmeval_strict_skips, validated with the options
    assert controller.environment == {"device": controller.settings.device, "dtype": controller.settings.dtype}
    with pytest.raises(UsageError, match="--compare-by nonsense: not a figure of this run"):
        start_run(option_values(compare_by="nonsense"), report_root=tmp_path, source_root=tmp_path, args=[])


def test_settings_are_frozen_once_validated(tmp_path):
    settings = settings_from_options(option_values(no_cache=True), [], None, tmp_path)
    for name, value in (("strict_skips", True), ("device", "cuda"), ("checkpoints", [])):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(settings, name, value)
    device = settings.device
    changed = dataclasses.replace(settings, device="cuda:1")
    assert changed.device == "cuda:1" and settings.device == device


def test_two_inputs_do_not_share_the_scoring_engines_caches(tmp_path):
    from lmeval_fixtures.engine.perplexity import Document, score_documents
    from lmeval_fixtures.models.model import Transformer
    from lmeval_fixtures.models.tokenizer import as_text_tokenizer

    settings = settings_from_options(option_values(no_cache=True), [], None, tmp_path)
    first, second = Inputs(settings), Inputs(settings)
    try:
        assert first.engine is not second.engine and first.engine.pools is not second.engine.pools
        tokenizer = make_tokenizer()
        model = Transformer(tiny_config(tokenizer.get_vocab_size()))
        model.init_weights(0)
        model.eval()
        text = as_text_tokenizer(tokenizer)
        documents = [Document(SAMPLE_TEXT, SAMPLE_TEXT), Document(SAMPLE_TEXT[:90], SAMPLE_TEXT[:90])]
        alone = score_documents(model, text, documents, 64)  # no caches given: this call's own
        kept = [score_documents(model, text, documents, 64, caches=first.engine) for _ in range(2)]
        assert alone.per_document == kept[0].per_document == kept[1].per_document  # speed only, never a figure
        assert len(first.engine.encoded) == 1 and first.engine.choosers
        assert second.engine.encoded == {} and second.engine.choosers == {}
        vocab = tokenizer.get_vocab_size()
        assert first.engine.chooser(vocab, blocked=False) is first.engine.chooser(vocab, blocked=False)
        assert first.engine.chooser(vocab, blocked=False) is not second.engine.chooser(vocab, blocked=False)
        pool = first.engine.pools.get(2)
        assert first.engine.pools.get(2) is pool and second.engine.pools.get(2) is not pool
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("argv, command", [
    (["/usr/bin/pytest", "benchmarks", "-n", "2"], ["pytest", "benchmarks", "-n", "2"]),
    (["/venv/lib/python3.11/site-packages/pytest/__main__.py", "-q"], ["python -m pytest", "-q"]),
    (["train.py", "--lr", "3e-4"], ["train.py", "--lr", "3e-4"]),
    ([""], ["python"]), ([], ["python"]),  # an interactive interpreter, an embedding program
])
def test_the_command_line_is_recorded_as_a_person_would_type_it_again(argv, command):
    from lmeval_fixtures.evaluation.run_info import process_command

    assert process_command(argv) == command


def test_a_run_records_its_command_line_in_the_invocation(tmp_path, monkeypatch):
    from lmeval_fixtures import evaluate

    monkeypatch.setattr("sys.argv", ["/home/me/train.py", "--steps", "6"])
    done = evaluate(write_native_checkpoint(tmp_path / "ck"), name="a", families=["perplexity"],
                    data_dir=write_wikitext(tmp_path / "data"), max_eval_tokens=100, report_dir=tmp_path / "r",
                    history=False)
    invocation = done.records["a"]["invocations"][-1]
    assert invocation["command"] == ["train.py", "--steps", "6"]
    assert invocation["args"][0] == "lmeval_fixtures.evaluate" and "max_eval_tokens=100" in invocation["args"]
    summary = (tmp_path / "r" / done.records["a"]["run_id"] / "a" / "summary.md").read_text()
    assert "```\ntrain.py --steps 6\n```\n\nArguments to the suite:\n\n```\nlmeval_fixtures.evaluate(" in summary
