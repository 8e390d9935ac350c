"""The wings' order holds, and the contract that keeps it fails on an upward import or a circle.

``lint-imports`` runs on a copy of the package (and of pyproject.toml, where the contract is)
with one import added, so the test proves the contract can fail, not only that it passes now.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter (the test extra) not installed")


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "lmeval_fixtures", tmp_path / "lmeval_fixtures",
                    ignore=shutil.ignore_patterns("__pycache__", "reference", "schema"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS)], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_package_keeps_its_contract_and_has_no_import_circle():
    assert _lint(ROOT).returncode == 0
    listing = subprocess.run([sys.executable, str(ROOT / "scripts" / "package_map.py"), "--check"],
                             capture_output=True, text=True, timeout=300)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert "import circles: 0" in listing.stdout
    for wing in ("core/", "models/", "engine/", "suite/", "records/", "evaluation/", "plugin/", "cli/"):
        assert f"\n{wing}  (" in listing.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    root = _copy(tmp_path)
    names = root / "lmeval_fixtures" / "core" / "names.py"
    names.write_text(names.read_text() + "\nfrom ..records import gates  # upward: core must not know records\n")
    result = _lint(root)
    assert result.returncode == 1, result.stdout
    assert "lmeval_fixtures.core is not allowed to import lmeval_fixtures.records" in result.stdout
    assert "lmeval_fixtures.core.names -> lmeval_fixtures.records.gates" in result.stdout


def test_a_circle_inside_a_wing_breaks_the_acyclic_contract(tmp_path):
    root = _copy(tmp_path)
    errors = root / "lmeval_fixtures" / "core" / "errors.py"  # files.py imports errors: errors -> files closes a circle
    errors.write_text(errors.read_text() + "\nfrom . import files  # a circle inside core\n")
    result = _lint(root)
    assert result.returncode == 1, result.stdout
    assert "No import circle among the modules of a wing BROKEN" in " ".join(result.stdout.split())
    assert "lmeval_fixtures.core" in result.stdout and ".files -> .errors" in result.stdout
