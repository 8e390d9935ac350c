"""Every command-line option, declared once, with nothing heavy imported.

The pytest plugin adds these options before any session uses them, in every
project that loads it; keeping this table free of torch (and of the modules
that import it) is what lets a plugin import stay cheap. ``settings`` validates
the values; the library API takes each option's ``dest`` as a keyword.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..core.errors import UsageError
from ..core.names import SHARDS_MOST, closest_name
from ..suite.tasks import PROMPT_SETS

# the keys of checkpoints.DTYPES (which needs torch); test_options checks they agree
DTYPE_NAMES = ("float32", "bfloat16", "float16")
# pytest options are stored under this prefix, so that a project's own --device keeps its dest
DEST_PREFIX = "lmeval_"
FLAG_PREFIX = "--lmeval-"


@dataclass(frozen=True)
class Range:
    """The values a numeric option accepts, both ends included unless ``open_low``; ``high`` None
    means any finite value above ``low``. Every numeric option has one, checked at start-up, so
    that a value no run can use (a seed of 2**70, a billion shards, a NaN tolerance) is one line
    naming the option instead of a traceback deep inside an item."""

    low: float
    high: float | None = None
    whole: bool = True
    open_low: bool = False

    def text(self) -> str:
        """How the range reads in a message and on the options page."""
        if self.whole:
            if self.high is None:
                return "a positive integer" if self.low == 1 else f"an integer >= {self.low:,}"
            return f"an integer from {self.low:,} to {self.high:,}"
        if self.high is None:
            return f"a finite number {'>' if self.open_low else '>='} {self.low:g}"
        return f"between {self.low:g} and {self.high:g}" + (" (exclusive)" if self.open_low else "")

    def holds(self, value: float) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.whole and not float(value).is_integer():
            return False
        if not math.isfinite(value) or value < self.low or (self.open_low and value == self.low):
            return False
        return self.high is None or (value < self.high if self.open_low else value <= self.high)

    def check(self, name: str, value: float | None) -> float | None:
        """``value`` (None passes: the option was not given), or a ``UsageError`` naming ``name``."""
        if value is not None and not self.holds(value):
            raise UsageError(f"{name} must be {self.text()}, got {value}")
        return value


# bounds shared by several options; each documented on the options page
COUNT = Range(1, 10**9)
LARGEST_SHAPE = 2**20  # a batch or a sequence length: the largest context a native config may declare
SEED = Range(0, 2**32 - 1)  # what every random generator accepts (numpy's too)
TOLERANCE = Range(0, None, whole=False)


@dataclass(frozen=True)
class Option:
    """One command-line option, declared once: the pytest plugin adds it, the library API
    takes its ``dest`` as a keyword, and its default is the default everywhere."""

    flag: str
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    action: str | None = None
    nargs: str | None = None
    const: Any = None
    bounds: Range | None = None  # a numeric option's accepted values

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def argparse_kwargs(self) -> dict[str, Any]:
        spec = {"help": self.help, "default": self.default, "type": self.type, "metavar": self.metavar,
                "choices": list(self.choices) if self.choices else None, "action": self.action,
                "nargs": self.nargs, "const": self.const}
        return {k: v for k, v in spec.items() if v is not None or k == "default"}


AUTO = "auto"


def token_budget(text: str | int) -> int | str:
    """``--batch-tokens``: a whole number, or ``auto`` (``settings`` turns it into a number for the device)."""
    if isinstance(text, str) and text.strip().lower() == AUTO:
        return AUTO
    if isinstance(text, float):
        raise ValueError(text)
    return int(text)


OPTIONS: tuple[Option, ...] = (
    Option("--checkpoint", "a native checkpoint (.safetensors with config.json beside it, or .pt), a Hugging Face "
           "causal-LM folder (config.json + weights), a hub model id OWNER/NAME[@REVISION] (hf extra), or a folder "
           "of checkpoints; repeatable. Default: the embedded reference checkpoints", metavar="PATH_OR_HUB_ID",
           action="append"),
    Option("--data-dir", "local data in the layout of the README (default: $LMEVAL_DATA_DIR, else the Hugging Face "
           "hub)", metavar="DIR"),
    Option("--report-dir", "where <run_id>/<checkpoint>/ reports and history.jsonl go (default: reports in the "
           "folder the run is started from, whatever the other options' paths)", metavar="DIR"),
    Option("--run-id", "name of this run's report folder (default: UTC time + random)", metavar="ID"),
    Option("--experiment-name", "recorded as experiment_name", metavar="NAME"),
    Option("--device", "cpu, cuda, cuda:N, mps or auto (default: cpu)", default="cpu", metavar="DEVICE"),
    Option("--dtype", "model dtype (default: float32)", default="float32", choices=DTYPE_NAMES),
    Option("--seed", "seed for anything sampled (default: 1234)", default=1234, type=int, metavar="N", bounds=SEED),
    Option("--max-eval-tokens", "score at most N tokens per perplexity split (a quick run; recorded)", type=int,
           metavar="N", bounds=Range(1, 10**12)),
    Option("--ppl-stride", "perplexity window stride (default: the context length, disjoint windows as "
           "lm-evaluation-harness; smaller values give lower, non-comparable figures)", type=int, metavar="N",
           bounds=Range(1, LARGEST_SHAPE)),
    Option("--detokenize", "apply the corpus detokenizer (WikiText's) before scoring (default: on, as "
           "lm-evaluation-harness)", default="on", choices=("on", "off")),
    Option("--batch-tokens", "token budget of one forward batch, or auto: on a GPU the largest that fits, found by "
           "halving 1048576 (on CPU: 16384, as the kernel, not torch, stops a process short of memory); any budget "
           "that runs out of memory is halved until one fits, the call scored again at it (default: 16384)",
           default=16384, type=token_budget, metavar="N|auto", bounds=Range(1, 2**31)),
    Option("--prompts", "SmallBench prompt set: the house prompts or lm-evaluation-harness's (default: smallbench)",
           default="smallbench", choices=PROMPT_SETS),
    Option("--corpus", "a perplexity corpus of your own beside WikiText-2: NAME=PATH[:FIELD] (a text file, documents "
           "separated by blank lines; .jsonl/.json/.csv/.parquet/.arrow with a text FIELD, default text; a folder) "
           "or NAME=hf:OWNER/DATASET[:CONFIG]:SPLIT[:FIELD]; repeatable. Ini: lmeval_corpora", metavar="NAME=SOURCE",
           action="append"),
    Option("--task-file", "a multiple-choice task declared in a YAML file (ours, or lm-evaluation-harness's "
           "multiple_choice task YAML over local files); repeatable. Ini: lmeval_task_files", metavar="FILE",
           action="append"),
    Option("--max-samples", "evaluate the first N rows of each task (recorded)", type=int, metavar="N", bounds=COUNT),
    Option("--fewshot", "K labelled examples from the train split before each row, drawn with --seed (default: 0)",
           default=0, type=int, metavar="K", bounds=Range(0, 1024)),
    Option("--baseline", "metrics.json, or a folder of <checkpoint>/metrics.json, to gate against (a gated item "
           "of a checkpoint without a baseline record fails, unless --allow-missing-baseline)", metavar="PATH"),
    Option("--allow-missing-baseline", "under --baseline, a checkpoint with no baseline record yet passes ungated, "
           "and the results say so (default: it fails)", action="store_true", default=False),
    Option("--ppl-tolerance", "allowed relative rise of perplexity and bits per byte over the baseline "
           "(default: 0.01)", default=0.01, type=float, metavar="REL", bounds=TOLERANCE),
    Option("--acc-tolerance-se", "allowed accuracy drop below the baseline, in standard errors (default: 2)",
           default=2.0, type=float, metavar="K", bounds=TOLERANCE),
    Option("--gate", "how a figure is compared with --baseline: threshold (the tolerances below) or paired (fails "
           "only when this run is significantly worse on the same rows or documents: exact McNemar for accuracy, a "
           "paired bootstrap for bits per byte and perplexity; the baseline must hold per-row values, as "
           "--update-baseline writes them) (default: threshold)", default="threshold",
           choices=("threshold", "paired")),
    Option("--gate-alpha", "significance level of --gate paired (default: 0.05)", default=0.05, type=float,
           metavar="A", bounds=Range(0, 1, whole=False, open_low=True)),
    Option("--min-acc", "accuracy floor for every SmallBench task", type=float, metavar="P",
           bounds=Range(0, 1, whole=False)),
    Option("--latency-shapes", f"latency shapes, batch x sequence, each from 1 to {LARGEST_SHAPE:,} "
           "(default: 1x128,1x512)",
           default="1x128,1x512",
           metavar="BxS,..."),
    Option("--latency-rounds", "most timed rounds per shape, within --timing-budget (default: 20)", default=20,
           type=int, metavar="N", bounds=Range(1, 10**6)),
    Option("--latency-warmup", "untimed warm-up rounds (default: 3)", default=3, type=int, metavar="N",
           bounds=Range(0, 10**6)),
    Option("--throughput-shape", "throughput batch x sequence; the batch is halved until it fits (default: 32x512)",
           default="32x512", metavar="BxS"),
    Option("--batch-sweep", "batch sizes of the batch-scaling item, at the throughput sequence length; it stops at "
           "the first that does not fit (default: 1,4,16,64)", default="1,4,16,64", metavar="B,..."),
    Option("--throughput-rounds", "most timed rounds of throughput and of each batch size, within "
           "--timing-budget (default: 5)", default=5, type=int, metavar="N", bounds=Range(1, 10**6)),
    Option("--timing-budget", "seconds of timed rounds per measurement (a latency shape, the throughput shape, each "
           "batch size of the sweep), judged by the last warm-up round: at least 5 latency or 2 throughput rounds, "
           "at most --latency-rounds / --throughput-rounds (default: 1.0)", default=1.0, type=float, metavar="S",
           bounds=Range(0, 86400, whole=False)),
    Option("--latency-tolerance", "allowed relative rise of mean latency (and fall of throughput) against the "
           "baseline, same device and dtype only (default: 0.25)", default=0.25, type=float, metavar="REL",
           bounds=TOLERANCE),
    Option("--threads", "intra-op CPU threads in every process (default: all cores, divided among xdist workers); "
           "the same N for -n 0 and -n 2 gives bit-identical float sums", type=int, metavar="N", bounds=Range(1, 4096)),
    Option("--shard", f"run only the I-th of N deterministic parts of the collected items (1-based, N at most "
           f"{SHARDS_MOST:,}; join the parts with `lmeval-fixtures merge`)", metavar="I/N"),
    Option("--compare-by", "sort column of comparison.md: a figure key such as val_bits_per_byte, "
           "smallbench_avg_acc or latency_batch1_seq128 (default: val_bits_per_byte)", default="val_bits_per_byte",
           metavar="KEY"),
    Option("--log-samples", "write per-example records (samples-*.jsonl beside metrics.json); 'hash' keeps sha256 "
           "of the texts instead of the texts (default: off)", choices=("full", "hash"), nargs="?", const="full"),
    Option("--strict-skips", "fail every item that skips (no data, timing not taken, ...): a CI run that "
           "measures nothing must not pass (pytest's own --strict is taken). Ini: lmeval_strict_skips",
           action="store_true", default=False),
    Option("--update-baseline", "after the run, write its records as a baseline folder: NAME for "
           "<report-dir>/baselines/NAME, or a path (replaced atomically; only when every item passed)",
           metavar="NAME_OR_DIR"),
    Option("--cache-dir", "content-addressed cache of evaluation figures (default: <report-dir>/.cache); an item "
           "whose weights, tokenizer, inputs and settings are unchanged is taken from it", metavar="DIR"),
    Option("--no-cache", "neither read nor write the result cache", action="store_true", default=False),
    Option("--refresh", "recompute every evaluation item and overwrite its cache entry", action="store_true",
           default=False),
    Option("--cache-max-mb", "size bound of the cache folder; least recently used entries go first "
           "(default: 2048)", default=2048, type=int, metavar="MB", bounds=Range(1, 10**9)),
    Option("--track", "log each checkpoint's record as one run of an experiment tracker: wandb (WANDB_MODE=offline "
           "to log offline) or tensorboard, optionally :DIR for its files (default: wandb's ./wandb, tensorboard's "
           "./runs); needs the track extra", metavar="BACKEND[:DIR]"),
    Option("--merge-into", "merge this run's records into an earlier run's report folder (reports/<run_id>), e.g. "
           "timings taken with -p no:xdist after an -n auto run", metavar="RUN_DIR"),
)


def default(dest: str) -> Any:
    """The default of the option whose ``dest`` is given (e.g. ``compare_by``)."""
    return next(option.default for option in OPTIONS if option.dest == dest)


def option_values(**given: Any) -> SimpleNamespace:
    """Every option's value by ``dest``: its default, unless given (the library API's path).

    A value is checked as the command line checks it: numbers of the option's type (``"7"``
    converts; ``True`` or ``2.7`` for a count does not), a choice among the option's choices,
    text where text is expected; ``None`` means the default. An option whose flag may stand alone
    (``--log-samples``) takes ``True`` for the flag alone and ``False`` for the option left out. A
    value that does not fit is a usage error naming the option."""
    options = {option.dest: option for option in OPTIONS}
    unknown = sorted(set(given) - options.keys())
    if unknown:
        close = closest_name(unknown[0], options)
        raise UsageError(f"unknown setting(s) {', '.join(unknown)}; "
                         + (f"did you mean {close}?" if close else f"known: {', '.join(sorted(options))}"))
    values = {dest: option.default for dest, option in options.items()}
    for dest, value in given.items():
        if value is not None:
            values[dest] = _checked_value(options[dest], value)
    return SimpleNamespace(**values)


def _checked_value(option: Option, value: Any) -> Any:
    expected = option.type.__name__ if option.type else "text"
    if option.nargs == "?" and isinstance(value, bool):  # the flag alone (its const), or left out
        return option.const if value else option.default
    if option.action == "store_true":
        if not isinstance(value, bool):
            raise UsageError(f"{option.flag} {value!r}: expected True or False")
        return value
    if option.action == "append":
        items = [value] if isinstance(value, (str, Path)) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in items):
            raise UsageError(f"{option.flag} {value!r}: expected a path or a list of paths")
        return [str(v) for v in items]
    if isinstance(value, Path) and option.type is None:
        value = str(value)
    if isinstance(value, bool) or (option.type is None and not isinstance(value, str)):
        raise UsageError(f"{option.flag} {value!r}: expected {expected}")
    if option.type is not None:
        if isinstance(value, float) and option.type is int and not value.is_integer():
            raise UsageError(f"{option.flag} {value!r}: expected a whole number")
        try:
            value = option.type(value)
        except (TypeError, ValueError):
            raise UsageError(f"{option.flag} {value!r}: expected {expected}") from None
    if option.choices and value not in option.choices:
        raise UsageError(f"{option.flag} {value!r}: choose one of {', '.join(option.choices)}")
    return value
