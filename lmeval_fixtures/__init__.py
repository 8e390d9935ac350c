"""lmeval-fixtures: a pytest-native benchmark suite for small causal language models.

The library works without pytest; these are the entry points for scripts,
notebooks and training loops (see the README's "Library use"). They are loaded
on first use, so that ``import lmeval_fixtures.plugin`` (every pytest start in a
project that loads the plugin) does not pay for importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "evaluate": "api", "evaluate_perplexity": "api", "evaluate_smallbench": "api", "profile_latency": "api",
    "reference_checkpoints": "api",
    # a training loop's companion: figures over steps, and a typed metrics.json
    "MetricsLogger": "records.metrics_logger", "TrackingBackend": "records.metrics_logger",
    "MetricsRecord": "records.metrics_record",
    "fetch_data": "suite.fetch_data", "load_checkpoint": "models.loading", "Corpus": "suite.corpora",
    "ModelConfig": "models.model", "Transformer": "models.model", "Registry": "suite.registry",
    "Prompt": "suite.tasks", "Task": "suite.tasks",
    # for a conftest's own corpus or task readers (docs/extending.md)
    "DataSource": "suite.sources", "read_text_file": "suite.sources", "text_files": "suite.sources",
    # the error family: catch LmevalError for all, or one branch
    "LmevalError": "core.errors", "UsageError": "core.errors", "DataError": "core.errors",
    "DataUnavailable": "core.errors", "CheckpointError": "core.errors", "RecordError": "core.errors",
    "BaselineError": "core.errors",
}
__all__ = tuple(sorted(_HOMES))


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'lmeval_fixtures' has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
