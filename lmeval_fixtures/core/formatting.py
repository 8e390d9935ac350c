"""How a number reads in a report, and how a Markdown table is written: once, for every report.

A figure that reads ``1.9000`` in summary.md must read ``1.9000`` in comparison.md and in the
results table too, or a reader comparing two reports sees a difference that is not there; so
every report formats through ``number`` (a figure with the digits its table of figures gives
it). A table cell may hold text a run did not choose (a skip reason, a gate's message, a
checkpoint's label): a ``|`` or a line break in it would end the cell or the row, so
``markdown_table`` escapes every cell rather than trusting each caller to.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from typing import Any

MISSING = "—"  # how a figure that was not measured reads
COMPACT_FROM = 1e6  # descriptive tables (summary.md's fields) show floats from here on in 4 significant digits


def number(value: Any, digits: int = 4, *, significant: int | None = None, signed: bool = False,
           compact_from: float | None = None) -> str:
    """``value`` as a report shows it.

    None reads ``—`` (not measured) and a bool ``yes``/``no``. A float has ``digits`` decimals and
    thousands separators (``1,234.5000``); an int has separators and no decimals (a count is
    whole). ``significant``: that many significant digits instead (``1.23457``), as a trend line
    shows a figure whatever its size. ``signed``: a leading ``+`` on a positive value (a
    difference). ``compact_from``: a float of at least this magnitude in 4 significant digits
    (``1.235e+06``), where a column of raw fields would otherwise grow wide. Anything else is
    ``str(value)``.
    """
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    sign = "+" if signed else ""
    if significant is not None:
        return f"{value:{sign}.{significant}g}"
    if isinstance(value, int):
        return f"{value:{sign},}"
    if compact_from is not None and math.isfinite(value) and abs(value) >= compact_from:
        return f"{value:{sign}.4g}"
    return f"{value:{sign},.{digits}f}"


_PIPE = re.compile(r"(\\*)\|")
_LINE_END = re.compile(r"\r\n|\r|\n")


def table_cell(text: Any) -> str:
    """One cell's text that cannot break its table: ``|`` escaped (a backslash already before it
    doubled, so it stays a backslash) and each line end written as ``<br>``."""
    text = _LINE_END.sub("<br>", str(text))
    return _PIPE.sub(lambda found: found.group(1) * 2 + "\\|", text)


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], *, right: Collection[int] = ()) -> str:
    """A GitHub Markdown table: the header, its rule (columns in ``right`` aligned right, ``--:``)
    and one line per row; every cell escaped (``table_cell``). Cells are text: format numbers
    with ``number`` first."""
    lines = ["| " + " | ".join(table_cell(c) for c in header) + " |",
             "|" + "|".join("--:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(table_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
