"""Plain names: a run id, a checkpoint, task or corpus name becomes a folder or file name, so it
must be one path component that stays inside the report (and data) folder."""

from __future__ import annotations

import re

PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
# Names the report folder already uses for itself: a run or baseline of that name would replace them.
RESERVED = frozenset({"baselines", "history.jsonl"})


def plain_name_problem(value: object, reserved: bool = False) -> str | None:
    """Why ``value`` is not a plain name (one line), or None."""
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value):
        return (f"{value!r}: use one plain name of letters, digits, '.', '_' and '-' (no '/', no leading '.' or "
                "'-', at most 128 characters)")
    if reserved and value in RESERVED:
        return f"{value!r}: reserved for the report folder's own {value}; choose another name"
    return None


_SHAPE = re.compile(r"([0-9]+)x([0-9]+)")


def shape_name(batch: int, seq: int) -> str:
    """A timing shape as the record keys it and a person writes it: ``1x128`` (batch x sequence)."""
    return f"{batch}x{seq}"


def parse_shape_name(text: str) -> tuple[int, int] | None:
    """(batch, sequence) of a name ``shape_name`` writes, or None for any other text (``1x128``
    reads (1, 128); ``01x128``, ``1X128`` and `` 1x128`` do not, since no record keys a shape so)."""
    found = _SHAPE.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        return None
    shape = int(found.group(1)), int(found.group(2))
    return shape if shape_name(*shape) == text else None
