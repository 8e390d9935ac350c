"""Publishing a run's records as the baseline later runs are gated against.

A baseline decides whether CI passes, so it must never be half written (a gate reading
a folder mid-copy would compare against a mix of two runs) and ``--update-baseline``
must never replace a folder that is not a baseline (a typo pointing at the source tree
or the report folder would otherwise delete it). So the new baseline is built beside
the old one and swapped in with a rename, and only a new folder, or one holding
nothing but ``<checkpoint>/`` record files, may be replaced. A run replaces the baselines of
the checkpoints it measured and keeps the others': a CI job over one checkpoint must not
delete its neighbours' baselines.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from ..core.errors import BaselineError, BaselineTargetError
from ..core.files import REPORT_FILE_LIMIT_BYTES, read_regular_text, write_atomic

BASELINE_FILES = ("metrics.json", "summary.md", "samples-*.jsonl")


def baseline_target_problem(run_folder: Path, target: Path) -> str | None:
    """Why ``target`` must not be replaced by a baseline (one line), or None. Only a new folder or
    an earlier baseline folder (``<checkpoint>/`` folders of record files, nothing else) is
    replaced; never the run's own folder or a folder holding it (the report folder)."""
    run, where = run_folder.resolve(), target.resolve()
    if run == where or where in run.parents:
        return f"{target}: holds this run's reports ({run_folder}); pass a folder of its own"
    if not target.exists():
        return None
    if not target.is_dir():
        return f"{target}: exists and is not a folder"
    for entry in sorted(target.iterdir()):
        files = list(entry.iterdir()) if entry.is_dir() and not entry.is_symlink() else None
        if files is None or not files or not all(
                f.is_file() and any(f.match(p) for p in BASELINE_FILES) for f in files):
            return (f"{target}: not a baseline folder (it holds {entry.name}); pass a new folder or one "
                    "--update-baseline wrote")
    return None


def publish_baseline(run_folder: Path, names: list[str], target: Path) -> list[Path]:
    """Copy the checkpoints' records (metrics.json, summary.md, samples) into ``target`` as a
    baseline folder (``target/<checkpoint>/metrics.json``), replacing it all at once: the
    new folder is built beside it and renamed into place, so a gate never reads half of one.
    Per checkpoint: the records of ``names`` are added or replaced, every other checkpoint's
    baseline already there is kept (to drop one, delete its folder)."""
    refusal = baseline_target_problem(run_folder, target)
    if refusal:
        raise BaselineTargetError(refusal)
    target.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    staging = target.parent / f".{target.name}.new-{token}"
    written = []
    try:
        kept = sorted(entry for entry in target.iterdir() if entry.name not in names) if target.is_dir() else []
        for entry in kept:  # another checkpoint's baseline: kept, never dropped by a run that did not measure it
            shutil.copytree(entry, staging / entry.name)
        for name in names:
            for pattern in BASELINE_FILES:
                for source in sorted((run_folder / name).glob(pattern)):
                    destination = staging / name / source.name
                    # bounded, and never waiting on a FIFO someone left beside the run's own files
                    write_atomic(destination, read_regular_text(source, BaselineError, "report file",
                                                                REPORT_FILE_LIMIT_BYTES))
                    written.append(target / name / source.name)
        old = target.parent / f".{target.name}.old-{token}"
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
