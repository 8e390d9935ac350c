"""Sharded runs, the merge and compare commands, the comparison report, xdist resource division."""

import json
import os
from pathlib import Path

import pytest

from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.records.comparison import render_comparison
from lmeval_fixtures.suite.registry import Registry

from .conftest import write_native_checkpoint
from .test_gates import lay_out_suite

RUN_LEVEL = {"run_id", "timestamp", "environment", "invocations", "settings", "seconds", "tokens_per_second",
             "duration_s"}


def strip(value):
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in RUN_LEVEL}
    return value


@pytest.fixture
def suite(pytester, offline):
    lay_out_suite(pytester)
    write_native_checkpoint(pytester.path / "ck" / "b", seed=2, d_model=48, n_heads=3)
    return pytester


def load(root: Path, run: str) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((root / run).glob("*/metrics.json"))}


def test_shards_merge_into_the_report_of_a_single_run(suite, capsys):
    common = ["--checkpoint", "ck", "--data-dir", "data"]
    suite.runpytest(*common, "--run-id", "whole").assert_outcomes(passed=12)
    first = suite.runpytest(*common, "--run-id", "split", "--shard", "1/2", "--report-dir", "s1")
    second = suite.runpytest(*common, "--run-id", "split", "--shard", "2/2", "--report-dir", "s2")
    assert first.parseoutcomes()["passed"] + second.parseoutcomes()["passed"] == 12
    assert first.parseoutcomes()["deselected"] == 6
    out = suite.path / "merged"
    assert cli(["merge", str(out), str(suite.path / "s1/split"), str(suite.path / "s2/split")]) == 0
    whole, merged = load(suite.path / "reports", "whole"), load(suite.path, "merged")
    assert sorted(merged) == ["a", "b"]
    for name in ("a", "b"):
        assert strip(merged[name]) == strip(whole[name])
    assert (out / "comparison.md").is_file()


def test_merge_refuses_shards_of_other_runs_or_data(suite, capsys):
    common = ["--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity"]
    suite.runpytest(*common, "--run-id", "r1", "--shard", "1/2", "--report-dir", "s1")
    suite.runpytest(*common, "--run-id", "r2", "--shard", "2/2", "--report-dir", "s2")
    assert cli(["merge", str(suite.path / "m"), str(suite.path / "s1/r1"), str(suite.path / "s2/r2")]) == 2
    assert "shards of different runs" in capsys.readouterr().err

    suite.runpytest(*common, "--run-id", "r1", "--shard", "2/2", "--report-dir", "s3")
    for path in (suite.path / "s3/r1").glob("*/metrics.json"):
        record = json.loads(path.read_text())
        record["data_fingerprints"]["wikitext-2-raw/validation.txt"] = "0" * 64
        path.write_text(json.dumps(record))
    assert cli(["merge", str(suite.path / "m"), str(suite.path / "s1/r1"), str(suite.path / "s3/r1")]) == 2
    assert "wikitext-2-raw/validation.txt differs from the data of" in capsys.readouterr().err


def test_comparison_report_and_compare_command(suite, capsys):
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "c").assert_outcomes(passed=12)
    text = (suite.path / "reports/c/comparison.md").read_text()
    records = load(suite.path / "reports", "c")
    best = min(records.values(), key=lambda r: r["val_bits_per_byte"])
    assert f"**{best['val_bits_per_byte']:,.4f}**" in text
    lines = [line for line in text.splitlines() if line.startswith("| a ") or line.startswith("| b ")]
    assert lines[0].startswith(f"| {best['checkpoint']['name']} ")  # sorted by bits per byte
    assert "comparison.md" in (suite.path / "reports/c/a/summary.md").read_text()

    assert cli(["compare", str(suite.path / "reports/c"), "--out", str(suite.path / "cmp"),
                "--compare-by", "smallbench_avg_acc"]) == 0
    assert "Sorted by `smallbench_avg_acc`" in (suite.path / "cmp/comparison.md").read_text()
    assert cli(["compare", str(suite.path / "nowhere")]) == 2
    assert "nowhere: no such file or folder" in capsys.readouterr().err


def comparison_record(name: str, tokenizer: str, bpb: float, ppl: float = 100.0, **extra) -> dict:
    return {"run_id": "r", "data_fingerprints": {}, "embedding_ratio": 0.3,
            "checkpoint": {"name": name, "tokenizer_sha256": tokenizer},
            "perplexity": {"validation": {"bits_per_byte": bpb, "token_perplexity": ppl}}} | extra


def test_different_tokenizers_make_token_perplexity_not_comparable():
    figures = Registry.default().figure_table()
    a = comparison_record("a", "1", 2.0)
    b = comparison_record("b", "2", 1.9)
    text = render_comparison([a, b], figures, "val_bits_per_byte")
    assert "token perplexity is not comparable" in text and "val ppl" not in text
    assert "| b | 0.300 | **1.9000** |" in text  # sorted, best in bold
    shared = render_comparison([a, comparison_record("b", "1", 1.9)], figures, "val_bits_per_byte")
    assert "val ppl" in shared and "**100.00**" not in shared  # a value every checkpoint shares is not "best"


def test_bad_shard_is_a_usage_error(suite):
    result = suite.runpytest("--shard", "3/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--shard 3/2: expected I/N with 1 <= I <= N*"])


def test_xdist_workers_divide_the_cpu_threads(suite):
    suite.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "--run-id", "x", "-n", "2",
                               "-m", "perplexity").assert_outcomes(passed=4)
    record = json.loads((suite.path / "reports/x/a/metrics.json").read_text())
    workers = record["environment"]["workers"]
    assert workers and all(w["threads"] == max(1, (os.cpu_count() or 1) // 2) for w in workers.values())




CRASH = '''
import os


def test_zz_crash(checkpoint):
    if checkpoint.name == "b":
        os._exit(3)  # the worker process dies here
'''


def test_a_dead_worker_loses_no_finished_figures(suite):
    suite.makepyfile(test_zz_crash=CRASH)
    result = suite.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "--run-id", "d", "-n", "2",
                                        "-m", "perplexity or not smallbench", "-p", "no:randomly")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 and outcomes["passed"] == 5  # 4 perplexity + crash test of "a"
    records = load(suite.path / "reports", "d")
    for name in ("a", "b"):
        assert records[name]["val_perplexity"] is not None and records[name]["test_perplexity"] is not None
    crashed = [item for node, item in records["b"]["items"].items() if "crash" in node]
    assert crashed[0]["outcome"] in ("failed", "error")


def test_items_that_never_ran_are_listed_and_the_record_is_incomplete(suite):
    suite.makepyfile(test_aa_fail="def test_aa_fail(checkpoint):\n    assert False, 'stop here'\n")
    result = suite.runpytest("--checkpoint", "ck/a", "--data-dir", "data", "--run-id", "x", "-x", "-m",
                             "not smallbench")
    result.assert_outcomes(failed=1)
    record = load(suite.path / "reports", "x")["a"]
    assert record["complete"] is False
    not_run = [node for node, item in record["items"].items() if item["outcome"] == "not run"]
    assert len(not_run) == 2 and all("test_perplexity" in node for node in not_run)
    assert "Incomplete run" in (suite.path / "reports/x/a/summary.md").read_text()


def test_comparison_plot_is_written_with_the_plot_extra(tmp_path):
    pytest.importorskip("matplotlib")
    from lmeval_fixtures.records.comparison import write_comparison

    records = [comparison_record(n, "t", bpb, embedding_ratio=ratio, val_bits_per_byte=bpb,
                                 latency={"1x128": {"timing": "taken", "mean_ms": ms}}, latency_batch1_seq128=ms)
               for n, ratio, bpb, ms in (("a", 0.25, 2.3, 1.0), ("b", 0.5, 2.2, 1.4))]
    written = write_comparison(records, tmp_path, Registry.default().figure_table(records), "val_bits_per_byte")
    png = tmp_path / "comparison.png"
    assert png in written and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![quality against latency](comparison.png)" in (tmp_path / "comparison.md").read_text()


def test_every_run_appends_history_and_the_history_command_flags_a_jump(suite, capsys):
    for run in ("h1", "h2", "h3"):
        suite.runpytest("--checkpoint", "ck/a", "--data-dir", "data", "--run-id", run, "-m", "perplexity")
    history = suite.path / "reports/history.jsonl"
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    assert [line["run_id"] for line in lines] == ["h1", "h2", "h3"]
    assert lines[0]["val_bits_per_byte"] == lines[2]["val_bits_per_byte"] is not None
    assert cli(["history", "--file", str(history), "--metric", "val_bits_per_byte"]) == 0
    assert "latest" in (out := capsys.readouterr().out) and "within the previous 2 run(s)" in out

    lines[-1]["val_bits_per_byte"] *= 1.5  # a regression the trend must flag
    history.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli(["history", "--file", str(history), "--checkpoint", "a"]) == 0
    assert "is OUTSIDE the previous 2 run(s)" in capsys.readouterr().out


def test_logged_samples_feed_the_paired_comparison(suite, capsys):
    import hashlib

    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "p", "--log-samples")
    result.assert_outcomes(passed=12)
    folder = suite.path / "reports/p/a"
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
    text = (suite.path / "reports/p/comparison.md").read_text()
    assert "## Paired comparison" in text and "McNemar p = " in text and "perplexity-validation" in text
    assert "significant" in text

    assert cli(["compare", str(suite.path / "reports/p"), "--out", str(suite.path / "again")]) == 0
    assert "## Paired comparison" in (suite.path / "again/comparison.md").read_text()

    hashed = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "h", "--log-samples=hash",
                             "-m", "smallbench")
    hashed.assert_outcomes(passed=8)
    row = json.loads((suite.path / "reports/h/a/samples-smallbench-rte.jsonl").read_text().splitlines()[0])
    assert "context" not in row and len(row["context_sha256"]) == 64
