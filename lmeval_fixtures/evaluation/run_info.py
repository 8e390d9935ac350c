"""Facts about a run that every record carries: identity, code version, environment."""

from __future__ import annotations

import platform
import secrets
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

TRACKED_PACKAGES = ("lmeval-fixtures", "torch", "tokenizers", "safetensors", "datasets", "pytest",
                    "pytest-benchmark", "pytest-xdist", "jsonschema", "transformers")


def process_command(argv: list[str] | None = None) -> list[str]:
    """The command line this process was started with, as a person would type it again: the program
    without its folder (``pytest``, ``lmeval-fixtures``, ``train.py``; ``python -m pytest`` for a
    module run with -m), then its arguments. The suite's own arguments (``args``) say what pytest or
    ``evaluate`` was handed; this says what the person ran (a training script calling ``evaluate``)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv or not argv[0]:
        return ["python", *argv[1:]]
    program = Path(argv[0])
    name = f"python -m {program.parent.name}" if program.name == "__main__.py" else program.name
    return [name, *argv[1:]]


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def git_commit(folder: Path) -> str | None:
    """HEAD of the repository holding ``folder``, with ``+dirty`` when files differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment(device: str, dtype: str) -> dict[str, Any]:
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor(),
        "dtype": dtype,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "libraries": library_versions(),
    }


def run_metadata(root: Path, device: str, dtype: str, seed: int, run_id: str | None = None,
                 experiment_name: str | None = None, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {
        "run_id": run_id or new_run_id(now),
        "experiment_name": experiment_name,
        "timestamp": now.isoformat(timespec="seconds"),
        "git_commit": git_commit(root),
        "seed": seed,
        "environment": environment(device, dtype),
        "settings": settings or {},
    }
