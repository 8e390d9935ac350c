"""One evaluation run, free of pytest: it collects what items report and writes the reports.

A ``Run`` holds the run's metadata (id, time, code version, environment,
settings) and its table of figures, absorbs fragments and item outcomes, knows
which items were expected (one that never reports is listed as "not run"), and
``finish()``es: folds in earlier records when asked (``--merge-into``, the
``merge`` command), validates, writes each checkpoint's ``metrics.json``,
``summary.md`` and samples, the comparison and the history line, and says what
it wrote and what failed. The pytest plugin, ``lmeval-fixtures merge`` and
``lmeval_fixtures.evaluate`` all end through ``finish()``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import LmevalError
from ..core.files import run_folder_lock
from ..records.baselines import publish_baseline
from ..records.comparison import write_comparison
from ..records.fragments import Fragment, samples_of, without_samples
from ..records.history import append_history
from ..records.record import deep_merge, empty_record, finalise, merge_records
from ..records.store import read_run_folder, write_checkpoint_report
from ..records.summary import headline
from ..records.tracking import TrackSpec, track_records
from ..suite.figures import Figure, resolve_figure_key, sortable_keys
from ..suite.registry import Registry

Samples = dict[str, list[dict[str, Any]]]


@dataclass
class Finished:
    """What ``Run.finish`` wrote, the one-line headline per checkpoint, every failure to write, and
    the neighbours it could not read (another checkpoint's unreadable files: named, left as they are)."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)
    headlines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    measured: list[str] = field(default_factory=list)  # the checkpoints this invocation measured (not folded in)
    tracked: list[str] = field(default_factory=list)  # the runs logged to --track's tracker
    nothing_measured: str | None = None  # why nothing was written: every item skipped (the first reason)
    warnings: list[str] = field(default_factory=list)  # files of other checkpoints left alone, each named


class Run:
    def __init__(self, metadata: dict[str, Any], registry: Registry | None = None,
                 latency_shapes: list[tuple[int, int]] | None = None) -> None:
        """``metadata`` as ``run_info.run_metadata`` makes it (empty in an xdist worker, which
        only records and ships fragments)."""
        self.metadata = metadata
        self.registry = registry or Registry.default()
        self.latency_shapes = list(latency_shapes or [])
        self.fragments: list[tuple[str, str, Fragment]] = []
        self.pending: list[tuple[str, str, Fragment]] = []
        self.outcomes: dict[str, dict[str, dict[str, Any]]] = {}
        self.expected: dict[str, set[str]] = {}
        self.earlier: dict[str, tuple[dict[str, Any], Samples]] = {}

    @property
    def run_id(self) -> str:
        return self.metadata["run_id"]

    def figures(self, records: list[dict[str, Any]] = ()) -> list[Figure]:
        return self.registry.figure_table(records, self.latency_shapes)

    # ------------------------------------------------------------ what items report

    def record(self, checkpoint: str, item: str, fragment: Fragment) -> None:
        """Queue a fragment made in this process; ``take_pending`` hands it on (under pytest
        with the item's report, so it reaches the controller even if a worker dies later)."""
        self.pending.append((checkpoint, item, copy.deepcopy(fragment)))

    def take_pending(self) -> list[tuple[str, str, Fragment]]:
        taken, self.pending = self.pending, []
        return taken

    def absorb(self, fragments: list[tuple[str, str, Fragment]] | list[list[Any]]) -> None:
        self.fragments.extend((name, item, fragment) for name, item, fragment in fragments)

    def expect(self, checkpoint: str, item: str) -> None:
        """An item collected to run; one that never reports is listed as "not run"."""
        self.expected.setdefault(checkpoint, set()).add(item)

    def add_outcome(self, checkpoint: str, item: str, outcome: str, reason: str | None = None,
                    duration_s: float | None = None) -> None:
        self.outcomes.setdefault(checkpoint, {})[item] = {
            "outcome": outcome, "reason": reason, "duration_s": duration_s,
        }

    def outcome(self, checkpoint: str, item: str) -> dict[str, Any] | None:
        return self.outcomes.get(checkpoint, {}).get(item)

    def adopt(self, earlier: dict[str, Any], samples: Samples | None = None) -> None:
        """An earlier record of a checkpoint (an earlier invocation, a shard): this run's
        figures are folded into it at ``finish``; two adopted records of one checkpoint merge."""
        name = earlier["checkpoint"]["name"]
        if name in self.earlier:
            mine, mine_samples = self.earlier[name]
            earlier = merge_records(mine, earlier, self.figures([mine, earlier]))
            samples = mine_samples | (samples or {})
        self.earlier[name] = (earlier, dict(samples or {}))

    # ------------------------------------------------------------ records

    def checkpoint_names(self) -> list[str]:
        names = {name for name, _, _ in self.fragments} | set(self.outcomes) | set(self.expected)
        return sorted(names)

    def samples(self, checkpoint: str) -> Samples:
        """Per-example rows (``--log-samples``) by set name, e.g. ``smallbench-sst2``: kept out of the record."""
        found: Samples = {}
        for name, _, fragment in sorted(self.fragments, key=lambda f: f[1]):
            if name == checkpoint:
                found.update(samples_of(fragment))
        return found

    def records(self, interrupted: bool = False) -> dict[str, dict[str, Any]]:
        """One record per checkpoint from this run's fragments, merged in item-id order."""
        records: dict[str, dict[str, Any]] = {}
        for name in self.checkpoint_names():
            built = empty_record(self.metadata, name)
            for _, _, fragment in sorted((f for f in self.fragments if f[0] == name), key=lambda f: f[1]):
                deep_merge(built, without_samples(fragment))
            items = dict(self.outcomes.get(name, {}))
            missing = sorted(self.expected.get(name, set()) - items.keys())
            for item in missing:
                items[item] = {"outcome": "not run", "reason": "the run ended before this item reported",
                               "duration_s": None}
            built["items"] = dict(sorted(items.items()))
            built["complete"] = not interrupted and not missing
            records[name] = built
        figures = self.figures(list(records.values()))
        return {name: finalise(built, figures) for name, built in records.items()}

    # ------------------------------------------------------------ the end

    def ran(self) -> bool:
        """Whether any item reported (``--collect-only``, ``--fixtures`` or an empty selection run none)."""
        return bool(self.outcomes or self.fragments)

    def nothing_measured(self) -> str | None:
        """When items reported and every one skipped (no --data-dir and no hub, say): a one-line
        reason naming the first skip; None when anything passed, failed or errored."""
        outcomes = [outcome for items in self.outcomes.values() for outcome in items.values()]
        if not outcomes or any(outcome["outcome"] != "skipped" for outcome in outcomes):
            return None
        first = next((o["reason"] for o in outcomes if o.get("reason")), None) or "no reason given"
        return (f"lmeval-fixtures: every selected item ({len(outcomes)}) skipped, so nothing was measured and no "
                f"report or history line was written; the first reason: {first}")

    def finish(self, out: Path, *, compare_by: str, history: Path | None = None, interrupted: bool = False,
               baseline: Path | None = None, run_id: str | None = None, track: TrackSpec | None = None) -> Finished:
        """Write every checkpoint's report into ``out/<checkpoint>/``, the comparison when there
        are several, one history line per checkpoint (when ``history`` is given), and, when
        ``baseline`` is given and every item passed, the records as that baseline folder.

        Records already in ``out`` (the same run id used again: a second shard, a second
        invocation, a run at the same time) are folded in under a lock, never replaced. A
        report that cannot be written (an ``LmevalError``: a record that does not validate or
        merge, a baseline folder that must not be replaced; or the operating system's
        ``OSError``: a full disk, a folder in the way) is listed in ``errors`` and the others
        are still written: nothing already computed is lost to one bad record or one full
        disk. Any other exception is a bug and propagates with its traceback.
        Nothing is written when no item ran, nor when every item skipped (``nothing_measured``
        says why: a report and a history line of a run that measured nothing would read as a
        result). ``run_id``: the run the folder must belong to (a
        folder holding another run is refused, not relabelled); None to fold into any run
        (``--merge-into``).
        """
        if not self.ran() and not self.earlier:
            return Finished()
        why = self.nothing_measured()
        if why is not None:
            return Finished(nothing_measured=why)
        try:
            with run_folder_lock(out):
                earlier_records, unreadable = read_run_folder(out)
                others = sorted({r["run_id"] for r, _ in earlier_records} - {run_id}) if run_id else []
                if others:
                    return Finished(errors=[f"lmeval-fixtures: {out} holds run {others[0]}, not {run_id}; nothing "
                                            "written there: pass another folder (or --merge-into to join it)"])
                for earlier, samples in earlier_records:
                    self.adopt(earlier, samples)
                done = self._write(out, compare_by, history, interrupted, unreadable)
        except (OSError, LmevalError) as exc:  # no folder can be made there; a record that cannot be merged
            return Finished(errors=[f"lmeval-fixtures: could not write the reports into {out}: {exc}"])
        if baseline is not None and done.records:
            self._write_baseline(out, baseline, done)
        if track is not None and done.measured:
            self._track(track, done)
        return done

    def _track(self, track: TrackSpec, done: Finished) -> None:
        """Each record this invocation measured, one run of the tracker (a shard's records once, by the shard that
        measured them). After the reports: a tracker that fails loses none of them."""
        records = [done.records[name] for name in done.measured]
        try:
            done.tracked = track_records(records, self.figures(records), track)
        except LmevalError as exc:  # MissingExtra: the tracker's library is not installed
            done.errors.append(f"lmeval-fixtures: --track {track.backend}: {exc}")
        except Exception as exc:  # the tracker's own failures (no login, no network): not ours, but said
            done.errors.append(f"lmeval-fixtures: --track {track.backend}: could not log the run: "
                               f"{type(exc).__name__}: {exc}")

    def _write_baseline(self, out: Path, target: Path, done: Finished) -> None:
        unsound = sorted(f"{item} ({outcome['outcome']})" for outcomes in self.outcomes.values()
                         for item, outcome in outcomes.items() if outcome["outcome"] != "passed")
        incomplete = [name for name, r in done.records.items() if not r.get("complete", True)]
        if unsound or incomplete or done.errors:
            why = f"{len(unsound)} item(s) did not pass: {', '.join(unsound[:3])}" if unsound else \
                "the run is incomplete" if incomplete else "reports could not be written"
            done.errors.append(f"lmeval-fixtures: baseline {target} not updated: {why}")
            return
        try:
            done.paths += publish_baseline(out, sorted(done.records), target)
        except (OSError, LmevalError) as exc:  # BaselineTargetError, a full disk
            done.errors.append(f"lmeval-fixtures: could not write the baseline {target}: {exc}")

    def _write(self, out: Path, compare_by: str, history: Path | None, interrupted: bool,
               unreadable: dict[str, str]) -> Finished:
        done = Finished()
        fresh = self.records(interrupted)
        for name, problem in unreadable.items():
            if name in fresh:  # its figures cannot be merged, and are never replaced in silence: both kept apart
                del fresh[name]
                done.errors.append(f"lmeval-fixtures: {out / name / 'metrics.json'} kept as it is and this run's "
                                   f"{name} figures not written: it cannot be merged ({problem}); pass another "
                                   "--run-id or --report-dir")
            else:
                done.warnings.append(f"lmeval-fixtures: {out / name} left as it is, and out of comparison.md: "
                                     f"{problem}")
        combined: dict[str, tuple[dict[str, Any], Samples]] = {}
        for name in sorted(set(fresh) | set(self.earlier)):
            samples = self.samples(name)
            try:
                if name in self.earlier and name in fresh:
                    earlier, earlier_samples = self.earlier[name]
                    combined[name] = (merge_records(earlier, fresh[name], self.figures([earlier, fresh[name]])),
                                      earlier_samples | samples)
                else:
                    combined[name] = (fresh[name], samples) if name in fresh else self.earlier[name]
            except LmevalError as exc:  # RecordMergeError
                done.errors.append(f"lmeval-fixtures: could not merge the record of {name} into {out / name}: {exc}")
        figures = self.figures([r for r, _ in combined.values()])
        for name, (built, samples) in combined.items():
            problems: list[str] = []  # a summary that could not follow its written record
            try:
                done.paths += write_checkpoint_report(built, out / name, figures, self.registry,
                                                      comparison=len(combined) > 1, samples=samples,
                                                      problems=problems)
            except (OSError, LmevalError) as exc:  # RecordInvalid, a full disk, a folder in the way
                done.errors.append(f"lmeval-fixtures: could not write the report of {name} into {out / name}: {exc}")
                continue
            done.errors += [f"lmeval-fixtures: {problem}" for problem in problems]
            done.records[name] = built
            done.headlines.append(headline(built, figures))
        written = list(done.records.values())
        sort_key = resolve_figure_key(compare_by, figures)
        if len(written) > 1 and not any(f.key == sort_key and f.better is not None for f in figures):
            done.errors.append(f"lmeval-fixtures: could not write {out / 'comparison.md'}: cannot sort by "
                               f"{compare_by!r}; choose one of {', '.join(sortable_keys(figures))}")
        elif len(written) > 1:
            try:
                done.paths += write_comparison(written, out, figures, compare_by,
                                               {n: combined[n][1] for n in done.records})
            except (OSError, LmevalError) as exc:
                done.errors.append(f"lmeval-fixtures: could not write {out / 'comparison.md'}: {exc}")
        measured = [built for name, built in done.records.items() if name in fresh]
        done.measured = [name for name in done.records if name in fresh]
        if measured and history is not None:  # a record folded in from an earlier invocation has its line
            try:
                append_history(history, measured, figures)
            except OSError as exc:
                done.errors.append(f"lmeval-fixtures: could not append to {history}: {exc}")
        return done
