"""Data and files that cannot work, through pytester: each fails its own items with one line naming the file
(and the line), never a traceback, and a FIFO is refused rather than waited on."""

import os

import pytest

from lmeval_fixtures.cli.main import main as cli

from ..helpers import write_native_checkpoint


@pytest.mark.parametrize("content, message, outcome", [
    (b"", "no tokens scored in WikiText-2 raw validation", {"failed": 1}),  # figures unsound: the item fails
    (b" = A = \n caf\xe9 \n", "validation.txt: not UTF-8 (byte 12, line 2)", {"errors": 1}),  # bad input
])
def test_broken_wikitext_fails_clearly(ppl_suite, content, message, outcome):
    (ppl_suite.path / "data/wikitext-2-raw/validation.txt").write_bytes(content)
    ckpt = write_native_checkpoint(ppl_suite.path / "ck" / "a")
    result = ppl_suite.runpytest("--checkpoint", str(ckpt), "--data-dir", "data")
    result.assert_outcomes(passed=1, **outcome)
    result.stdout.fnmatch_lines([f"*{message}*"])


def test_bad_task_data_fails_that_task_with_file_and_line(suite):
    bad = suite.path / "data/smallbench/rte/validation.jsonl"
    bad.write_text(bad.read_text() + '{"sentence1": "x", "sentence2": "y", "label": 7, "idx": 99}\n')
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "-m", "smallbench")
    result.assert_outcomes(passed=3, errors=1)  # bad input errors at set-up, as a bad checkpoint does
    result.stdout.fnmatch_lines(["*rte/validation.jsonl:13: label 7 out of range for rte (0..1)*"])


def test_settings_that_cannot_apply_to_the_data_fail_with_one_line(suite):
    # the test checkpoints have a 64-token context; the toy train splits have 12 rows
    result = suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--ppl-stride", "100", "--fewshot", "12")
    result.assert_outcomes(errors=6)
    result.stdout.fnmatch_lines(["*--ppl-stride 100 exceeds a's context of 64 tokens; use a stride of at most 64*",
                                 "*--fewshot 12: the sst2 train split (*) has 12 rows; use --fewshot 11 or fewer*"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_fifo_where_a_file_is_read_is_refused_not_waited_on(suite, tmp_path, capsys):
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "base", "-m", "perplexity")
    data = suite.path / "data/wikitext-2-raw/test.txt"
    data.unlink()
    os.mkfifo(data)
    result = suite.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity",
                                        timeout=120)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*test.txt: not a regular file (a named pipe (FIFO))*"])
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    baseline = suite.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity",
                                          "-k", "validation", "--baseline", str(fifo), timeout=120)
    baseline.assert_outcomes(failed=1)
    baseline.stdout.fnmatch_lines(["*pipe.json: not a regular file*"])
    for command in (["compare", str(fifo)], ["history", "--file", str(fifo)]):
        assert cli(command) == 2
        assert "not a regular file (a named pipe (FIFO))" in capsys.readouterr().err
