"""Every third-party import of the package is declared in pyproject.toml (deptry, as .ci/run runs it): PyYAML
and Jinja2 were imported by task files while arriving only through other packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_deptry_finds_no_undeclared_or_unused_dependency():
    pytest.importorskip("deptry")
    deptry = shutil.which("deptry", path=str(Path(sys.executable).parent)) or "deptry"
    done = subprocess.run([deptry, "lmeval_fixtures"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("module, requirement", [("yaml", "PyYAML"), ("jinja2", "Jinja2"), ("filelock", "filelock")])
def test_the_modules_task_files_and_the_run_lock_import_are_declared(module, requirement):
    text = (ROOT / "pyproject.toml").read_text()
    dependencies = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert f'"{requirement}>=' in dependencies, f"{module} is imported by the package: declare {requirement}"
