"""Mutation testing of the figure properties mutmut cannot reach (docs/mutation.md).

mutmut 3 never mutates a decorated function: its trampoline replaces the function, which a
``@property`` would break. Several figures are properties (``PerplexityResult.bits_per_byte``,
``TaskResult.correct_norm``, ``acc_norm``, ``PairedResult.significant``, ...), and one of the
three mutants of issue 29 lived in one. This script makes the same kinds of small edits to those
property bodies only, one at a time, in a copy of the checkout, and runs the module's definition
tests against each:

    python scripts/mutation_properties.py                # every module below
    python scripts/mutation_properties.py --module lmeval_fixtures/suite/smallbench.py

Edits: an arithmetic operator swapped (+ -, * /), a comparison loosened or turned (< <=, == !=,
is / is not, in / not in), and/or swapped, a ``not`` dropped, a number plus one, a string changed,
one call argument dropped. A mutant is killed when the tests fail (or error, or exceed the time
limit). Exit status 1 when one survives.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module -> the tests that define its properties' figures (fast ones: each mutant runs them all)
MODULES = {
    "lmeval_fixtures/engine/perplexity.py": ["tests/engine/test_perplexity_definition.py", "-k",
                                             "not test_top1_and_top5_accuracy_by_rank"],  # slow; see the summary test
    "lmeval_fixtures/suite/smallbench.py": ["tests/suite/test_smallbench_definition.py"],
    "lmeval_fixtures/records/paired.py": ["tests/records/test_paired_definition.py"],
    "lmeval_fixtures/suite/figures.py": ["tests/records/test_gates_definition.py"],
}
SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Lt: ast.LtE, ast.LtE: ast.Lt,
         ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot,
         ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.And: ast.Or, ast.Or: ast.And}


def is_property(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef) and any(
        isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)


def sites(tree: ast.Module) -> Iterator[tuple[ast.AST, str]]:
    """(node, kind) of every edit inside a property body, in source order."""
    for function in (n for n in ast.walk(tree) if is_property(n)):
        for statement in function.body:
            if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                continue  # a docstring: changing it changes nothing a test could see
            for node in ast.walk(statement):
                if isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in SWAPS:
                    yield node, "op"
                elif isinstance(node, ast.Compare):
                    for i, op in enumerate(node.ops):
                        if type(op) in SWAPS:
                            yield node, f"compare{i}"
                elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                    yield node, "not"
                elif isinstance(node, ast.Constant) and type(node.value) in (int, float, str):
                    yield node, "constant"
                elif isinstance(node, ast.Call):
                    for i in range(len(node.args)):
                        yield node, f"arg{i}"


def mutate(node: ast.AST, kind: str) -> ast.AST:
    if kind == "op":
        node.op = SWAPS[type(node.op)]()
    elif kind.startswith("compare"):
        i = int(kind.removeprefix("compare"))
        node.ops[i] = SWAPS[type(node.ops[i])]()
    elif kind == "not":
        return node.operand
    elif kind == "constant":
        node.value = f"XX{node.value}XX" if isinstance(node.value, str) else node.value + 1
    else:
        del node.args[int(kind.removeprefix("arg"))]
    return node


class Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, kind: str) -> None:
        self.target, self.kind = target, kind

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return mutate(node, self.kind)
        return self.generic_visit(node)


def mutants(source: str) -> Iterator[tuple[str, str]]:
    """(mutated source, one-line diff) for each edit."""
    original = ast.unparse(ast.parse(source)).splitlines()
    for index in range(sum(1 for _ in sites(ast.parse(source)))):
        tree = ast.parse(source)
        node, kind = list(sites(tree))[index]
        mutated = ast.unparse(ast.fix_missing_locations(Replace(node, kind).visit(tree)))
        changed = [line.strip() for line in difflib.unified_diff(original, mutated.splitlines(), lineterm="", n=0)
                   if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        yield mutated, " => ".join(changed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=sorted(MODULES), help="default: all")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per mutant before it counts as killed")
    args = parser.parse_args(argv)
    killed = total = 0
    survivors = []
    with tempfile.TemporaryDirectory() as tmp:
        copy_root = Path(tmp) / "checkout"
        shutil.copytree(ROOT, copy_root, ignore=shutil.ignore_patterns(".git", "mutants", "reports", "__pycache__",
                                                                         ".hypothesis", ".pytest_cache"))
        env = os.environ | {"PYTHONPATH": str(copy_root), "PYTHONDONTWRITEBYTECODE": "1"}
        for module in args.module or list(MODULES):
            source = (ROOT / module).read_text()
            for mutated, diff in mutants(source):
                (copy_root / module).write_text(mutated)
                try:
                    outcome = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:xdist", "-p",
                                              "no:cacheprovider", *MODULES[module]], cwd=copy_root, env=env,
                                             capture_output=True, timeout=args.timeout).returncode
                except subprocess.TimeoutExpired:
                    outcome = -1
                total += 1
                if outcome == 0:
                    survivors.append(f"{module}: {diff}")
                else:
                    killed += 1
                print(f"{'survived' if outcome == 0 else 'killed  '} {module}: {diff}", flush=True)
            (copy_root / module).write_text(source)
    print(f"\nproperty mutants killed: {killed}/{total}" + (f" = {killed / total:.1%}" if total else ""))
    for line in survivors:
        print(f"  survived: {line}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
