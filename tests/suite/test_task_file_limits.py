"""Task files cannot ask for unbounded work (``suite.task_yaml``, ``suite.task_files``' includes,
``suite.jinja_sandbox``): every class of hostile YAML, include and template ends, with one line naming the
file, the key and the limit; a row's error also names the row. A SIGALRM guard turns a hang into a
failure after a generous minute (a guard, not a measure of speed)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from lmeval_fixtures.core.errors import DataError, TaskFileError
from lmeval_fixtures.suite.jinja_sandbox import MAX_STEPS, MAX_TEXT, render
from lmeval_fixtures.suite.task_files import MAX_INCLUDE_DEPTH, MAX_INCLUDED_FILES, load_task_file
from lmeval_fixtures.suite.task_yaml import MAX_NESTING, MAX_NODES

from ..helpers import lmeval_task, one_line, rows_of, write

GUARD_SECONDS = 20  # "ends within a few seconds": each case takes well under one; room for a loaded CI


class Hung(Exception):
    pass


@pytest.fixture(autouse=True)
def guard():
    """Fail (rather than hang the suite) when a case runs past GUARD_SECONDS."""
    def hung(signum, frame):
        raise Hung(f"still running after {GUARD_SECONDS} s")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, GUARD_SECONDS)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


def alias_bomb(levels: int, fan: int, mapping: bool = False) -> str:
    """A few hundred bytes whose aliases expand to fan ** levels values."""
    lines = ['a0: &a0 ["x", "x"]']
    for level in range(1, levels + 1):
        if mapping:
            lines.append(f"a{level}: &a{level} {{" + ", ".join(f"k{i}: *a{level - 1}" for i in range(fan)) + "}")
        else:
            lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


YAML_BOUNDS = [
    (alias_bomb(9, 9), f"its aliases expand to more than {MAX_NODES:,} values (the limit)"),  # the 461-byte kind
    (alias_bomb(30, 2), f"its aliases expand to more than {MAX_NODES:,} values (the limit)"),
    (alias_bomb(8, 5, mapping=True), f"its aliases expand to more than {MAX_NODES:,} values (the limit)"),
    ("task: &c [a, *c]\n", "task: an alias refers to a value it is inside of (a recursive alias, line 1)"),
    ("task: &m {a: 1, b: *m}\n", "task: an alias refers to a value it is inside of (a recursive alias, line 1)"),
    ("x: &outer\n  - &inner [1, *outer]\n", "a recursive alias"),
    ("task: " + "[" * 5000 + "\n", f"task: nested deeper than {MAX_NESTING} levels (the limit)"),
    ("doc_to_text: " + "{a: " * 5000 + "\n", f"doc_to_text: nested deeper than {MAX_NESTING} levels (the limit)"),
    ("task:\n" + "".join("  " * i + "- \n" for i in range(1, 200)), f"nested deeper than {MAX_NESTING} levels"),
    ("a: &a " + "[" * 40 + "1" + "]" * 40 + "\nb: &b " + "[" * 40 + "*a" + "]" * 40 + "\n",
     f"its aliases expand to a nesting deeper than {MAX_NESTING} levels (the limit)"),
    ("base: &b {x: [1, 2]}\n" + "".join(f"m{i}: &m{i} {{<<: [*{'b' if i == 0 else f'm{i - 1}'}], "
                                          + ", ".join(f"k{j}: *{'b' if i == 0 else f'm{i - 1}'}" for j in range(6))
                                          + "}\n" for i in range(12)),
     f"its aliases expand to more than {MAX_NODES:,} values (the limit)"),  # merge keys expand too
]


@pytest.mark.parametrize(("text", "message"), YAML_BOUNDS, ids=[f"yaml{i}" for i in range(len(YAML_BOUNDS))])
def test_yaml_that_expands_recurses_or_nests_without_bound_is_one_line(tmp_path, text, message):
    path = write(tmp_path / "t.yaml", text)
    with pytest.raises(TaskFileError) as caught:
        load_task_file(path)
    assert one_line(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_a_large_task_file_is_refused_before_it_is_parsed(tmp_path):
    path = write(tmp_path / "t.yaml", "# " + "x" * (1 << 20) + "\ntask: x\n")
    with pytest.raises(TaskFileError, match=r"t.yaml: 1,048,58\d bytes; a task file may hold at most 1,048,576"):
        load_task_file(path)


def test_aliases_within_the_bounds_read_as_before(tmp_path):
    """lm-eval files use anchors for shared metric lists: those still read."""
    path = lmeval_task(tmp_path, "x_metrics: &m [{metric: acc}]\nmetric_list: *m")
    with pytest.raises(TaskFileError, match="x_metrics: not supported"):  # the key is refused, not the alias
        load_task_file(path)
    path = lmeval_task(tmp_path, "metric_list: &m [{metric: acc}, {metric: acc_norm}]")
    assert load_task_file(path).name == "local_reviews"


def fan_out(tmp_path, width: int, depth: int) -> None:
    """Each file at level d includes ``width`` distinct files of level d+1."""
    for level in range(depth):
        for i in range(width ** level):
            children = [f"l{level + 1}_{i * width + j}.yaml" for j in range(width)] if level + 1 < depth else []
            write(tmp_path / f"l{level}_{i}.yaml", (f"include: [{', '.join(children)}]\n" if children else "")
                  + "tag: x\n")


@pytest.mark.parametrize(("layout", "message"), [
    ("chain1200", f"include: a chain of more than {MAX_INCLUDE_DEPTH} included files (the limit)"),
    ("chain17", f"include: a chain of more than {MAX_INCLUDE_DEPTH} included files (the limit)"),
    ("fan10", f"include: more than {MAX_INCLUDED_FILES} files included in all (the limit)"),
    ("fan3", f"include: more than {MAX_INCLUDED_FILES} files included in all (the limit)"),
    ("folder", "include: sub is a folder; name a YAML file"),
    ("fifo", "not a regular file (a named pipe (FIFO))"),
    ("empty", "include: expected a file name, got ''"),
    ("number", "include: expected a file name, got 7"),
])
def test_includes_are_bounded_and_say_what_the_target_is(tmp_path, layout, message):
    if layout.startswith("chain"):
        length = int(layout.removeprefix("chain"))
        for i in range(length):
            write(tmp_path / f"c{i}.yaml", f"include: c{i + 1}.yaml\n" if i + 1 < length else "task: x\n")
    elif layout.startswith("fan"):
        fan_out(tmp_path, int(layout.removeprefix("fan")), 5)
    else:
        target = {"folder": "sub", "fifo": "pipe.yaml", "empty": "''", "number": "7"}[layout]
        (tmp_path / "sub").mkdir()
        if layout == "fifo":
            if not hasattr(os, "mkfifo"):
                pytest.skip("no named pipes here")
            os.mkfifo(tmp_path / "pipe.yaml")
        write(tmp_path / "top.yaml", f"include: {target}\ntask: x\n")
    top = {"chain": "c0.yaml", "fan": "l0_0.yaml"}.get(layout.rstrip("0123456789"), "top.yaml")
    with pytest.raises(TaskFileError) as caught:
        load_task_file(tmp_path / top)
    assert message in one_line(caught.value)


def test_a_file_included_from_many_places_is_read_once(tmp_path):
    """A diamond (a includes b and c, both include base): base's keys arrive once, from base."""
    write(tmp_path / "base.yaml", "tag: shared\n")
    for name in ("b", "c"):
        write(tmp_path / f"{name}.yaml", "include: base.yaml\n")
    fan_out(tmp_path / "wide", 4, 3)  # 1 + 4 + 16 = 21 distinct files, each included once
    path = lmeval_task(tmp_path, f"include: [../b.yaml, ../c.yaml, {tmp_path}/wide/l0_0.yaml, "
                                 "../lm_eval_tasks/reviews/default.yaml]")
    task = load_task_file(path)
    keys = dict(task.read.definition)
    assert sum("base.yaml" in k for k in keys) == 1 and len(keys) == 1 + 3 + 21 + 1


@pytest.mark.parametrize(("top", "message"), [
    ("folder", "a folder; name the task's YAML file"),
    ("fifo", "not a regular file (a named pipe (FIFO))"),
])
def test_a_task_file_that_is_not_a_file_says_what_it_is(tmp_path, top, message):
    path = tmp_path / "t.yaml"
    if top == "folder":
        path.mkdir()
    elif hasattr(os, "mkfifo"):
        os.mkfifo(path)
    else:
        pytest.skip("no named pipes here")
    with pytest.raises(TaskFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_task_file(path)


# whichever bound a loop meets first on a loaded machine: MAX_STEPS, or MAX_RENDER_SECONDS
STEPS_OR_TIME = "the template ran "
START_UP = [  # a template that reads no field is rendered (or read) at start-up: its limit is said then
    ('doc_to_choice: "{{ 9**(9**9) }}"', "doc_to_choice: the template computes a number of more than 4096 bits"),
    ('doc_to_choice: "{{ [2**99999] }}"', "doc_to_choice: the template computes a number of more than 4096 bits"),
    ('doc_to_choice: "{{ [\'a\' * 10**9] }}"', f"doc_to_choice: the template builds a text or list longer than "
                                              f"{MAX_TEXT:,}"),
    ('doc_to_choice: "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"',
     "doc_to_choice: " + STEPS_OR_TIME),
    ('doc_to_text: "{% include \'other.yaml\' %}"', "doc_to_text: Jinja syntax error on line 1: {% include %} is not "
                                                   "supported (a task file's template cannot read other files)"),
    ('doc_to_text: "{% import \'m\' as m %}{{ sentence }}"', "doc_to_text: Jinja syntax error on line 1: {% import %}"),
    ('doc_to_text: "{% extends \'base\' %}"', "doc_to_text: Jinja syntax error on line 1: {% extends %}"),
    ('doc_to_target: "{% from \'m\' import f %}{{ label }}"', "doc_to_target: Jinja syntax error on line 1: "
                                                             "{% from ... import %}"),
]


@pytest.mark.parametrize(("extra", "message"), START_UP, ids=[f"start{i}" for i in range(len(START_UP))])
def test_a_template_over_a_limit_is_refused_when_the_file_is_read(tmp_path, extra, message):
    path = lmeval_task(tmp_path, extra)
    with pytest.raises(TaskFileError) as caught:
        load_task_file(path)
    assert one_line(caught.value).startswith(f"{path}: ") and message in str(caught.value)


PER_ROW = [  # (doc_to_text, what the row's one line says after "row 0: doc_to_text: ")
    ("{{ [1/0] }}", "ZeroDivisionError: division by zero"),
    ("{{ sentence ~ (1 // 0) }}", "ZeroDivisionError"),
    ("{{ range(10**6) | list }}", "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE"),
    ("{% for i in range(99999) %}{% for c in sentence %}{% endfor %}{% endfor %}", STEPS_OR_TIME),
    ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(label + 40) }}",
     STEPS_OR_TIME),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(label) }}", "RecursionError"),
    ("{{ sentence ** (label + 9**9) }}", "TypeError"),
    ("{{ (label + 9) ** (9**9) }}", "the template computes a number of more than 4096 bits (the limit)"),
    ("{{ sentence * 10**9 }}", f"the template builds a text or list longer than {MAX_TEXT:,} (the limit)"),
    ("{% set ns = namespace(s=sentence) %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
     f"the template builds a text or list longer than {MAX_TEXT:,} (the limit)"),
    ("{{ sentence | center(10**9) }}", "the template passes the number 1000000000 to a call (at most 1,000,000)"),
    ("{{ '%0999999999d' | format(label) }}", "the template formats with a width of a million or more"),
    ("{{ '{:>999999999}'.format(label) }}", "the template formats with a width of a million or more"),
    ("{{ '%0999999999d' % label }}", "the template formats with a width of a million or more"),
    ("{{ lipsum(10) }}", "UndefinedError: 'lipsum' is undefined"),
    ("{{ (sentence ~ '!') | regex_replace('(a|aa)+$', '') }}", "regex_replace('(a|aa)+$') ran longer than 1 s"),
    ("{{ (sentence ~ '!') | regex_replace('(aa|a)+$', '') }}", "regex_replace('(aa|a)+$') ran longer than 1 s"),
    ("{{ sentence | regex_replace('(', '') }}", "regex_replace('('): not a regular expression (missing )"),
    ("{{ sentence | regex_replace('[z-a]', '') }}", "regex_replace('[z-a]'): not a regular expression"),
    ("{{ sentence | regex_replace('*a', '') }}", "regex_replace('*a'): not a regular expression (nothing to repeat"),
    ("{{ sentence.__class__ }}", "SecurityError: access to attribute '__class__' of 'str' object is unsafe."),
    ("{{ missing_field }}", "UndefinedError: 'missing_field' is undefined"),
    ("{{ sentence | no_such_filter }}", "doc_to_text"),
]


@pytest.mark.parametrize(("template", "message"), PER_ROW, ids=[f"row{i}" for i in range(len(PER_ROW))])
def test_every_error_of_a_template_is_one_line_naming_the_task_file_and_row(tmp_path, template, message):
    rows = [{"sentence": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "label": 0},
            {"sentence": "b", "label": 1}]
    path = lmeval_task(tmp_path, "doc_to_text: " + repr(template).replace("\\\\", "\\"), rows=rows)
    try:
        task = load_task_file(path)
    except TaskFileError as exc:  # a filter that does not exist is found when the template is compiled
        assert one_line(exc).startswith(f"{path}: doc_to_text: ") and message in str(exc)
        return
    with pytest.raises(DataError) as caught:
        rows_of(task)
    line = one_line(caught.value)
    assert line.startswith("task 'local_reviews' (reviews.yaml): ") and " row 0: doc_to_text: " in line
    assert message in line


@pytest.mark.parametrize("column", ["self", "environment"])
def test_a_data_column_with_a_reserved_name(tmp_path, column):
    """lm-eval renders with ``render(**doc)``: a field named ``self`` is refused by name there, so here too;
    any other field, even one named like Jinja's internals, is an ordinary field."""
    rows = [{column: "x", "sentence": "s", "label": 0}, {column: "y", "sentence": "t", "label": 1}]
    task = load_task_file(lmeval_task(tmp_path, f'doc_to_text: "{{{{{column}}}}} {{{{sentence}}}}"', rows=rows))
    if column == "self":
        with pytest.raises(DataError, match=r"row 0: doc_to_text: the row has a field named 'self'"):
            rows_of(task)
    else:
        assert [task.prompts["lm-eval"].context(r) for r in rows_of(task)] == ["x s", "y t"]


@pytest.mark.parametrize(("template", "doc", "expected"), [
    ("{{ a }}{{ b }}", {"a": "x", "b": "y"}, "xy"),
    ("{{ a ~ b ~ 3 }}", {"a": "x", "b": "y"}, "xy3"),
    ("{{ 2 ** 10 }} {{ 3 * 4 }} {{ 7 % 3 }} {{ '%d!' % n }} {{ a * 3 }}", {"n": 5, "a": "ab"}, "1024 12 1 5! ababab"),
    ("{% for c in a %}{{ loop.index }}{{ c }}{% endfor %}", {"a": "xyz"}, "1x2y3z"),
    ("{{ a | regex_replace(' +', ' ') | upper }}", {"a": "a   b"}, "A B"),
    ("{{ a | regex_replace('(\\\\w)(\\\\w)', '\\\\2\\\\1', 1) }}", {"a": "abcd"}, "bacd"),
    ("{{ '{}-{}'.format(a, b) }}", {"a": 1, "b": 2}, "1-2"),
    ("{{ [a, b] }}", {"a": "x", "b": "y"}, "['x', 'y']"),
])
def test_ordinary_templates_render_as_jinja_does(template, doc, expected):
    """The bounds change no ordinary template's text (checked against Jinja's plain sandbox)."""
    import re

    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    plain = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
    plain.filters["regex_replace"] = lambda text, pattern, repl, count=0: re.sub(pattern, repl, text, count=count)
    assert render(template, doc) == plain.from_string(template).render(doc) == expected


@pytest.mark.parametrize("template", [
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "{% for c in x %}{% for d in x %}{% for e in x %}{{ c }}{% endfor %}{% endfor %}{% endfor %}",
])
def test_each_bound_of_a_render_on_its_own(monkeypatch, template):
    """The step bound with time to spare, and the time bound with steps to spare: each stops the render."""
    from lmeval_fixtures.suite import jinja_sandbox

    doc = {"x": "a" * 100}
    monkeypatch.setattr(jinja_sandbox, "MAX_RENDER_SECONDS", 600.0)
    with pytest.raises(DataError, match=f"^the template ran more than {MAX_STEPS:,} loop iterations and calls "
                                        r"\(the limit per render\)$"):
        render(template, doc)
    monkeypatch.setattr(jinja_sandbox, "MAX_STEPS", 10**12)
    monkeypatch.setattr(jinja_sandbox, "MAX_RENDER_SECONDS", 0.05)
    with pytest.raises(DataError, match=r"^the template ran longer than 0.05 s \(the limit per render\)$"):
        render(template, doc)


MEMORY_HUNGRY = [  # each piece within its own bound, the whole made of their product: gigabytes before measured
    "{{ [sentence * 25000] * 20000 }}",  # a list of 20,000 references to one 1M text, printed
    "{{ (sentence * 500).replace('a', sentence * 25000) | length }}",
    "{{ (range(20000) | list) | join(sentence * 25000) | length }}",
    "{{ ('{:>999999}' * 20000).format(*(range(20000) | list)) | length }}",
    "{{ (sentence * 500 ~ '\\t' * 20000).expandtabs(999999) | length }}",
]


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="the memory bound is Linux's address-space limit")
@pytest.mark.parametrize("template", MEMORY_HUNGRY, ids=[f"memory{i}" for i in range(len(MEMORY_HUNGRY))])
def test_a_template_whose_text_is_a_product_of_sizes_stops_at_the_memory_bound(template):
    """Without the bound each of these writes 10-40 GB before its size is checked (a machine's memory
    exhausted); with it the render stops at MAX_RENDER_BYTES with one line, and the process's own limit
    is as it was."""
    import resource

    from lmeval_fixtures.suite import jinja_sandbox

    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(DataError, match=r"^the template needs more than 512 MiB of memory \(the limit per render\)$"):
        render(template, {"sentence": "a" * 40})
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert jinja_sandbox.MAX_RENDER_BYTES == 512 * 2**20
    assert render("{{ sentence | upper }}", {"sentence": "a" * 40}) == "A" * 40  # the next render is unbounded again


def test_the_time_bound_sees_one_slow_call_between_steps(monkeypatch):
    """A single filter over a long text takes seconds with only a few steps counted: the time is
    checked at every step and once the render ends, so it stops there rather than 64 steps later."""
    from lmeval_fixtures.suite import jinja_sandbox

    monkeypatch.setattr(jinja_sandbox, "MAX_RENDER_SECONDS", 0.001)
    with pytest.raises(DataError, match=r"^the template ran longer than 0.001 s \(the limit per render\)$"):
        render("{{ (sentence * 5000) | wordwrap(3) | length }}", {"sentence": "ab " * 10})


@pytest.mark.parametrize(("value", "message"), [
    ("\x00", "not valid YAML (unacceptable character #x0000: special characters are not allowed)"),
    ("a\x01b", "not valid YAML (unacceptable character #x0001: special characters are not allowed)"),
    ("'\x1b[31m'", "not valid YAML (unacceptable character #x001b: special characters are not allowed)"),
    ("9" * 5000, "a value cannot be read (Exceeds the limit (4300 digits) for integer string conversion"),
    ("2001-13-45", "a value cannot be read (month must be in 1..12)"),
])
@pytest.mark.parametrize("how", ["alone", "included"])
def test_yaml_its_reader_or_a_constructor_refuses_is_one_line_naming_the_file(tmp_path, value, message, how):
    """Characters YAML does not allow, and scalars its constructors cannot make, were a ReaderError or
    ValueError traceback (an INTERNALERROR in a run): now the one line of any other YAML problem."""
    bad = write(tmp_path / ("inc.yaml" if how == "included" else "t.yaml"), f"task: t\nnum_fewshot: {value}\n")
    path = bad if how == "alone" else write(tmp_path / "t.yaml", "include: inc.yaml\n")
    with pytest.raises(TaskFileError) as caught:
        load_task_file(path)
    assert one_line(caught.value).startswith(f"{bad}: {message}")
