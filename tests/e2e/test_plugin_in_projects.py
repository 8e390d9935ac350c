"""The plugin in other projects, through pytester: quiet where nobody loaded it, a project's own --device kept
whichever way the plugin loads, every option answering to --lmeval-NAME, no progress line off a terminal."""

from __future__ import annotations

import pytest

from lmeval_fixtures.evaluation.options import OPTIONS

from ..helpers import SUITE_PLUGIN

OWN_DEVICE_CONFTEST = '''
def pytest_addoption(parser):
    parser.addoption("--device", default="abacus", help="this project's own device")
    parser.addoption("--seed", type=int, default=7)

def pytest_configure(config):
    config.own_device = config.getoption("device")
'''


OWN_DEVICE_TEST = '''
def test_own_option(pytestconfig):
    assert pytestconfig.getoption("device") == pytestconfig.own_device
'''


def test_an_unrelated_project_with_its_own_device_option_is_untouched(pytester, monkeypatch):
    """No pytest11 entry point: installed, the plugin is not loaded where nobody asked for it."""
    monkeypatch.delenv("PYTEST_PLUGINS")
    pytester.makeconftest(OWN_DEVICE_CONFTEST)
    pytester.makepyfile(test_own=OWN_DEVICE_TEST)
    result = pytester.runpytest_subprocess("--device", "gpu9", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "lmeval" not in result.stdout.str()


@pytest.mark.parametrize("load", ["-p", "conftest", "PYTEST_PLUGINS"])
def test_a_project_using_the_suite_keeps_its_own_device_option(pytester, monkeypatch, load):
    """Whichever loads first, the project's --device stays the project's; the suite's is
    then --lmeval-device, and its other options keep their short names."""
    monkeypatch.delenv("PYTEST_PLUGINS")
    conftest = OWN_DEVICE_CONFTEST
    args = ["--device", "gpu9", "--seed", "3"]
    if load == "-p":
        args = ["-p", SUITE_PLUGIN, *args]
    elif load == "conftest":
        conftest += f"\npytest_plugins = [{SUITE_PLUGIN!r}]\n"
    else:
        monkeypatch.setenv("PYTEST_PLUGINS", SUITE_PLUGIN)
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_own=OWN_DEVICE_TEST + '''
def test_suite_options(pytestconfig):
    assert pytestconfig.getoption("lmeval_device") == "cpu"
    assert pytestconfig.getoption("lmeval_dtype") == "bfloat16"
    assert pytestconfig.getoption("lmeval_max_samples") == 4
''')
    result = pytester.runpytest_subprocess(*args, "--lmeval-device", "cpu", "--dtype", "bfloat16",
                                           "--max-samples", "4", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_every_option_answers_to_its_prefixed_name(pytester):
    help_text = pytester.runpytest("--help").stdout.str()
    assert "each option is also --lmeval-NAME" in help_text
    assert all(option.flag in help_text for option in OPTIONS)
    pytester.makepyfile(test_x="""
def test_x(pytestconfig):
    assert pytestconfig.getoption("lmeval_run_id") == "x"
    assert pytestconfig.getoption("lmeval_max_samples") == 3
    assert pytestconfig.getoption("lmeval_strict_skips") is True
""")
    pytester.runpytest("--lmeval-run-id=x", "--lmeval-max-samples", "3", "--lmeval-strict-skips",
                       "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_no_progress_when_output_is_not_a_terminal(pytester):
    pytester.makeconftest(f"pytest_plugins = [{SUITE_PLUGIN!r}]")
    pytester.makepyfile(test_p="def test_p(progress):\n    assert progress('x') is None\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
