"""The library entry points for scripts, notebooks and training loops: no pytest.

``evaluate`` runs the suite's items on one model and writes the same reports as
``pytest benchmarks``; the others return figures and write nothing.

Each takes an in-memory ``torch.nn.Module`` (the native model, a Hugging Face causal
LM, or anything whose forward returns logits or an object with ``.logits``) and a
tokenizer (ours, a Hugging Face fast tokenizer, or a ``tokenizers.Tokenizer`` whose
BOS/EOS token is ``<|endoftext|>``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .core.errors import UsageError
from .core.names import closest_name
from .engine.perplexity import Document, PerplexityResult, score_documents
from .engine.timing import RoundPolicy, summarise_ms, time_rounds
from .evaluation.item_runner import ItemRunner
from .evaluation.options import OPTIONS, default, option_values
from .evaluation.run import Finished
from .evaluation.settings import REFERENCE_DIR, Settings, plain_name
from .evaluation.startup import finish_run, start_run
from .models.discovery import CheckpointSpec, discover_checkpoints
from .models.tokenizer import TokenizerLike, as_text_tokenizer
from .records.metrics_logger import MetricsLogger
from .records.summary import EVALUATE_CALL
from .suite.registry import Registry
from .suite.smallbench import TaskResult, evaluate_task
from .suite.tasks import TASKS, Task


def reference_checkpoints() -> list[CheckpointSpec]:
    """The embedded reference sweep (pass one to ``load_checkpoint``)."""
    return discover_checkpoints([REFERENCE_DIR])


def evaluate_perplexity(
    model: torch.nn.Module,
    tokenizer: TokenizerLike,
    documents: list[str] | list[Document],
    max_len: int,
    **options: Any,
) -> PerplexityResult:
    """Rolling-window perplexity of ``documents`` (plain strings are their own originals for byte and
    word counts). Options as ``perplexity.score_documents``: stride, batch_tokens, max_eval_tokens, and
    caches (an ``engine.projection.EngineCaches`` kept across calls, so that later calls reuse what
    earlier ones learned and encoded; without, each call starts afresh)."""
    docs = [d if isinstance(d, Document) else Document(text=d, original=d) for d in documents]
    was_training = model.training
    model.eval()
    try:
        return score_documents(model, as_text_tokenizer(tokenizer), docs, max_len, **options)
    finally:
        model.train(was_training)


def evaluate_smallbench(
    model: torch.nn.Module,
    tokenizer: TokenizerLike,
    task: str | Task,
    rows: list[dict],
    max_len: int,
    **options: Any,
) -> TaskResult:
    """Accuracy of one SmallBench task on ``rows`` (dicts with the task's fields and ``label``).
    Options as ``smallbench.evaluate_task``: prompt_set, fewshot, fewshot_pool, seed, max_samples, caches."""
    declared = TASKS[task] if isinstance(task, str) else task
    was_training = model.training
    model.eval()
    try:
        return evaluate_task(model, as_text_tokenizer(tokenizer), declared, rows, max_len, **options)
    finally:
        model.train(was_training)


@torch.inference_mode()
def profile_latency(
    model: torch.nn.Module, batch: int = 1, seq: int = 128, rounds: int | None = None, warmup: int | None = None,
    vocab_size: int | None = None, seed: int = 0,
) -> dict[str, float | int]:
    """Forward latency over random ids, synchronising CUDA around each round (ms statistics).

    Without pytest-benchmark: for a quick reading inside a training loop. The pytest
    items use pytest-benchmark and record the same statistics; ``rounds`` and ``warmup``
    default to --latency-rounds and --latency-warmup's defaults. Exactly ``rounds`` rounds
    are timed: a caller who names a count gets that count (no time budget here).
    """
    rounds = default("latency_rounds") if rounds is None else rounds
    warmup = default("latency_warmup") if warmup is None else warmup
    parameter = next(model.parameters())
    vocab = vocab_size or getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is None:
        raise UsageError("pass vocab_size for a model without .config.vocab_size")
    ids = torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed)).to(parameter.device)
    timings = time_rounds(lambda: model(ids), parameter.device, RoundPolicy(rounds, warmup, math.inf, rounds))
    return summarise_ms(timings) | {"batch": batch, "seq": seq}


FAMILIES = ("perplexity", "smallbench", "latency", "throughput")
# options of a pytest run that mean nothing for one model evaluated in one process: refused by name
# rather than ignored (a record claiming ``shard: 1/2`` for a run of every item would be false)
REFUSED_OPTIONS = {
    "shard": "evaluate() runs every item of its model in this process; a shard is a part of a pytest run "
             "(pytest benchmarks --shard I/N, then lmeval-fixtures merge)",
    "checkpoint": "pass the checkpoint (or the in-memory model) as evaluate's first argument",
}


OWN_KEYWORDS = ("name", "families", "registry", "history", "training", "logger")


def unknown_keyword(keyword: str) -> str:
    """The one line for a keyword ``evaluate()`` does not take: the one it most likely means (the command line's
    "did you mean" rule, ``core.names.closest_name``), else where the keywords are listed."""
    close = closest_name(keyword, [*OWN_KEYWORDS, *(option.dest for option in OPTIONS)])
    if close:
        return f"evaluate: no such keyword {keyword}; did you mean {close}?"
    return (f"evaluate: no such keyword {keyword}; the keywords are evaluate()'s own ({', '.join(OWN_KEYWORDS)}) "
            "and the command line's options by name (docs/options.md)")


def where_it_is(model: torch.nn.Module, options: dict[str, Any]) -> dict[str, str]:
    """An in-memory model is evaluated on its own device and in its own dtype, and recorded so; a
    ``device=`` or ``dtype=`` that names another is refused (move or cast the model first), never
    recorded while the model ran elsewhere. Its device is the run's before the settings are checked,
    so that what depends on the device (``batch_tokens="auto"``, float16's refusal on a CPU) means
    what ``--device`` of that device means."""
    from .models.loading import DTYPES

    parameter = next(model.parameters(), None)
    if parameter is None:
        return {}
    device = parameter.device.type if parameter.device.index is None else str(parameter.device)
    dtype = next((name for name, value in DTYPES.items() if value == parameter.dtype), str(parameter.dtype))
    for key, actual in (("device", device), ("dtype", dtype)):
        given = options.get(key)
        if given not in (None, "auto", actual) and not (key == "device" and given == "cuda" and
                                                         actual.startswith("cuda")):
            raise UsageError(f"{key} {given!r}: the in-memory model is on {device} in {dtype}; move it there "
                             f"(model.to(...)) or leave {key}= out")
    return {"device": device, "dtype": dtype}


def evaluate_call(model: Any, name: str | None, families: Any, options: dict[str, Any]) -> list[str]:
    """The call as the record's invocation holds it (summary.md's "command line"): what was evaluated
    and every option with its value, so that the run can be made again."""
    what = repr(str(model)) if isinstance(model, (str, Path)) else f"<in-memory {type(model).__name__}>"
    named = {"name": name} if name is not None else {}
    keywords = named | {"families": list(families)} | dict(sorted(options.items()))
    return [EVALUATE_CALL, what, *(f"{key}={value!r}" for key, value in keywords.items())]


def training_facts(training: Mapping[str, Any] | None, logger: MetricsLogger | None) -> dict[str, Any] | None:
    """The training facts ``evaluate`` records, with their source; None to keep the checkpoint's own.
    Checked before anything runs: numbers only (a record is JSON), and one source, not two."""
    if training is not None and logger is not None:
        raise UsageError("evaluate: pass training= or logger=, not both (the logger's figures are its training facts)")
    if logger is not None:
        if not isinstance(logger, MetricsLogger):
            raise UsageError(f"logger: pass a lmeval_fixtures.MetricsLogger, not {type(logger).__name__}")
        facts = logger.training_figures()
        return facts | {"source": "MetricsLogger"} if facts else None
    if training is None:
        return None
    if not isinstance(training, Mapping):
        raise UsageError(f"training: pass a mapping of numbers by name, not {type(training).__name__}")
    facts = {}
    for key, value in training.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"training: {key!r}={value!r}; give numbers by name (train_loss=2.31, step=400)")
        facts[key] = value
    return facts | {"source": "evaluate(training=...)"} if facts else None


def evaluate(
    model: torch.nn.Module | str | Path,
    tokenizer: TokenizerLike | Any | None = None,
    *,
    name: str | None = None,
    families: tuple[str, ...] | list[str] = FAMILIES,
    registry: Registry | None = None,
    history: bool = True,
    training: Mapping[str, Any] | None = None,
    logger: MetricsLogger | None = None,
    **options: Any,
) -> Finished:
    """Evaluate one model and write the same ``metrics.json`` and ``summary.md`` as
    ``pytest benchmarks`` does, for use from a training loop or a notebook.

    ``model`` is a checkpoint path (anything ``--checkpoint`` takes) or an in-memory
    model (the native ``Transformer``, or a Hugging Face causal LM) with its
    ``tokenizer``. ``families`` chooses among perplexity, smallbench, latency and
    throughput (as the pytest markers do). ``options`` are the pytest options by
    their names (``data_dir=``, ``report_dir=``, ``max_eval_tokens=``, ``run_id=``,
    ``baseline=``...), every one with the same meaning, defaults and checks, except those
    ``REFUSED_OPTIONS`` refuses by name (tests/e2e/test_evaluate_parity.py gives each through
    both doors); an unknown keyword is one line with the command line's "did you mean". Items run family by
    family (timings first, on a model nothing else is using); one that fails is recorded
    as failed with its reason, and the rest still run. Returns what was written (``.records``, ``.paths``, ``.errors``).
    An item that raises an exception the suite does not raise on purpose (a bug, not an
    ``LmevalError``) is recorded as an error; once the reports are written, that exception is
    raised again with its traceback.

    ``training`` (numbers by name: ``train_loss``, ``step``, ``tokens_seen``...) or ``logger`` (a
    ``MetricsLogger``: its last ``train_loss``, that step, its last ``tokens_seen``) become the
    record's training facts, in place of those stored with the weights, with their source; the
    train perplexity is exp(train loss), as everywhere.
    """
    facts = training_facts(training, logger)
    families = [families] if isinstance(families, str) else families
    if not isinstance(families, (list, tuple)) or not families or not all(isinstance(f, str) for f in families):
        raise UsageError(f"families {families!r}: give one or more of {', '.join(FAMILIES)}")
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise UsageError(f"families: unknown {', '.join(unknown)}; choose among {', '.join(FAMILIES)}")
    in_memory = isinstance(model, torch.nn.Module)
    if not in_memory and not isinstance(model, (str, Path)):
        raise UsageError(f"model: pass a checkpoint path or an in-memory torch.nn.Module, not {type(model).__name__}")
    if in_memory and (tokenizer is None or isinstance(tokenizer, (str, Path))):
        raise UsageError("tokenizer: an in-memory model needs its tokenizer object (a tokenizers.Tokenizer, a "
                         "Hugging Face fast tokenizer or lmeval_fixtures' TextTokenizer)")
    refused = sorted(key for key in set(options) & REFUSED_OPTIONS.keys() if options[key] is not None)  # None: unset
    if refused:
        raise UsageError(f"{refused[0]}: {REFUSED_OPTIONS[refused[0]]}")
    unknown = sorted(set(options) - {option.dest for option in OPTIONS})
    if unknown:
        raise UsageError(unknown_keyword(unknown[0]))
    values = option_values(**options)
    where = where_it_is(model, options) if in_memory else {}
    if not in_memory:
        values.checkpoint = [str(model)]
    elif where and where["device"].partition(":")[0] in ("cpu", "cuda", "mps"):  # the run's device, for every
        values.device = where["device"]  # check and every "auto" (as --device names it)

    def complete(settings: Settings) -> Settings:
        """The checkpoint an in-memory model or ``name`` stands for; ``threads`` taken up before the run's
        environment is recorded (as a pytest run does), so the record says how many threads ran it."""
        if settings.threads:  # as a pytest run: this many intra-op threads, for this call only
            torch.set_num_threads(settings.threads)
        if in_memory:
            return replace(settings, **where,
                           checkpoints=[CheckpointSpec(plain_name(name or "model", "name"), Path("(in memory)"))])
        if name is None:
            return settings
        if len(settings.checkpoints) != 1:
            raise UsageError(f"name {name!r}: {model} holds {len(settings.checkpoints)} checkpoints; name only one")
        return replace(settings, checkpoints=[CheckpointSpec(plain_name(name, "name"), settings.checkpoints[0].path)])

    threads = torch.get_num_threads()
    stopped: KeyboardInterrupt | None = None
    try:
        context = start_run(values, report_root=Path.cwd(), source_root=Path.cwd(),
                            args=evaluate_call(model, name, families, options), registry=registry, complete=complete)
        settings, run = context.settings, context.run
        items_run = ItemRunner(context)
        try:
            items_run.checkpoints(model if in_memory else None, tokenizer, families, training=facts)
        except KeyboardInterrupt as exc:  # as a pytest run stopped by Ctrl-C: what finished is written
            stopped = exc
        finally:
            context.close()
    finally:
        torch.set_num_threads(threads)
    finished = finish_run(run, settings, history=history, interrupted=stopped is not None)
    if stopped is not None:
        raise stopped
    items_run.raise_unexpected(finished)  # a bug in an item: its traceback, after the others' reports
    return finished
