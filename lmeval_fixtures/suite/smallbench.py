"""Evaluating one SmallBench task: prompts -> requests -> scores -> accuracy.

acc is the argmax of the summed log-likelihoods; acc_norm the argmax of
log-likelihood divided by the character length of the bare choice string (as
lm-evaluation-harness computes it); standard errors are sqrt(p(1-p)/(n-1)),
lm-evaluation-harness's ``mean_stderr``. Correct counts and n are kept as sums
so that shards merge exactly.

Most tasks score one choice list for every row. A task file's rows may each give
their own (arc_easy's ``choices.text``, piqa's two solutions): such a row is
scored against its own choices and continuations (``RowResult.choices``), its
acc_norm divides by the lengths of its own choice strings (as lm-eval's
``process_results`` does, per document), and the figures below count choices by
their position in each row's own list.

Small models often predict one class for every row, so their accuracies equal
the majority-class rate and one another; the figures that still tell them apart
(``small_model_figures``) use the same raw log-likelihood sums as acc:

- majority_rate: the share of the most frequent gold label (choice index; with
  per-row choices, position in the row's list) among the evaluated rows;
  acc_above_majority = acc - majority_rate;
- margin: per row ll[gold] - max(ll[other]) (nats; positive exactly where acc is
  right, ties aside), its mean over rows, with standard error sqrt(var/n), var
  with n - 1 (as acc's);
- gold_bits_per_byte: sum over rows of -ll[gold] / ln 2, divided by the UTF-8
  bytes of the gold continuations as scored (``scoring.scored_continuation``:
  delimiter and choice, e.g. " yes" is 4 bytes, plus any trailing whitespace the
  context hands over, none for the shipped prompts);
- predicted_classes: how many distinct choices (choice indices) acc predicts
  over the rows, and single_class when that is one.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..core.errors import DataError
from ..engine.projection import EngineCaches
from ..engine.scoring import Progress, Request, ScoringStats, score_requests, scored_continuation
from ..models.tokenizer import TextTokenizer
from .tasks import Prompt, Task


@dataclass
class RowResult:
    idx: int
    label: int
    loglikelihoods: list[float]
    greedy: list[bool]
    context: str = ""
    # the row's own choices and the strings scored for them (delimiter + choice), when they are not
    # the task's; None (every row of a task with one list): TaskResult.choices / .continuations
    choices: tuple[str, ...] | None = None
    continuations: tuple[str, ...] | None = None

    def prediction(self, lengths: list[int] | None = None) -> int:
        values = self.loglikelihoods if lengths is None else [ll / n for ll, n in zip(self.loglikelihoods, lengths,
                                                                                      strict=True)]
        return max(range(len(values)), key=lambda i: (values[i], -i))  # first maximum, as numpy.argmax

    def margin(self) -> float | None:
        """ll[gold] - max(ll[other]) in nats, from the raw sums acc compares; None with one choice."""
        others = [ll for i, ll in enumerate(self.loglikelihoods) if i != self.label]
        return self.loglikelihoods[self.label] - max(others) if others else None


@dataclass
class TaskResult:
    task: str
    prompt_set: str
    fewshot: int
    rows: list[RowResult]
    choice_lengths: list[int]  # of the task's choices (acc_norm's divisors); a row with its own uses those
    stats: ScoringStats
    seconds: float
    max_samples: int | None = None
    choices: tuple[str, ...] = ()  # the task's one list; empty when every row gives its own
    continuations: tuple[str, ...] = ()  # the scored strings, delimiter + choice (default: " " + choice)
    seed: int | None = None  # the seed the shots were drawn with (matters only under fewshot)

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def correct(self) -> int:
        return sum(r.prediction() == r.label for r in self.rows)

    @property
    def correct_norm(self) -> int:
        return sum(r.prediction(self.row_lengths(r)) == r.label for r in self.rows)

    def row_choices(self, row: RowResult) -> tuple[str, ...]:
        """The choices ``row`` was scored against: its own, else the task's."""
        return self.choices if row.choices is None else row.choices

    def row_continuations(self, row: RowResult) -> tuple[str, ...]:
        """The strings scored for ``row``'s choices (delimiter + choice; default " " + choice)."""
        if row.continuations is not None:
            return row.continuations
        if row.choices is not None:
            return tuple(" " + c for c in row.choices)
        return self.continuations or tuple(" " + c for c in self.choices)

    def row_lengths(self, row: RowResult) -> list[int]:
        """acc_norm's divisors for ``row``: the character length of each of its choice strings."""
        return self.choice_lengths if row.choices is None else [len(c) for c in row.choices]

    @property
    def choices_per_row(self) -> bool:
        """Whether some row was scored against its own choice list rather than the task's."""
        return any(r.choices is not None for r in self.rows)

    @property
    def acc(self) -> float:
        return self.correct / self.n

    @property
    def acc_norm(self) -> float:
        return self.correct_norm / self.n

    def gold_bytes(self) -> list[int]:
        """Per row, the UTF-8 bytes of the gold continuation as scored (see the module docstring)."""
        return [len(scored_continuation(r.context, self.row_continuations(r)[r.label]).encode("utf-8"))
                for r in self.rows]

    def gold_loglikelihood_sum(self) -> float:
        """The gold continuations' log-likelihoods summed exactly rounded (``math.fsum``): builtin
        ``sum`` rounds differently from Python 3.12 on, and a record must not depend on the Python."""
        return math.fsum(r.loglikelihoods[r.label] for r in self.rows)

    def small_model_figures(self) -> dict[str, Any]:
        """Majority rate, margin, gold bits per byte and predicted classes (definitions above)."""
        n_choices = max([len(self.choice_lengths), *(len(r.loglikelihoods) for r in self.rows)])
        label_counts = [0] * n_choices
        prediction_counts = [0] * n_choices
        for r in self.rows:
            label_counts[r.label] += 1
            prediction_counts[r.prediction()] += 1
        majority = max(label_counts) / self.n
        margins = [r.margin() for r in self.rows]
        if any(m is None for m in margins):
            margin = margin_stderr = None
        else:
            margin = math.fsum(margins) / self.n
            margin_stderr = (math.sqrt(math.fsum((m - margin) ** 2 for m in margins) / (self.n - 1) / self.n)
                             if self.n > 1 else None)
        gold_bytes = sum(self.gold_bytes())
        gold_nll = -self.gold_loglikelihood_sum()
        return {
            "label_counts": label_counts, "majority_rate": majority, "acc_above_majority": self.acc - majority,
            "prediction_counts": prediction_counts, "predicted_classes": sum(1 for c in prediction_counts if c),
            "single_class": max(prediction_counts) == self.n,
            "margin": margin, "margin_stderr": margin_stderr,
            "gold_bytes": gold_bytes, "gold_bits_per_byte": gold_nll / (math.log(2) * gold_bytes),
        }

    def per_row(self) -> dict[str, list[Any]]:
        """What paired tests need, per row in row order: idx, label, whether acc got it right, the
        margin, the gold log-likelihood and the gold continuation's bytes."""
        return {"idx": [r.idx for r in self.rows], "label": [r.label for r in self.rows],
                "correct": [r.prediction() == r.label for r in self.rows],
                "margin": [r.margin() for r in self.rows],
                "gold_loglikelihood": [r.loglikelihoods[r.label] for r in self.rows],
                "gold_bytes": self.gold_bytes()}

    def samples(self, mode: str = "full") -> list[dict[str, Any]]:
        """One row per example; ``mode="hash"`` keeps sha256 of the texts instead of the texts."""
        rows = []
        for r in self.rows:
            prediction, normed = r.prediction(), r.prediction(self.row_lengths(r))
            row = {"idx": r.idx, "label": r.label, "loglikelihoods": r.loglikelihoods, "greedy": r.greedy,
                   "prediction": prediction, "prediction_norm": normed, "correct": prediction == r.label,
                   "correct_norm": normed == r.label}
            own = self.row_choices(r)
            if mode == "hash":
                row["context_sha256"] = hashlib.sha256(r.context.encode()).hexdigest()
                row["choices_sha256"] = [hashlib.sha256(c.encode()).hexdigest() for c in own]
            else:
                row["context"], row["choices"] = r.context, list(own)
            rows.append(row)
        return rows

    def summary(self) -> dict[str, Any]:
        return {
            "n": self.n, "acc": self.acc, "acc_stderr": stderr(self.acc, self.n),
            "acc_norm": self.acc_norm, "acc_norm_stderr": stderr(self.acc_norm, self.n),
            "correct": self.correct, "correct_norm": self.correct_norm,
            "gold_loglikelihood_sum": self.gold_loglikelihood_sum(),
            "prompt_set": self.prompt_set, "fewshot": self.fewshot, "max_samples": self.max_samples,
            "requests": self.stats.requests, "contexts": self.stats.contexts,
            "input_tokens": self.stats.input_tokens, "padded_tokens": self.stats.padded_tokens,
            "separate_encodings": self.stats.separate_encodings,
            "truncated_contexts": self.stats.truncated_contexts,
            "batch_tokens": self.stats.batch_tokens,  # less than --batch-tokens when that ran out of memory
            "seconds": round(self.seconds, 3),
        } | self.fewshot_seed() | self.small_model_figures() | self.row_choice_figures()

    def fewshot_seed(self) -> dict[str, Any]:
        """The seed the shots were drawn with, where there were shots: other shots are another
        measurement, so a baseline drawn with another seed is refused (``figures.TASK_SETTINGS``).
        Nothing without shots, where the seed changes no figure."""
        return {"fewshot_seed": self.seed} if self.fewshot and self.seed is not None else {}

    def row_choice_figures(self) -> dict[str, Any]:
        """For a task whose rows were scored against their own choice lists: that they were, and
        how many rows had each number of choices (so a record says so, instead of one list).
        Nothing for a task scored against one list, whose record stays as it always was."""
        if not self.choices_per_row:
            return {}
        counts: dict[int, int] = {}
        for r in self.rows:
            k = len(self.row_choices(r))
            counts[k] = counts.get(k, 0) + 1
        return {"choices_per_row": True, "rows_by_choice_count": {str(k): counts[k] for k in sorted(counts)}}


def stderr(p: float, n: int) -> float | None:
    return math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else None


def fewshot_prefix(prompt: Prompt, pool: list[dict], k: int, seed: int, task: str, row: dict) -> str:
    """k labelled examples, drawn per row with a fixed seed, never the evaluated row itself."""
    if k == 0:
        return ""
    # Draw k + 1 indices and drop the row itself if drawn: O(k) per row, where filtering the
    # pool first would compare every row with all of SST-2's 67k training examples.
    rng = random.Random(f"{seed}:{task}:{row.get('idx')}")
    drawn = [pool[i] for i in rng.sample(range(len(pool)), min(k + 1, len(pool)))]
    shots = [r for r in drawn if r is not row and r != row][:k]
    if len(shots) < k:
        raise DataError(f"{task}: --fewshot {k} needs at least {k} examples besides the row, found {len(shots)}")
    # each solved example ends with the prompt's few-shot delimiter (lm-eval's ``fewshot_delimiter``,
    # a blank line by default); its answer is its gold among its own choices, as lm-eval writes a
    # shot's target through that shot's doc_to_choice
    return "".join(prompt.context(s) + prompt.delimiter + prompt.row_choices(s)[s["label"]]
                   + prompt.fewshot_delimiter for s in shots)


class RunningAccuracy:
    """Accuracy over the rows scored so far, for the progress line: a row counts once every one of
    its choices (requests ``spans[row]``) is scored, predicted as ``RowResult.prediction`` does
    (the first maximum of the summed log-likelihoods). Exact once every row is in."""

    def __init__(self, spans: list[tuple[int, int]], labels: list[int],
                 live: Callable[[dict[str, float]], None]) -> None:
        self.live = live
        self.labels = labels
        self.row_of = {index: row for row, (start, end) in enumerate(spans) for index in range(start, end)}
        self.pending = {row: end - start for row, (start, end) in enumerate(spans)}
        self.values: dict[int, dict[int, float]] = {}
        self.spans = spans
        self.rows = self.correct = 0

    def scored(self, indices: list[int], logprobs: list[float]) -> None:
        for index, value in zip(indices, logprobs, strict=True):
            row = self.row_of[index]
            self.values.setdefault(row, {})[index - self.spans[row][0]] = value
            self.pending[row] -= 1
            if self.pending[row] == 0:
                got = self.values.pop(row)
                values = [got[i] for i in range(self.spans[row][1] - self.spans[row][0])]
                self.rows += 1
                self.correct += RowResult(row, self.labels[row], values, []).prediction() == self.labels[row]
        if self.rows:
            self.live({"acc": self.correct / self.rows})


def evaluate_task(
    model: torch.nn.Module,
    tokenizer: TextTokenizer,
    task: Task,
    rows: list[dict],
    max_len: int,
    *,
    prompt_set: str = "smallbench",
    fewshot: int = 0,
    fewshot_pool: list[dict] | None = None,
    seed: int = 1234,
    max_samples: int | None = None,
    batch_tokens: int = 16384,
    progress: Progress | None = None,
    caches: EngineCaches | None = None,
    live: Callable[[dict[str, float]], None] | None = None,
) -> TaskResult:
    """Score every choice of every row (the first ``max_samples`` rows when given): the task's
    choices, or a row's own where it gives them (``Prompt.row_choices``). ``caches``: the scoring
    engine's (``projection.EngineCaches``), a run's; without, this call's own. ``live``: the
    running accuracy over the rows whose every choice is scored, after each batch."""
    prompt = task.prompts[prompt_set]
    if max_samples is not None:
        rows = rows[:max_samples]
    if fewshot and not fewshot_pool:
        raise DataError(f"{task.name}: --fewshot {fewshot} needs the {task.fewshot_split} split")
    continuations = prompt.continuations()
    requests = []
    own: list[tuple[tuple[str, ...], tuple[str, ...]] | None] = []  # per row: its own (choices, continuations)
    for row in rows:
        context = fewshot_prefix(prompt, fewshot_pool or [], fewshot, seed, task.name, row) + prompt.context(row)
        choices = prompt.row_choices(row)
        if choices == prompt.choices:  # the task's list: nothing per row is kept
            own.append(None)
            requests += [Request(context, c) for c in continuations]
        else:
            scored = tuple(prompt.delimiter + c for c in choices)
            own.append((tuple(choices), scored))
            requests += [Request(context, c) for c in scored]
    spans, first = [], 0
    for mine in own:
        spans.append((first, first + (len(continuations) if mine is None else len(mine[1]))))
        first = spans[-1][1]
    running = RunningAccuracy(spans, [row["label"] for row in rows], live) if live is not None else None
    start = time.perf_counter()
    scores, stats = score_requests(model, tokenizer, requests, max_len, batch_tokens=batch_tokens, progress=progress,
                                   caches=caches, scored=running.scored if running is not None else None)
    seconds = time.perf_counter() - start
    results, start = [], 0
    for i, (row, mine) in enumerate(zip(rows, own, strict=True)):
        end = start + (len(continuations) if mine is None else len(mine[1]))
        results.append(RowResult(int(row.get("idx", i)), row["label"], [s.logprob for s in scores[start:end]],
                                 [s.is_greedy for s in scores[start:end]], requests[start].context,
                                 *(mine or ())))
        start = end
    return TaskResult(task.name, prompt_set, fewshot, results, [len(c) for c in prompt.choices], stats, seconds,
                      max_samples, prompt.choices, tuple(continuations), seed)
