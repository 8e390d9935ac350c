"""A property over task-file YAML and templates (hypothesis): whatever a task file says, reading it, its rows
and scoring them ends (a SIGALRM guard of a generous minute per input turns a hang into a failure) with a
figure (an accuracy in [0, 1]) or with one line from the suite's error family naming the file; never any
other exception."""

from __future__ import annotations

import contextlib
import signal
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lmeval_fixtures.core.errors import DataError, LmevalError, TaskFileError
from lmeval_fixtures.suite.smallbench import evaluate_task
from lmeval_fixtures.suite.task_files import load_task_file

from ..helpers import lmeval_task, rows_of, tiny_lm, write

MODEL = tiny_lm(max_seq_len=128, seed=7)  # one tiny model scores every input that reads

GUARD_SECONDS = 20  # "ends within a few seconds": each case takes well under one; room for a loaded CI
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def guard():
    def hung(signum, frame):
        raise AssertionError(f"still running after {GUARD_SECONDS} s")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, GUARD_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_all(path: Path) -> None:
    """The task and its rows, or one line of the error family naming the file."""
    with guard():
        try:
            task = load_task_file(path)
        except TaskFileError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path.parent)), str(exc)
            event("one line at start-up")
            return
        try:
            rows = rows_of(task)
        except DataError as exc:
            assert "\n" not in str(exc) and "row " in str(exc) or str(path.parent) in str(exc), str(exc)
            event("one line naming a row")
            return
        except LmevalError as exc:  # e.g. a split the file does not have
            assert "\n" not in str(exc), str(exc)
            return
        accuracy = evaluate_task(*MODEL, task, rows, 128, prompt_set="lm-eval").summary()["acc"]
        assert 0.0 <= accuracy <= 1.0
        event("a figure")


# ---- YAML: keys the readers know, values that nest, alias and tag, and raw YAML punctuation ----------------

KEYS = ["task", "include", "doc_to_text", "doc_to_choice", "doc_to_target", "dataset_path", "output_type",
        "dataset_kwargs", "validation_split", "metric_list", "num_fewshot", "name", "data", "template", "choices",
        "process_docs", "tag", "metadata", "task_alias", "x"]
SCALARS = st.sampled_from(["json", "multiple_choice", "validation", "t.yaml", "v.jsonl", "'{{ sentence }}'",
                           "!function u.f", "0", "-1", "1e999", "null", "~", "''", "[]", "{}", "*a", "&a x",
                           "&a [1, *a]", "'{{ 9**(9**9) }}'", "|", ">", "!!binary aGk=", "!!python/name:os.system",
                           ".inf", "2001-01-01", "? [a]", "<<: *a", "'{{ sentence }} ok'", "label", "1",
                           "9" * 5000, "2001-13-45", "0x" + "f" * 5000, "1:" * 300 + "1", "\x00", "'\x1b'", "\ufeff"])


def values(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return SCALARS
    inner = values(depth - 1)
    return st.one_of(SCALARS, st.lists(inner, max_size=4).map(lambda v: "[" + ", ".join(v) + "]"),
                     st.lists(st.tuples(st.sampled_from(KEYS), inner), max_size=3).map(
                         lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"),
                     st.tuples(st.sampled_from(["a", "b"]), inner).map(lambda av: f"&{av[0]} {av[1]}"))


DOCUMENTS = st.one_of(
    st.lists(st.tuples(st.sampled_from(KEYS), values(3)), max_size=8).map(
        lambda kv: "".join(f"{k}: {v}\n" for k, v in kv)),
    st.text(alphabet="[]{}&*!:-,| \n'\"ab<>?%#0\x00\x01\x1b\x7f\x85\u2028\ufeff\t\r", max_size=200),
    st.integers(1, 4000).map(lambda n: "task: " + "[" * n),
)


@FUZZ
@given(DOCUMENTS, st.sampled_from(["alone", "included", "over a task that reads"]))
def test_any_task_file_yaml_ends_with_a_figure_or_one_line(document, how):
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        if how == "over a task that reads":  # its keys replace a working lm-eval task's
            read_all(lmeval_task(base, document))
            return
        write(base / "inc.yaml", document)
        write(base / "v.jsonl", '{"sentence": "a b", "label": 0}\n')
        read_all(write(base / "t.yaml", document if how == "alone" else "include: inc.yaml\ntask: t\n"))


# ---- templates: Jinja built from the pieces that cost (loops, powers, repetition, filters, regexes) --------

ATOMS = st.sampled_from(["sentence", "label", "9", "99", "2", "'ab'", "[1, 2]", "range(9)", "range(99999)",
                         "(9**9)", "10**9", "missing", "self", "lipsum(3)", "'(a+)+$'", "namespace()"])
OPERATORS = st.sampled_from([" + ", " - ", " * ", " ** ", " // ", " % ", " ~ ", " / "])
FILTERS = st.sampled_from(["", " | upper", " | list", " | join", " | length", " | center(9**9)",
                           " | regex_replace('(a|aa)+$', '')", " | regex_replace('(', '')", " | format(1)",
                           " | replace('', 'xx')", " | reverse | list", " | int", " | e", " | no_such_filter"])


def expressions(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return ATOMS
    inner = expressions(depth - 1)
    return st.one_of(ATOMS, st.tuples(inner, OPERATORS, inner).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
                     st.tuples(inner, FILTERS).map(lambda t: f"({t[0]}{t[1]})"),
                     inner.map(lambda e: f"[{e}]"))


def templates(depth: int) -> st.SearchStrategy[str]:
    body = expressions(3).map(lambda e: "{{ " + e + " }}")
    if depth == 0:
        return body
    inner = templates(depth - 1)
    return st.one_of(body, st.lists(inner, min_size=1, max_size=3).map("".join),
                     st.tuples(expressions(1), inner).map(lambda t: "{% for i in " + t[0] + " %}" + t[1]
                                                          + "{% endfor %}"),
                     st.tuples(expressions(1), inner).map(lambda t: "{% set x = " + t[0] + " %}" + t[1]),
                     st.sampled_from(["{% include 'x' %}", "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
                                      "{{", "{% for %}", "{{ sentence.__class__ }}"]))


@FUZZ
@given(st.sampled_from(["doc_to_text", "doc_to_choice", "doc_to_target"]), templates(2))
def test_any_template_ends_with_a_figure_or_one_line(key, template):
    with tempfile.TemporaryDirectory() as folder:
        quoted = template.replace("\\", "\\\\").replace('"', '\\"')
        path = lmeval_task(Path(folder), f'{key}: "{quoted}"',
                           rows=[{"sentence": "a" * 30, "label": 0}, {"sentence": "b", "label": 1}])
        read_all(path)
