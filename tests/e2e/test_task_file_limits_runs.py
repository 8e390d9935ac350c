"""Hostile task files through a whole run (a subprocess, so a hang is killed by pytester's generous timeout
rather than hanging the suite): a file that asks for unbounded work is a usage error at start-up, one line and
exit status 4; a template that fails on a row errors that task's item with one line naming the task file and
the row, while every other item passes; never a traceback or an INTERNALERROR."""

from __future__ import annotations

import pytest

from ..helpers import lmeval_task, write

GUARD = 240  # seconds: a hang fails the test; an ordinary run here takes a few seconds


def no_traceback(result) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text


def alias_bomb() -> str:
    """The finding's kind: nine levels, each naming the one below nine times (9**9 values)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, below in zip("bcdefghi", "abcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{below}"] * 9) + "]")
    return "\n".join(lines) + "\ntask: x\n"


@pytest.mark.parametrize(("layout", "line"), [
    ("bomb", "t.yaml: f: its aliases expand to more than 100,000 values (the limit)"),  # the key at fault
    ("recursive", "t.yaml: task: an alias refers to a value it is inside of (a recursive alias, line 1)"),
    ("brackets", "t.yaml: task: nested deeper than 64 levels (the limit)"),
    ("chain", "include: a chain of more than 16 included files (the limit)"),
    ("power", "reviews.yaml: doc_to_choice: the template computes a number of more than 4096 bits (the limit)"),
])
def test_a_task_file_asking_for_unbounded_work_is_one_line_at_start_up(suite, layout, line):
    if layout == "chain":
        for i in range(1200):
            write(suite.path / f"tasks/c{i}.yaml", f"include: c{i + 1}.yaml\n" if i < 1199 else "task: x\n")
        path = suite.path / "tasks/c0.yaml"
    elif layout == "power":
        path = lmeval_task(suite.path / "tasks", 'doc_to_choice: "{{ 9**(9**9) }}"')
    else:
        text = {"bomb": alias_bomb(), "recursive": "task: &c [a, *c]\n", "brackets": "task: " + "[" * 5000}[layout]
        path = write(suite.path / "tasks/t.yaml", text)
    result = suite.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "--task-file", str(path),
                                        timeout=GUARD)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--task-file *{line}"])
    assert sum(line in text for text in result.stderr.lines) == 1
    no_traceback(result)
    assert not (suite.path / "reports").exists()


@pytest.mark.parametrize(("template", "line"), [
    ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}{{ sentence }}",
     "doc_to_text: the template ran * (the limit per render)"),  # steps or time, whichever comes first
    ("{{ [1/0] }}", "doc_to_text: ZeroDivisionError: division by zero"),
    ("{{ (sentence ~ '!') | regex_replace('(aa|a)+$', '') }}", "doc_to_text: regex_replace('(aa|a)+$') ran longer"),
])
def test_a_template_failing_on_a_row_errors_its_own_item_naming_file_and_row(suite, template, line):
    rows = [{"sentence": "a" * 40, "label": 0}, {"sentence": "b", "label": 1}]
    path = lmeval_task(suite.path / "tasks", f'doc_to_text: "{template}"', rows=rows)
    result = suite.runpytest_subprocess("--checkpoint", "ck", "--data-dir", "data", "-m", "smallbench",
                                        "--task-file", str(path), timeout=GUARD)
    result.assert_outcomes(passed=4, errors=1)  # the four shipped tasks still run
    result.stdout.fnmatch_lines([f"*task 'local_reviews' (reviews.yaml): *validation.jsonl row 0: {line}*"])
    no_traceback(result)
