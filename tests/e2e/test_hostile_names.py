"""Names are safe in every report, through a whole run: checkpoints whose file names hold a table's edge
(``|``), Markdown formatting, HTML, a backtick, an ANSI escape, a newline and a bidirectional override are
run side by side, and every report (summary.md, comparison.md, the results table on the terminal and in the
step summary, history.jsonl, ``lmeval-fixtures history`` and ``compare``) keeps its columns and lines, shows
each name as written, and lets no character act on a terminal."""

from __future__ import annotations

import json
import re

import pytest

from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.core.formatting import markdown_text

from ..helpers import BENCHMARK, write_native_checkpoint, write_wikitext

HOSTILE = {  # file stem -> the checkpoint's name (characters that act become "_")
    "a|b": "a|b",
    "*bold*_x_ <b>`tick`": "*bold*_x_ <b>`tick`",
    "esc\x1b[31mred\nline": "esc_[31mred_line",
    "rtl\u202eevil": "rtl_evil",
}
ACTING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # beyond \t and \n


def cells(line: str) -> list[str]:
    """A Markdown table row's cells, split where GitHub splits them (at a "|" no backslash escapes)."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def tables_keep_their_columns(text: str) -> int:
    """Every row of every table has its header's number of cells; returns how many rows were checked."""
    checked, width = 0, None
    for line in text.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        if width is None:
            width = len(cells(line))
        assert len(cells(line)) == width, line
        checked += 1
    return checked


@pytest.fixture
def hostile_run(pytester, offline, monkeypatch):
    pytester.makepyfile(test_perplexity=BENCHMARK)
    write_wikitext(pytester.path / "data")
    for seed, stem in enumerate(HOSTILE, start=1):
        write_native_checkpoint(pytester.path / "ck", name=stem, seed=seed)
    step_summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = pytester.runpytest("--checkpoint", "ck", "--data-dir", "data", "--run-id", "r", "--log-samples")
    result.assert_outcomes(passed=2 * len(HOSTILE))
    return pytester.path, result, step_summary


def test_every_report_shows_hostile_names_as_written_and_keeps_its_shape(hostile_run, capsys):
    root, result, step_summary = hostile_run
    run = root / "reports/r"
    # file names: one report folder per name, none holding a character that acts
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == sorted(HOSTILE.values())
    assert not any(ACTING.search(str(p.relative_to(root))) for p in run.rglob("*"))
    # the terminal: no escape sequence or override reaches it; each name is shown
    terminal = result.stdout.str()
    assert not ACTING.search(terminal)
    for name in HOSTILE.values():
        assert name in terminal
    # comparison.md: the columns hold (a "|" in a name does not shift "val bits/byte"), each name escaped
    comparison = (run / "comparison.md").read_text()
    assert tables_keep_their_columns(comparison) >= len(HOSTILE) + 2
    header = cells(next(line for line in comparison.splitlines() if line.startswith("| checkpoint")))
    column = [c.strip() for c in header].index("val bits/byte")
    records = {name: json.loads((run / name / "metrics.json").read_text()) for name in HOSTILE.values()}
    for name, record in records.items():
        row = next(cells(line) for line in comparison.splitlines() if line.startswith(f"| {markdown_text(name)} "))
        shown = row[column].strip().strip("*").split(" ")[0]
        assert float(shown) == pytest.approx(record["val_bits_per_byte"], abs=5e-5)  # the name's own figure
    assert "a&#124;b" in comparison and "&#42;bold&#42;&#95;x&#95; &#60;b&#62;&#96;tick&#96;" in comparison
    # summary.md per checkpoint: the heading reads the name; its tables hold their columns
    for name in HOSTILE.values():
        summary = (run / name / "summary.md").read_text()
        assert summary.startswith(f"# {markdown_text(name)}: lmeval-fixtures summary\n")
        assert tables_keep_their_columns(summary) > 5 and not ACTING.search(summary)
    # the step summary's results table
    steps = step_summary.read_text()
    assert tables_keep_their_columns(steps) >= 2 * len(HOSTILE) and "a&#124;b" in steps
    # history.jsonl: whole lines, each naming its checkpoint exactly
    history = root / "reports/history.jsonl"
    lines = history.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and sorted(json.loads(line)["checkpoint"] for line in lines[:-1]) == sorted(
        HOSTILE.values())
    # lmeval-fixtures history and compare
    assert cli(["history", "--file", str(history)]) == 0
    shown = capsys.readouterr().out
    assert not ACTING.search(shown) and all(f"== {name}: val_bits_per_byte" in shown for name in HOSTILE.values())
    assert cli(["compare", *(str(run / name) for name in HOSTILE.values()), "--out", str(root / "cmp")]) == 0
    assert tables_keep_their_columns((root / "cmp/comparison.md").read_text()) >= len(HOSTILE) + 2


def test_names_from_foreign_records_are_escaped_where_they_are_written(tmp_path, capsys):
    """A record not written by this suite (a hand-edited metrics.json, another tool's history line) may hold
    any name: the renderers escape, rather than trust the name's source."""
    from lmeval_fixtures.records.results_table import render_markdown, render_text
    from lmeval_fixtures.records.summary import headline
    from lmeval_fixtures.suite.registry import Registry

    figures = Registry.default().figure_table()
    names = ["x|y", "new\nline", "esc\x1b[2J", "\u202eevil", "`code`", "[link](http://e)"]
    records = [{"checkpoint": {"name": n}, "errors": [], "gates": {},
                "perplexity": {"validation": {"bits_per_byte": 1.5 + i / 10}}} for i, n in enumerate(names)]
    table = render_markdown(records, figures)
    assert tables_keep_their_columns(table) == 2 + len(names) and len(table.splitlines()) == 2 + len(names)
    assert "x&#124;y" in table and "new&#92;nline" in table and "&#91;link&#93;(http://e)" in table
    text = "\n".join(render_text(records, figures))
    assert not ACTING.search(text) and "new\\nline" in text and "esc\\x1b[2J" in text and "\\u202eevil" in text
    assert len(text.splitlines()) == 2 + len(names)
    assert not ACTING.search(headline(records[2], figures))
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps({
        "run_id": f"r{i}", "timestamp": f"2026-01-01T00:00:0{i}+00:00", "git_commit": None, "checkpoint": n,
        "sha256": "x", "complete": True, "val_bits_per_byte": 2.0}) + "\n" for i, n in enumerate(names)))
    assert cli(["history", "--file", str(history)]) == 0
    shown = capsys.readouterr().out
    assert not ACTING.search(shown) and "== new\\nline: val_bits_per_byte" in shown


def test_a_checkpoint_name_from_a_file_name_has_no_acting_characters(tmp_path):
    from lmeval_fixtures.models.discovery import checkpoint_names

    paths = [tmp_path / "d\x1b1" / "model.pt", tmp_path / "line\nbreak.pt", tmp_path / "tab\there.safetensors",
             tmp_path / "del\x7f.pt", tmp_path / "sep\u2028x.pt", tmp_path / "bom\ufeff.pt", tmp_path / "plain|pipe.pt"]
    assert checkpoint_names(paths) == ["d_1", "line_break", "tab_here", "del_", "sep_x", "bom_", "plain|pipe"]
