"""What the items of one process read, each loaded once: checkpoints, data and baselines,
and what the scoring engine keeps for speed (``engine``: chunk choosers, encoded documents,
thread pools).

One ``Inputs`` per process and run (held by the pytest session or by the library
API's call), never module state: a second run in the same process starts
clean. Every failure is remembered and raised again for each item that asks,
so each of them fails or skips with the same one line, and the loader is not
hit again (a dead hub is not waited on twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import DataError, DataUnavailable
from ..engine.perplexity import Document
from ..engine.projection import EngineCaches
from ..models.discovery import CheckpointSpec
from ..models.loading import CheckpointCache, LoadedCheckpoint
from ..records.gates import Baselines
from ..suite.corpora import Corpus
from ..suite.sources import DataSource, Hub
from ..suite.task_rows import load_task_rows
from ..suite.tasks import Task
from .result_cache import ResultCache
from .settings import Settings


@dataclass
class CorpusSplit:
    corpus: Corpus
    split: str
    documents: list[Document]
    source: DataSource
    detokenized: bool


@dataclass
class TaskData:
    task: Task
    rows: list[dict]
    fewshot_pool: list[dict] | None
    source: DataSource


class Inputs:
    def __init__(self, settings: Settings, run_id: str | None = None) -> None:
        """``run_id``: the run whose items this process computes (result-cache entries name it)."""
        self.settings = settings
        self.checkpoints = CheckpointCache()
        self.baselines = Baselines(settings.baseline)
        self.hub = Hub()
        self.engine = EngineCaches()
        self._data: dict[tuple[str, ...], Any] = {}
        self.cache = ResultCache(settings.cache_dir, settings.cache_max_mb * 2**20, refresh=settings.refresh,
                                 run_id=run_id or settings.run_id) if settings.cache_dir else None

    def close(self) -> None:
        """The run is over: the engine's threads may end."""
        self.engine.close()

    def checkpoint(self, spec: CheckpointSpec) -> LoadedCheckpoint:
        """Raises ``CheckpointError`` with a one-line reason."""
        return self.checkpoints.load(spec, self.settings.device, self.settings.dtype)

    def release(self, spec: CheckpointSpec) -> None:
        """Free a checkpoint's memory now: a sweep holds one model at a time."""
        self.checkpoints.release(spec, self.settings.device, self.settings.dtype)

    def corpus_split(self, corpus: Corpus, split: str) -> CorpusSplit:
        """Raises ``DataUnavailable`` (skip: say what to pass) or ``DataError`` (fail: bad data)."""
        def load() -> CorpusSplit:
            try:
                originals, source = corpus.read(split, self.settings.data_dir, self.hub)
            except (DataUnavailable, DataError):
                raise
            except Exception as exc:  # a declared reader's own bug: one line naming the corpus, not a traceback
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise DataError(f"corpus {corpus.name!r}: its reader failed on {split} "
                                f"({type(exc).__name__}: {first})") from None
            if not isinstance(originals, list) or not all(isinstance(d, str) for d in originals):
                raise DataError(f"corpus {corpus.name!r}: its reader must return a list of document strings")
            documents, detokenized = corpus.documents(originals, self.settings.detokenize)
            return CorpusSplit(corpus, split, documents, source, detokenized)
        return self._once(("corpus", corpus.name, split), load)

    def task_data(self, task: Task) -> TaskData:
        """Rows of the task's evaluation split (plus its few-shot pool when --fewshot asks)."""
        def load() -> TaskData:
            rows, source = load_task_rows(task, task.split, self.settings.data_dir, self.hub)
            pool = None
            if self.settings.fewshot:
                pool, pool_source = load_task_rows(task, task.fewshot_split, self.settings.data_dir, self.hub)
                if self.settings.fewshot >= len(pool):
                    raise DataError(f"--fewshot {self.settings.fewshot}: the {task.name} {task.fewshot_split} split "
                                    f"({pool_source.description}) has {len(pool)} rows; use --fewshot "
                                    f"{max(len(pool) - 1, 0)} or fewer")
                source.fingerprints.update(pool_source.fingerprints)
            return TaskData(task, rows, pool, source)
        return self._once(("task", task.name), load)

    def baseline(self, checkpoint: str) -> dict[str, Any] | None:
        """Raises ``BaselineError`` naming the file."""
        return self.baselines.get(checkpoint)

    def _once(self, key: tuple[str, ...], load: Any) -> Any:
        if key not in self._data:
            try:
                self._data[key] = load()
            except (DataUnavailable, DataError) as exc:
                self._data[key] = exc
        found = self._data[key]
        if isinstance(found, Exception):
            raise found
        return found
