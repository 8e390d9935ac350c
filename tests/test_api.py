"""The library API works on in-memory models, and the README's example runs as written."""

import re
from pathlib import Path

import pytest
import torch

from lmeval_fixtures import evaluate_perplexity, evaluate_smallbench, profile_latency
from lmeval_fixtures.model import Transformer

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
