"""The package's map: its wings in layer order, each module with its line count, and the import circles.

    python scripts/package_map.py            # the listing
    python scripts/package_map.py --check    # exit 1 when any import circle exists

Read from the code's own imports (grimp, the graph import-linter checks), every import
counted, those inside functions and under ``TYPE_CHECKING`` included: a circle that only
a lazy import hides is still a circle for a reader. The layer order is the one the
import-linter contract in pyproject.toml enforces.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grimp
import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "lmeval_fixtures"


def layers() -> list[str]:
    """The layers top to bottom, as the layers contract writes them (``a | b``: independent siblings)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for contract in config.get("tool", {}).get("importlinter", {}).get("contracts", []):
        if contract.get("type") == "layers":
            return list(contract["layers"])
    return []


def layer_order() -> list[str]:
    """The wings top to bottom."""
    return [name.strip() for layer in layers() for name in layer.replace(":", "|").split("|")]


def circles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.find_modules_directly_imported_by(node) & modules):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def source_file(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the package has an import circle")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(PACKAGE, include_external_packages=False)
    modules = {m for m in graph.modules if m.startswith(PACKAGE)}
    order = layer_order()
    wings: dict[str, list[str]] = {}
    for module in sorted(modules):
        parts = module.split(".")
        is_package = source_file(module).name == "__init__.py"
        # a wing is a subpackage; the package itself and its top modules (api, __main__) are "top"
        wing = parts[1] if len(parts) > 2 or (len(parts) == 2 and is_package) else "(top)"
        wings.setdefault(wing, []).append(module)
    ranked = ["(top)"] + [w for w in order if w in wings] + sorted(w for w in wings if w not in order and w != "(top)")
    total_lines = 0
    for wing in ranked:
        lines = {m: len(source_file(m).read_text(encoding="utf-8").splitlines()) for m in wings[wing]}
        total_lines += sum(lines.values())
        title = "top level" if wing == "(top)" else f"{wing}/"
        print(f"{title}  ({len(lines)} modules, {sum(lines.values())} lines)")
        for module, count in lines.items():
            print(f"    {module.removeprefix(PACKAGE + '.'):<40} {count:>5}")
    found = circles(graph, modules)
    print(f"\n{len(modules)} modules, {total_lines} lines; layers (top first): {' > '.join(layers()) or '(none)'}")
    print(f"import circles: {len(found)}")
    for component in found:
        print("    " + " <-> ".join(m.removeprefix(PACKAGE + ".") for m in component))
    return 1 if args.check and found else 0


if __name__ == "__main__":
    raise SystemExit(main())
