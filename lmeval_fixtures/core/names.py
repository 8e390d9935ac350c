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


def shape_name(batch: int, seq: int) -> str:
    return f"{batch}x{seq}"
