"""``evaluate()`` and the command line are two doors into one run: each option is given through both, on the
same checkpoint and data, and the records, the item outcomes (with their one-line reasons) and what was
written must agree; an option that has no meaning for one model in one process is refused by name."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lmeval_fixtures.api import evaluate
from lmeval_fixtures.core.errors import UsageError
from lmeval_fixtures.evaluation import items

from ..helpers import one_line


def outcomes(record: dict) -> dict[str, tuple[str, str | None]]:
    """Each item's outcome and reason by its pytest name (``test_perplexity[a-test]``), whichever door ran it."""
    return {item_id.split("::")[-1]: (o["outcome"], o["reason"]) for item_id, o in record["items"].items()}


def comparable(record: dict) -> dict:
    settings = {k: v for k, v in record["settings"].items() if k not in ("checkpoints",)}
    figures = {k: v for k, v in record.items() if k.startswith("val_") or k.startswith("test_")}
    return {"settings": settings, "figures": figures, "items": outcomes(record),
            "errors": record.get("errors"), "complete": record.get("complete")}


def both_doors(suite, args: list[str], options: dict, report: str = "r") -> list:
    """(pytest's record, evaluate's record, the pytest result) for the same option given as ``args`` / ``options``."""
    reports = suite.path / report
    result = suite.runpytest("--checkpoint", "ck/a", "--data-dir", "data", "-m", "perplexity", "--run-id", "cli",
                             "--report-dir", str(reports), "-p", "no:randomly", *args)
    evaluate("ck/a", families=["perplexity"], data_dir="data", report_dir=reports, run_id="lib", **options)
    return [json.loads((reports / run / "a" / "metrics.json").read_text()) for run in ("cli", "lib")] + [result]


@pytest.mark.parametrize("args, options", [
    (["--max-eval-tokens", "40", "--ppl-stride", "16", "--detokenize", "off"],
     {"max_eval_tokens": 40, "ppl_stride": 16, "detokenize": "off"}),
    (["--seed", "7", "--batch-tokens", "128", "--no-cache"], {"seed": 7, "batch_tokens": 128, "no_cache": True}),
])
def test_figure_settings_mean_the_same_through_both_doors(suite, monkeypatch, args, options):
    monkeypatch.chdir(suite.path)
    cli, lib, _ = both_doors(suite, args, options)
    assert comparable(cli) == comparable(lib)


def test_strict_skips_fail_a_skipped_item_through_both_doors(suite, monkeypatch):
    monkeypatch.chdir(suite.path)
    (suite.path / "data/wikitext-2-raw/test.txt").unlink()
    cli, lib, result = both_doors(suite, ["--strict-skips"], {"strict_skips": True})
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert comparable(cli) == comparable(lib)
    outcome, reason = outcomes(lib)["test_perplexity[a-test]"]
    assert outcome == "error" and reason.startswith("skipped under --strict-skips: ")  # at set-up, as pytest's
    plain = evaluate(suite.path / "ck" / "a", families=["perplexity"], data_dir=suite.path / "data",
                     report_dir=suite.path / "plain", run_id="p")
    assert outcomes(plain.records["a"])["test_perplexity[a-test]"][0] == "skipped"  # without the option: a skip


def test_a_gated_item_that_skips_fails_under_a_baseline_through_both_doors(suite, monkeypatch):
    monkeypatch.chdir(suite.path)
    base = evaluate(suite.path / "ck" / "a", families=["perplexity"], data_dir=suite.path / "data",
                    report_dir=suite.path / "base", run_id="b")
    (suite.path / "data/wikitext-2-raw/test.txt").unlink()
    baseline = str(base.paths[0])
    cli, lib, result = both_doors(suite, ["--baseline", baseline], {"baseline": baseline})
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert comparable(cli) == comparable(lib)
    outcome, reason = outcomes(lib)["test_perplexity[a-test]"]
    assert outcome == "error" and reason.startswith("--baseline given, but this gated item skipped: ")
    assert outcomes(lib)["test_perplexity[a-validation]"][0] == "passed"


def test_merge_into_folds_into_the_named_folder_without_a_history_line_through_both_doors(suite, monkeypatch):
    monkeypatch.chdir(suite.path)
    for door in ("cli", "lib"):
        reports = suite.path / door
        evaluate("ck/a", families=["perplexity"], data_dir="data", report_dir=reports, run_id="first",
                 max_eval_tokens=40)
        history = (reports / "history.jsonl").read_text()
        if door == "cli":
            result = suite.runpytest("--checkpoint", "ck/a", "--data-dir", "data", "-m", "smallbench",
                                     "--report-dir", str(reports), "--max-eval-tokens", "40",
                                     "--merge-into", str(reports / "first"))
            assert result.ret == pytest.ExitCode.OK
        else:
            evaluate("ck/a", families=["smallbench"], data_dir="data", report_dir=reports, max_eval_tokens=40,
                     merge_into=reports / "first")
        assert (reports / "history.jsonl").read_text() == history  # no second line
        # no run folder of its own
        assert sorted(p.name for p in reports.iterdir() if p.is_dir() and p.name != ".cache") == ["first"]
    cli = json.loads((suite.path / "cli/first/a/metrics.json").read_text())
    lib = json.loads((suite.path / "lib/first/a/metrics.json").read_text())
    assert cli["smallbench"] and comparable(cli) == comparable(lib)


def test_threads_set_the_intra_op_threads_of_every_item_through_both_doors(suite, monkeypatch):
    monkeypatch.chdir(suite.path)
    seen: list[int] = []
    measure = items.perplexity

    def probe(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return measure(*args, **kwargs)

    monkeypatch.setattr(items, "perplexity", probe)
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    try:
        both_doors(suite, ["--threads", str(target)], {"threads": target})
    finally:
        torch.set_num_threads(before)
    assert seen == [target] * 4  # two splits, each door


@pytest.mark.parametrize("options, line", [
    ({"shard": "1/2"}, "shard: evaluate() runs every item of its model in this process; a shard is a part of a "
                       "pytest run (pytest benchmarks --shard I/N, then lmeval-fixtures merge)"),
    ({"checkpoint": ["ck/a"]}, "checkpoint: pass the checkpoint (or the in-memory model) as evaluate's first "
                               "argument"),
])
def test_an_option_evaluate_cannot_honour_is_refused_by_name(suite, monkeypatch, options, line):
    monkeypatch.chdir(suite.path)
    with pytest.raises(UsageError) as caught:
        evaluate(suite.path / "ck" / "a", data_dir=suite.path / "data", **options)
    assert one_line(caught) == line
    assert not (suite.path / "reports").exists()


def test_an_in_memory_model_is_recorded_where_it_ran(tiny_lm, tmp_path, monkeypatch):
    model, tokenizer = tiny_lm
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as caught:
        evaluate(model, tokenizer, families=["latency"], dtype="bfloat16")
    assert one_line(caught) == ("dtype 'bfloat16': the in-memory model is on cpu in float32; move it there "
                                "(model.to(...)) or leave dtype= out")
    done = evaluate(model, tokenizer, families=["latency"], latency_shapes="1x8", timing_budget=0.0)
    assert (done.records["model"]["settings"]["device"], done.records["model"]["settings"]["dtype"]) == \
        ("cpu", "float32")
    shutil.rmtree(tmp_path / "reports")
