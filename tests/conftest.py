"""Fixtures the tests share; the plain helpers they are built on live in ``helpers.py``.

The e2e/ folder's pytester suites (a laid-out project of benchmarks, data and checkpoints)
are its own ``conftest.py``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

# imported here, before any pytester run: pytester drops the modules an in-process run imported, and a
# second import of datasets registers its Arrow extension types again (ArrowKeyError in a later run)
import datasets  # noqa: F401
import pytest
from tokenizers import Tokenizer

from lmeval_fixtures.models.model import Transformer
from lmeval_fixtures.models.tokenizer import TextTokenizer

from . import helpers
from .helpers import (
    MAIN,
    STEP1,
    SUITE_PLUGIN,
    cache_model,
    make_tokenizer,
    write_hf_llama,
    write_native_checkpoint,
    write_wikitext,
)

# pytester's in-process runs drop the modules first imported during them; torch's distributed
# operator registry cannot be imported twice in one process, so load it (via transformers, when
# installed) before any such run.
with contextlib.suppress(ImportError):
    import torch.distributed._functional_collectives  # noqa: F401
    import transformers.models.llama.modeling_llama  # noqa: F401
    import transformers.tokenization_utils_fast  # noqa: F401

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def suite_plugin_for_inner_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin has no pytest11 entry point (it loads only where used): pytester's inner
    runs, in process or not, get it as a user's ``-p lmeval_fixtures.plugin`` would."""
    monkeypatch.setenv("PYTEST_PLUGINS", SUITE_PLUGIN)


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
    helpers.go_offline(monkeypatch)
    monkeypatch.delenv("LMEVAL_DATA_DIR", raising=False)
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def tiny_lm() -> tuple[Transformer, TextTokenizer]:
    """A tiny random model with a 128-token context and its tokenizer, for scoring task rows."""
    return helpers.tiny_lm(max_seq_len=128, seed=7)


@pytest.fixture
def hf_folder(tmp_path: Path):
    """A tiny random Llama saved as a Hugging Face folder, and the model (skips without transformers)."""
    return write_hf_llama(tmp_path / "tiny-llama")


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline Hugging Face cache holding ``acme/tiny-llama`` at two commits (main, step1);
    skips without huggingface_hub or transformers."""
    pytest.importorskip("huggingface_hub")
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache_model(cache, "acme/tiny-llama", MAIN, seed=0)
    cache_model(cache, "acme/tiny-llama", STEP1, refs=("step1",), seed=1)
    return cache
