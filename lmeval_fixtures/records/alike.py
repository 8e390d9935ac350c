"""Measured alike: the one rule for whether two measurements may stand side by side.

A figure means something only against figures measured the same way: a perplexity
over the first 20,000 tokens is not the perplexity over all of them, an accuracy on
200 rows not the accuracy on every row, a bfloat16 timing not a float32 one. Five
places ask the question: merging a later invocation into a record
(``record.merge_records``), joining shards (``lmeval-fixtures merge``), trending a
figure over the history (``history.trend``), ranking checkpoints together
(``comparison.comparable_groups``) and gating against a baseline (``gates``). They
used to answer it four ways, and two records could merge into one that
comparison.md then refused to rank. ``differences`` is the answer for all of them;
what a caller can vary is only what it has to compare (a whole record, or one
figure of an item's fragment), never the rule.

The rule: two measurements are alike when nothing recorded about how they were made
differs, and **a thing recorded on one side only is a difference**. The side that
does not record it (an older version, a hand-made record) may have used any value,
so its figures cannot be shown to be measured the same way; counting only what both
record would let exactly those records through. In detail:

- Settings that change a figure (``FIGURE_SETTINGS``): one recorded on one side only
  reads ``max_samples 200 vs not recorded``; a side that records none of them reads
  once, ``settings not recorded``.
- For one figure (``figure=``, a gate), the fields its entry records beside it (the
  figure's ``same``: stride, context, token cap, prompts, shots, row cap), the same way.
- Data: a file both read, with other contents. Between whole records a file only one
  of them read is no reason: a record's files belong to different figures, and a run
  of fewer items reads less data, not other data. Where ``other`` is one item's
  fragment (``other_is_fragment``), every file it read is behind its figures, so one
  the reference did not read is a difference too. A side with no fingerprints at all
  reads ``data not recorded`` (when nothing else already tells them apart).
- Inputs (``inputs_sha256``, by item): the digest of the declaration and of the data an item
  read, by content, where both sides record the item and nothing above already tells them apart:
  a corpus or task file of the same name from elsewhere, or a renamed file of other text, shares
  no file name to compare, yet is other data. Compared only where both record it: records made
  before it was recorded would otherwise all be refused.
- The context a checkpoint's perplexity was scored in (``context`` in a history line),
  where both state it: it is the model's, not the run's choice, and a run that
  measured no perplexity has none to state.
- The machine fields named in ``environment`` (a gate: dtype, and device for timings),
  read from each side's ``environment``, for a figure that carries no settings of its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..suite.figures import Figure

# The version of the figures' definitions and computation: bumped when any figure would come out
# otherwise for the same inputs. Recorded with the settings, so records of other code never merge,
# trend or rank together, and a cache entry of other code is never a hit.
METRIC_VERSION = "2"
# Settings that change a figure: records made under different ones never merge, rank or trend together.
FIGURE_SETTINGS = ("seed", "max_eval_tokens", "ppl_stride", "detokenize", "prompts", "max_samples", "fewshot",
                   "device", "dtype", "metric_version")
# What a checkpoint's identity (``models.loading``) says about the bytes it was built from, each
# digest taken of the bytes actually loaded: weights, config.json, the tokenizer file(s), and how
# the tokenizer encodes (its canonical encoding digest and whether it adds special tokens).
CHECKPOINT_READ = ("sha256", "config_sha256", "tokenizer_file_sha256", "tokenizer_sha256",
                   "tokenizer_adds_special_tokens")
INPUTS = "inputs_sha256"  # a record's {item: digest of the declaration and the data its figures read}
CONTEXT = "context"  # the checkpoint's context length: a property of the model, recorded beside the settings
HISTORY_SETTINGS = (*FIGURE_SETTINGS, CONTEXT)
# how an unset (None) setting reads: no cap means every token or row; no stride means the context
UNSET = {"max_eval_tokens": "all", "max_samples": "all", "ppl_stride": "context"}
NOT_RECORDED = "not recorded"

# What a difference is about (``Difference.kind``)
SETTING = "settings"  # a figure-changing setting, or the context
FIELD = "figure"  # a field recorded beside one figure (its ``same``)
DATA = "data"  # a data file's fingerprint
ENVIRONMENT = "environment"  # a field of the machine the figure was measured on


class _Absent:
    """Not recorded on that side (unlike None, which is a value: ``max_samples`` None is every row)."""

    def __repr__(self) -> str:
        return NOT_RECORDED


ABSENT: Any = _Absent()


def value_sha256(value: Any) -> str:
    """sha256 of a JSON-able value, independent of dict order: how a measurement's identity is digested."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def checkpoint_read(identity: dict[str, Any]) -> dict[str, Any]:
    """The digests a checkpoint's identity records of the bytes it was built from (``CHECKPOINT_READ``)."""
    return {key: identity[key] for key in CHECKPOINT_READ if key in identity}


def measurement_identity(item: str, checkpoint: dict[str, Any], inputs: str, settings: dict[str, Any],
                         context: int) -> dict[str, Any]:
    """The one identity of a measurement: which item, the bytes of the checkpoint read
    (``checkpoint_read``), the inputs (``inputs``: the digest of the declaration and of the data
    read, by content, never by name; what a record keeps under ``inputs_sha256``), every
    figure-changing setting (``FIGURE_SETTINGS``, the metric version among them), and the context.
    The result cache keys on it, and a record holds each part, so a later run can recompute it."""
    return {"item": item, "checkpoint": checkpoint_read(checkpoint), "inputs": inputs,
            "settings": {key: settings.get(key) for key in FIGURE_SETTINGS}, "context": context,
            "metric_version": METRIC_VERSION}


def figure_settings(entry: dict[str, Any]) -> dict[str, Any]:
    """The figure-changing settings (and the context) a metrics record or a history line states.
    A setting it does not state is absent from the result."""
    settings = entry.get("settings")
    if not isinstance(settings, dict):
        return {}
    return {key: settings[key] for key in HISTORY_SETTINGS if key in settings}


def shown_value(key: str, value: Any) -> str:
    """A setting's value as a sentence names it: ``200``, ``all``, ``on``, ``not recorded``."""
    if value is ABSENT:
        return NOT_RECORDED
    if value is None:
        return UNSET.get(key, "none")
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def shown(key: str, settings: dict[str, Any]) -> str:
    """``shown_value`` of ``settings[key]`` (``not recorded`` when the key is absent)."""
    return shown_value(key, settings.get(key, ABSENT))


@dataclass(frozen=True)
class Difference:
    """One reason two measurements are not alike. ``name`` is the setting, field, file or
    environment key (None: that side records no settings, or no data, at all); ``reference``
    and ``other`` are each side's value (``ABSENT`` where not recorded). ``str`` reads
    ``max_samples 200 vs all`` (``other``'s value first), ``data <file> differs``,
    ``settings not recorded``."""

    kind: str
    name: str | None
    reference: Any = ABSENT
    other: Any = ABSENT

    def __str__(self) -> str:
        if self.name is None:
            return f"{self.kind} {NOT_RECORDED}"
        if self.kind == DATA:
            if self.reference is ABSENT or self.other is ABSENT:
                return f"data {self.name} read on one side only"
            return f"data {self.name} differs"
        return f"{self.name} {shown_value(self.name, self.other)} vs {shown_value(self.name, self.reference)}"


def _compare(kind: str, keys: tuple[str, ...], reference: dict[str, Any], other: dict[str, Any]) -> list[Difference]:
    found = []
    for key in keys:
        mine, theirs = reference.get(key, ABSENT), other.get(key, ABSENT)
        if (mine is ABSENT) != (theirs is ABSENT) or mine != theirs:
            found.append(Difference(kind, key, mine, theirs))
    return found


def differences(reference: dict[str, Any], other: dict[str, Any], *, settings: bool = True,
                figure: Figure | None = None, other_is_fragment: bool = False,
                environment: tuple[str, ...] = ()) -> list[Difference]:
    """Why the figures of ``other`` do not compare with those of ``reference`` (each a metrics
    record, a history line, or, with ``other_is_fragment``, an item's fragment); empty when they
    were measured alike. The rule is the module's; the parameters say only what to compare:

    ``settings``: the figure-changing settings and the context (False for a fragment, which
    carries none: its figure's own fields say how it was measured). ``figure``: that figure's
    ``same`` fields, read off each side's entry for it. ``other_is_fragment``: ``other``'s data
    fingerprints are exactly the files behind its figures. ``environment``: keys of each side's
    ``environment`` that must agree.

    Reasons come in a fixed order (settings, the figure's fields, data, machine), so the first
    is the clearest one."""
    found: list[Difference] = []
    if settings:
        mine, theirs = figure_settings(reference), figure_settings(other)
        if bool(set(mine) & set(FIGURE_SETTINGS)) != bool(set(theirs) & set(FIGURE_SETTINGS)):
            found.append(Difference(SETTING, None))
        else:
            found += _compare(SETTING, FIGURE_SETTINGS, mine, theirs)
        if CONTEXT in mine and CONTEXT in theirs:
            found += _compare(SETTING, (CONTEXT,), mine, theirs)
    if figure is not None:
        found += _compare(FIELD, figure.same, figure.entry(reference) or {}, figure.entry(other) or {})
    my_data, their_data = reference.get("data_fingerprints"), other.get("data_fingerprints")
    if other_is_fragment:
        mine_read = my_data if isinstance(my_data, dict) else {}
        found += [Difference(DATA, name, mine_read.get(name, ABSENT), sha)
                  for name, sha in sorted((their_data or {}).items()) if mine_read.get(name, ABSENT) != sha]
    elif isinstance(my_data, dict) and isinstance(their_data, dict):
        found += [Difference(DATA, name, my_data[name], their_data[name])
                  for name in sorted(my_data.keys() & their_data.keys()) if my_data[name] != their_data[name]]
    elif isinstance(my_data, dict) != isinstance(their_data, dict) and not found:
        found.append(Difference(DATA, None))
    my_inputs, their_inputs = reference.get(INPUTS), other.get(INPUTS)
    if not found and isinstance(my_inputs, dict) and isinstance(their_inputs, dict):
        # nothing else differs, yet the same item read another declaration or other data (a
        # corpus or task file of the same name from elsewhere, a renamed file of other text)
        found += [Difference(DATA, name, my_inputs[name], their_inputs[name])
                  for name in sorted(my_inputs.keys() & their_inputs.keys()) if my_inputs[name] != their_inputs[name]]
    if environment:
        mine_env, their_env = reference.get("environment"), other.get("environment")
        found += _compare(ENVIRONMENT, environment, mine_env if isinstance(mine_env, dict) else {},
                          their_env if isinstance(their_env, dict) else {})
    return found


def alike(reference: dict[str, Any], other: dict[str, Any], **what: Any) -> bool:
    """Whether ``differences`` finds none (same parameters)."""
    return not differences(reference, other, **what)


def _sha(value: Any) -> str:
    return value[:12] if isinstance(value, str) else repr(value)


def refusal(found: list[Difference], reference: str, *, reference_data: str | None = None,
            other: str = "this run") -> str:
    """One sentence saying why ``other`` was refused against ``reference`` (``the baseline``, ``the
    earlier record``), from ``differences``: ``measured with other settings than the earlier record
    (max_samples 2 vs 5)``, ``measured with other stride than the baseline (stride 32 vs 64)``,
    ``<file> differs from the baseline's data (<sha> vs <sha>)``, ``the baseline did not measure
    <file>``, ``measured with dtype 'float32', this run uses 'bfloat16'``. ``reference_data`` names
    the reference's data (default: ``<reference>'s data``)."""
    parts = []
    whose_data = reference_data or f"{reference}'s data"
    by_kind = {kind: [d for d in found if d.kind == kind] for kind in (SETTING, FIELD, DATA, ENVIRONMENT)}
    if by_kind[SETTING]:
        parts.append(f"measured with other settings than {reference} ({'; '.join(map(str, by_kind[SETTING]))})")
    if by_kind[FIELD]:
        names = ", ".join(d.name or "" for d in by_kind[FIELD])
        parts.append(f"measured with other {names} than {reference} ({'; '.join(map(str, by_kind[FIELD]))})")
    for d in by_kind[DATA]:
        if d.name is None:
            parts.append(f"data {NOT_RECORDED} on one side ({other} or {reference})")
        elif d.reference is ABSENT:
            parts.append(f"{reference} did not measure {d.name}")
        elif d.other is ABSENT:
            parts.append(f"{other} did not measure {d.name}")
        else:
            parts.append(f"{d.name} differs from {whose_data} ({_sha(d.other)} vs {_sha(d.reference)})")
    for d in by_kind[ENVIRONMENT]:
        if d.reference is ABSENT:
            parts.append(f"{reference} records no {d.name}, {other} uses {d.other!r}")
        else:
            parts.append(f"measured with {d.name} {d.reference!r}, {other} uses "
                         f"{NOT_RECORDED if d.other is ABSENT else repr(d.other)}")
    return "; ".join(parts)
