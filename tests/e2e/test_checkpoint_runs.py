"""Checkpoints in a run, through pytester: a bad checkpoint (every hostile kind) fails only its own items with
one line each while every good one is reported; colliding names each keep their report; a Hugging Face
export and a hub model id give their records."""

import json
import math
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch

from lmeval_fixtures.core.schema import validate_record
from lmeval_fixtures.models.hf_export import export_hf
from lmeval_fixtures.models.tokenizer import TextTokenizer

from ..helpers import (
    BENCHMARK,
    FIX_JSON,
    FIX_PT,
    STEP1,
    RunsCodeHere,
    edit_config,
    make_tokenizer,
    needs_fifo,
    reference_nll,
    validated_records,
    write_native_checkpoint,
    write_wikitext,
)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_bad_checkpoints_fail_alone_and_every_report_is_written(ppl_suite):
    good = write_native_checkpoint(ppl_suite.path / "ck" / "good", seed=1)
    other = write_native_checkpoint(ppl_suite.path / "ck", name="other", seed=2, fmt="pt")
    with open(ppl_suite.path / "evil.pt", "wb") as handle:
        pickle.dump({"config": {}, "model": Evil()}, handle)
    (ppl_suite.path / "text.pt").write_text("hello")
    result = ppl_suite.runpytest("--checkpoint", str(good), "--checkpoint", str(other),
                             "--checkpoint", "evil.pt", "--checkpoint", "text.pt", "--data-dir", "data")
    result.assert_outcomes(passed=4, errors=4)
    result.stdout.fnmatch_lines(["*evil.pt: *",
                                 "*text.pt: not a PyTorch checkpoint*", "*lmeval-fixtures results*"])
    assert not (ppl_suite.path / "pwned").exists()
    found = validated_records(ppl_suite.path)
    assert sorted(found) == ["evil", "good", "other", "text"]
    assert all(item["outcome"] == "error" for item in found["evil"]["items"].values())
    assert "not run" in (ppl_suite.path / next(ppl_suite.path.glob("reports/*/evil/summary.md"))).read_text()

    # the figures equal the independent reference computation
    record = found["good"]
    tokenizer = TextTokenizer.from_file(good.parent / "tokenizer.json")
    from lmeval_fixtures.models.loading import load_checkpoint
    from lmeval_fixtures.suite.wikitext import split_wikitext_articles, wikitext_documents

    model = load_checkpoint(good).model
    validation = (ppl_suite.path / "data/wikitext-2-raw/validation.txt").read_text()
    docs = wikitext_documents(split_wikitext_articles(validation))
    nll = sum(reference_nll(model, tokenizer.encode(d.text), tokenizer.bos_token_id, 64, 64) for d in docs)
    tokens = sum(len(tokenizer.encode(d.text)) for d in docs)
    assert record["val_perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-6)
    assert record["val_bits_per_byte"] == pytest.approx(nll / math.log(2) / sum(d.n_bytes for d in docs), rel=1e-6)
    assert record["perplexity"]["validation"]["words"] == sum(d.n_words for d in docs)
    assert record["train_loss"] == 5.5 and record["checkpoint"]["training"]["step"] == 10
    assert set(record["data_fingerprints"]) == {"wikitext-2-raw/validation.txt", "wikitext-2-raw/test.txt"}
    assert record["total_params"] == record["embedding_params"] + record["non_embedding_params"]


def hostile_checkpoints(root):
    """Every kind of bad checkpoint, each in its own folder; returns {name: expected message}."""
    expected = {}
    (root / "pickle").mkdir()
    torch.save({"config": {}, "model": RunsCodeHere()}, root / "pickle" / "pickle.pt")
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


def test_hostile_checkpoints_fail_alone_with_one_line_each(ppl_suite):
    expected = hostile_checkpoints(ppl_suite.path)
    good = write_native_checkpoint(ppl_suite.path / "good", name="good")
    args = [arg for name in expected for arg in ("--checkpoint", str(ppl_suite.path / name))]
    result = ppl_suite.runpytest(*args, "--checkpoint", str(good), "--data-dir", "data", "--run-id", "h")
    result.assert_outcomes(passed=2, errors=2 * len(expected))
    assert not (ppl_suite.path / "pwned").exists()
    for name, message in expected.items():
        record = json.loads((ppl_suite.path / f"reports/h/{name}/metrics.json").read_text())
        assert len(record["errors"]) == 1 and message in record["errors"][0], (name, record["errors"])
        assert "\n" not in record["errors"][0]
        result.stdout.fnmatch_lines([f"*{message}*"])
    assert json.loads((ppl_suite.path / "reports/h/good/metrics.json").read_text())["val_perplexity"] is not None


def run_records(root: Path, run_id: str) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text())
            for path in sorted((root / "reports" / run_id).glob("*/metrics.json"))}


def test_colliding_names_each_keep_their_own_report(ppl_suite):
    tokenizer = make_tokenizer()
    paths = {"d1-a": write_native_checkpoint(ppl_suite.path / "d1", name="a", seed=1, tokenizer=tokenizer),
             "d2-a": write_native_checkpoint(ppl_suite.path / "d2", name="a", seed=2, tokenizer=tokenizer),
             "a-2": write_native_checkpoint(ppl_suite.path / "d3", name="a-2", seed=3, tokenizer=tokenizer)}
    args = [arg for path in paths.values() for arg in ("--checkpoint", str(path))]
    result = ppl_suite.runpytest(*args, "--data-dir", "data", "--run-id", "names", "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*test_perplexity?d1-a-validation?*", "*test_perplexity?a-2-test?*"])
    found = run_records(ppl_suite.path, "names")
    assert sorted(found) == sorted(paths)
    for name, path in paths.items():
        assert found[name]["checkpoint"]["path"] == str(path)
        assert found[name]["val_perplexity"] is not None and found[name]["test_perplexity"] is not None
    assert len({record["val_perplexity"] for record in found.values()}) == 3  # three models, three figures


@needs_fifo
def test_bad_checkpoints_among_good_ones_fail_alone(ppl_suite):
    """A wrong-typed config, an unknown key, integer weights and a FIFO, beside good checkpoints
    (one with Hugging Face markers): every good one is reported with figures, each bad one
    fails with its line."""
    tokenizer = make_tokenizer()
    good = {"good": write_native_checkpoint(ppl_suite.path / "good", name="good", seed=1, tokenizer=tokenizer),
            "marked": write_native_checkpoint(ppl_suite.path / "marked", name="marked", seed=2, tokenizer=tokenizer)}
    edit_config(good["marked"], model_type="lmeval-native", architectures=["Transformer"])
    bad = {}
    path = write_native_checkpoint(ppl_suite.path / "tie", name="tie", tie_embeddings=False)
    holder = edit_config(path, tie_embeddings="false")
    bad["tie"] = (path, f'{holder}: field tie_embeddings must be true or false, got "false" (a string); {FIX_JSON}')
    path = write_native_checkpoint(ppl_suite.path / "typo", name="typo", fmt="pt")
    edit_config(path, n_layer=2)
    bad["typo"] = (path, f"{path}: unknown field 'n_layer' (did you mean n_layers?); remove it or correct its "
                         f"name; {FIX_PT}")
    path = write_native_checkpoint(ppl_suite.path / "ints", name="ints", fmt="pt")
    payload = torch.load(path, weights_only=True)
    payload["model"]["norm.weight"] = payload["model"]["norm.weight"].long()
    torch.save(payload, path)
    bad["ints"] = (path, f"{path}: weight norm.weight has dtype int64, not a floating-point type; "
                         "re-save the checkpoint with float weights")
    path = ppl_suite.path / "pipe.safetensors"
    os.mkfifo(path)
    bad["pipe"] = (path, f"{path}: not a regular file (a named pipe (FIFO)); copy its content to a regular file "
                         "and pass that")
    every = [*good.values(), *(p for p, _ in bad.values())]
    args = [arg for path in every for arg in ("--checkpoint", str(path))]
    result = ppl_suite.runpytest(*args, "--data-dir", "data", "--run-id", "mixed")
    result.assert_outcomes(passed=2 * len(good), errors=2 * len(bad))
    found = run_records(ppl_suite.path, "mixed")
    assert sorted(found) == sorted([*good, *bad])
    for name in good:
        assert found[name]["val_perplexity"] is not None and not found[name].get("errors"), name
    for name, (_, message) in bad.items():
        assert found[name]["errors"] == [message], name
        result.stdout.fnmatch_lines([f"*{message}*"])


def test_a_model_whose_loss_overflows_is_reported_or_fails_clearly(ppl_suite):
    path = write_native_checkpoint(ppl_suite.path / "ck" / "a", fmt="pt", tie_embeddings=False)
    payload = torch.load(path, weights_only=True)
    payload["model"]["lm_head.weight"] *= 1e6  # logits around 1e5: float32 logsumexp stays finite
    torch.save(payload, path)
    result = ppl_suite.runpytest("--checkpoint", str(path), "--data-dir", "data", "--run-id", "o")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*perplexity overflows (loss * nats/token)*"])
    record = json.loads((ppl_suite.path / "reports/o/a/metrics.json").read_text())
    assert record["val_loss"] > 709 and record["val_bits_per_byte"] > 0  # float64 sums stay finite
    assert record["val_perplexity"] is None and any("val_perplexity is inf" in e for e in record["errors"])


def test_native_checkpoint_and_its_export_give_the_same_record(pytester, offline):
    """The same items and the same record for a native checkpoint and its Hugging Face export."""
    pytest.importorskip("transformers")
    pytester.makepyfile(test_perplexity=BENCHMARK)
    write_wikitext(pytester.path / "data")
    native = write_native_checkpoint(pytester.path / "native", name="twin", seed=4, max_seq_len=32)
    export_hf(native, pytester.path / "twin-hf")
    result = pytester.runpytest("--checkpoint", str(native), "--checkpoint", str(pytester.path / "twin-hf"),
                                "--data-dir", "data", "--run-id", "r")
    result.assert_outcomes(passed=4)
    records = {}
    for name in ("twin", "twin-hf"):
        records[name] = json.loads((pytester.path / "reports" / "r" / name / "metrics.json").read_text())
        validate_record(records[name])
    a, b = records["twin"], records["twin-hf"]
    assert b["checkpoint"]["format"] == "hf"
    # the same tokenizer, re-serialised by transformers: still comparable by token perplexity
    assert a["checkpoint"]["tokenizer_sha256"] == b["checkpoint"]["tokenizer_sha256"]
    assert "val ppl" in (pytester.path / "reports" / "r" / "comparison.md").read_text()
    for key in ("total_params", "embedding_params", "d_model", "d_ff", "n_layers", "n_heads", "vocab_size"):
        assert a[key] == b[key], key
    for key in ("val_loss", "val_bits_per_byte", "test_word_perplexity"):
        assert b[key] == pytest.approx(a[key], rel=1e-6), key


def test_a_model_id_runs_through_the_suite_into_the_record(pytester, offline, hub_cache):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    write_wikitext(pytester.path / "data")
    result = pytester.runpytest("--checkpoint", "acme/tiny-llama@step1", "--checkpoint", "acme/missing",
                                "--data-dir", "data", "--run-id", "r")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(["*acme/missing: not in the Hugging Face cache and HF_HUB_OFFLINE is set*"])
    record = json.loads((pytester.path / "reports" / "r" / "tiny-llama" / "metrics.json").read_text())
    validate_record(record)
    assert (record["checkpoint"]["hub_id"], record["checkpoint"]["revision"]) == ("acme/tiny-llama", STEP1)
    assert record["val_loss"] is not None
    missing = json.loads((pytester.path / "reports" / "r" / "missing" / "metrics.json").read_text())
    validate_record(missing)
    assert missing["checkpoint"]["path"] == "acme/missing"
