"""Shared helpers: tiny random checkpoints and small data made by the tests themselves."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lmeval_fixtures.models.model import ModelConfig, Transformer
from lmeval_fixtures.models.native import save_checkpoint

# pytester's in-process runs drop the modules first imported during them; torch's distributed
# operator registry cannot be imported twice in one process, so load it (via transformers, when
# installed) before any such run.
with contextlib.suppress(ImportError):
    import torch.distributed._functional_collectives  # noqa: F401
    import transformers.models.llama.modeling_llama  # noqa: F401
    import transformers.tokenization_utils_fast  # noqa: F401

pytest_plugins = ["pytester"]
SUITE_PLUGIN = "lmeval_fixtures.plugin"


@pytest.fixture(autouse=True)
def suite_plugin_for_inner_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin has no pytest11 entry point (it loads only where used): pytester's inner
    runs, in process or not, get it as a user's ``-p lmeval_fixtures.plugin`` would."""
    monkeypatch.setenv("PYTEST_PLUGINS", SUITE_PLUGIN)

SAMPLE_TEXT = (
    "The quick brown fox jumps over the lazy dog. A lobster is a crustacean of the sea.\n"
    "Robert Boulter is an English film, television and theatre actor. He had a guest role in 2000.\n"
    "Numbers like 1,000 and 3.14 and words like well-known appear in Wikipedia articles.\n"
)


def make_tokenizer(vocab_size: int = 320) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([SAMPLE_TEXT] * 20, trainer)
    return tokenizer


def tiny_config(vocab_size: int, **overrides) -> ModelConfig:
    base = dict(vocab_size=vocab_size, d_model=32, n_layers=2, n_heads=2, glu_expansion=2.0, max_seq_len=64)
    base.update(overrides)
    return ModelConfig(**base)


def write_native_checkpoint(folder: Path, name: str = "model", seed: int = 0, fmt: str = "safetensors",
                            tokenizer: Tokenizer | None = None, **config_overrides) -> Path:
    """A random native checkpoint in ``folder``; returns the weights path. The training facts
    differ by format (5.5 / 10 and 5.25 / 7) so that a test sees which file they were read from."""
    tokenizer = tokenizer or make_tokenizer()
    model = Transformer(tiny_config(tokenizer.get_vocab_size(), **config_overrides))
    model.init_weights(seed)
    facts = {"train_loss": 5.5, "step": 10} if fmt == "safetensors" else {"train_loss": 5.25, "step": 7}
    return save_checkpoint(model, folder, tokenizer, name=name, fmt=fmt, metadata=facts | {"seed": seed})


def write_wikitext(data_dir: Path, articles: int = 3, paragraphs: int = 4) -> Path:
    """A raw WikiText-like file pair under ``data_dir/wikitext-2-raw``."""
    folder = data_dir / "wikitext-2-raw"
    folder.mkdir(parents=True, exist_ok=True)
    for split, offset in (("validation", 0), ("test", 7)):
        lines = [" "]
        for a in range(articles):
            lines += [f" = Article {a + offset} = ", " "]
            lines += [f" = = Section {a} = = ", " "]
            for p in range(paragraphs + a):
                lines.append(f" The fox number {p} jumps over the dog @-@ like lobster , a crustacean ( of the sea ) "
                             f"with 1 @,@ 000 legs and 3 @.@ 14 claws . He said \" hello \" to {a} . ")
            lines.append(" ")
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data_dir


@pytest.fixture
def tokenizer_obj() -> Tokenizer:
    return make_tokenizer()


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    return write_native_checkpoint(tmp_path / "ckpt" / "tiny-a", seed=1)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_wikitext(tmp_path / "data")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub, no inherited data dir, and no outer xdist worker leaking into pytester runs."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("LMEVAL_DATA_DIR", raising=False)
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


def halve_baseline_bits_per_byte(metrics: Path, corpus: str, split: str = "test") -> None:
    """Halves a baseline record's bits per byte on one corpus split, so that a run gated against
    it regresses there (and only there)."""
    record = json.loads(metrics.read_text())
    record["corpora"][corpus][split]["bits_per_byte"] /= 2
    metrics.write_text(json.dumps(record))
