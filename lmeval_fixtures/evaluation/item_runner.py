"""Running the suite's items without pytest (the library API's ``evaluate``).

The same item bodies as the shipped benchmarks (``items.py``), the same record
builders, gates (``gating.py``) and outcomes; an item that fails is recorded with its
one-line reason and the next one runs, as under pytest. An item that raises what the
suite does not raise on purpose (a bug) is recorded as an error and raised again, with
its traceback, once the reports are written. Item ids read like pytest's
(``evaluate::test_perplexity[name-validation]``) so a record says what ran.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import torch

from ..core.errors import CheckpointError, DataError, DataUnavailable, LmevalError
from ..core.formatting import outcome_reason
from ..core.names import shape_name
from ..engine.timing import plain_forward_timer
from ..models.contract import Allocation
from ..models.discovery import CheckpointSpec
from ..models.hf_adapter import is_hf_causal_lm
from ..models.loading import LoadedCheckpoint
from ..records import fragments
from . import items
from .gating import ItemFailed, skip_refusal
from .run import Finished
from .startup import RunContext

ITEM_PREFIX = "evaluate::"  # an item's id: this prefix, then pytest's id of the same item


class SetupFailed(Exception):
    """An item refused before its body runs (its data is unusable, or the settings cannot apply to its
    checkpoint, or the checkpoint did not load): recorded as an "error", as pytest records a fixture
    that fails."""


class Skip(Exception):
    """An item that cannot run here (no data, too long a sequence); recorded as skipped.
    ``at_setup``: raised where pytest's fixture would skip (missing data), so that a skip the run
    refuses is an "error" there, as pytest records a failed set-up, and "failed" in the body."""

    def __init__(self, reason: str, at_setup: bool = False) -> None:
        super().__init__(reason)
        self.at_setup = at_setup


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over an in-memory model's parameters (names and bytes): two records of the same
    weights merge, other weights are refused, as for files."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(bytes(tensor.detach().cpu().clone().untyped_storage()))
    return digest.hexdigest()


def in_memory_checkpoint(spec: CheckpointSpec, model: torch.nn.Module, tokenizer: Any) -> LoadedCheckpoint:
    from ..models.model import Transformer
    from ..models.tokenizer import as_text_tokenizer

    text_tokenizer = as_text_tokenizer(tokenizer)
    if isinstance(model, Transformer):
        allocation = Allocation.of_native(model.config)
        config: dict[str, Any] | None = model.config.to_dict() | {"d_ff": model.config.d_ff}
        native = model.config
    elif is_hf_causal_lm(model):
        from ..models.hf_models import allocation as hf_allocation
        from ..models.hf_models import context_length

        allocation = hf_allocation(model, context_length(model.config, tokenizer))
        config, native = model.config.to_dict(), None
    else:
        raise CheckpointError(f"{spec.name}: pass the native Transformer, a Hugging Face causal LM, or a "
                              f"checkpoint path (got {type(model).__name__})")
    identity = {"name": spec.name, "path": str(spec.path), "format": "in-memory", "sha256": weights_digest(model),
                "tokenizer_sha256": text_tokenizer.sha256, "config": config, "training": {}}
    return LoadedCheckpoint(spec.name, spec.path, model, text_tokenizer, native, allocation, identity)


class ItemRunner:
    """Runs the items of one run (``startup.RunContext``) on loaded checkpoints, as pytest would.

    An item ends as pytest's would: passed; skipped (no data, too long a sequence); failed
    with one line (unsound or regressed figures, bad data, any error of the suite's family);
    or, when it raised anything else, which is a bug, as an "error" whose reason is the
    exception's type and first line. The other items still run, and ``raise_unexpected`` raises the
    first such exception again, with its traceback, once the reports are written.
    """

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.run = context.run
        self.inputs = context.inputs
        self.settings = context.settings
        self.unexpected: list[tuple[str, BaseException]] = []

    def checkpoints(self, model: torch.nn.Module | None, tokenizer: Any, families: tuple[str, ...] | list[str],
                    training: dict[str, Any] | None = None) -> None:
        """Every item of ``families`` on each of the run's checkpoints (``model``: the in-memory model the one
        checkpoint stands for), one checkpoint held at a time. Every item is expected before the first runs,
        as pytest collects them, so a run stopped part-way (Ctrl-C) records the rest as not run."""
        for spec in self.settings.checkpoints:
            for _, item_id, _ in self.planned(spec.name, families):
                self.run.expect(spec.name, ITEM_PREFIX + item_id)
        for spec in self.settings.checkpoints:
            loaded = self.load(spec, model, tokenizer, families, training=training)
            if loaded is None:
                continue
            was_training = loaded.model.training
            loaded.model.eval()
            try:
                self.all(loaded, families)
            finally:
                loaded.model.train(was_training)
                if model is None:
                    self.inputs.release(spec)

    def load(self, spec: CheckpointSpec, model: torch.nn.Module | None, tokenizer: Any,
             families: tuple[str, ...] | list[str] = (), training: dict[str, Any] | None = None,
             ) -> LoadedCheckpoint | None:
        """The checkpoint (or in-memory model) loaded and its identity recorded, with the caller's
        ``training`` facts in place of the stored ones; None when it cannot load, the failure recorded
        as pytest records it: the checkpoint's record says why, and each of its items of ``families``
        is an error with that reason (pytest's ``checkpoint`` fixture fails each one's set-up)."""
        try:
            loaded = self.inputs.checkpoint(spec) if model is None else in_memory_checkpoint(spec, model, tokenizer)
        except CheckpointError as exc:
            failure = fragments.load_failure(spec.name, str(spec.path), str(exc))
            self.run.absorb([(spec.name, fragments.IDENTITY_ITEM, failure)])
            for family, item_id, _ in self.planned(spec.name, families):
                self.item(spec.name, family, item_id, lambda e=exc: _raise(SetupFailed(str(e))))
            return None
        self.run.absorb([(spec.name, fragments.IDENTITY_ITEM, fragments.identity(loaded, training=training))])
        return loaded

    def all(self, loaded: LoadedCheckpoint, families: tuple[str, ...] | list[str]) -> None:
        """Every item of ``families`` on ``loaded``, each recorded with its outcome."""
        for family, item_id, body in self.planned(loaded.name, families):
            self.item(loaded.name, family, item_id, lambda b=body: b(loaded))

    def planned(self, name: str, families: tuple[str, ...] | list[str],
                ) -> list[tuple[str, str, Callable[[LoadedCheckpoint], items.ItemResult]]]:
        """The items of ``families`` for checkpoint ``name``, as pytest collects them: (family, pytest's item
        id, the body on a loaded checkpoint). Timings first, on a model nothing else is using."""
        settings, inputs = self.settings, self.inputs
        found: list[tuple[str, str, Callable[[LoadedCheckpoint], items.ItemResult]]] = []
        if "latency" in families:
            for batch, seq in settings.latency_shapes:
                found.append(("latency", f"test_latency.py::test_latency[{name}-{shape_name(batch, seq)}]",
                              lambda loaded, b=batch, s=seq: self._timed(loaded, s, lambda: items.latency(
                                  loaded, b, s, settings, plain_forward_timer))))
        if "perplexity" in families:
            for corpus in self.context.registry.corpora.values():
                for split in corpus.splits:
                    label = split if corpus.legacy else f"{corpus.name}-{split}"
                    found.append(("perplexity", f"test_perplexity.py::test_perplexity[{name}-{label}]",
                                  lambda loaded, c=corpus, s=split: items.perplexity(
                                      loaded, self._corpus(loaded, c, s), settings, None, inputs.cache, inputs.engine)))
        if "smallbench" in families:
            for task in self.context.registry.tasks.values():
                found.append(("smallbench", f"test_smallbench.py::test_smallbench[{name}-{task.name}]",
                              lambda loaded, t=task: items.smallbench(loaded, self._data(lambda: inputs.task_data(t)),
                                                                      settings, None, inputs.cache, inputs.engine)))
        if "throughput" in families:
            seq = settings.throughput_shape[1]
            found.append(("throughput", f"test_latency.py::test_throughput[{name}]",
                          lambda loaded: self._timed(loaded, seq, lambda: items.throughput(
                              loaded, settings, plain_forward_timer))))
            found.append(("throughput", f"test_latency.py::test_batch_scaling[{name}]",
                          lambda loaded: self._timed(loaded, seq, lambda: items.batch_scaling(loaded, settings))))
        return found

    def item(self, name: str, family: str, item_id: str, body: Callable[[], items.ItemResult]) -> None:
        """Run one item of ``family`` (its pytest marker) of checkpoint ``name``: record its fragment, then its
        gates; the outcome says how it ended, with pytest's reason (``core.formatting.outcome_reason``).
        A skip that the run's rule refuses (``gating.skip_refusal``) fails."""
        item_id = ITEM_PREFIX + item_id
        self.run.expect(name, item_id)
        start = time.perf_counter()
        outcome, reason = "passed", None
        try:
            result = body()
            self.run.absorb([(name, item_id, result.fragment)])
            if result.failure:
                raise ItemFailed(result.failure)
            self.context.gates.enforce(name, result.fragment,
                                       lambda verdicts: self.run.absorb([(name, item_id, verdicts)]))
        except Skip as exc:
            refused = skip_refusal(self.settings, [family])
            outcome = "skipped" if not refused else "error" if exc.at_setup else "failed"
            reason = f"{refused}: {exc}" if refused else str(exc)
        except SetupFailed as exc:  # as pytest records a fixture that fails: an error
            outcome, reason = "error", outcome_reason(str(exc))
        except (ItemFailed, LmevalError) as exc:  # unsound figures, a regression, bad data: one line
            outcome, reason = "failed", outcome_reason(str(exc))
        except Exception as exc:  # a bug: the other items still run; raised again after the reports
            said = f"{type(exc).__name__}: {exc}" if str(exc).strip() else type(exc).__name__
            outcome, reason = "error", outcome_reason(said)
            self.unexpected.append((item_id, exc))
        self.run.add_outcome(name, item_id, outcome, reason, round(time.perf_counter() - start, 3))

    def raise_unexpected(self, finished: Finished) -> None:
        """Raise the first exception an item did not expect (a bug), with its own traceback, noting
        which items raised and that the other items' reports were written; nothing when none did."""
        if not self.unexpected:
            return
        item_id, exc = self.unexpected[0]
        others = f" (and {len(self.unexpected) - 1} more item(s))" if len(self.unexpected) > 1 else ""
        notes = [f"lmeval-fixtures: raised by {item_id}{others}; recorded as an error, and the other items' reports "
                 f"were written: {', '.join(map(str, finished.paths)) or 'none'}", *finished.errors]
        if hasattr(exc, "add_note"):  # Python 3.11+
            for note in notes:
                exc.add_note(note)
        raise exc

    def _corpus(self, loaded: LoadedCheckpoint, corpus: Any, split: str) -> Any:
        refusal = items.perplexity_refusal(loaded, self.settings)
        if refusal:
            raise SetupFailed(refusal)
        return self._data(lambda: self.inputs.corpus_split(corpus, split))

    @staticmethod
    def _data(load: Callable[[], Any]) -> Any:
        """An item's data, as pytest's ``corpus_data`` / ``task_data`` fixtures give it: none is a skip at
        set-up, unusable data an error at set-up."""
        try:
            return load()
        except DataUnavailable as exc:
            raise Skip(str(exc), at_setup=True) from None
        except DataError as exc:
            raise SetupFailed(str(exc)) from None

    @staticmethod
    def _timed(loaded: LoadedCheckpoint, seq: int, body: Callable[[], items.ItemResult]) -> items.ItemResult:
        too_long = items.too_long(loaded, seq)
        if too_long:
            raise Skip(too_long)
        return body()


def _raise(exc: BaseException) -> items.ItemResult:
    raise exc
