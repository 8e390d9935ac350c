"""A task file's YAML, read with bounds: a small file cannot ask for unbounded work.

YAML's aliases let a few hundred bytes stand for a tree of billions of nodes (each level
naming the one below twice), an alias inside its own anchor makes a structure that contains
itself, and deep nesting exhausts the reader's recursion. So before anything is built, the
composed document is measured: its nesting (``MAX_NESTING``), its size with every alias
expanded (``MAX_NODES``), and whether an alias refers to a node it is inside of. The file's
own size is bounded too (``MAX_BYTES``). Each bound is one ``TaskFileError`` line naming the
file and the limit; the tags are the safe loader's, plus lm-eval's ``!function`` kept as a marker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import TaskFileError

MAX_BYTES = 1 << 20  # a task file (lm-eval's are a few KB)
MAX_NESTING = 64  # levels of lists and mappings, aliases expanded
MAX_NODES = 100_000  # values in the document with every alias expanded


class Function:
    """lm-eval's ``!function module.name`` tag, kept as a marker: refused, never imported."""

    def __init__(self, target: str) -> None:
        self.target = target


class _Bound(Exception):  # noqa: N818 (internal: becomes a TaskFileError naming the file)
    pass


def _loader() -> type:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """The safe loader whose composer stops at ``MAX_NESTING`` before Python's recursion does."""

        depth = 0
        key = ""  # the top-level key whose value is being read, for the message

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            if self.depth == 2 and isinstance(index, yaml.ScalarNode):
                self.key = f"{index.value}: "
            try:
                if self.depth > MAX_NESTING:
                    raise _Bound(f"{self.key}nested deeper than {MAX_NESTING} levels (the limit)")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    BoundedLoader.add_constructor("!function", lambda loader, node: Function(str(loader.construct_scalar(node))))
    return BoundedLoader


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_expansion(root: Any) -> None:
    """Refuse a composed document whose aliases, expanded, make it recursive, deeper than
    ``MAX_NESTING`` or larger than ``MAX_NODES``, naming the top-level key at fault where one is.
    Each node is measured once (an alias reuses its anchor's measure), without recursion, so the
    check itself is bounded by the file's size."""
    import yaml

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            try:
                _measure(value, size, depth)
            except _Bound as exc:
                name = key.value if isinstance(key, yaml.ScalarNode) else "a key"
                raise _Bound(f"{name}: {exc}") from None
    _measure(root, size, depth)


def _measure(root: Any, size: dict[int, int], depth: dict[int, int]) -> None:
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_NODES:
                raise _Bound(f"its aliases expand to more than {MAX_NODES:,} values (the limit)")
            if depth[key] > MAX_NESTING:
                raise _Bound(f"its aliases expand to a nesting deeper than {MAX_NESTING} levels (the limit)")
            continue
        if key in size:
            continue
        if key in on_path:
            line = node.start_mark.line + 1 if node.start_mark is not None else "?"
            raise _Bound(f"an alias refers to a value it is inside of (a recursive alias, line {line})")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def load_yaml(text: str, path: Path) -> Any:
    """The value of the YAML document ``text`` (read from ``path``), within the bounds above;
    ``TaskFileError`` naming ``path`` for YAML that does not parse or passes a bound."""
    import yaml

    if len(text) > MAX_BYTES:
        raise TaskFileError(f"{path}: {len(text):,} characters; a task file may hold at most {MAX_BYTES:,} "
                            "(the limit)")
    loader = None
    try:
        loader = _loader()(text)  # its reader refuses characters YAML does not allow (NUL, most controls) here
        node = loader.get_single_node()
        if node is None:
            return None
        check_expansion(node)
        return loader.construct_document(node)
    except _Bound as exc:
        raise TaskFileError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" on line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [""])[0]
        raise TaskFileError(f"{path}: not valid YAML{where} ({problem})") from None
    except (ValueError, OverflowError) as exc:  # a scalar its constructor cannot make (an integer of 100,000 digits)
        raise TaskFileError(f"{path}: a value cannot be read ({(str(exc).splitlines() or [''])[0]})") from None
    except RecursionError:  # a bound above should stop it first; kept so it can never be a traceback
        raise TaskFileError(f"{path}: nested too deeply to read") from None
    finally:
        if loader is not None:
            loader.dispose()
