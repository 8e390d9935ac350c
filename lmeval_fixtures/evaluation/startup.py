"""The start of a run, written once for the pytest plugin and ``lmeval_fixtures.evaluate``.

``start_run`` validates the options into ``Settings``, lets the caller complete them
(a copy: an xdist worker's device, the library's checkpoint names), builds the registry
(the default or the caller's, the caller's own declarations such as a conftest's
``pytest_lmeval_register``, then ``--corpus`` and ``--task-file``) and checks the prompt
set and few-shot count against it, makes the ``Run`` (with its metadata, except in an
xdist worker, which only records and ships fragments) and its figure table, checks a
``--compare-by`` that was chosen against that table (the default may be absent: a run
of one's own tasks measures no perplexity), and opens this process's ``Inputs``. What is
particular to pytest (its ini file, its hooks, the worker's share of threads) comes
in as arguments and callbacks; nothing here imports pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import UsageError
from ..suite.declarations import declare
from ..suite.figures import Figure, resolve_figure_key, sortable_keys
from ..suite.registry import Registry
from .gating import Gates
from .inputs import Inputs
from .options import default
from .run import Finished, Run
from .run_info import process_command, run_metadata
from .settings import Settings, settings_from_options


@dataclass(frozen=True)
class IniDefaults:
    """What a pytest ini file gives a run where the options do not (the library's calls have none);
    relative paths are relative to ``folder``, the ini file's."""

    checkpoints: list[str] = field(default_factory=list)
    data_dir: str | None = None
    corpora: list[str] = field(default_factory=list)
    task_files: list[str] = field(default_factory=list)
    strict_skips: bool = False
    folder: Path | None = None


@dataclass(frozen=True)
class RunContext:
    """One run as one process sees it: its settings, registry, ``Run`` (the fragment recorder),
    figure table, inputs (checkpoints, data, baselines, scoring caches) and gates."""

    settings: Settings
    registry: Registry
    run: Run
    figures: list[Figure]
    inputs: Inputs
    gates: Gates

    @property
    def environment(self) -> dict[str, Any]:
        """Device and dtype of this run, as a baseline's ``environment`` records them."""
        return self.gates.environment

    def close(self) -> None:
        """The run is over in this process: the scoring engine's threads may end."""
        self.inputs.close()


def start_run(options: Any, *, report_root: Path, source_root: Path, args: list[str],
              ini: IniDefaults | None = None, registry: Registry | None = None,
              register: Callable[[Registry], None] | None = None,
              complete: Callable[[Settings], Settings] | None = None,
              is_worker: bool = False, worker_run_id: str | None = None) -> RunContext:
    """Start a run from ``options`` (every option by its ``dest``, as ``options.option_values``
    gives them). Raises ``UsageError`` (naming the option) for anything that cannot work.

    ``report_root``: where ``reports/`` goes by default; ``source_root``: the folder whose git
    commit the record names; ``args``: how the run was asked for (the record's ``args``).
    ``registry``: the tasks and corpora to start from (the shipped suite by default);
    ``register(registry)``: the caller's declarations, before the options'.
    ``complete(settings)``: a copy of the validated settings with what only the caller knows
    (``dataclasses.replace``), before anything reads them. ``is_worker``: an xdist worker,
    which records no metadata; its items compute for ``worker_run_id`` (the controller's run).
    """
    ini = ini or IniDefaults()
    settings = settings_from_options(options, ini_checkpoints=ini.checkpoints, ini_data_dir=ini.data_dir,
                                     rootpath=report_root, ini_corpora=ini.corpora, ini_task_files=ini.task_files,
                                     ini_dir=ini.folder, ini_strict_skips=ini.strict_skips)
    if complete is not None:
        settings = complete(settings)
    registry = registry if registry is not None else Registry.default()
    if register is not None:
        register(registry)
    registry = declare(registry, settings.corpora, settings.task_files)  # after the caller's: a clash names the option
    registry.check_prompts(settings.prompts)
    registry.check_fewshot(settings.fewshot)
    metadata: dict[str, Any] = {}
    if not is_worker:
        metadata = run_metadata(source_root, settings.device, settings.dtype, settings.seed, settings.run_id,
                                settings.experiment_name, settings.as_record())
        metadata["args"] = list(args)
        metadata["command"] = process_command()
    run = Run(metadata, registry, settings.latency_shapes)
    figures = run.figures()
    sort_key = resolve_figure_key(settings.compare_by, figures)  # a key, or another name of one
    if sort_key not in sortable_keys(figures) and settings.compare_by != default("compare_by"):
        raise UsageError(f"--compare-by {settings.compare_by}: not a figure of this run; choose one of "
                         f"{', '.join(sortable_keys(figures))}")
    inputs = Inputs(settings, run_id=worker_run_id if is_worker else run.run_id)
    return RunContext(settings, registry, run, figures, inputs, Gates(inputs, figures, settings))


def finish_run(run: Run, settings: Settings, *, interrupted: bool = False, history: bool = True) -> Finished:
    """The end of a run, written once for the pytest plugin and ``evaluate()``: the reports into
    ``<report-dir>/<run id>`` with a history line each, or, with --merge-into, into that folder
    (any run's, no history line: the lines were written when it ran)."""
    merge_into = settings.merge_into
    return run.finish(merge_into or settings.report_dir / run.run_id,
                      history=None if merge_into or not history else settings.report_dir / "history.jsonl",
                      compare_by=settings.compare_by, interrupted=interrupted, baseline=settings.update_baseline,
                      run_id=None if merge_into else run.run_id, track=settings.track)
