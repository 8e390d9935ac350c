"""Mutation testing of the code that defines the reported figures, with mutmut (docs/mutation.md).

A test suite can pass while a figure's definition is wrong (bits per byte over characters,
acc_norm over the continuation's length, acc_norm taken from the unnormalised prediction all
passed 800 tests once). mutmut changes the figure-defining code one small edit at a time and
runs the tests that cover it; a mutant no test notices is a definition no test pins.

    pip install -e ".[mutation]"                    # mutmut
    python scripts/mutation_test.py                 # every group below, under nice -n 19
    python scripts/mutation_test.py --group perplexity --group smallbench
    python scripts/mutation_test.py --survivors     # after adding tests: re-test only what was not killed
    python scripts/mutation_test.py --resume        # only the mutants not yet tested (a run cut short)
    python scripts/mutation_test.py --report-only   # the kill rate of the last run, survivors listed

The modules mutated and the (narrow, fast) tests run are ``[tool.mutmut]`` in pyproject.toml;
the functions are the GROUPS below. Results persist in ``mutants/`` (ignored by git): a plain run
re-tests every mutant of its groups, ``--resume`` and ``--survivors`` only some; ``mutmut show NAME``
prints one mutant's diff. The exit status is 1 when the kill rate is below ``--fail-under``
(default 0: report only).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

# The functions that define a figure, by mutmut's mutant-name globs (module.x_function, module.xǁClassǁmethod),
# in the order they run: the headline figures first.
GROUPS = {
    "smallbench": ["lmeval_fixtures.suite.smallbench.*"],
    "perplexity": ["lmeval_fixtures.engine.perplexity.*"],
    "paired": [f"lmeval_fixtures.records.paired.{name}__mutmut_*" for name in (
        "x_mcnemar_exact", "x_paired_accuracy", "x_paired_bits_per_byte", "x_paired_mean",
        "x_paired_average_accuracy", "x__resample_indices")],  # PairedResult.significant: mutation_properties.py
    "gates": [f"lmeval_fixtures.records.gates.{name}__mutmut_*" for name in (
        "x_lower_is_better", "x_higher_is_better", "x_accuracy_vs_baseline", "x_accuracy_floor", "x_gates_for",
        "x_paired_gate")],
    "record": [f"lmeval_fixtures.records.record.{name}__mutmut_*"
               for name in ("x_derive_fields", "x_replace_non_finite")]
    + [f"lmeval_fixtures.suite.figures.{name}__mutmut_*" for name in (
        "x__train_perplexity", "x__peak_memory", "x__average_accuracy", "xǁFigureǁvalue", "xǁFigureǁstderr")],
    "numerics": ["lmeval_fixtures.core.numerics.*"],
}
# a timeout is a mutant the tests noticed (it hung); "killed on recheck": see recheck()
KILLED = {"killed", "timeout", "caught by type check", "killed on recheck"}


def mutmut(*args: str) -> list[str]:
    return [shutil.which("mutmut") or "mutmut", *args]


def results() -> dict[str, str]:
    """Every mutant's status from the last runs (``mutmut results --all true``)."""
    out = subprocess.run(mutmut("results", "--all", "true"), cwd=ROOT, capture_output=True, text=True, check=True)
    found = {}
    for line in out.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            found[name] = status
    return found


def recheck(name: str, timeout: int = 120) -> str:
    """A survivor re-tested in a plain process: mutmut's own tests for it, with the mutant switched on
    (``MUTANT_UNDER_TEST``) in ``mutants/``. Under ``forkserver`` a test that passes alone in the
    suite has been seen to pass against a mutant that fails it here (and a test reading a task file
    through the datasets library to hang there), so no survivor or timeout is reported without this
    second look; "killed on recheck" counts as killed. ``timeout``: seconds before a mutant counts as
    hung (a mutant's tests take seconds; a loop that never ends would otherwise hold each recheck for
    the whole of a long limit)."""
    stats = json.loads((ROOT / "mutants" / "mutmut-stats.json").read_text())
    tests = sorted(stats["tests_by_mangled_function_name"].get(name.split("__mutmut_")[0], []))
    if not tests:
        return "no tests"
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    try:
        outcome = subprocess.run([sys.executable, "-m", "pytest", *config.get("pytest_add_cli_args", []), "-x",
                                  *tests], cwd=ROOT / "mutants", env=os.environ | {"MUTANT_UNDER_TEST": name},
                                 capture_output=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "survived" if outcome.returncode in (0, 5) else "killed on recheck"


def report(patterns: list[str], fail_under: float, second_look: bool = True, timeout: int = 120) -> int:
    statuses = {name: status for name, status in results().items()
                if any(fnmatch.fnmatch(name, p) for p in patterns)}
    if second_look and (ROOT / "mutants").is_dir():  # with today's tests, which may be newer than the run's
        shutil.copytree(ROOT / "tests", ROOT / "mutants" / "tests", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        for name, status in statuses.items():
            if status in ("survived", "timeout"):
                statuses[name] = recheck(name, timeout)
    by_module: dict[str, Counter] = {}
    for name, status in statuses.items():
        by_module.setdefault(name.split(".x")[0], Counter())[status] += 1
    tested_all = killed_all = 0
    for module, counts in sorted(by_module.items()):
        tested = sum(n for s, n in counts.items() if s in KILLED or s == "survived")
        killed = sum(n for s, n in counts.items() if s in KILLED)
        tested_all, killed_all = tested_all + tested, killed_all + killed
        rate = f"{killed / tested:.1%}" if tested else "-"
        statuses_seen = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
        print(f"{module}: {killed}/{tested} killed ({rate}); {statuses_seen}")
    survivors = sorted(name for name, status in statuses.items() if status not in KILLED and status != "not checked")
    rate = killed_all / tested_all if tested_all else 0.0
    print(f"\nkill rate: {killed_all}/{tested_all} = {rate:.1%} (timeouts count as killed; "
          "'no tests' and 'not checked' mutants are listed, not counted)")
    if survivors:
        print(f"\n{len(survivors)} not killed (mutmut show NAME for the diff):")
        for name in survivors:
            print(f"  {name}: {statuses[name]}")
    return 1 if rate * 100 < fail_under else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", choices=sorted(GROUPS),
                        help="a group of figure-defining functions (repeatable, run in the order given; "
                             "default: all, in the order of GROUPS)")
    parser.add_argument("--max-children", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="mutants tested at once (default: the cores less one)")
    parser.add_argument("--nice", type=int, default=19, help="niceness of the run (default 19: others come first)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--report-only", action="store_true", help="report the last run without running")
    which.add_argument("--resume", action="store_true", help="test only the mutants not tested yet")
    which.add_argument("--survivors", action="store_true",
                       help="re-test only the mutants the last run did not kill (after adding tests)")
    parser.add_argument("--no-recheck", action="store_true",
                        help="report mutmut's survivors as they are, without re-testing each in a plain process")
    parser.add_argument("--recheck-timeout", type=int, default=120, metavar="SECONDS",
                        help="seconds before a re-tested mutant counts as hung (timeout, killed) (default: 120)")
    parser.add_argument("--fail-under", type=float, default=0.0, metavar="PERCENT",
                        help="exit 1 when the kill rate is below this")
    args = parser.parse_args(argv)
    if shutil.which("mutmut") is None:
        print('mutation_test: mutmut is not installed; pip install -e ".[mutation]"', file=sys.stderr)
        return 2
    groups = args.group or list(GROUPS)
    if not args.report_only:
        for group in groups:  # one run per group, in order: a run stopped early has the first groups done
            names = GROUPS[group]
            if args.resume or args.survivors:  # named mutants: mutmut re-tests exactly these
                # the names come from the mutants made so far (``mutmut run`` makes them on first use)
                wanted = {"not checked"} if args.resume else {"survived", "no tests", "suspicious", "segfault"}
                names = sorted(name for name, status in results().items()
                               if status in wanted and any(fnmatch.fnmatch(name, p) for p in names))
                if not names:
                    continue
            command = ["nice", "-n", str(args.nice), *mutmut("run", "--max-children", str(args.max_children), *names)]
            subprocess.run(command, cwd=ROOT, check=False)
    return report([p for group in groups for p in GROUPS[group]], args.fail_under, not args.no_recheck,
                  args.recheck_timeout)


if __name__ == "__main__":
    sys.exit(main())
