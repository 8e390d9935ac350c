"""The plugin end to end, through pytester, on tiny checkpoints and data made here."""

import json
import math
import os
import pickle
from pathlib import Path

import pytest

from lmeval_fixtures.core.schema import validate_record
from lmeval_fixtures.models.tokenizer import TextTokenizer

from .conftest import write_native_checkpoint, write_wikitext
from .test_perplexity import reference_nll

BENCHMARK = (Path(__file__).parents[1] / "benchmarks" / "test_perplexity.py").read_text()


@pytest.fixture
def suite(pytester, offline):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    write_wikitext(pytester.path / "data")
    return pytester


def records(root: Path) -> dict[str, dict]:
    found = {}
    for path in sorted(root.glob("reports/*/*/metrics.json")):
        record = json.loads(path.read_text())
        validate_record(record)
        assert (path.parent / "summary.md").is_file()
        found[path.parent.name] = record
    return found


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_bad_checkpoints_fail_alone_and_every_report_is_written(suite):
    good = write_native_checkpoint(suite.path / "ck" / "good", seed=1)
    other = write_native_checkpoint(suite.path / "ck", name="other", seed=2, fmt="pt")
    with open(suite.path / "evil.pt", "wb") as handle:
        pickle.dump({"config": {}, "model": Evil()}, handle)
    (suite.path / "text.pt").write_text("hello")
    result = suite.runpytest("--checkpoint", str(good), "--checkpoint", str(other), "--checkpoint", "missing.pt",
                             "--checkpoint", "evil.pt", "--checkpoint", "text.pt", "--data-dir", "data")
    result.assert_outcomes(passed=4, errors=6)
    result.stdout.fnmatch_lines(["*missing.pt: no such file or folder*", "*evil.pt: *",
                                 "*text.pt: not a PyTorch checkpoint*", "*lmeval-fixtures results*"])
    assert not (suite.path / "pwned").exists()
    found = records(suite.path)
    assert sorted(found) == ["evil", "good", "missing", "other", "text"]
    assert found["missing"]["errors"] == ["missing.pt: no such file or folder"]
    assert found["missing"]["val_perplexity"] is None
    assert all(item["outcome"] == "error" for item in found["evil"]["items"].values())
    assert "not run" in (suite.path / next(suite.path.glob("reports/*/evil/summary.md"))).read_text()

    # the figures equal the independent reference computation
    record = found["good"]
    tokenizer = TextTokenizer.from_file(good.parent / "tokenizer.json")
    from lmeval_fixtures.models.loading import load_checkpoint
    from lmeval_fixtures.suite.wikitext import split_wikitext_articles, wikitext_documents

    model = load_checkpoint(good).model
    docs = wikitext_documents(split_wikitext_articles((suite.path / "data/wikitext-2-raw/validation.txt").read_text()))
    nll = sum(reference_nll(model, tokenizer.encode(d.text), tokenizer.bos_token_id, 64, 64) for d in docs)
    tokens = sum(len(tokenizer.encode(d.text)) for d in docs)
    assert record["val_perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-6)
    assert record["val_bits_per_byte"] == pytest.approx(nll / math.log(2) / sum(d.n_bytes for d in docs), rel=1e-6)
    assert record["perplexity"]["validation"]["words"] == sum(d.n_words for d in docs)
    assert record["train_loss"] == 5.5 and record["checkpoint"]["training"]["step"] == 10
    assert set(record["data_fingerprints"]) == {"wikitext-2-raw/validation.txt", "wikitext-2-raw/test.txt"}
    assert record["total_params"] == record["embedding_params"] + record["non_embedding_params"]


def test_without_data_items_skip_with_what_to_pass(suite):
    ckpt = write_native_checkpoint(suite.path / "ck" / "a")
    result = suite.runpytest("--checkpoint", str(ckpt), "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*pass --data-dir DIR holding wikitext-2-raw/validation.txt*"])
    record = records(suite.path)["a"]
    assert record["val_perplexity"] is None and record["total_params"] is not None
    assert "not run" in next(suite.path.glob("reports/*/a/summary.md")).read_text()


def test_token_cap_and_stride_are_recorded(suite):
    ckpt = write_native_checkpoint(suite.path / "ck" / "a")
    result = suite.runpytest("--checkpoint", str(ckpt), "--data-dir", "data", "--max-eval-tokens", "50",
                             "--ppl-stride", "16", "--detokenize", "off", "--run-id", "fixed")
    result.assert_outcomes(passed=2)
    record = json.loads((suite.path / "reports/fixed/a/metrics.json").read_text())
    split = record["perplexity"]["validation"]
    assert split["tokens"] == 50 and split["max_eval_tokens"] == 50 and split["stride"] == 16
    assert split["detokenized"] is False and record["settings"]["ppl_stride"] == 16


@pytest.mark.parametrize("args, message", [
    (["--device", "cuda:7"], "*--device cuda:7*"),
    (["--device", "tpu"], "*--device tpu: expected cpu, cuda, cuda:N, mps or auto*"),
    (["--ppl-stride", "0"], "*--ppl-stride must be a positive integer*"),
    (["--dtype", "float16"], "*float16 is not supported on CPU*"),
])
def test_bad_options_are_usage_errors(suite, args, message):
    result = suite.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_serial_and_xdist_records_are_identical(suite):
    for name, seed in (("a", 1), ("b", 2)):
        write_native_checkpoint(suite.path / "ck" / name, seed=seed)
    common = ["--checkpoint", "ck", "--data-dir", "data", "-p", "no:cacheprovider", "--no-cache"]  # both computed
    suite.runpytest_subprocess(*common, "--run-id", "serial").assert_outcomes(passed=4)
    suite.runpytest_subprocess(*common, "--run-id", "parallel", "-n", "2").assert_outcomes(passed=4)
    run_level = {"seconds", "tokens_per_second", "duration_s", "run_id", "timestamp", "environment", "invocations"}

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in run_level}
        return value

    for name in ("a", "b"):
        serial = json.loads((suite.path / f"reports/serial/{name}/metrics.json").read_text())
        parallel = json.loads((suite.path / f"reports/parallel/{name}/metrics.json").read_text())
        assert strip(serial) == strip(parallel)
        assert serial["val_perplexity"] is not None
