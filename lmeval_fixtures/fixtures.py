"""The fixtures a benchmark touches: ``checkpoint``, ``record_metric``, ``wikitext``, ``lmeval``.

This is the pytest layer; the work is done by the library modules it calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from .checkpoints import CheckpointError, CheckpointSpec, LoadedCheckpoint, load_checkpoint
from .corpora import Document, wikitext_documents
from .data import DataError, DataSource, DataUnavailable, load_wikitext_articles
from .metrics import RunRecorder
from .settings import Settings

IDENTITY_ITEM = "~checkpoint"  # sorts after every node id: identity fields win merges


@dataclass
class LmevalSession:
    """Per-process state: the settings and the recorder collecting fragments."""

    settings: Settings
    recorder: RunRecorder


SESSION_KEY = pytest.StashKey[LmevalSession]()


@pytest.fixture(scope="session")
def lmeval(pytestconfig: pytest.Config) -> LmevalSession:
    """Run settings and the fragment recorder of this process."""
    return pytestconfig.stash[SESSION_KEY]


def identity_fragment(loaded: LoadedCheckpoint) -> dict[str, Any]:
    config = loaded.config
    return {
        "checkpoint": loaded.identity,
        "total_params": config.total_params,
        "embedding_params": config.embedding_params,
        "non_embedding_params": config.non_embedding_params,
        "embedding_ratio": config.embedding_ratio,
        "d_model": config.d_model, "d_ff": config.d_ff, "n_layers": config.n_layers, "n_heads": config.n_heads,
        "vocab_size": config.vocab_size, "glu_expansion": config.glu_expansion,
        "train_loss": loaded.identity["training"].get("train_loss"),
    }


@pytest.fixture(scope="session")
def checkpoint(checkpoint_spec: CheckpointSpec, lmeval: LmevalSession) -> LoadedCheckpoint:
    """The loaded checkpoint for this parametrization; a bad one fails only its own items."""
    settings = lmeval.settings
    try:
        loaded = load_checkpoint(checkpoint_spec, settings.device, settings.dtype)
    except CheckpointError as exc:
        reason = str(exc)
    else:
        reason = None
    if reason is not None:  # outside the except block, so the failure shows one line, not a chain
        lmeval.recorder.add(checkpoint_spec.name, IDENTITY_ITEM, {
            "checkpoint": {"name": checkpoint_spec.name, "path": str(checkpoint_spec.path)},
            "errors": [reason],
        })
        pytest.fail(reason, pytrace=False)
    lmeval.recorder.add(loaded.name, IDENTITY_ITEM, identity_fragment(loaded))
    return loaded


@pytest.fixture
def record_metric(request: pytest.FixtureRequest, lmeval: LmevalSession) -> Callable[..., None]:
    """``record_metric(checkpoint, {...})`` adds figures to that checkpoint's record."""

    def record(target: LoadedCheckpoint | str, fragment: dict[str, Any]) -> None:
        name = target if isinstance(target, str) else target.name
        lmeval.recorder.add(name, request.node.nodeid, fragment)

    return record


@dataclass
class Corpus:
    split: str
    documents: list[Document]
    source: DataSource
    detokenized: bool


@pytest.fixture(scope="session")
def wikitext(lmeval: LmevalSession) -> Callable[[str], Corpus]:
    """``wikitext(split)``: the articles of that split, or a skip that says what to pass."""
    cache: dict[str, Corpus | str] = {}
    settings = lmeval.settings

    def get(split: str) -> Corpus:
        if split not in cache:
            try:
                articles, source = load_wikitext_articles(split, settings.data_dir)
                docs = wikitext_documents(articles, detokenize=settings.detokenize)
                cache[split] = Corpus(split, docs, source, settings.detokenize)
            except DataUnavailable as exc:
                cache[split] = str(exc)
            except DataError as exc:
                pytest.fail(str(exc), pytrace=False)
        found = cache[split]
        if isinstance(found, str):
            pytest.skip(found)
        return found

    return get
