"""The pytest plugin's module hooks: options, markers, and the session's plugin object.

Loaded only where it is used (no ``pytest11`` entry point): this repository's
root ``conftest.py``, the packaged benchmarks (``lmeval-fixtures run`` or
``pytest -p lmeval_fixtures.plugin --pyargs lmeval_fixtures.benchmarks``) or a
project's own ``-p lmeval_fixtures.plugin`` / ``pytest_plugins``. Importing this
module imports neither torch nor transformers; ``pytest_configure`` imports the
session's machinery (``suite_plugin``).

Every option is stored under an ``lmeval_`` dest and always answers to
``--lmeval-NAME``; the short ``--NAME`` is added too unless another plugin or a
start-up conftest defines it (a project's own ``--device`` keeps working, and ours
is then spelled ``--lmeval-device``). Loaded first (``-p``), the plugin adds the
short names only after the project's conftests have added theirs.
"""

from __future__ import annotations

import argparse
from collections.abc import Generator
from pathlib import Path
from types import MappingProxyType

import pytest

from ..core.errors import UsageError
from ..core.names import closest_name
from ..evaluation.options import DEST_PREFIX, FLAG_PREFIX, OPTIONS
from . import hookspecs

MARKERS = MappingProxyType({
    "perplexity": "perplexity on the declared corpora (WikiText-2 by default): bits per byte, word perplexity",
    "smallbench": "SmallBench accuracy (SST-2, RTE, BoolQ, MRPC and declared tasks) by log-likelihood",
    "latency": "batch-1 forward latency (pytest-benchmark)",
    "throughput": "tokens per second at a larger batch (pytest-benchmark)",
})
GROUP = "lmeval-fixtures"
PENDING_SHORT_NAMES = "_lmeval_short_names_pending"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup(GROUP, "language-model checkpoint benchmarks (each option is also --lmeval-NAME)",
                            after="general")
    _lead_help(parser, group)
    for option in OPTIONS:
        group.addoption(_prefixed(option.flag), dest=DEST_PREFIX + option.dest, **option.argparse_kwargs())
    parser.addini("lmeval_checkpoints", "checkpoints to evaluate when --checkpoint is not given", type="paths")
    parser.addini("lmeval_data_dir", "default for --data-dir")
    parser.addini("lmeval_corpora", "default for --corpus: NAME=SOURCE lines (paths relative to the ini file)",
                  type="linelist")
    parser.addini("lmeval_task_files", "default for --task-file", type="paths")
    parser.addini("lmeval_strict_skips", "like --strict-skips: every skipped item fails", type="bool", default=False)
    if any(Path(getattr(p, "__file__", None) or "").name == "conftest.py" for p in pluginmanager.get_plugins()):
        _add_short_names(parser)  # loaded by a conftest's pytest_plugins: the project's options are in
    else:
        setattr(parser, PENDING_SHORT_NAMES, True)  # loaded first (-p): wait for the project's conftests


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]) -> Generator[None, None, None]:
    result = yield
    if getattr(parser, PENDING_SHORT_NAMES, False):
        setattr(parser, PENDING_SHORT_NAMES, False)
        _add_short_names(parser)
    _refuse_misspelt_options(parser, args)
    return result


def _refuse_misspelt_options(parser: pytest.Parser, args: list[str]) -> None:
    """``--chekpoint x`` is a usage error naming the option meant, before pytest reads ``x`` as a
    path to collect. Every option is known by now (the project's start-up conftests have added theirs);
    an unknown name close to none of the suite's is left to pytest's own error."""
    known = _names_taken(parser)
    ours = sorted(known & {flag for o in OPTIONS for flag in (o.flag, _prefixed(o.flag))})
    for arg in args:
        if arg == "--":
            return
        name = arg.partition("=")[0] if isinstance(arg, str) else ""
        if not name.startswith("--") or name in known:
            continue
        close = closest_name(name, ours)
        if close:
            raise pytest.UsageError(f"{name}: no such option; did you mean {close}?")


def _lead_help(parser: pytest.Parser, group: pytest.OptionGroup) -> None:
    """The suite's group first in ``--help`` (before pytest's "general", not at line 435 of 724).
    pytest offers only ``after=`` a named group (used above, the fallback); its own getgroup orders
    the help by its parser's group lists, which are moved here where they are as pytest 9 keeps them."""
    groups = getattr(parser, "_groups", None)
    argparser = getattr(parser, "optparser", None)
    shown = getattr(argparser, "_action_groups", None)
    arggroup = getattr(group, "_arggroup", None)
    if not (isinstance(groups, list) and isinstance(shown, list) and group in groups and arggroup in shown):
        return
    groups.remove(group)
    groups.insert(0, group)
    shown.remove(arggroup)
    others = [getattr(other, "_arggroup", None) for other in groups[1:]]
    first = next((i for i, shown_group in enumerate(shown) if shown_group in others), len(shown))
    shown.insert(first, arggroup)


def _prefixed(flag: str) -> str:
    return FLAG_PREFIX + flag.removeprefix("--")


def _add_short_names(parser: pytest.Parser) -> None:
    """``--device`` for ``--lmeval-device``, and so on, for every name no one else has taken; the
    prefixed name then leaves ``--help`` (it still works)."""
    taken = _names_taken(parser)
    group = parser.getgroup(GROUP)
    for option in OPTIONS:
        if option.flag in taken:
            continue
        group.addoption(option.flag, dest=DEST_PREFIX + option.dest, **option.argparse_kwargs())
        action = getattr(parser, "optparser", None) and parser.optparser._option_string_actions.get(
            _prefixed(option.flag))
        if action is not None:
            action.help = argparse.SUPPRESS


def _names_taken(parser: pytest.Parser) -> set[str]:
    """Option names added to ``parser`` so far (pytest's, other plugins', conftests', ours)."""
    groups = {id(g): g for g in [getattr(parser, "_anonymous", None), *getattr(parser, "_groups", [])] if g}
    return {name for group in groups.values() for argument in group.options for name in argument.names()}


def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    from ..core.errors import RegistryError
    from . import fixtures
    from .session import SuitePlugin

    try:
        plugin = SuitePlugin(config)
    except (UsageError, RegistryError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.pluginmanager.register(plugin, fixtures.PLUGIN_NAME)
    config.pluginmanager.register(fixtures, "lmeval_fixtures.fixtures")
