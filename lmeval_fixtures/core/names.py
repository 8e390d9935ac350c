"""Plain names: a run id, a checkpoint, task or corpus name becomes a folder or file name, so it
must be one path component that stays inside the report (and data) folder."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
# Names the report folder already uses for itself: a run or baseline of that name would replace them.
RESERVED = frozenset({"baselines", "history.jsonl"})
# Characters that act on a terminal or a reader instead of showing: C0 and C1 controls (ESC starts an ANSI
# sequence, CR rewrites a line, LF starts one), DEL, line and paragraph separators, bidirectional overrides
# and marks (text that reads in another order than it is stored), and a zero-width no-break space.
ACTING_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def name_from_file(text: str) -> str:
    """A checkpoint's name taken from a file or folder name, each ``ACTING_CHARACTERS`` replaced by
    ``_``: the name becomes a report folder, a test id and a line on the terminal, where a newline
    or an escape sequence in it would split or rewrite what a reader sees."""
    return ACTING_CHARACTERS.sub("_", text)


def component_name_problem(value: object) -> str | None:
    """Why ``value`` cannot be a checkpoint's name (one line), or None. A checkpoint's name is
    shown as written (``a|b``, ``my model (v2)``) but becomes a report folder: it must be one path
    component (not empty, ``.`` or ``..``; no ``/`` or ``\\``; at most 255 characters) holding no
    ``ACTING_CHARACTERS``. What ``models.discovery`` names satisfies it; a record read back is held to it."""
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value \
            or len(value) > 255 or ACTING_CHARACTERS.search(value):
        return (f"{ascii(value)[:80]}: a checkpoint's name must be one path component (not '.', '..' or empty; no "
                "'/', '\\' or control characters; at most 255 characters)")
    return None


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


SHARDS_MOST = 10_000  # --shard I/N: at most this many parts
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


def whole_number(text: object) -> int | None:
    """``text`` as a whole number when it is ASCII digits (at most 18), else None. ``str.isdigit``
    also holds for ``²`` (which ``int`` then refuses) and ``١`` (which it reads): a number typed in
    an option or written in a record is ASCII digits, and one rule reads it everywhere."""
    return int(text) if isinstance(text, str) and _WHOLE_NUMBER.fullmatch(text) else None


def parse_shard(text: object) -> tuple[int, int] | None:
    """(I, N) of a shard ``I/N`` with 1 <= I <= N <= ``SHARDS_MOST``, or None for any other text:
    what ``--shard`` accepts and what a record's invocation may name."""
    index, sep, count = text.partition("/") if isinstance(text, str) else ("", "", "")
    i, n = whole_number(index), whole_number(count)
    return (i, n) if sep and i is not None and n is not None and 1 <= i <= n <= SHARDS_MOST else None


def parse_shape_name(text: str) -> tuple[int, int] | None:
    """(batch, sequence) of a name ``shape_name`` writes, or None for any other text (``1x128``
    reads (1, 128); ``01x128``, ``1X128`` and `` 1x128`` do not, since no record keys a shape so)."""
    found = _SHAPE.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        return None
    shape = int(found.group(1)), int(found.group(2))
    return shape if shape_name(*shape) == text else None


def closest_name(name: str, known: Iterable[str], cutoff: float = 0.75) -> str | None:
    """The known name ``name`` most likely misspells (``--chekpoint``, ``max_eval_token=``), or None when none
    is close: the one "did you mean" rule of the command line and ``evaluate()``'s keywords. ``-`` and ``_``
    count as the same character (a flag's spelling given as a keyword finds the keyword)."""
    spelt = {candidate.replace("-", "_"): candidate for candidate in known}
    close = difflib.get_close_matches(name.replace("-", "_"), sorted(spelt), n=1, cutoff=cutoff)
    return spelt[close[0]] if close else None
