"""The results table: one row per checkpoint and scored figure, as lm-evaluation-harness prints its own.

Shown at the end of a pytest run and appended to a GitHub Actions step summary
(``$GITHUB_STEP_SUMMARY``). Rows are read off the figure table, so a run of only
some families (one task, one corpus) lists exactly the figures it measured, and a
declared task or corpus needs no edit here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.formatting import code_span, markdown_table, markdown_text, number, visible
from ..suite.figures import Figure

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
# derived or descriptive figures that are not results of the evaluation
LEFT_OUT = frozenset({"train_perplexity", "memory_allocated_mb", "memory_reserved_mb"})
HEADER = ("checkpoint", "figure", "value", "± stderr", "gate")


def result_rows(records: list[dict[str, Any]], figures: list[Figure]) -> list[tuple[str, ...]]:
    """(checkpoint, figure, value, stderr, gate) for every scored figure each record holds."""
    rows = []
    for record in records:
        name = record["checkpoint"]["name"]
        gates = record.get("gates") or {}
        for figure in figures:
            value = figure.value(record)
            if figure.better is None or figure.key in LEFT_OUT or value is None:
                continue
            stderr = figure.stderr(record)
            gate = gates.get(figure.key)
            rows.append((name, figure.label, number(value, figure.digits),
                         "" if stderr is None else number(stderr, figure.digits),
                         "" if gate is None else ("ok" if gate["ok"] else "FAILED")))
        if record.get("errors"):
            rows.append((name, "errors", str(len(record["errors"])), "", "see summary.md"))
    return rows


def render_text(records: list[dict[str, Any]], figures: list[Figure]) -> list[str]:
    """Aligned lines for the terminal; the checkpoint name only on its first row."""
    rows = result_rows(records, figures)
    if not rows:
        return []
    gated = any(row[4] for row in rows)
    header = HEADER if gated else HEADER[:4]
    shown = [tuple(visible(c) for c in row[:len(header)]) for row in rows]  # a name cannot act on the terminal
    previous = None
    for i, row in enumerate(shown):
        if row[0] == previous:
            shown[i] = ("", *row[1:])
        previous = row[0]
    widths = [max(len(str(r[c])) for r in [header, *shown]) for c in range(len(header))]
    right = {2, 3}

    def line(cells: tuple[str, ...]) -> str:
        cells_and_widths = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in cells_and_widths)

    return [line(header), "  ".join("-" * w for w in widths), *(line(r).rstrip() for r in shown)]


def render_markdown(records: list[dict[str, Any]], figures: list[Figure]) -> str:
    rows = [(markdown_text(name), markdown_text(label), *rest) for name, label, *rest in result_rows(records, figures)]
    return markdown_table(HEADER, rows, right=(2, 3))


def append_step_summary(records: list[dict[str, Any]], figures: list[Figure], run_id: str,
                        paths: list[Path], errors: list[str]) -> Path | None:
    """Appends the run's results to ``$GITHUB_STEP_SUMMARY`` when GitHub Actions set it (the file
    is shared by every step of the job, so it is appended to, never replaced)."""
    target = os.environ.get(STEP_SUMMARY_ENV)
    if not target or not records:
        return None
    failed = [(r["checkpoint"]["name"], g["message"]) for r in records
              for g in (r.get("gates") or {}).values() if not g["ok"]]
    parts = [f"## lmeval-fixtures: run {code_span(run_id)}", "", render_markdown(records, figures), ""]
    if failed:
        parts += ["**Failed gates**", ""]
        parts += [f"- {markdown_text(name)}: {markdown_text(message)}" for name, message in failed] + [""]
    if errors:
        parts += ["**Errors**", ""] + [f"- {markdown_text(error)}" for error in errors] + [""]
    reports = [p for p in paths if p.name in ("summary.md", "comparison.md")]
    if reports:
        parts += ["Reports: " + ", ".join(code_span(p) for p in reports), ""]
    path = Path(target)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(parts) + "\n")
    return path
