"""One number formatter, one Markdown table writer and one shape name (issue 24, item 3): a figure
reads the same in every report, a cell cannot break its table, a shape is written and read one way."""

from __future__ import annotations

import re

import pytest

from lmeval_fixtures.core.formatting import markdown_table, number, table_cell
from lmeval_fixtures.core.names import parse_shape_name, shape_name
from lmeval_fixtures.evaluation.run import Run
from lmeval_fixtures.records.comparison import render_comparison
from lmeval_fixtures.records.results_table import render_markdown, render_text
from lmeval_fixtures.records.summary import render_summary
from lmeval_fixtures.suite.figures import figure_table
from lmeval_fixtures.suite.registry import Registry

ENVIRONMENT = {"device": "cpu", "dtype": "float32", "python": "3.11", "torch": "x", "platform": "p"}


@pytest.mark.parametrize("value, args, text", [
    (None, {}, "—"), (True, {}, "yes"), (False, {}, "no"), (1234567, {}, "1,234,567"),
    (1234.56789, {}, "1,234.5679"), (0.5, {"digits": 2}, "0.50"), (2345678.9, {"digits": 0}, "2,345,679"),
    (2345678.9, {"compact_from": 1e6}, "2.346e+06"), (0.0123, {"signed": True}, "+0.0123"),
    (-0.0123, {"signed": True}, "-0.0123"), (2.3456789, {"significant": 6}, "2.34568"), ("text", {}, "text"),
])
def test_number(value, args, text):
    assert number(value, **args) == text


def cells_of(row: str) -> list[str]:
    """A table row split as GitHub splits it: at each pipe not escaped by a backslash."""
    assert row.startswith("| ") and row.endswith(" |")
    return [cell.strip() for cell in re.split(r"(?<!\\)((?:\\\\)*)\|", row[2:-2])[::2]]


def test_a_pipe_or_a_line_break_in_a_cell_does_not_break_the_table():
    rows = [["a|b", "one\ntwo\r\nthree"], [r"C:\|x", "plain"]]
    text = markdown_table(["name | kind", "note"], rows, right=(1,))
    lines = text.split("\n")
    assert len(lines) == 2 + len(rows)  # a line break in a cell is no new row
    assert lines[1] == "|---|--:|"
    assert [len(cells_of(line)) for line in (lines[0], lines[2], lines[3])] == [2, 2, 2]
    assert lines[2] == r"| a\|b | one<br>two<br>three |"
    assert lines[3] == r"| C:\\\|x | plain |"  # the backslash stays a backslash, the pipe stays text
    assert table_cell("**1.9000**") == "**1.9000**"  # Markdown a report means is left as it is


def test_a_figure_reads_the_same_in_the_summary_the_comparison_and_the_results_table():
    run = Run({"run_id": "r", "timestamp": "2026-01-01T00:00:00+00:00", "seed": 1, "git_commit": None,
               "environment": ENVIRONMENT, "settings": {}})
    for name, bpb in (("a", 1234.56789), ("b", 0.98765)):
        split = {"loss": 1.0, "token_perplexity": 20.0, "bits_per_byte": bpb, "byte_perplexity": 1.5,
                 "word_perplexity": 9.0, "tokens": 10, "bytes": 30, "words": 6, "documents": 1, "stride": 64,
                 "context_length": 64, "max_eval_tokens": None, "detokenized": True}
        run.absorb([(name, "t::ppl", {"perplexity": {"validation": split}}),
                    (name, "~checkpoint", {"checkpoint": {"name": name, "path": "p", "sha256": name * 8}})])
        run.add_outcome(name, "t::ppl", "passed")
    records = run.records()
    registry = Registry.default()
    figures = registry.figure_table(list(records.values()))
    expected = "1,234.5679"  # bits per byte is shown with 4 digits (the table of figures), thousands separated
    summary = render_summary(records["a"], figures, registry)
    comparison = render_comparison(list(records.values()), figures, "val_bits_per_byte")
    markdown = render_markdown(list(records.values()), figures)
    assert f"| val bits/byte | {expected} |" in summary  # the headline figures
    assert f"| a | {expected} | 20.00 |" in comparison  # the checkpoint's row: bits per byte, then perplexity
    assert f"| a | val bits/byte | {expected} |" in markdown
    assert any(line.startswith("a ") and line.split()[-1] == expected for line in render_text(
        list(records.values()), figures))


def test_one_shape_name_written_and_read():
    assert shape_name(1, 128) == "1x128" and parse_shape_name("1x128") == (1, 128)
    assert parse_shape_name(shape_name(32, 512)) == (32, 512)
    for other in ("1X128", " 1x128", "01x128", "1x", "x128", "1x128x2", "1×128", "a", "", "1x²"):
        assert parse_shape_name(other) is None, other


def test_the_figure_table_reads_latency_shapes_by_the_one_name():
    record = {"latency": {"2x64": {"timing": "taken", "mean_ms": 3.0}, "02x64": {"timing": "taken", "mean_ms": 4.0},
                          "nonsense": {}}}
    keys = {f.key: f for f in figure_table([], [], [record])}
    assert keys["latency_batch2_seq64"].value(record) == 3.0
    assert keys["latency_batch2_seq64"].label == "latency 2x64 ms"
    assert not any(key.startswith("latency_batch02") for key in keys)


def test_an_items_reason_is_its_first_line_cut_to_the_one_length_both_doors_record():
    from lmeval_fixtures.core.formatting import REASON_CHARS, outcome_reason

    assert outcome_reason("  Failed: a\nb\n") == "Failed: a"
    assert outcome_reason("x" * (REASON_CHARS + 5)) == "x" * REASON_CHARS
    assert outcome_reason(" \n ") is None
