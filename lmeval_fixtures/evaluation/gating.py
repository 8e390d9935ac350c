"""Gate enforcement for one item, written once for pytest and ``evaluate()``.

An item's fragment is checked against the run's baseline and floors
(``records.gates.gates_for``); every verdict goes into the record, and any regression
fails the item with one line naming the checkpoint and the figures. How a failure is
shown is the runner's: the pytest plugin turns ``ItemFailed`` into ``pytest.fail``
(one line, no traceback), the library's item runner into a "failed" outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.errors import BaselineError
from ..records import fragments
from ..records.gates import Gate, gated_figures, gates_for
from ..suite.figures import Figure
from .inputs import Inputs
from .settings import Settings

# every family a baseline gates: one of their items that skips under --baseline measured nothing to gate
GATED_FAMILIES = ("perplexity", "smallbench", "latency", "throughput")


def skip_refusal(settings: Settings, families: set[str] | list[str] | tuple[str, ...]) -> str | None:
    """Why a skip of an item of ``families`` must fail instead (the same rule under pytest and
    ``evaluate()``), else None: under --strict-skips every skip; with --baseline, a gated item's
    (a CI gate that measured nothing must not pass)."""
    if settings.strict_skips:
        return "skipped under --strict-skips"
    if settings.baseline is not None and set(families) & set(GATED_FAMILIES):
        return "--baseline given, but this gated item skipped"
    return None


class ItemFailed(Exception):
    """An item whose figures are unsound or regressed (or that cannot be gated): recorded as
    failed with this one-line reason, its figures kept. Not an error of the suite's family: the
    run itself went as asked."""


class Gates:
    """The gates of one run: its baselines (through ``inputs``), figure table and gate settings."""

    def __init__(self, inputs: Inputs, figures: list[Figure], settings: Settings) -> None:
        self.inputs = inputs
        self.figures = figures
        self.settings = settings

    @property
    def environment(self) -> dict[str, Any]:
        """Device and dtype of this run, as a baseline's ``environment`` records them."""
        return {"device": self.settings.device, "dtype": self.settings.dtype}

    def enforce(self, checkpoint: str, fragment: fragments.Fragment,
                record: Callable[[fragments.Fragment], None]) -> None:
        """Gate ``fragment`` of ``checkpoint``: the verdicts, when there are any, go to ``record``
        (as one fragment); raises ``ItemFailed`` when a gate fails or the baseline cannot be used."""
        try:
            baseline = self.inputs.baseline(checkpoint)
        except BaselineError as exc:
            raise ItemFailed(str(exc)) from None
        found = gates_for(fragment, self.figures, baseline, self.settings.gate_policy, self.environment)
        if baseline is None and self.settings.baseline is not None and gated_figures(fragment, self.figures):
            found.append(self._missing_baseline(checkpoint, fragment))
        if not found:
            return
        record(fragments.gate_verdicts(found))
        failed = [gate.message for gate in found if not gate.ok]
        if failed:
            raise ItemFailed(f"{checkpoint}: " + "; ".join(failed))

    def _missing_baseline(self, checkpoint: str, fragment: fragments.Fragment) -> Gate:
        """A gate on nothing never passes in silence: under --baseline, the gated figures of a
        checkpoint the baseline has no record of fail, or, with --allow-missing-baseline, pass
        with a verdict that says they were not gated (the results table shows it)."""
        where = self.settings.baseline
        names = ", ".join(f.key for f in gated_figures(fragment, self.figures)[:3])
        if self.settings.allow_missing_baseline:
            return Gate("baseline", True, f"no baseline record of {checkpoint} in {where}: {names} not gated "
                                          "(--allow-missing-baseline)")
        return Gate("baseline", False, f"no baseline record of {checkpoint} in {where} to gate {names} against "
                                       f"(expected {where}/{checkpoint}/metrics.json); pass --allow-missing-baseline "
                                       "for a checkpoint with no baseline yet")
