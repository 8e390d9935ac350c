"""A plain pip install: the built wheel in a fresh virtual environment runs the suite from any folder, by the
``lmeval-fixtures`` command and by ``pytest --pyargs``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from ..helpers import ROOT, SUITE_PLUGIN, write_native_checkpoint, write_wikitext


def _venv_with_wheel(tmp: Path) -> Path:
    """A fresh virtual environment holding only the built wheel; the dependencies (torch, pytest,
    ...) are borrowed from this interpreter's site-packages through a .pth line, which adds
    their folder to sys.path without running its .pth files (so this checkout's editable
    install is not seen)."""
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist)], check=True, capture_output=True)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "borrowed-deps.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    wheel = next(dist.glob("lmeval_fixtures-*.whl"))
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, capture_output=True)
    return python


def test_a_wheel_in_a_fresh_venv_runs_the_suite_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_PLUGINS")
    monkeypatch.delenv("PYTHONPATH", raising=False)  # a checkout on it (a worktree's run) would shadow the wheel
    python = _venv_with_wheel(tmp_path)
    work = tmp_path / "elsewhere"
    write_wikitext(work / "data")
    write_native_checkpoint(work / "ck" / "a", seed=1)
    where = subprocess.run([str(python), "-c", "import lmeval_fixtures.benchmarks as b; print(b.__file__)"],
                           cwd=work, check=True, capture_output=True, text=True).stdout
    assert str(tmp_path / "venv") in where  # the wheel's copy, not this checkout
    script = python.parent / ("lmeval-fixtures.exe" if os.name == "nt" else "lmeval-fixtures")
    runs = {
        "cli": [str(script), "run", "--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity",
                "--run-id", "cli"],
        "pyargs": [str(python), "-m", "pytest", "-p", SUITE_PLUGIN, "--pyargs", "lmeval_fixtures.benchmarks",
                   "--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity", "--run-id", "pyargs",
                   "-p", "no:cacheprovider"],
    }
    for run_id, command in runs.items():
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "2 passed" in done.stdout
        record = json.loads((work / "reports" / run_id / "a" / "metrics.json").read_text())
        assert record["val_perplexity"] is not None and record["test_perplexity"] is not None
    installed = Path(where).parent
    assert not (installed / "reports").exists() and not (installed / ".pytest_cache").exists()
