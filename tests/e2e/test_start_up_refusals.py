"""Arguments with bounds, through pytester and the command line: a --checkpoint that is neither an existing
path nor a hub model id, and a number outside its option's documented range, are one line at start-up (exit 4
under pytest, 2 from ``lmeval-fixtures``) before any report folder or history line is written."""

from __future__ import annotations

import pytest

from lmeval_fixtures.cli.main import main as cli


@pytest.mark.parametrize("checkpoint, line", [
    ("ck/step100", "--checkpoint ck/step100: no such file or folder (ck/ is a folder here, so this names a path "
                   "in it)"),
    ("ck/a/model.safetensor", "--checkpoint ck/a/model.safetensor: no such file or folder"),
    ("./ck/b", "--checkpoint ./ck/b: no such file or folder"),
    ("missing.pt", "--checkpoint missing.pt: no such file or folder"),
    ("/nonexistent/runs/step9", "--checkpoint /nonexistent/runs/step9: no such file or folder"),
])
def test_a_missing_checkpoint_is_a_usage_error_before_anything_is_written(suite, checkpoint, line):
    result = suite.runpytest("--checkpoint", "ck", "--checkpoint", checkpoint, "--data-dir", "data")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{line}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert not (suite.path / "reports").exists()  # no report folder, no history line


def test_the_ini_checkpoints_are_checked_alike(suite):
    suite.makeini("[pytest]\nlmeval_checkpoints = ck/nope.safetensors\n")
    result = suite.runpytest("--data-dir", "data")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini lmeval_checkpoints */ck/nope.safetensors: no such file or folder"])


@pytest.mark.parametrize("args, line", [
    (["--shard", "1/1000000000"], "--shard 1/1000000000: expected I/N with 1 <= I <= N <= 10,000, e.g. 2/4"),
    (["--seed", str(2**70)], f"--seed must be an integer from 0 to 4,294,967,295, got {2**70}"),
    (["--seed", "-5"], "--seed must be an integer from 0 to 4,294,967,295, got -5"),
    (["--threads", "0"], "--threads must be an integer from 1 to 4,096, got 0"),
    (["--timing-budget", "nan"], "--timing-budget must be between 0 and 86400, got nan"),
    (["--latency-rounds", "10000000"], "--latency-rounds must be an integer from 1 to 1,000,000, got 10000000"),
    (["--latency-shapes", "1x128,1x99999999"], "--latency-shapes '1x99999999': expected BATCHxSEQUENCE, each from 1"),
    (["--report-dir", "data/wikitext-2-raw/test.txt"], "--report-dir data/wikitext-2-raw/test.txt: exists and is not"
                                                       " a folder; pass a new or existing folder"),
])
def test_a_number_outside_its_range_is_a_usage_error(suite, args, line):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{line}*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert not (suite.path / "reports").exists()


@pytest.mark.parametrize("argv, line", [
    (["history", "--previous", "0"], "lmeval-fixtures history: --previous must be an integer from 1 to 1,000,000, "
                                     "got 0"),
    (["history", "--previous", "-1"], "lmeval-fixtures history: --previous must be an integer from 1 to 1,000,000, "
                                      "got -1"),
    (["watch", ".", "--interval", "-1"], "lmeval-fixtures watch: --interval must be between 0 and 86400 "
                                         "(exclusive), got -1.0"),
    (["watch", ".", "--interval", "nan"], "lmeval-fixtures watch: --interval must be between 0 and 86400 "
                                          "(exclusive), got nan"),
    (["watch", ".", "--interval", "0"], "lmeval-fixtures watch: --interval must be between 0 and 86400 "
                                        "(exclusive), got 0.0"),
    (["fetch-data", "afile"], "lmeval-fixtures fetch-data: afile: exists and is not a folder; pass a new or existing "
                              "folder"),
    (["fetch-data", "afile/data"], "lmeval-fixtures fetch-data: afile: exists and is not a folder, so afile/data "
                                   "cannot be made a folder; pass a new or existing folder"),
])
def test_a_commands_bad_argument_is_one_line_naming_it(tmp_path, monkeypatch, capsys, argv, line):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    assert cli(argv) == 2
    assert capsys.readouterr().err == line + "\n"


@pytest.mark.parametrize("corpus", ["c=hf:/::train", "c=hf:/:train", "c=hf:a/b/c:train", "c=hf:..:train",
                                    "c=hf:a--b/x:train", "c=hf: x:train"])
def test_a_hub_corpus_that_is_not_a_dataset_id_is_refused_at_start_up(suite, corpus):
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--corpus", corpus)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*is not a hub dataset id; expected DATASET or OWNER/DATASET*"])
    assert "the hub failed" not in result.stdout.str() + result.stderr.str()
