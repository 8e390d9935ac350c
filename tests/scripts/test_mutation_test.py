"""scripts/mutation_test.py: the kill rate it reports, which mutants it lists, and that every glob of its
groups names a function that exists (a renamed function would silently drop out of the run)."""

from __future__ import annotations

import ast
import fnmatch
import importlib.util

import pytest

from ..helpers import ROOT

spec = importlib.util.spec_from_file_location("mutation_test", ROOT / "scripts" / "mutation_test.py")
mutation_test = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutation_test)


def test_the_kill_rate_counts_timeouts_as_killed_and_lists_the_rest(monkeypatch, capsys):
    statuses = {"lmeval_fixtures.core.numerics.x_safe_exp__mutmut_1": "killed",
                "lmeval_fixtures.core.numerics.x_safe_exp__mutmut_2": "timeout",
                "lmeval_fixtures.core.numerics.x_quantile__mutmut_1": "survived",
                "lmeval_fixtures.core.numerics.x_quantile__mutmut_2": "no tests",
                "lmeval_fixtures.core.numerics.x_quantile__mutmut_3": "not checked",
                "lmeval_fixtures.core.numerics.x_quantile__mutmut_4": "killed",
                "lmeval_fixtures.engine.perplexity.x_plan_windows__mutmut_1": "survived"}
    monkeypatch.setattr(mutation_test, "results", lambda: statuses)
    assert mutation_test.report(mutation_test.GROUPS["numerics"], fail_under=75.0, second_look=False) == 0
    out = capsys.readouterr().out
    assert "kill rate: 3/4 = 75.0%" in out  # killed 2 + timeout 1, of 4 tested (no tests, not checked apart)
    assert "x_quantile__mutmut_1: survived" in out and "x_quantile__mutmut_2: no tests" in out
    assert "plan_windows" not in out  # another group's
    assert mutation_test.report(mutation_test.GROUPS["numerics"], fail_under=76.0, second_look=False) == 1


def functions_of(module: str) -> set[str]:
    """mutmut's names for the functions and methods it mutates: x_name, xǁClassǁname; never a decorated
    one (a property: scripts/mutation_properties.py mutates those)."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    names = {f"x_{node.name}" for node in tree.body if isinstance(node, ast.FunctionDef) and not node.decorator_list}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        names |= {f"xǁ{cls.name}ǁ{f.name}" for f in cls.body if isinstance(f, ast.FunctionDef) and not f.decorator_list}
    return names


@pytest.mark.parametrize("group", sorted(mutation_test.GROUPS))
def test_every_glob_names_existing_functions(group):
    for pattern in mutation_test.GROUPS[group]:
        module = pattern.split(".x")[0].removesuffix(".*")
        names = [f"{module}.{n}__mutmut_1" for n in functions_of(module)]
        assert any(fnmatch.fnmatch(n, pattern) for n in names), pattern
