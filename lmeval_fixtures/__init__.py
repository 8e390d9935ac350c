"""lmeval-fixtures: a pytest-native benchmark suite for small causal language models.

The library works without pytest; these are the entry points for scripts,
notebooks and training loops (see the README's "Library use").
"""

from .api import evaluate, evaluate_perplexity, evaluate_smallbench, profile_latency, reference_checkpoints
from .checkpoints import load_checkpoint
from .corpora import Corpus
from .model import ModelConfig, Transformer
from .registry import Registry
from .tasks import Prompt, Task

__all__ = (
    "Corpus",
    "ModelConfig",
    "Prompt",
    "Registry",
    "Task",
    "Transformer",
    "evaluate",
    "evaluate_perplexity",
    "evaluate_smallbench",
    "load_checkpoint",
    "profile_latency",
    "reference_checkpoints",
)
