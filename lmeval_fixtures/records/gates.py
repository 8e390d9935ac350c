"""Regression gates: a figure against a floor or against a baseline record.

Which figures are gated, and how, is the table of figures' business (``figures.py``).
Accuracy on a few hundred rows moves by a standard error or two between equally
good models, so accuracy tolerances are counted in standard errors; perplexity
and bits per byte are tight figures, so their tolerance is relative. A baseline
not measured as this run's figure was (``alike.differences``: the figure's own
settings, the data behind it, the dtype, and for a timing the device) is refused,
never compared. ``--gate paired`` runs the figure's paired test (``paired.paired_test``,
the one comparison.md's bold runs).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import BaselineError, RecordInvalid
from ..core.files import read_json_object
from ..core.formatting import number
from ..core.schema import SCHEMA_VERSION, validate_record
from ..suite.figures import ACC, RELATIVE, STDERR, TIMING, Figure
from .alike import Difference, differences, refusal
from .paired import QUANTITY, Unpaired, paired_test
from .timing_noise import noisy_timings


@dataclass(frozen=True)
class Gate:
    name: str
    ok: bool
    message: str


def load_baseline(path: Path, checkpoint: str) -> dict[str, Any] | None:
    """The baseline record for ``checkpoint``: a metrics.json, or a folder of ``<checkpoint>/metrics.json``.

    Returns None when a folder has no record for this checkpoint.
    """
    file = path / checkpoint / "metrics.json" if path.is_dir() else path
    if path.is_dir() and not os.path.lexists(file):  # anything else there (a FIFO, a folder) is refused by name
        return None
    record = read_json_object(file, BaselineError, "baseline")
    if record.get("schema_version") != SCHEMA_VERSION:
        version = record.get("schema_version")
        raise BaselineError(f"{file}: baseline schema_version {version!r} is not {SCHEMA_VERSION}; "
                            "regenerate the baseline with this version")
    try:
        validate_record(record)
    except RecordInvalid as exc:
        raise BaselineError(f"{file}: baseline {str(exc).removeprefix('metrics record ')}") from None
    name = record["checkpoint"]["name"]
    if path.is_dir() and name != checkpoint:  # the record's own identity, not the folder it sits in, says whose
        raise BaselineError(f"{file}: holds the baseline of checkpoint {name!r}, not {checkpoint!r}; refresh the "
                            "folder with --update-baseline (it writes each record under its own name)")
    if not path.is_dir() and name != checkpoint:
        raise BaselineError(f"{file}: baseline of checkpoint {name!r}, not {checkpoint!r}; to gate several "
                            "checkpoints pass a folder of <checkpoint>/metrics.json (--update-baseline writes one)")
    record["_source"] = str(file)
    return record


def lower_is_better(name: str, value: float, baseline: float, relative_tolerance: float, source: str) -> Gate:
    limit = baseline * (1 + relative_tolerance)
    ok = math.isfinite(value) and value <= limit
    verdict = "within" if ok else "REGRESSED beyond"
    return Gate(name, ok, f"{name} {value:.6g} {verdict} baseline {baseline:.6g} + {relative_tolerance:.2%} "
                          f"(limit {limit:.6g}; baseline {source})")


def accuracy_vs_baseline(name: str, acc: float, stderr: float | None, baseline: float, tolerance_se: float,
                         source: str) -> Gate:
    se = stderr or 0.0
    limit = baseline - tolerance_se * se
    ok = acc >= limit
    verdict = "within" if ok else "REGRESSED beyond"
    return Gate(name, ok, f"{name} {acc:.4f} {verdict} baseline {baseline:.4f} - {tolerance_se:g} SE "
                          f"({se:.4f}) (limit {limit:.4f}; baseline {source})")


def accuracy_floor(name: str, acc: float, floor: float) -> Gate:
    ok = acc >= floor
    return Gate(name, ok, f"{name} {acc:.4f} {'meets' if ok else 'is BELOW'} the floor {floor:.4f}")


def higher_is_better(name: str, value: float, baseline: float, relative_tolerance: float, source: str) -> Gate:
    floor = baseline * (1 - relative_tolerance)
    ok = math.isfinite(value) and value >= floor
    verdict = "within" if ok else "REGRESSED beyond"
    return Gate(name, ok, f"{name} {value:,.6g} {verdict} baseline {baseline:,.6g} - {relative_tolerance:.2%} "
                          f"(limit {floor:,.6g}; baseline {source})")


@dataclass(frozen=True)
class GatePolicy:
    """The tolerances of a run (--ppl-tolerance, --acc-tolerance-se, --min-acc, --latency-tolerance)."""

    ppl_tolerance: float
    acc_tolerance_se: float
    min_acc: float | None
    latency_tolerance: float
    mode: str = "threshold"  # or "paired": --gate
    alpha: float = 0.05  # --gate-alpha


def _refused(figure: Figure, baseline: dict[str, Any], found: list[Difference] | str) -> Gate:
    why = found if isinstance(found, str) else refusal(found, "the baseline")
    return Gate(figure.key, False, f"{figure.key}: baseline {baseline['_source']} refused: {why}")


def _against_baseline(figure: Figure, value: float, fragment: dict[str, Any], baseline: dict[str, Any],
                      policy: GatePolicy, environment: dict[str, Any]) -> Gate | None:
    """The baseline must have measured the figure as this run did (``alike.differences``: the
    figure's own settings, then the data behind it, then the machine: dtype, and device for a
    timing); a baseline that never measured the figure (a timing it did not take, a task or
    shape it did not run) is refused like one measured otherwise: a gated figure is never
    passed on nothing."""
    source = baseline["_source"]
    this_run = fragment | {"data_fingerprints": fragment.get("data_fingerprints") or {}, "environment": environment}
    their_entry = figure.entry(baseline)
    if their_entry is None or their_entry.get("timing", "taken") != "taken":
        why = "not taken there" if their_entry is not None else "not in it"
        return _refused(figure, baseline, f"{figure.key} is {why}; refresh the baseline with --update-baseline "
                                          "from a run that measures it")
    found = differences(baseline, this_run, settings=False, figure=figure, other_is_fragment=True,
                        environment=("device", "dtype") if figure.gate == TIMING else ("dtype",))
    if found:
        return _refused(figure, baseline, found)
    theirs = figure.value(baseline)
    if isinstance(theirs, bool) or not isinstance(theirs, (int, float)) or not math.isfinite(theirs):
        return _refused(figure, baseline, f"{'.'.join(figure.path)} is {theirs!r} there, not a number")
    if policy.mode == "paired" and figure.gate in (RELATIVE, STDERR):
        return paired_gate(figure, value, theirs, fragment, baseline, policy.alpha, source) \
            or _refused(figure, baseline, "it holds no per-row (per-document) values to pair with; refresh it with "
                                          "--update-baseline, or gate with --gate threshold")
    if figure.gate == RELATIVE:
        return lower_is_better(figure.key, value, theirs, policy.ppl_tolerance, source)
    if figure.gate == STDERR:
        return accuracy_vs_baseline(figure.key, value, figure.stderr(fragment), theirs, policy.acc_tolerance_se,
                                    source)
    noisy = noisy_timings(fragment).get(figure.key) or noisy_timings(baseline).get(figure.key)
    if noisy:  # a timing taken on a busy machine says nothing either way: said, not judged
        which = "this run's" if figure.key in noisy_timings(fragment) else f"the baseline's ({source})"
        return Gate(figure.key, True, f"{figure.key}: not judged: {which} timing is {noisy}")
    compare = lower_is_better if figure.lower_is_better else higher_is_better
    return compare(figure.key, value, theirs, policy.latency_tolerance, source)


def gated_figures(fragment: dict[str, Any], figures: list[Figure]) -> list[Figure]:
    """The figures of the table an item measured (in its fragment) that a baseline gates."""
    return [f for f in figures if f.gate and f.compute is None and f.value(fragment) is not None]


def gates_for(fragment: dict[str, Any], figures: list[Figure], baseline: dict[str, Any] | None,
              policy: GatePolicy, environment: dict[str, Any]) -> list[Gate]:
    """Every gate on the figures an item measured (its fragment), as the table of figures says:
    perplexity and bits per byte within a relative tolerance, accuracy within standard errors
    and above the floor, timings within a tolerance on the same device and dtype. A baseline
    measured on other data or with other settings is refused (a failing gate), never compared."""
    gates = []
    for figure in gated_figures(fragment, figures):
        value = figure.value(fragment)
        if figure.gate == STDERR and policy.min_acc is not None:
            gates.append(accuracy_floor(f"{figure.key}_floor", value, policy.min_acc))
        if baseline is not None:
            gate = _against_baseline(figure, value, fragment, baseline, policy, environment)
            if gate is not None:
                gates.append(gate)
    return gates


def paired_gate(figure: Figure, value: float, theirs: float, fragment: dict[str, Any], baseline: dict[str, Any],
                alpha: float, source: str) -> Gate | None:
    """Fails only when this run is significantly worse than the baseline on the same rows
    (documents): the figure's paired test (``paired.paired_test``, as comparison.md runs it),
    this run minus the baseline: exact McNemar for accuracy, a paired bootstrap over documents
    for bits per byte and (per token) perplexity. A threshold gate flaps on RTE's 277 rows (one
    standard error is about 3 points) or misses a real change on BoolQ's 3,270; the paired test
    asks whether the rows this run got wrong are more than chance. None: no per-row values."""
    confidence = 1 - alpha
    if figure.paired is None:
        return None
    try:
        result = paired_test(figure, fragment, baseline, confidence=confidence)
    except Unpaired as exc:
        if exc.missing:
            return None
        return Gate(figure.key, False, f"{figure.key}: baseline {source} refused: {exc}")
    if figure.paired == ACC:
        test = f"McNemar p = {number(result.p_value, significant=3)}"
        worse = result.difference < 0 and result.p_value < alpha
        shown = f"{number(value)} vs baseline {number(theirs)}"
    else:
        test = "paired bootstrap over documents"
        worse = result.low > 0  # higher bits per byte (log perplexity) is worse
        shown = f"{number(value, significant=6)} vs baseline {number(theirs, significant=6)}"
    verdict = f"REGRESSED (significantly worse at alpha {alpha:g})" if worse else \
        f"no significant regression at alpha {alpha:g}"
    return Gate(figure.key, not worse,
                f"{figure.key} {shown}: {QUANTITY[figure.paired]} difference {number(result.difference, signed=True)}, "
                f"{confidence:.0%} interval [{number(result.low, signed=True)}, {number(result.high, signed=True)}], "
                f"{test}, n = {result.n}: {verdict} (baseline {source})")


class Baselines:
    """The baseline records of one run, each read once; a bad file is remembered and
    raised again for every item that asks (each fails with the same line)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._found: dict[str, dict[str, Any] | BaselineError | None] = {}

    def get(self, checkpoint: str) -> dict[str, Any] | None:
        if self.path is None:
            return None
        if checkpoint not in self._found:
            try:
                self._found[checkpoint] = load_baseline(self.path, checkpoint)
            except BaselineError as exc:
                self._found[checkpoint] = exc
        found = self._found[checkpoint]
        if isinstance(found, BaselineError):
            raise found
        return found
