"""Hostile checkpoints, broken data, numerics and interrupted runs, end to end (issue: reliability)."""

import json
import math
import os
import pickle
import struct

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lmeval_fixtures.core.schema import validate_record
from lmeval_fixtures.evaluation.run import Run
from lmeval_fixtures.records.summary import render_summary
from lmeval_fixtures.suite.registry import Registry

from .conftest import write_native_checkpoint
from .test_plugin import BENCHMARK, suite  # noqa: F401 (the fixture: benchmark and WikiText data)
from .test_record import FIGURES, RUN, split_figures


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def hostile_checkpoints(root):
    """Every kind of bad checkpoint, each in its own folder; returns {name: expected message}."""
    expected = {}
    (root / "pickle").mkdir()
    torch.save({"config": {}, "model": RunsCode()}, root / "pickle" / "pickle.pt")
    expected["pickle"] = "pickle.pt: refused"

    path = write_native_checkpoint(root / "shapes", name="shapes", fmt="pt")
    payload = torch.load(path, weights_only=True)
    w = payload["model"]["layers.0.mlp.gate_proj.weight"]
    payload["model"]["layers.0.mlp.gate_proj.weight"] = w.reshape(w.shape[1], w.shape[0])
    torch.save(payload, path)
    expected["shapes"] = "shapes.pt: layers.0.mlp.gate_proj.weight has shape"

    path = write_native_checkpoint(root / "truncated", name="truncated")
    path.write_bytes(path.read_bytes()[:-100])
    expected["truncated"] = "truncated.safetensors: not a readable safetensors file"

    path = write_native_checkpoint(root / "header", name="header")
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    first = next(k for k in header if k != "__metadata__")
    header[first]["data_offsets"][1] += 10**9  # claims a gigabyte more than the file holds
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + size :])
    expected["header"] = "header.safetensors: not a readable safetensors file"

    path = write_native_checkpoint(root / "absurd", name="absurd", fmt="pt")
    payload = torch.load(path, weights_only=True)
    payload["config"].update(vocab_size=10**9, d_model=2**17, n_heads=2**10)  # a 10^12-parameter claim
    torch.save(payload, path)
    expected["absurd"] = "absurd.pt: config implies"

    path = write_native_checkpoint(root / "tok", name="tok")
    (path.parent / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    expected["tok"] = "tokenizer.json: not a valid tokenizer.json"

    path = write_native_checkpoint(root / "nan", name="nan", fmt="pt")
    payload = torch.load(path, weights_only=True)
    payload["model"]["embed_tokens.weight"][3, 3] = float("inf")
    torch.save(payload, path)
    expected["nan"] = "nan.pt: weights contain NaN or inf"
    return expected




def test_hostile_checkpoints_fail_alone_with_one_line_each(suite):
    expected = hostile_checkpoints(suite.path)
    good = write_native_checkpoint(suite.path / "good", name="good")
    args = [arg for name in expected for arg in ("--checkpoint", str(suite.path / name))]
    result = suite.runpytest(*args, "--checkpoint", str(good), "--data-dir", "data", "--run-id", "h")
    result.assert_outcomes(passed=2, errors=2 * len(expected))
    assert not (suite.path / "pwned").exists()
    for name, message in expected.items():
        record = json.loads((suite.path / f"reports/h/{name}/metrics.json").read_text())
        assert len(record["errors"]) == 1 and message in record["errors"][0], (name, record["errors"])
        assert "\n" not in record["errors"][0]
        result.stdout.fnmatch_lines([f"*{message}*"])
    assert json.loads((suite.path / "reports/h/good/metrics.json").read_text())["val_perplexity"] is not None


@pytest.mark.parametrize("content, message, outcome", [
    (b"", "no tokens scored in WikiText-2 raw validation", {"failed": 1}),  # figures unsound: the item fails
    (b" = A = \n caf\xe9 \n", "validation.txt: not UTF-8 (byte 12, line 2)", {"errors": 1}),  # bad input
])
def test_broken_wikitext_fails_clearly(suite, content, message, outcome):
    (suite.path / "data/wikitext-2-raw/validation.txt").write_bytes(content)
    ckpt = write_native_checkpoint(suite.path / "ck" / "a")
    result = suite.runpytest("--checkpoint", str(ckpt), "--data-dir", "data")
    result.assert_outcomes(passed=1, **outcome)
    result.stdout.fnmatch_lines([f"*{message}*"])


def test_an_article_many_windows_long_is_scored_in_full(suite):
    article = " = Long = \n" + " the fox jumps over the lazy dog ." * 400 + "\n"
    (suite.path / "data/wikitext-2-raw/validation.txt").write_text(article)
    ckpt = write_native_checkpoint(suite.path / "ck" / "a")  # a 64-token context
    suite.runpytest("--checkpoint", str(ckpt), "--data-dir", "data", "--run-id", "l").assert_outcomes(passed=2)
    split = json.loads((suite.path / "reports/l/a/metrics.json").read_text())["perplexity"]["validation"]
    assert split["windows"] > 50 and split["tokens"] > 50 * 64


def test_a_model_whose_loss_overflows_is_reported_or_fails_clearly(suite):
    path = write_native_checkpoint(suite.path / "ck" / "a", fmt="pt", tie_embeddings=False)
    payload = torch.load(path, weights_only=True)
    payload["model"]["lm_head.weight"] *= 1e6  # logits around 1e5: float32 logsumexp stays finite
    torch.save(payload, path)
    result = suite.runpytest("--checkpoint", str(path), "--data-dir", "data", "--run-id", "o")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*perplexity overflows (loss * nats/token)*"])
    record = json.loads((suite.path / "reports/o/a/metrics.json").read_text())
    assert record["val_loss"] > 709 and record["val_bits_per_byte"] > 0  # float64 sums stay finite
    assert record["val_perplexity"] is None and any("val_perplexity is inf" in e for e in record["errors"])


INTERRUPT = '''
import os, signal

def test_zz_interrupt(checkpoint):
    # Ctrl-C as a terminal sends it; a process started in the background of a non-interactive
    # shell inherits SIGINT ignored, so the handler Python installs for a terminal is put back
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.kill(os.getpid(), signal.SIGINT)
'''


def test_ctrl_c_writes_a_partial_report_marked_incomplete_and_keeps_earlier_files(suite):
    suite.makepyfile(test_zz_interrupt=INTERRUPT)
    ckpt = write_native_checkpoint(suite.path / "ck" / "a")
    suite.runpytest("--checkpoint", str(ckpt), "--data-dir", "data", "--run-id", "keep", "-m", "perplexity")
    before = (suite.path / "reports/keep/a/metrics.json").read_text()
    result = suite.runpytest_subprocess("--checkpoint", str(ckpt), "--data-dir", "data", "--run-id", "cut")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    record = json.loads((suite.path / "reports/cut/a/metrics.json").read_text())
    validate_record(record)
    assert record["complete"] is False and record["val_perplexity"] is not None
    assert (suite.path / "reports/keep/a/metrics.json").read_text() == before
    assert not list((suite.path / "reports").rglob("*.tmp"))


def test_an_unwritable_report_folder_is_a_clear_error_at_session_end(suite):
    ckpt = write_native_checkpoint(suite.path / "ck" / "a")
    (suite.path / "blocked").write_text("a file where the report folder should go")
    result = suite.runpytest("--checkpoint", str(ckpt), "--data-dir", "data", "--report-dir", "blocked")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["*could not write the reports into blocked/*"])


def test_a_corrupt_baseline_fails_the_gated_items_with_its_name(suite):
    ckpt = write_native_checkpoint(suite.path / "ck" / "a")
    (suite.path / "base.json").write_text("{")
    result = suite.runpytest("--checkpoint", str(ckpt), "--data-dir", "data", "--baseline", "base.json")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*base.json: baseline is not valid JSON*"])


# ---- property tests -------------------------------------------------------------------------

fragment_values = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                            st.text(max_size=5))
fragments = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.text(alphabet="xyz:[]", min_size=1, max_size=6),
              st.dictionaries(st.sampled_from(["validation", "test", "extra"]),
                              st.dictionaries(st.sampled_from(["loss", "bits_per_byte", "note"]), fragment_values,
                                              max_size=2), max_size=2)
              .map(lambda splits: {"perplexity": splits})),
    max_size=8, unique_by=lambda f: (f[0], f[1]))


@settings(max_examples=60, deadline=None)
@given(fragments, st.randoms(use_true_random=False))
def test_records_do_not_depend_on_fragment_order_or_sharding(items, random):
    def build(order):
        run = Run(RUN)
        run.absorb(order)
        return run.records()

    whole = build(items)
    shuffled = list(items)
    random.shuffle(shuffled)
    assert build(shuffled) == whole
    # fragments recorded by workers, shipped as JSON (as with each test report), absorbed by one controller
    half = len(items) // 2
    controller = Run(RUN)
    for part in (items[:half], items[half:]):
        worker = Run({})
        for fragment in part:
            worker.record(*fragment)
        controller.absorb(json.loads(json.dumps(worker.take_pending())))
    assert controller.records() == whole


record_fragments = st.fixed_dictionaries({}, optional={
    "perplexity": st.fixed_dictionaries({"validation": st.builds(
        split_figures, st.floats(0, 50), token_perplexity=st.floats(1, 1e6) | st.none())}),
    "smallbench": st.fixed_dictionaries({"boolq": st.builds(
        lambda acc, n: {"n": n, "acc": acc, "acc_stderr": 0.01, "acc_norm": acc, "acc_norm_stderr": 0.01,
                        "prompt_set": "smallbench", "fewshot": 0}, st.floats(0, 1), st.integers(1, 5000))}),
    "total_params": st.integers(1, 10**9),
    "errors": st.lists(st.text(max_size=20), max_size=2),
})


@settings(max_examples=60, deadline=None)
@given(record_fragments)
def test_every_valid_record_validates_and_renders(fragment):
    run = Run(RUN)
    run.absorb([("a", "t::x", fragment)])
    record = run.records()["a"]
    validate_record(record)
    text = render_summary(record, FIGURES, Registry.default())
    assert text.startswith("# a: lmeval-fixtures summary")


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 20), st.integers(1, 10**6), st.integers(1, 10**6))
@example(14.0, 50, 1)  # about 1010 bits per byte: large, but 2 ** 1010 is still a float64
@example(15.0, 50, 1)  # about 1082: beyond float64
def test_bits_per_byte_invariants(loss, tokens, n_bytes):
    from lmeval_fixtures.engine.perplexity import PerplexityResult

    result = PerplexityResult(nll=loss * tokens, tokens=tokens, bytes=n_bytes, words=n_bytes, documents=1,
                              windows=1, stride=1, context_length=1)
    # bits per byte and byte perplexity carry the same information: 2 ** bpb == byte perplexity
    if result.bits_per_byte < 1023.99:  # 2 ** 1024 is beyond float64
        assert 2 ** result.bits_per_byte == pytest.approx(result.byte_perplexity, rel=1e-9)
    elif result.bits_per_byte > 1024.01:  # the perplexity is reported as overflowing, never as a wrong finite number
        assert result.byte_perplexity == math.inf
    else:  # at the edge of float64 either is right, but never a wrong finite number
        assert result.byte_perplexity == math.inf or result.byte_perplexity == pytest.approx(
            2 ** result.bits_per_byte, rel=1e-9)
    # bits/byte = token loss in bits x tokens per byte
    assert result.bits_per_byte == pytest.approx(loss / 0.6931471805599453 * tokens / n_bytes, rel=1e-9)


def test_pickled_payload_is_not_run_even_as_plain_pickle(tmp_path):
    from lmeval_fixtures.core.errors import CheckpointError
    from lmeval_fixtures.models.loading import load_checkpoint

    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"config": {}, "model": RunsCode()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")


def test_a_sweep_of_twenty_checkpoints_under_xdist_reports_all_twenty(suite):
    from .conftest import make_tokenizer

    tokenizer = make_tokenizer()
    for i in range(20):
        write_native_checkpoint(suite.path / "sweep" / f"c{i:02d}", seed=i, tokenizer=tokenizer)
    result = suite.runpytest_subprocess("--checkpoint", "sweep", "--data-dir", "data", "--run-id", "s", "-n", "2")
    result.assert_outcomes(passed=40)
    reports = sorted(p.parent.name for p in (suite.path / "reports/s").glob("*/metrics.json"))
    assert reports == [f"c{i:02d}" for i in range(20)]
    comparison = (suite.path / "reports/s/comparison.md").read_text()
    assert all(f"| c{i:02d} |" in comparison for i in range(20))
