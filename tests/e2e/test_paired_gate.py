"""--gate paired (issue 17): a baseline that differs on a few rows passes, one clearly better fails,
with the difference, its interval and p in the message."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from ..helpers import BENCHMARK, SMALLBENCH, write_native_checkpoint, write_smallbench, write_wikitext

ARGS = ["--checkpoint", "ck", "--data-dir", "data", "-k", "sst2 or validation", "--no-cache"]


@pytest.fixture
def based(pytester, offline):
    pytester.makepyfile(test_perplexity=BENCHMARK, test_smallbench=SMALLBENCH)
    write_wikitext(pytester.path / "data", articles=6)
    write_smallbench(pytester.path / "data", rows=40)
    write_native_checkpoint(pytester.path / "ck" / "a", seed=1)
    pytester.runpytest(*ARGS, "--run-id", "base", "--update-baseline", "base").assert_outcomes(passed=2)
    return pytester


def edit_baseline(suite, name: str, change) -> str:
    folder = suite.path / "reports" / "baselines" / name
    shutil.copytree(suite.path / "reports" / "baselines" / "base", folder)
    path = folder / "a" / "metrics.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    return str(folder)


def flip(record: dict, rows: list[int] | None, to: str | None = None) -> None:
    """Flip some rows of SST-2's correctness (or set all to ``to``) and keep acc consistent."""
    entry = record["smallbench"]["sst2"]
    correct = list(entry["per_row"]["correct"])
    for i in (range(len(correct)) if rows is None else rows):
        correct[i] = to if to is not None else ("0" if correct[i] == "1" else "1")
    entry["per_row"]["correct"] = "".join(correct)
    entry["acc"] = correct.count("1") / len(correct)
    entry["correct"] = correct.count("1")
    record["smallbench_sentiment_acc"] = entry["acc"]


def scale_nll(record: dict, factor) -> None:
    """Scale each validation document's NLL by ``factor(i)`` and keep the split's figures consistent."""
    entry = record["perplexity"]["validation"]
    per_doc = entry["per_document"]
    nll = [float(v) * factor(i) for i, v in enumerate(per_doc["nll"].split())]
    per_doc["nll"] = " ".join(f"{v:.4f}" for v in nll)
    entry["nll_sum"] = sum(nll)
    entry["loss"] = entry["nll_sum"] / entry["tokens"]
    entry["bits_per_byte"] = entry["nll_sum"] / (math.log(2) * entry["bytes"])
    entry["token_perplexity"] = math.exp(entry["loss"])
    record["val_bits_per_byte"] = entry["bits_per_byte"]
    record["val_perplexity"] = entry["token_perplexity"]
    record["val_loss"] = entry["loss"]


def test_a_baseline_differing_on_a_few_rows_passes(based):
    folder = edit_baseline(based, "few", lambda r: (flip(r, [0, 1, 2]),
                                                              scale_nll(r, lambda i: 1.01 if i % 2 else 0.99)))
    result = based.runpytest(*ARGS, "--baseline", folder, "--gate", "paired", "--run-id", "few")
    result.assert_outcomes(passed=2)
    gates = json.loads((based.path / "reports" / "few" / "a" / "metrics.json").read_text())["gates"]
    message = gates["smallbench_sentiment_acc"]["message"]
    assert gates["smallbench_sentiment_acc"]["ok"] and "no significant regression at alpha 0.05" in message
    assert "McNemar p = " in message and "95% interval [" in message and "n = 40" in message
    assert gates["val_bits_per_byte"]["ok"] and "paired bootstrap over documents" in gates["val_bits_per_byte"][
        "message"]


def test_a_clearly_better_baseline_fails_with_difference_interval_and_p(based):
    folder = edit_baseline(based, "better", lambda r: (flip(r, None, to="1"),
                                                                  scale_nll(r, lambda i: 0.8)))
    result = based.runpytest(*ARGS, "--baseline", folder, "--gate", "paired", "--run-id", "worse")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*smallbench_sentiment_acc 0.* vs baseline 1.0000: accuracy difference -0.*, 95% interval [[]-0.*, -0.*[]], "
        "McNemar p = *, n = 40: REGRESSED (significantly worse at alpha 0.05)*"])
    result.stdout.fnmatch_lines([
        "*val_bits_per_byte * vs baseline *: bits/byte difference +0.*, paired bootstrap over documents*REGRESSED*"])


def test_the_threshold_gate_stays_the_default(based):
    folder = edit_baseline(based, "few2", lambda r: flip(r, [0, 1, 2]))
    result = based.runpytest(*ARGS, "--baseline", folder, "--run-id", "threshold")
    gates = json.loads((based.path / "reports" / "threshold" / "a" / "metrics.json").read_text())["gates"]
    assert "SE" in gates["smallbench_sentiment_acc"]["message"]  # the tolerance message, not a paired test
    assert result.ret in (0, 1)


def test_a_baseline_without_per_row_values_is_refused_not_compared(based):
    def strip(record: dict) -> None:
        del record["smallbench"]["sst2"]["per_row"]
        del record["perplexity"]["validation"]["per_document"]

    folder = edit_baseline(based, "old", strip)
    result = based.runpytest(*ARGS, "--baseline", folder, "--gate", "paired", "--run-id", "old")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*refused: it holds no per-row (per-document) values to pair with; refresh it "
                                 "with --update-baseline*"])


@pytest.mark.parametrize("alpha", ["0", "1", "nan", "-0.1"])
def test_gate_alpha_must_lie_between_zero_and_one(pytester, alpha):
    result = pytester.runpytest("--gate-alpha", alpha)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gate-alpha must be between 0 and 1*"])
