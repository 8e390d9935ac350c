"""What the README promises, the package does (issue 27): every extra it names exists and every extra exists in
it; pictures are promised with the extra that draws them; `pytest --lf` works in the checkout; the root conftest
describes how the plugin is loaded as it is (no pytest11 entry point)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def extras() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def test_the_readme_names_every_extra_and_no_other():
    line = README.split("Extras: ", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"`([a-z]+)` \(", line)) | set(re.findall(r"`([a-z]+)`;", line))
    assert named == extras()


def test_pictures_are_promised_with_the_plot_extra():
    line = README.split("Extras: ", 1)[1].split("\n\n", 1)[0]
    for picture in sorted(set(re.findall(r"[a-z_]+\.png", README))):
        assert picture in line and "`plot`" in line, f"README shows {picture} without saying it needs the plot extra"
    assert "matplotlib" in " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                                    ["optional-dependencies"]["plot"])


def test_last_failed_works_in_the_checkout(tmp_path):
    """``addopts = -p no:cacheprovider`` made ``pytest --lf`` a silent no-op: no cache, every test run again."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "--lf", "-p", "no:xdist",
                           "-o", f"cache_dir={tmp_path}", "tests/core/test_numerics.py"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"cachedir: {tmp_path}" in done.stdout and "run-last-failure" in done.stdout


def test_the_root_conftest_says_how_the_plugin_is_loaded():
    import ast

    docstring = ast.get_docstring(ast.parse((ROOT / "conftest.py").read_text()))
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("entry-points", {})
    assert "pytest11" not in entry_points
    assert "no ``pytest11`` entry point" in docstring and "has already registered" not in docstring
