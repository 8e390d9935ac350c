"""The reports a run writes, through pytester: the results table, JUnit XML properties, GitHub's step summary,
comparison.md (across runs too), history and the history command, logged samples feeding the paired
comparison, and the small-model figures in each."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest

from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.records.codecs import decode_per_row

from ..helpers import records_of


def test_results_table_lists_what_ran_even_one_task(suite):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "-m", "smallbench", "-k", "rte")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*lmeval-fixtures results*", "checkpoint*figure*value*stderr*",
                                 "a * RTE * 0.* 0.*"])
    assert "SmallBench avg" not in result.stdout.str() and "—" not in result.stdout.str()


def test_junit_xml_carries_each_items_figures(suite):
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--junitxml", "out.xml", "--run-id", "j",
                    "-k", "validation or sst2").assert_outcomes(passed=2)
    record = json.loads((suite.path / "reports" / "j" / "a" / "metrics.json").read_text())
    cases = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(suite.path / "out.xml").iter("testcase")}
    ppl = cases["test_perplexity[a-validation]"]
    assert float(ppl["val_bits_per_byte"]) == pytest.approx(record["val_bits_per_byte"], rel=1e-12)
    assert float(ppl["val_perplexity"]) == pytest.approx(record["val_perplexity"], rel=1e-12)
    sst2 = cases["test_smallbench[a-sst2]"]
    assert float(sst2["smallbench_sentiment_acc"]) == record["smallbench"]["sst2"]["acc"]
    assert float(sst2["smallbench_sentiment_acc_stderr"]) == pytest.approx(record["smallbench"]["sst2"]["acc_stderr"])
    assert not any("lmeval_fragments" in props for props in cases.values())  # no JSON blobs in the XML


def test_step_summary_gets_the_results_appended(suite, monkeypatch):
    summary = suite.path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "gh", "-k", "validation or rte")
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, never replaced
    assert "## lmeval-fixtures: run `gh`" in text
    record = json.loads((suite.path / "reports" / "gh" / "a" / "metrics.json").read_text())
    assert f"| a | val bits/byte | {record['val_bits_per_byte']:,.4f} |" in text
    assert f"| a | RTE | {record['smallbench']['rte']['acc']:,.4f} |" in text


def test_no_step_summary_outside_github(suite, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "-k", "validation").assert_outcomes(passed=1)
    assert not list(suite.path.glob("*summary*"))


def test_comparison_report_and_compare_command(two_models, capsys):
    two_models.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "c").assert_outcomes(passed=12)
    text = (two_models.path / "reports/c/comparison.md").read_text()
    records = records_of(two_models.path / "reports", "c")
    best = min(records.values(), key=lambda r: r["val_bits_per_byte"])
    assert f"**{best['val_bits_per_byte']:,.4f}**" in text
    lines = [line for line in text.splitlines() if line.startswith("| a ") or line.startswith("| b ")]
    assert lines[0].startswith(f"| {best['checkpoint']['name']} ")  # sorted by bits per byte
    assert "comparison.md" in (two_models.path / "reports/c/a/summary.md").read_text()

    assert cli(["compare", str(two_models.path / "reports/c"), "--out", str(two_models.path / "cmp"),
                "--compare-by", "smallbench_avg_acc"]) == 0
    assert "Sorted by `smallbench_avg_acc`" in (two_models.path / "cmp/comparison.md").read_text()
    assert cli(["compare", str(two_models.path / "nowhere")]) == 2
    assert "nowhere: no such file or folder" in capsys.readouterr().err


def test_compare_keeps_a_checkpoint_of_two_runs_apart(suite, capsys):
    for run in ("r1", "r2"):
        suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", run, "--log-samples",
                        "-m", "smallbench", "-k", "sst2").assert_outcomes(passed=1)
    out = suite.path / "cmp"
    assert cli(["compare", str(suite.path / "reports/r1"), str(suite.path / "reports/r2"), "--out", str(out),
                "--compare-by", "smallbench_sentiment_acc"]) == 0
    text = (out / "comparison.md").read_text()
    assert "| a @ r1 |" in text and "| a @ r2 |" in text
    assert "a @ r1 vs a @ r2" in text or "a @ r1 - a @ r2" in text
    assert "a - a" not in text


def test_every_run_appends_history_and_the_history_command_flags_a_jump(two_models, capsys):
    for run in ("h1", "h2", "h3"):
        two_models.runpytest("--checkpoint", "ck/a", "--data-dir", "data", "--run-id", run, "-m", "perplexity")
    history = two_models.path / "reports/history.jsonl"
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    assert [line["run_id"] for line in lines] == ["h1", "h2", "h3"]
    assert lines[0]["val_bits_per_byte"] == lines[2]["val_bits_per_byte"] is not None
    assert cli(["history", "--file", str(history), "--metric", "val_bits_per_byte"]) == 0
    assert "latest" in (out := capsys.readouterr().out) and "within the previous 2 run(s)" in out

    lines[-1]["val_bits_per_byte"] *= 1.5  # a regression the trend must flag
    history.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli(["history", "--file", str(history), "--checkpoint", "a"]) == 0
    assert "is OUTSIDE the previous 2 run(s)" in capsys.readouterr().out


def test_logged_samples_feed_the_paired_comparison(two_models, capsys):
    import hashlib

    result = two_models.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "p", "--log-samples")
    result.assert_outcomes(passed=12)
    folder = two_models.path / "reports/p/a"
    record = json.loads((folder / "metrics.json").read_text())
    for name, sha in record["samples"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha
    rows = [json.loads(line) for line in (folder / "samples-smallbench-sst2.jsonl").read_text().splitlines()]
    assert len(rows) == record["smallbench"]["sst2"]["n"]
    assert sum(r["correct"] for r in rows) == record["smallbench"]["sst2"]["correct"]
    assert rows[0]["context"].startswith("Sentence: ") and rows[0]["choices"] == ["negative", "positive"]
    docs = [json.loads(line) for line in (folder / "samples-perplexity-validation.jsonl").read_text().splitlines()]
    assert sum(d["nll"] for d in docs) == pytest.approx(record["perplexity"]["validation"]["nll_sum"])
    assert sum(d["bytes"] for d in docs) == record["perplexity"]["validation"]["bytes"]
    text = (two_models.path / "reports/p/comparison.md").read_text()
    assert "## Paired comparison" in text and "McNemar p = " in text and "perplexity-validation" in text
    assert "significant" in text

    assert cli(["compare", str(two_models.path / "reports/p"), "--out", str(two_models.path / "again")]) == 0
    assert "## Paired comparison" in (two_models.path / "again/comparison.md").read_text()

    hashed = two_models.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "h", "--log-samples=hash",
                             "-m", "smallbench")
    hashed.assert_outcomes(passed=8)
    row = json.loads((two_models.path / "reports/h/a/samples-smallbench-rte.jsonl").read_text().splitlines()[0])
    assert "context" not in row and len(row["context_sha256"]) == 64


def test_a_run_records_reports_and_compares_the_small_model_figures(two_models):
    two_models.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "s", "--junitxml", "out.xml",
                    "-m", "smallbench", "-k", "sst2").assert_outcomes(passed=2)
    folder = two_models.path / "reports" / "s"
    record = json.loads((folder / "a" / "metrics.json").read_text())
    sst2 = record["smallbench"]["sst2"]
    assert sst2["majority_rate"] == 0.5 and sst2["acc_above_majority"] == sst2["acc"] - 0.5  # 12 rows, labels 0/1
    assert sst2["gold_bytes"] == 6 * len(" negative") + 6 * len(" positive")
    assert sst2["gold_bits_per_byte"] == pytest.approx(
        -sst2["gold_loglikelihood_sum"] / (math.log(2) * sst2["gold_bytes"]), rel=1e-12)
    rows = decode_per_row(sst2)
    assert sum(rows.correct) == sst2["correct"] and sum(rows.margin) / 12 == pytest.approx(sst2["margin"], abs=1e-4)
    cases = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(two_models.path / "out.xml").iter("testcase")}
    props = cases["test_smallbench[a-sst2]"]
    assert float(props["smallbench_sentiment_margin"]) == sst2["margin"]
    assert float(props["smallbench_sentiment_margin_stderr"]) == pytest.approx(sst2["margin_stderr"])
    assert float(props["smallbench_sentiment_gold_bits_per_byte"]) == sst2["gold_bits_per_byte"]
    assert float(props["smallbench_sentiment_acc_above_majority"]) == sst2["acc_above_majority"]
    comparison = (folder / "comparison.md").read_text()
    assert "## SmallBench per task" in comparison and "## Best against runner-up" in comparison
    assert "| task | checkpoint | acc | majority | acc - majority | classes | margin | gold bits/byte |" in comparison
    assert "- SST-2 margin: " in comparison
    history = [json.loads(line) for line in (two_models.path / "reports" / "history.jsonl").read_text().splitlines()]
    assert all(line["smallbench_sentiment_margin"] is not None for line in history)
    assert "| majority | acc - majority | classes |" in (folder / "a" / "summary.md").read_text()
