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

from .names import ACTING_CHARACTERS

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
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Markdown's punctuation that formats or links, as entities: they hold no "|" or "\\" that a table could
# split at or double, and render as the character. "_" only where it can begin or end emphasis.
_MARKDOWN_SPECIAL = re.compile(r"[&<>\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def visible(text: Any) -> str:
    """``text`` with every character that would act rather than show (``names.ACTING_CHARACTERS``) written as its
    escape (``\\x1b``, ``\\n``, ``\\u202e``): a name printed to a terminal cannot move the cursor,
    colour the screen, start a new line or reverse what follows it."""
    def escape(found: re.Match[str]) -> str:
        char = found.group()
        return _NAMED_ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
    return ACTING_CHARACTERS.sub(escape, str(text))


def markdown_text(text: Any) -> str:
    """A name (checkpoint, task, corpus, run) as literal Markdown text: ``visible``, then every
    character Markdown would read as formatting, a link, HTML or a table's edge written as its
    entity, so ``a|b``, ``*x*`` or ``<b>`` read as written, in a table cell or a sentence."""
    return _MARKDOWN_SPECIAL.sub(lambda found: f"&#{ord(found.group())};", visible(text))


def code_span(text: Any) -> str:
    """``text`` (``visible``) as a Markdown code span: fenced by one more backtick than its longest
    run, so a backtick in a path cannot end the span early."""
    shown = visible(text)
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def table_cell(text: Any) -> str:
    """One cell's text that cannot break its table: ``|`` escaped (a backslash already before it
    doubled, so it stays a backslash), each line end written as ``<br>`` and every other character
    that would act rather than show made ``visible``."""
    text = visible(_LINE_END.sub("<br>", str(text)))
    return _PIPE.sub(lambda found: found.group(1) * 2 + "\\|", text)


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], *, right: Collection[int] = ()) -> str:
    """A GitHub Markdown table: the header, its rule (columns in ``right`` aligned right, ``--:``)
    and one line per row; every cell escaped (``table_cell``). Cells are text: format numbers
    with ``number`` first."""
    lines = ["| " + " | ".join(table_cell(c) for c in header) + " |",
             "|" + "|".join("--:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(table_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


REASON_CHARS = 300  # an item's recorded reason: its first line, at most this long


def outcome_reason(text: str) -> str | None:
    """Why an item failed, as its record holds it whichever door ran it (pytest or ``evaluate()``): the
    first line of ``text``, at most ``REASON_CHARS`` characters (the whole story is in the door's own
    report: pytest's failure section, the exception ``evaluate()`` raises again); None for no text."""
    text = text.strip()
    return text.splitlines()[0][:REASON_CHARS] if text else None
