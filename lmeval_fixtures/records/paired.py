"""Paired comparison of two checkpoints on the same rows or documents.

A point of accuracy between two checkpoints is often noise; because both were
scored on the same rows, paired tests see much more than two independent
standard errors. McNemar's exact test uses only the rows where they disagree;
the paired bootstrap resamples rows (or documents, for bits per byte) with a
fixed seed and a stated number of resamples. comparison.md bolds a SmallBench
figure's best value only where one of these finds it apart from the runner-up's:
McNemar for accuracy, the bootstrap interval (excluding 0) for the mean margin,
the gold continuations' bits per byte and the average accuracy over tasks.

``paired_test`` is the paired test *of a figure*: which test, on which per-row or
per-document values, and per byte or per token, as the table of figures declares
(``Figure.paired``). comparison.md's bold and ``--gate paired`` both call it, so the
two can never test the same figure of the same pair differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from ..core.numerics import quantile
from ..suite.figures import ACC, AVG_ACC, DOC_BPB, DOC_PPL, GOLD_BPB, MARGIN, PER_DOCUMENT
from .codecs import PerRow, decode_per_document, decode_per_row

if TYPE_CHECKING:
    from ..suite.figures import Figure

RESAMPLES = 1000  # of every paired bootstrap, unless a caller says otherwise
SEED = 1234
# What a figure's paired test measures the difference in, by ``Figure.paired``
QUANTITY = {ACC: "accuracy", AVG_ACC: "average accuracy", MARGIN: "margin", GOLD_BPB: "gold bits/byte",
            DOC_BPB: "bits/byte", DOC_PPL: "log perplexity"}
# A split's documents are (NLL, tokens, bytes): bits per byte divides by bytes, log perplexity by tokens
PER_DOCUMENT_UNIT = {DOC_BPB: (2, "bytes"), DOC_PPL: (1, "tokens")}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b rows only A got right, c rows only B got right."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def _resample_indices(n: int, resamples: int, seed: int) -> torch.Tensor:
    """(resamples, n) row indices drawn with replacement from a seeded generator: the same for any run."""
    return torch.randint(0, n, (resamples, n), generator=torch.Generator().manual_seed(seed))


@dataclass(frozen=True)
class PairedResult:
    difference: float  # A minus B
    low: float  # confidence interval of the difference
    high: float
    p_value: float | None  # McNemar (accuracy only)
    n: int
    resamples: int
    seed: int
    confidence: float

    @property
    def significant(self) -> bool:
        if self.p_value is not None:
            return self.p_value < 1 - self.confidence
        if not (math.isfinite(self.low) and math.isfinite(self.high)):  # a non-finite value: nothing to say
            return False
        return not self.low <= 0 <= self.high


def paired_accuracy(a_correct: list[bool], b_correct: list[bool], *, resamples: int = RESAMPLES, seed: int = SEED,
                    confidence: float = 0.95) -> PairedResult:
    if len(a_correct) != len(b_correct) or not a_correct:
        raise ValueError("paired accuracy needs the same, non-empty rows for both checkpoints")
    n = len(a_correct)
    diffs = torch.tensor([int(a) - int(b) for a, b in zip(a_correct, b_correct, strict=True)], dtype=torch.float64)
    boot = diffs[_resample_indices(n, resamples, seed)].mean(dim=1).tolist()
    alpha = (1 - confidence) / 2
    b = sum(1 for a, c in zip(a_correct, b_correct, strict=True) if a and not c)
    c = sum(1 for a, cc in zip(a_correct, b_correct, strict=True) if cc and not a)
    return PairedResult(float(diffs.mean()), quantile(boot, alpha), quantile(boot, 1 - alpha),
                        mcnemar_exact(b, c), n, resamples, seed, confidence)


def paired_bits_per_byte(a_docs: list[tuple[float, int]], b_docs: list[tuple[float, int]], *,
                         resamples: int = RESAMPLES, seed: int = SEED, confidence: float = 0.95) -> PairedResult:
    """Documents as (summed NLL in nats, UTF-8 bytes); the difference is A's bits per byte minus B's."""
    if len(a_docs) != len(b_docs) or not a_docs:
        raise ValueError("paired bits per byte needs the same, non-empty documents for both checkpoints")
    if any(x[1] != y[1] for x, y in zip(a_docs, b_docs, strict=True)):
        raise ValueError("documents differ in bytes: not the same documents")
    n = len(a_docs)
    nll_diff = torch.tensor([x[0] - y[0] for x, y in zip(a_docs, b_docs, strict=True)], dtype=torch.float64)
    n_bytes = torch.tensor([x[1] for x in a_docs], dtype=torch.float64)
    index = _resample_indices(n, resamples, seed)
    boot = (nll_diff[index].sum(dim=1) / (math.log(2) * n_bytes[index].sum(dim=1))).tolist()
    alpha = (1 - confidence) / 2
    observed = float(nll_diff.sum() / (math.log(2) * n_bytes.sum()))
    return PairedResult(observed, quantile(boot, alpha), quantile(boot, 1 - alpha), None,
                        n, resamples, seed, confidence)


def paired_mean(a_values: list[float], b_values: list[float], *, resamples: int = RESAMPLES, seed: int = SEED,
                confidence: float = 0.95) -> PairedResult:
    """Per-row values of two checkpoints on the same rows (a log-likelihood margin): the difference is
    A's mean minus B's, its interval from the paired bootstrap (rows resampled, both sides together)."""
    if len(a_values) != len(b_values) or not a_values:
        raise ValueError("a paired mean needs the same, non-empty rows for both checkpoints")
    n = len(a_values)
    diffs = torch.tensor(a_values, dtype=torch.float64) - torch.tensor(b_values, dtype=torch.float64)
    boot = diffs[_resample_indices(n, resamples, seed)].mean(dim=1).tolist()
    alpha = (1 - confidence) / 2
    return PairedResult(float(diffs.mean()), quantile(boot, alpha), quantile(boot, 1 - alpha), None,
                        n, resamples, seed, confidence)


def paired_average_accuracy(tasks: list[tuple[list[bool], list[bool]]], *, resamples: int = RESAMPLES,
                            seed: int = SEED, confidence: float = 0.95) -> PairedResult:
    """Per task, the rows each checkpoint got right: the difference is A's average accuracy minus B's,
    the unweighted mean over tasks as ``smallbench_avg_acc`` averages (pooling the rows instead would
    let BoolQ's 3,270 rows outvote the rest). Its interval comes from a stratified paired bootstrap:
    rows resampled within each task (task ``i`` with seed ``seed + i``), the task means averaged."""
    if not tasks or any(len(a) != len(b) or not a for a, b in tasks):
        raise ValueError("a paired average accuracy needs the same, non-empty rows per task for both checkpoints")
    observed = 0.0
    boot = torch.zeros(resamples, dtype=torch.float64)
    for i, (a, b) in enumerate(tasks):
        diffs = torch.tensor([int(x) - int(y) for x, y in zip(a, b, strict=True)], dtype=torch.float64)
        observed += float(diffs.mean()) / len(tasks)
        boot += diffs[_resample_indices(len(a), resamples, seed + i)].mean(dim=1) / len(tasks)
    alpha = (1 - confidence) / 2
    values = boot.tolist()
    return PairedResult(observed, quantile(values, alpha), quantile(values, 1 - alpha), None,
                        sum(len(a) for a, _ in tasks), resamples, seed, confidence)


class Unpaired(ValueError):
    """A figure's paired test cannot run. ``missing``: the sides (0 for ``a``, 1 for ``b``) whose
    record holds no per-row (per-document) values, as one written before they were kept; empty
    when both hold values that do not pair (other rows, other documents)."""

    def __init__(self, reason: str, missing: tuple[int, ...] = (), values: str = "", note: str = "") -> None:
        super().__init__(reason)
        self.missing, self.values, self.note = missing, values, note

    def said(self, names: tuple[str, str]) -> str:
        """The reason, naming the sides that lack values by ``names`` (``a``'s, ``b``'s)."""
        if not self.missing:
            return str(self)
        return f"no {self.values} in the record of {' and '.join(names[i] for i in self.missing)}{self.note}"


def _missing(values: str, found: tuple[Any, Any], note: str = "") -> Unpaired | None:
    missing = tuple(i for i, value in enumerate(found) if value is None)
    if not missing:
        return None
    sides = " and ".join("ab"[i] for i in missing)
    return Unpaired(f"no {values} in the record of {sides}{note}", missing, values, note)


def _per_row(record: dict[str, Any], task: str | None) -> PerRow | None:
    return decode_per_row((record.get("smallbench") or {}).get(task)) if task else None


def paired_test(figure: Figure, a: dict[str, Any], b: dict[str, Any], *, resamples: int = RESAMPLES,
                seed: int = SEED, confidence: float = 0.95) -> PairedResult:
    """The paired test ``figure`` declares (``Figure.paired``), of ``a`` minus ``b``: each a metrics
    record or an item's fragment holding the figure. A corpus split is tested over documents, per
    byte for bits per byte and per token for perplexity (as log perplexity, nats per token, since
    perplexity's log is what a token's NLL averages to); a SmallBench figure over the rows of its
    task (of every task both hold, for the average). ``Unpaired`` when it cannot run."""
    if figure.paired in PER_DOCUMENT:
        docs = (decode_per_document(figure.entry(a)), decode_per_document(figure.entry(b)))
        missing = _missing("per-document values", docs)
        if missing:
            raise missing
        unit, unit_name = PER_DOCUMENT_UNIT[figure.paired]
        if [d[unit] for d in docs[0]] != [d[unit] for d in docs[1]]:
            raise Unpaired(f"not the same documents (their {unit_name} differ)")
        try:
            result = paired_bits_per_byte([(d[0], d[unit]) for d in docs[0]], [(d[0], d[unit]) for d in docs[1]],
                                          resamples=resamples, seed=seed, confidence=confidence)
        except ValueError as exc:
            raise Unpaired(str(exc)) from None
        if figure.paired == DOC_PPL:  # bits per token -> nats per token: the difference of log perplexities
            result = replace(result, difference=result.difference * math.log(2), low=result.low * math.log(2),
                             high=result.high * math.log(2))
        return result
    if figure.paired == AVG_ACC:
        tasks = sorted(set(a.get("smallbench") or {}) & set(b.get("smallbench") or {}))
    elif figure.paired in (ACC, MARGIN, GOLD_BPB):
        tasks = [figure.task]
    else:
        raise ValueError(f"{figure.key}: unknown paired test {figure.paired!r}")
    pairs = []
    for task in tasks:
        rows = (_per_row(a, task), _per_row(b, task))
        missing = _missing(f"per-row values for {task}", rows, " (written by a version that did not record them)")
        if missing:
            raise missing
        if rows[0].rows_sha256 != rows[1].rows_sha256:
            raise Unpaired(f"{task}: not the same rows")
        pairs.append(rows)
    if not pairs:
        raise Unpaired("no task both records hold")
    mine, theirs = pairs[0]
    try:
        if figure.paired == ACC:
            return paired_accuracy(mine.correct, theirs.correct, resamples=resamples, seed=seed,
                                   confidence=confidence)
        if figure.paired == AVG_ACC:
            return paired_average_accuracy([(x.correct, y.correct) for x, y in pairs], resamples=resamples,
                                           seed=seed, confidence=confidence)
        if figure.paired == MARGIN:
            if mine.margin is None or theirs.margin is None:
                raise Unpaired("no margins (a task of one choice)")
            return paired_mean(mine.margin, theirs.margin, resamples=resamples, seed=seed, confidence=confidence)
        return paired_bits_per_byte(
            [(-ll, n) for ll, n in zip(mine.gold_loglikelihood, mine.gold_bytes, strict=True)],
            [(-ll, n) for ll, n in zip(theirs.gold_loglikelihood, theirs.gold_bytes, strict=True)],
            resamples=resamples, seed=seed, confidence=confidence)
    except Unpaired:
        raise
    except ValueError as exc:
        raise Unpaired(str(exc)) from None
