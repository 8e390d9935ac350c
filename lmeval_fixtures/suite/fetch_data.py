"""Writing the local data layout from the Hugging Face hub, for offline machines and CI caches.

``fetch_data(DIR)`` loads every dataset through the same code path as a run without
``--data-dir`` (``load_task_rows`` / the corpus reader with a ``Hub``), writes it in the
README's "Data layout", reads it back through the suite's own local readers, and only then
puts the files in place. So a run with ``--data-dir DIR`` scores exactly the rows and
documents a run on the hub would, and nothing lands unless all of it was verified.

Files are made in a staging folder inside DIR (``.fetch-*``) and renamed into place at the
end: an interrupted fetch leaves no file in the layout, complete or half. ``FETCHED.json``,
written last, says what was fetched (dataset ids, configs, splits, row counts, sha256 of
each file, datasets version, time), so its presence means a fetch finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.errors import DataError, DataUnavailable, HubUnavailable, UsageError
from ..core.files import output_folder_problem, write_atomic
from .corpora import Corpus
from .registry import Registry
from .sources import DataSource, Hub
from .task_rows import load_task_rows
from .tasks import Task
from .wikitext import WIKITEXT_HUB, load_wikitext_articles, split_wikitext_articles

MANIFEST = "FETCHED.json"
MANIFEST_FORMAT = 1
# Corpora whose reader has a hub source, by reader: (hub dataset, config) and the local file it reads.
CORPUS_SOURCES: dict[Callable[..., Any], tuple[tuple[str, str], str]] = {
    load_wikitext_articles: (WIKITEXT_HUB, "wikitext-2-raw/{split}.txt"),
}
# JSON leaves these raw under ensure_ascii=False, but str.splitlines (the local reader) breaks lines at them.
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
# wiki.*.raw begin with a blank line (" "), which the hub's document-level grouping drops.
_WIKITEXT_LEAD = " \n"


@dataclass(frozen=True)
class Planned:
    """One file of the layout: what declares it, which hub dataset fills it, where it goes."""

    source: Task | Corpus
    hub: tuple[str, str]
    split: str
    path: str  # relative to the destination folder

    @property
    def kind(self) -> str:
        return "task" if isinstance(self.source, Task) else "corpus"

    @property
    def what(self) -> str:
        return f"{self.hub[0]}/{self.hub[1]} {self.split}"


@dataclass(frozen=True)
class Fetched:
    """A file written to the staging folder and verified: its manifest entry."""

    planned: Planned
    count: int
    sha256: str
    hub_fingerprint: str | None


def fetch_data(dest: Path, *, hub: Hub | None = None, tasks: Iterable[str] | None = None,
               corpora: Iterable[str] | None = None, overwrite: bool = False,
               progress: Callable[[str], None] | None = None, registry: Registry | None = None) -> list[Path]:
    """Write the local data layout (what ``--data-dir`` reads) under ``dest`` from the hub.

    ``tasks`` / ``corpora`` name the registry's tasks and corpora to fetch (default: every one
    with a hub source; ``registry`` defaults to ``Registry.default()``). Existing files are
    refused (``FileExistsError`` naming the file) unless ``overwrite``. Hub failures raise
    ``HubUnavailable`` and bad data ``DataError``, one line each, and then no file is written.
    ``progress`` receives one line per step. Returns the files written, the manifest last.
    """
    dest = Path(dest)
    hub = hub if hub is not None else Hub()
    say = progress or (lambda line: None)
    plan = plan_files(registry if registry is not None else Registry.default(), tasks, corpora)
    targets = [dest / p.path for p in plan] + [dest / MANIFEST]
    problem = output_folder_problem(dest)
    if problem:
        raise UsageError(problem)
    if not overwrite:
        refuse_existing(targets)
    dest.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest))
    try:
        fetched = [fetch_one(p, stage, hub, say) for p in plan]
        if not overwrite:
            refuse_existing(targets)
        (dest / MANIFEST).unlink(missing_ok=True)  # a manifest describes a finished fetch, never a half-replaced one
        written = [land(stage / f.planned.path, dest / f.planned.path) for f in fetched]
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    write_atomic(dest / MANIFEST, json.dumps(manifest(fetched), indent=2) + "\n")
    say(f"wrote {dest / MANIFEST}")
    return [*written, dest / MANIFEST]


def plan_files(registry: Registry, tasks: Iterable[str] | None, corpora: Iterable[str] | None) -> list[Planned]:
    """The files to write: each task's evaluation and few-shot splits, each corpus's splits.
    Without a selection, everything that has a hub source; a named one without is an error."""
    plan: list[Planned] = []
    for task in select(registry.tasks, tasks, "task", lambda t: bool(t.hub and t.hub[0])):
        for split in dict.fromkeys((task.split, task.fewshot_split)):
            plan.append(Planned(task, task.hub, split, task.local_file(split)))
    for corpus in select(registry.corpora, corpora, "corpus", lambda c: c.read in CORPUS_SOURCES):
        hub_id, pattern = CORPUS_SOURCES[corpus.read]
        plan.extend(Planned(corpus, hub_id, split, pattern.format(split=split)) for split in corpus.splits)
    if not plan:
        raise DataError("fetch-data: nothing to fetch (no task or corpus with a hub source selected)")
    return plan


def select(declared: dict[str, Any], names: Iterable[str] | None, what: str,
           fetchable: Callable[[Any], bool]) -> list[Any]:
    """The declarations named (all fetchable ones when ``names`` is None), in declaration order."""
    if names is None:
        return [d for d in declared.values() if fetchable(d)]
    chosen = list(dict.fromkeys(names))
    for name in chosen:
        if name not in declared:
            raise DataError(f"fetch-data: unknown {what} {name!r} (declared: {', '.join(declared) or 'none'})")
        if not fetchable(declared[name]):
            raise DataError(f"fetch-data: {what} {name!r} has no hub source; write its files by hand")
    return [declared[name] for name in chosen]


def refuse_existing(paths: list[Path]) -> None:
    """Never replace data silently: the first existing file is named, with the way to replace it."""
    for path in paths:
        if os.path.lexists(path):
            raise FileExistsError(f"{path} exists; pass overwrite=True (fetch-data --overwrite) to replace it")


def fetch_one(planned: Planned, stage: Path, hub: Hub, say: Callable[[str], None]) -> Fetched:
    """Load one split from the hub as a run would, write it under ``stage``, read it back locally."""
    say(f"loading {planned.what} from the hub")
    served, hub_source = from_hub(planned, hub)
    write_atomic(stage / planned.path, render(planned, served))
    read_back, local_source = read_local(planned, stage, hub)
    check_same(planned, served, read_back)
    say(f"wrote {planned.path} ({len(served)} {'rows' if planned.kind == 'task' else 'documents'})")
    return Fetched(planned, len(served), local_source.fingerprints[planned.path],
                   next(iter(hub_source.fingerprints.values()), None))


def from_hub(planned: Planned, hub: Hub) -> tuple[list, DataSource]:
    """Rows or documents through the suite's own hub path, so fetched data equals hub data."""
    try:
        if isinstance(planned.source, Task):
            return load_task_rows(planned.source, planned.split, None, hub)
        return planned.source.read(planned.split, None, hub)
    except DataUnavailable as exc:
        reason = getattr(hub, "failure", None) or str(exc)
        raise HubUnavailable(f"fetch-data: {planned.what} could not be loaded ({reason}); run it where the hub "
                             f"can be reached (HF_HUB_OFFLINE and HF_DATASETS_OFFLINE unset), or write "
                             f"{planned.path} by hand (README, 'Data layout')") from None


def render(planned: Planned, served: list) -> str:
    """The file's text: JSON Lines for task rows, the raw WikiText file for a corpus."""
    return jsonl(served, planned.what) if planned.kind == "task" else wikitext_file(served)


def jsonl(rows: list[dict], where: str) -> str:
    """One JSON object per line, UTF-8 kept readable (as the hand-made copies are), keys in the
    hub's order; characters that would split a line for the reader are escaped."""
    lines = []
    for number, row in enumerate(rows):
        try:
            line = json.dumps(row, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise DataError(f"fetch-data: {where} row {number} cannot be written as JSON ({exc})") from None
        lines.append(line.translate(_LINE_BREAKS) + "\n")
    return "".join(lines)


def wikitext_file(pages: list[str]) -> str:
    """The articles joined as in the raw file, with its blank first line put back when the
    grouping allows it, so the file has the bytes of ``wiki.*.raw`` (and the same fingerprint
    as a hand-made copy); without it otherwise. Either way it regroups into the same articles."""
    joined = "\n".join(pages)
    with_lead = _WIKITEXT_LEAD + joined
    return with_lead if split_wikitext_articles(with_lead) == pages else joined


def read_local(planned: Planned, folder: Path, hub: Hub) -> tuple[list, DataSource]:
    """The written file as a run with ``--data-dir folder`` reads it."""
    if isinstance(planned.source, Task):
        return load_task_rows(planned.source, planned.split, folder, hub)
    return planned.source.read(planned.split, folder, hub)


def check_same(planned: Planned, served: list, read_back: list) -> None:
    """What the local reader sees must be what the hub served, item for item."""
    if served == read_back:
        return
    if len(served) != len(read_back):
        detail = f"{len(read_back)} items read back, {len(served)} served"
    else:
        detail = f"item {next(i for i, (a, b) in enumerate(zip(served, read_back, strict=True)) if a != b)} differs"
    raise DataError(f"fetch-data: {planned.path} does not read back as {planned.what} ({detail}); nothing written")


def land(staged: Path, target: Path) -> Path:
    """Move a verified file into place (one rename, same file system)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    return target


def manifest(fetched: list[Fetched]) -> dict[str, Any]:
    """What CI keys a cache on and checks: ``content_sha256`` depends on the files only, not the time."""
    files = {f.planned.path: {"kind": f.planned.kind, "name": f.planned.source.name, "dataset": f.planned.hub[0],
                              "config": f.planned.hub[1], "split": f.planned.split, "rows": f.count,
                              "sha256": f.sha256, "hub_fingerprint": f.hub_fingerprint} for f in fetched}
    listing = "".join(f"{sha['sha256']}  {path}\n" for path, sha in sorted(files.items()))
    return {"format": MANIFEST_FORMAT, "fetched_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "datasets_version": datasets_version(),
            "content_sha256": hashlib.sha256(listing.encode("utf-8")).hexdigest(), "files": files}


def datasets_version() -> str | None:
    """The ``datasets`` release that loaded the data (its parsing can change between releases)."""
    try:
        import datasets
    except ImportError:
        return None
    return datasets.__version__
