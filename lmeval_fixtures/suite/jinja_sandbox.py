"""lm-evaluation-harness's Jinja templates run as untrusted data: sandboxed and bounded.

A task file is data, and a template in it must neither run code nor hang or exhaust a run.
Jinja's own sandbox stops the first (no attributes beginning with ``_``, no unsafe calls); this
module adds the second, so that every render ends within a bound with text or one line:

- nothing is computed while compiling: Jinja's optimiser folds constants (``{{ 9**(9**9) }}``
  would be evaluated by the start-up syntax check), so it is off, and ``**``, ``*`` and ``%``
  go through ``call_binop``, where the size of the result is checked before it is made;
- every ``{% for %}`` loop and every call counts against ``MAX_STEPS`` per render, and against
  ``MAX_RENDER_SECONDS``, so nested loops or recursive macros stop;
- text is bounded: each concatenation, repetition and the rendered output at ``MAX_TEXT``
  characters, every whole number at ``MAX_INT_BITS`` bits, every number handed to a call or
  filter (``center(10**9)``) and every width in a format string at ``MAX_TEXT``;
- memory is bounded: a text is measured only once it is made, and some calls make one whose size
  is a product of sizes each within its bound (``['a' * 999999] * 20000`` printed, a ``replace``
  or ``join`` with a long text, a format string of many wide fields), so on Linux the render runs
  under an address-space limit (``MAX_RENDER_BYTES`` above what the process holds when it
  starts): an allocation past it is a ``MemoryError``, said as this limit, instead of many
  gigabytes written until the machine's memory runs out. One limit covers every such call, so no
  call needs its own size arithmetic;
- ``regex_replace`` (lm-eval's filter) runs under the ``regex`` module's time limit
  (``MAX_REGEX_SECONDS``), so a pattern that backtracks for ever (``(a+)+$``) stops;
- ``{% include %}``, ``{% import %}`` and ``{% extends %}`` are refused when the template is
  read: a task file's template cannot read other files.

Each limit is a ``TemplateLimit`` (a ``RowError``) naming the limit; the caller adds the file,
the key and the row. Any other exception from a user's template is the template's fault too
and becomes one ``RowError`` line, never a traceback.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.errors import RowError

MAX_TEXT = 1_000_000  # characters: the rendered text, and every string or list a template builds
MAX_STEPS = 100_000  # loop iterations plus calls in one render
MAX_INT_BITS = 4096  # bits of any whole number a template computes
MAX_RENDER_SECONDS = 2.0  # one render's time
MAX_REGEX_SECONDS = 1.0  # one regex_replace's time
MAX_RENDER_BYTES = 512 * 2**20  # memory one render may take beyond what the process held before it
_WIDE_FORMAT = re.compile(r"\d{7,}")  # a width or precision of a million or more in a format string
_INCLUDERS = ("Include", "Import", "FromImport", "Extends")


class TemplateLimit(RowError):
    """A template that asked for more than a limit allows (steps, time, text, number size)."""


class _Budget:
    """What one render may still spend."""

    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimit(f"the template ran more than {MAX_STEPS:,} loop iterations and calls (the limit per "
                                "render)")
        self.check_time()  # every step: a slow call (a filter over a long text) between two steps is seen at once

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"the template ran longer than {MAX_RENDER_SECONDS:g} s (the limit per render)")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("lmeval_jinja_budget", default=None)


def _step() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step()


def _check_size(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimit(f"the template computes a number of more than {MAX_INT_BITS} bits (the limit)")
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_TEXT:
        raise TemplateLimit(f"the template builds a text or list longer than {MAX_TEXT:,} (the limit)")
    return value


def _check_argument(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_TEXT:
        raise TemplateLimit(f"the template passes the number {value if value.bit_length() < 64 else 'too large'} "
                            f"to a call (at most {MAX_TEXT:,})")
    if isinstance(value, str) and ("%" in value or "{" in value) and _WIDE_FORMAT.search(value):
        raise TemplateLimit(f"the template formats with a width of a million or more (the limit is {MAX_TEXT:,})")


def _bounded_binop(operator: str, left: Any, right: Any) -> Any:
    """``**``, ``*`` and ``%``, refused before a result too large to make is made."""
    numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
    big_power = operator == "**" and numbers and right > 0 and right * (abs(left) - 1).bit_length() > MAX_INT_BITS
    if big_power:
        raise TemplateLimit(f"the template computes a number of more than {MAX_INT_BITS} bits (the limit)")
    if operator == "*" and numbers and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
        raise TemplateLimit(f"the template computes a number of more than {MAX_INT_BITS} bits (the limit)")
    if operator == "*" and not numbers:
        sequence, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(count, int) and hasattr(sequence, "__len__") and len(sequence) * count > MAX_TEXT:
            raise TemplateLimit(f"the template builds a text or list longer than {MAX_TEXT:,} (the limit)")
    if operator == "%" and isinstance(left, str):
        _check_argument(left)
    if operator == "**":
        return _check_size(left**right)
    if operator == "*":
        return _check_size(left * right)
    return _check_size(left % right)


def _bounded_loop(iterable: Any) -> Any:
    """What a ``{% for %}`` loop iterates over, counted step by step."""
    for item in iterable:
        _step()
        yield item


def _bounded_concat(*parts: Any) -> str:
    """``~``: the joined text, refused past ``MAX_TEXT``."""
    if sum(len(p) if isinstance(p, str) else 0 for p in parts) > MAX_TEXT:
        raise TemplateLimit(f"the template builds a text or list longer than {MAX_TEXT:,} (the limit)")
    return _check_size("".join(str(p) for p in parts))


def regex_replace(text: str, pattern: str, repl: str, count: int = 0) -> str:
    """lm-evaluation-harness's own Jinja filter (``re.sub``), by the ``regex`` module in its
    ``re``-compatible mode with a time limit: a pattern that backtracks for ever stops."""
    import regex

    try:
        return regex.sub(pattern, repl, text, count=count, flags=regex.VERSION0, timeout=MAX_REGEX_SECONDS)
    except TimeoutError:
        raise TemplateLimit(f"regex_replace({pattern!r}) ran longer than {MAX_REGEX_SECONDS:g} s (the limit)") from None
    except regex.error as exc:
        raise RowError(f"regex_replace({pattern!r}): not a regular expression ({exc})") from None


@functools.cache
def environment() -> Any:
    """The one bounded sandbox every task-file template renders in."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    class BoundedSandbox(SandboxedEnvironment):
        intercepted_binops = frozenset({"**", "*", "%"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _step()
            if operator in self.intercepted_binops:
                return _bounded_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's names)
            _step()
            for value in (*args, *kwargs.values()):
                _check_argument(value)
            return _check_size(super().call(__context, __obj, *args, **kwargs))

        def getattr(self, obj: Any, attribute: str) -> Any:
            if isinstance(obj, str) and attribute in ("format", "format_map"):  # "{:>999999999}".format(1)
                _check_argument(obj)
            return super().getattr(obj, attribute)

    bounded = BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=True, optimized=False)
    bounded.globals.pop("lipsum", None)  # lipsum(n) writes n paragraphs: nothing a prompt needs
    bounded.globals.update(_lmeval_loop=_bounded_loop, _lmeval_concat=_bounded_concat)
    bounded.filters = {name: _bounded_filter(f) for name, f in bounded.filters.items()}
    bounded.filters["regex_replace"] = regex_replace
    return bounded


def _bounded_filter(function: Any) -> Any:
    """A filter whose number and format arguments are checked first and whose result is sized."""
    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _step()
        for value in (*args, *kwargs.values()):
            _check_argument(value)
        return _check_size(function(*args, **kwargs))
    return bounded


def _bounded_tree(source: str) -> Any:
    """The template's syntax tree with every loop and ``~`` routed through the counters; a
    template that reads other files is refused."""
    from jinja2 import TemplateSyntaxError, nodes
    from jinja2.visitor import NodeTransformer

    class Bound(NodeTransformer):
        def visit_For(self, node: Any) -> Any:  # noqa: N802 (Jinja's visitor names)
            node = self.generic_visit(node)
            node.iter = nodes.Call(nodes.Name("_lmeval_loop", "load"), [node.iter], [], None, None)
            return node

        def visit_Concat(self, node: Any) -> Any:  # noqa: N802
            node = self.generic_visit(node)
            return nodes.Call(nodes.Name("_lmeval_concat", "load"), node.nodes, [], None, None)

    bounded = environment()
    tree = bounded.parse(source)
    for kind in _INCLUDERS:
        found = next(iter(tree.find_all(getattr(nodes, kind))), None)
        if found is not None:
            tag = {"FromImport": "from ... import"}.get(kind, kind.lower())
            raise TemplateSyntaxError(f"{{% {tag} %}} is not supported (a task file's template cannot read other "
                                      "files)", found.lineno)
    tree = Bound().visit(tree)
    tree.set_lineno(1)
    tree.set_environment(bounded)
    return tree


@functools.lru_cache(maxsize=256)
def compile_template(source: str) -> Any:
    """A bounded Jinja template, compiled once per source text (lm-eval compiles it on every call).
    ``TemplateSyntaxError`` for a template that does not parse or reads other files."""
    bounded = environment()
    code = bounded.compile(_bounded_tree(source))
    return bounded.template_class.from_code(bounded, code, bounded.make_globals(None))


def template_problem(source: str) -> str | None:
    """Why ``source`` is not a template this suite renders (one line naming where), or None."""
    from jinja2 import TemplateSyntaxError

    try:
        compile_template(source)
    except TemplateSyntaxError as exc:
        return f"Jinja syntax error on line {exc.lineno}: {exc.message}"
    except RecursionError:
        return "the template nests too deeply to read"
    return None


_MEMORY_LIMIT_LOCK = threading.Lock()  # one process-wide limit: renders in two threads take turns setting it


@contextlib.contextmanager
def _bounded_memory() -> Iterator[None]:
    """The process's address space capped at what it holds now plus ``MAX_RENDER_BYTES`` while
    the block runs, then restored. Linux only (``/proc/self/statm``); elsewhere, and where a
    tighter limit is already set, nothing changes."""
    try:
        import resource

        held = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError, IndexError):
        yield
        return
    bound = held + MAX_RENDER_BYTES
    if hard != resource.RLIM_INFINITY:
        bound = min(bound, hard)
    if soft != resource.RLIM_INFINITY and soft <= bound:
        yield
        return
    with _MEMORY_LIMIT_LOCK:
        resource.setrlimit(resource.RLIMIT_AS, (bound, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def render(source: str, doc: dict[str, Any]) -> str:
    """``source`` rendered over the document's fields within every limit of this module;
    ``RowError`` (one line) for anything the template cannot do."""
    from jinja2 import TemplateSyntaxError

    try:
        template = compile_template(source)
    except TemplateSyntaxError as exc:
        raise RowError(f"the template does not parse (line {exc.lineno}: {exc.message})") from None
    except RecursionError:
        raise RowError("the template nests too deeply to read") from None
    if "self" in doc:  # lm-eval renders with render(**doc), which a field named "self" breaks
        raise RowError("the row has a field named 'self', which lm-evaluation-harness cannot render a template "
                       "over; rename the column")
    budget = _Budget()
    token = _BUDGET.set(budget)
    try:
        pieces: list[str] = []
        length = 0
        with _bounded_memory():
            for piece in template.generate(doc):  # the document as one mapping: a column may be named "self"
                length += len(piece)
                if length > MAX_TEXT:
                    raise TemplateLimit(f"the template renders more than {MAX_TEXT:,} characters (the limit)")
                pieces.append(piece)
        budget.check_time()  # one slow call after the last step
        return "".join(pieces)
    except RowError:
        raise
    except MemoryError:
        raise TemplateLimit(f"the template needs more than {MAX_RENDER_BYTES // 2**20:,} MiB of memory (the limit "
                            "per render)") from None
    except Exception as exc:  # noqa: BLE001 (anything a user's template raises is the template's fault: one line)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise RowError(f"{type(exc).__name__}: {first}" if first else type(exc).__name__) from None
    finally:
        _BUDGET.reset(token)
