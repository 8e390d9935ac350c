"""The library API works on in-memory models, and the README's example runs as written."""

import re
from pathlib import Path

import pytest
import torch

from lmeval_fixtures import evaluate_perplexity, evaluate_smallbench, profile_latency
from lmeval_fixtures.models.model import Transformer

from .conftest import make_tokenizer, tiny_config

README = Path(__file__).parents[1] / "README.md"


def test_readme_library_example_runs(capsys):
    text = README.read_text()
    code = re.search(r"<!-- library-example -->\n```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "bits/byte" in out and "SST-2 acc" in out and "latency 1x128" in out


def test_in_memory_model_and_plain_tokenizer_keep_training_mode():
    tokenizer = make_tokenizer()
    model = Transformer(tiny_config(tokenizer.get_vocab_size()))
    model.init_weights(0)
    model.train()
    result = evaluate_perplexity(model, tokenizer, ["the fox jumps over the dog . " * 5], max_len=64)
    assert model.training and result.tokens > 0 and result.bits_per_byte > 0
    rows = [{"passage": "The fox jumps.", "question": "does the fox jump", "label": 1}]
    task = evaluate_smallbench(model, tokenizer, "boolq", rows, max_len=64)
    assert task.n == 1 and model.training


def test_profile_latency_on_any_module():
    model = torch.nn.Sequential(torch.nn.Embedding(50, 8), torch.nn.Linear(8, 50))
    stats = profile_latency(model, batch=2, seq=16, rounds=3, warmup=1, vocab_size=50)
    assert stats["rounds"] == 3 and stats["mean_ms"] > 0
    with pytest.raises(ValueError, match="pass vocab_size"):
        profile_latency(model, rounds=1)


def load_compare_records():
    """scripts/compare_records.py, the before/after comparison of the refactor, as a module."""
    import importlib.util

    path = Path(__file__).parents[1] / "scripts" / "compare_records.py"
    spec = importlib.util.spec_from_file_location("compare_records", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluate_writes_the_record_the_pytest_path_writes(pytester, offline, monkeypatch):
    """No pytest in the library call: the same checkpoint and data give a metrics.json that
    validates and equals the pytest run's, field by field (timings and run identity aside)."""
    import json

    from lmeval_fixtures import evaluate
    from lmeval_fixtures.core.schema import validate_record

    from .test_gates import lay_out_suite

    suite = lay_out_suite(pytester)
    options = {"data_dir": "data", "max_samples": 6, "log_samples": "full", "run_id": "lib"}
    suite.runpytest("--checkpoint", "ck", "--data-dir", "data", "--max-samples", "6", "--log-samples",
                    "--run-id", "plugin").assert_outcomes(passed=6)
    monkeypatch.chdir(suite.path)
    done = evaluate(suite.path / "ck", families=("perplexity", "smallbench"), **options)
    assert done.errors == [] and sorted(done.records) == ["a"]
    ours = json.loads((suite.path / "reports/lib/a/metrics.json").read_text())
    validate_record(ours)
    theirs = json.loads((suite.path / "reports/plugin/a/metrics.json").read_text())
    assert [item["outcome"] for item in ours["items"].values()] == ["passed"] * 6
    assert len(theirs["items"]) == 6
    for record in (ours, theirs):
        record.pop("items")  # pytest node ids vs the library's item ids
    differences, compared = load_compare_records().compare(theirs, ours)
    assert differences == [] and compared > 150
    # the per-example rows are the same files
    for name in ("samples-smallbench-sst2.jsonl", "samples-perplexity-validation.jsonl"):
        assert (suite.path / "reports/lib/a" / name).read_text() == (suite.path / "reports/plugin/a" / name).read_text()
    assert (suite.path / "reports/lib/a/summary.md").is_file()


def test_evaluate_an_in_memory_model_from_a_training_loop(tmp_path):
    from lmeval_fixtures import evaluate
    from lmeval_fixtures.core.schema import validate_record

    from .conftest import write_wikitext

    tokenizer = make_tokenizer()
    model = Transformer(tiny_config(tokenizer.get_vocab_size()))
    model.init_weights(0)
    model.train()
    done = evaluate(model, tokenizer, name="step-10", families=["perplexity", "latency"],
                    data_dir=write_wikitext(tmp_path / "data"), report_dir=tmp_path / "reports",
                    latency_shapes="1x16", latency_rounds=3, history=False)
    assert model.training  # handed back as it came
    record = done.records["step-10"]
    validate_record(record)
    assert record["val_bits_per_byte"] > 0 and record["latency"]["1x16"]["rounds"] == 3
    assert record["checkpoint"]["format"] == "in-memory" and len(record["checkpoint"]["sha256"]) == 64
    assert (tmp_path / "reports" / record["run_id"] / "step-10" / "summary.md").is_file()
    assert not (tmp_path / "reports/history.jsonl").exists()
    with pytest.raises(ValueError, match="unknown setting\\(s\\) max_tokens"):
        evaluate(model, tokenizer, max_tokens=5)


@pytest.mark.parametrize("options, says", [
    ({"detokenize": True}, "--detokenize True: expected text"),
    ({"detokenize": "yes"}, "--detokenize 'yes': choose one of on, off"),
    ({"log_samples": "yes"}, "--log-samples 'yes': choose one of full, hash"),
    ({"max_samples": True}, "--max-samples True: expected int"),
    ({"max_samples": 2.7}, "--max-samples 2.7: expected a whole number"),
    ({"seed": "x"}, "--seed 'x': expected int"),
    ({"latency_shapes": ["1x128"]}, "--latency-shapes ['1x128']: expected text"),
    ({"data_dir": 5}, "--data-dir 5: expected text"),
    ({"families": None}, "families None: give one or more of"),
    ({"families": []}, "families []: give one or more of"),
    ({"families": ["perplexity", "speed"]}, "families: unknown speed"),
])
def test_evaluate_checks_every_option_as_the_command_line_does(options, says):
    from lmeval_fixtures import evaluate
    from lmeval_fixtures.core.errors import UsageError

    tokenizer = make_tokenizer()
    model = Transformer(tiny_config(tokenizer.get_vocab_size()))
    with pytest.raises(UsageError) as caught:
        evaluate(model, tokenizer, **options)
    assert says in str(caught.value)


def test_evaluate_refuses_a_missing_tokenizer_a_wrong_model_and_a_bad_name(tmp_path):
    from lmeval_fixtures import evaluate
    from lmeval_fixtures.core.errors import UsageError

    from .conftest import write_native_checkpoint, write_wikitext

    tokenizer = make_tokenizer()
    model = Transformer(tiny_config(tokenizer.get_vocab_size()))
    with pytest.raises(UsageError, match="an in-memory model needs its tokenizer object"):
        evaluate(model, "tokenizer.json")
    with pytest.raises(UsageError, match="pass a checkpoint path or an in-memory torch.nn.Module, not list"):
        evaluate(["a.safetensors"])
    with pytest.raises(UsageError, match="name '../evil': use one plain name"):
        evaluate(model, tokenizer, name="../evil")
    ckpt = write_native_checkpoint(tmp_path / "ck" / "a")
    with pytest.raises(UsageError, match="name 'a/b': use one plain name"):
        evaluate(ckpt, name="a/b")
    data = write_wikitext(tmp_path / "data")
    done = evaluate(ckpt, name="mine", families="perplexity", data_dir=data, report_dir=tmp_path / "r", device=None,
                    history=False)
    assert list(done.records) == ["mine"]  # None means the default; the name applies to a path too
    assert done.records["mine"]["val_perplexity"] is not None
