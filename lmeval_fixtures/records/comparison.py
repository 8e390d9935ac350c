"""The cross-checkpoint comparison: the table (and picture) that decides an allocation study.

Token perplexity is only comparable between checkpoints that share a tokenizer;
when they do not, the table says so and bits per byte leads. Figures measured with
other figure-changing settings or on other data are not comparable at all: such
records (from ``lmeval-fixtures compare`` over several runs) are shown in groups,
each ranked on its own, never ranked, bolded or paired against each other.

Small models sit at the majority-class rate, often with identical accuracies, and a
point of accuracy is often noise: a SmallBench figure (a figure of the table with a
``paired`` test) is bolded only where that paired test, on the per-row values both
records hold (``record.PerRow``), finds the best value apart from the runner-up's at
the 0.05 level; each such verdict is listed under the tables. A corpus split's bits per
byte and perplexity follow the same rule on per-document values, and, in records
written before those were kept, bold their best value as before. A timing is bolded only
where it stands out of both timings' noise at the same 0.05 level (``timing_noise.stands_out``)
and neither is flagged noisy (``timing_noise.noisy_timings``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import UsageError
from ..core.files import write_atomic
from ..core.formatting import code_span, markdown_table, markdown_text, number
from ..suite.figures import DOC_PPL, PER_DOCUMENT, TIMING, Figure, resolve_figure_key, sortable_keys
from .alike import FIGURE_SETTINGS, differences, figure_settings, shown
from .codecs import decode_per_document
from .paired import RESAMPLES, SEED, PairedResult, Unpaired, paired_accuracy, paired_bits_per_byte, paired_test
from .plots import plot_comparison
from .summary import per_row_choice_lines
from .timing_noise import noisy_timings, stands_out


def row_labels(records: list[dict[str, Any]]) -> list[str]:
    """One label per record: the checkpoint's name, with its run id where records of several runs
    share a name (so a checkpoint is never compared with itself under one label)."""
    names = [r["checkpoint"]["name"] for r in records]
    labels = [n if names.count(n) == 1 else f"{n} @ {r['run_id']}" for n, r in zip(names, records, strict=True)]
    return [label if labels.count(label) == 1 else f"{label} #{labels[:i].count(label) + 1}"
            for i, label in enumerate(labels)]


def shared_tokenizer(records: list[dict[str, Any]]) -> bool:
    return len({r["checkpoint"].get("tokenizer_sha256") for r in records}) == 1


def _cell(record: dict[str, Any], figure: Figure, best: bool) -> str:
    value = figure.value(record)
    if value is None:
        return number(None)
    text = number(value, figure.digits)
    stderr = figure.stderr(record)
    if stderr is not None:
        text += f" ± {number(stderr, 3)}"
    return f"**{text}**" if best else text


@dataclass(frozen=True)
class Verdict:
    """Whether a column's best value is bolded, and why: for a figure with a paired test, the test of
    the best record against the runner-up (``result``), or the reason it could not run."""

    figure: Figure
    best: dict[str, Any] | None  # the record holding the best value (None: fewer than two values differ)
    runner_up: dict[str, Any] | None
    result: PairedResult | None
    bold: bool
    why: str  # how the verdict came about, one phrase


def verdict(figure: Figure, records: list[dict[str, Any]], label: dict[int, str]) -> Verdict:
    """Whether ``figure``'s best value among ``records`` is bolded. Never where fewer than two values
    differ (a value every checkpoint shares is not "best"); a figure without a paired test bolds its
    best value; one with a paired test (SmallBench) only where the test of the best record against
    the runner-up (the next best, ties to the best included) finds a difference at the 0.05 level in
    the best one's favour."""
    present = [r for r in records if figure.value(r) is not None]
    values = [figure.value(r) for r in present]
    if figure.better is None or len(set(values)) < 2:
        return Verdict(figure, None, None, None, False, "all equal" if values else "not measured")
    ranked = sorted(present, key=lambda r: figure.value(r) if figure.lower_is_better else -figure.value(r))
    best, runner = ranked[0], ranked[1]
    if figure.gate == TIMING:
        return _timing_verdict(figure, best, runner, label)
    if figure.paired is None:
        return Verdict(figure, best, runner, None, True, "best value")
    if figure.paired in PER_DOCUMENT and any(decode_per_document(figure.entry(r)) is None for r in (best, runner)):
        untested = " and ".join(label[id(r)] for r in (best, runner) if decode_per_document(figure.entry(r)) is None)
        return Verdict(figure, best, runner, None, True,
                       "best value, bolded as before without a test (no per-document values in the record of "
                       f"{untested})")
    if figure.value(runner) == figure.value(best):
        return Verdict(figure, best, runner, None, False, "tied with the runner-up")
    try:  # the figure's one paired test, the one --gate paired runs (paired.paired_test)
        result = paired_test(figure, best, runner, resamples=RESAMPLES, seed=SEED)
    except Unpaired as exc:
        why = exc.said((label[id(best)], label[id(runner)]))
        return Verdict(figure, best, runner, None, False, f"not tested: {why}")
    favours_best = result.difference < 0 if figure.lower_is_better else result.difference > 0
    bold = result.significant and favours_best
    return Verdict(figure, best, runner, result, bold, "significant" if bold else "not significant")


def _timing_verdict(figure: Figure, best: dict[str, Any], runner: dict[str, Any], label: dict[int, str]) -> Verdict:
    """A timing's best value is bolded only where it stands out of both timings' noise (at the 0.05
    level, as the paired tests of the other figures), and neither timing is flagged noisy."""
    noisy = [label[id(r)] for r in (best, runner) if figure.key in noisy_timings(r)]
    if noisy:
        return Verdict(figure, best, runner, None, False, f"noisy timing ({', '.join(noisy)})")
    if not stands_out(figure.value(best), figure.entry(best), figure.value(runner), figure.entry(runner)):
        return Verdict(figure, best, runner, None, False, "within the two timings' noise at the 0.05 level")
    return Verdict(figure, best, runner, None, True, "stands out of the two timings' noise at the 0.05 level")


def _bolded(verdicts: dict[str, Verdict], figure: Figure, record: dict[str, Any]) -> bool:
    """A paired figure bolds the one record its test chose; any other bolds every record holding the best value."""
    found = verdicts[figure.key]
    if not found.bold:
        return False
    if figure.paired is not None and found.result is not None:
        return found.best is record
    return figure.value(record) == figure.value(found.best)


def sort_figure(figures: list[Figure], sort_by: str) -> Figure:
    """The figure comparison.md is sorted by (its key or an alias: ``resolve_figure_key``); a name
    that is not a scored figure is a usage error."""
    key = resolve_figure_key(sort_by, figures)
    found = next((f for f in figures if f.key == key and f.better is not None), None)
    if found is None:
        raise UsageError(f"cannot sort by {sort_by!r}; choose one of {', '.join(sortable_keys(figures))}")
    return found


def comparable_groups(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The records split into groups measured alike (``alike.differences``: the same
    figure-changing settings, none recorded in one only, no data file read with other contents), since a figure ranks
    only against figures measured the same way. Each record joins the first group it agrees
    with in full; the largest group comes first (ties: the first seen); order is kept within."""
    groups: list[list[dict[str, Any]]] = []
    for record in records:
        home = next((g for g in groups if not any(differences(member, record) for member in g)), None)
        if home is None:
            groups.append([record])
        else:
            home.append(record)
    return sorted(groups, key=len, reverse=True)


def _condition(group: list[dict[str, Any]]) -> dict[str, Any]:
    """How a group was measured: its settings (one set: the group agrees) and every data file it read."""
    data: dict[str, str] = {}
    for record in group:
        data.update(record.get("data_fingerprints") or {})
    return {"settings": group[0].get("settings"), "data_fingerprints": data}


def _group_title(index: int, condition: dict[str, Any], conditions: list[dict[str, Any]]) -> str:
    """``Group 2: max_samples 200, data wikitext-2-raw/validation.txt 3f2a...``: only what tells the groups apart."""
    recorded = [s for s in (figure_settings(c) for c in conditions) if set(s) & set(FIGURE_SETTINGS)]
    mine = figure_settings(condition)
    if not set(mine) & set(FIGURE_SETTINGS):  # records of a version that did not record them
        parts = ["settings not recorded"]
    else:
        parts = [f"{key} {shown(key, mine)}" for key in FIGURE_SETTINGS if len({shown(key, s) for s in recorded}) > 1]
        if not parts and len(recorded) < len(conditions):
            parts = ["settings recorded"]
    data = condition["data_fingerprints"]
    parts += [f"data {name} {sha[:12]}" for name, sha in sorted(data.items())
              if len({c["data_fingerprints"][name] for c in conditions if name in c["data_fingerprints"]}) > 1]
    return f"Group {index}: {', '.join(parts) or 'measured otherwise'}"


def _ranked(records: list[dict[str, Any]], order: Figure) -> list[dict[str, Any]]:
    present = [r for r in records if order.value(r) is not None]
    absent = [r for r in records if order.value(r) is None]
    return sorted(present, key=lambda r: order.value(r) if order.lower_is_better else -order.value(r)) + absent


def _ranked_table(records: list[dict[str, Any]], figures: list[Figure], order: Figure,
                  label: dict[int, str], verdicts: dict[str, Verdict]) -> list[str]:
    """The table of one group: sorted by ``order``, the best value of each column in bold (as ``verdict`` says)."""
    ordered = _ranked(records, order)
    comparable = shared_tokenizer(records)
    columns = [f for f in figures if f.column and (comparable or not f.tokenizer_dependent)
               and any(f.value(r) is not None for r in records)]
    header = ["checkpoint"] + [markdown_text(f.label) for f in columns]  # a task file's label is free text
    lines = []
    if not comparable:
        lines += ["**Tokenizers differ between these checkpoints: token perplexity is not comparable and is "
                  "left out; compare bits per byte (tokenizer-independent).**", ""]
    if len({tuple(sorted((r.get("data_fingerprints") or {}).items())) for r in records}) > 1:
        lines += ["**These checkpoints did not all read the same data files (fingerprints differ), though no "
                  "file that two of them read differs: a run of fewer items, or data from another source.**", ""]
    rows = [[label[id(record)]] + [_cell(record, f, _bolded(verdicts, f, record)) for f in columns]
            for record in ordered]
    return lines + markdown_table(header, rows).splitlines()


def _task_columns(figures: list[Figure], records: list[dict[str, Any]]) -> dict[str, list[Figure]]:
    """By task, the figures of comparison.md's per-task table that some record holds (accuracy first)."""
    tasks: dict[str, list[Figure]] = {}
    for figure in figures:
        if figure.task and any(figure.value(r) is not None for r in records):
            tasks.setdefault(figure.task, []).append(figure)
    return {task: sorted(columns, key=lambda f: f.path[-1] != "acc") for task, columns in tasks.items()}


def _task_table(records: list[dict[str, Any]], figures: list[Figure], order: Figure, label: dict[int, str],
                verdicts: dict[str, Verdict], heading: str) -> list[str]:
    """One block of rows per task: accuracy beside the majority-class rate, and the figures that still
    tell apart checkpoints predicting one class (margin, gold bits/byte); bolded as ``verdict`` says."""
    tasks = _task_columns(figures, records)
    if not tasks:
        return []
    ordered = _ranked(records, order)
    names: dict[str, str] = {}  # field -> column heading: the figure's label less the task's ("SST-2 margin")
    for columns in tasks.values():
        for f in columns:
            names.setdefault(f.path[-1], "acc" if f.path[-1] == "acc" else f.label.removeprefix(columns[0].label + " "))
    fields = list(names)
    lines = ["", f"{heading} SmallBench per task", "",
             "Accuracy beside the majority-class rate of the rows; `classes`: how many distinct choices the "
             "checkpoint predicts (1: one class for every row, its accuracy is that class's share); `margin`: "
             "mean log-likelihood of the gold choice minus the best other choice (nats); `gold bits/byte`: "
             "the gold continuations' negative log-likelihood in bits per UTF-8 byte.",
             *per_row_choice_lines(_per_row_choice_tasks(records)), ""]
    rows = []
    for columns in tasks.values():
        by_field = {f.path[-1]: f for f in columns}
        for record in ordered:
            if all(f.value(record) is None for f in columns):
                continue
            cells = [markdown_text(columns[0].label), label[id(record)]]
            cells += [_cell(record, by_field[name], by_field[name].key in verdicts
                            and _bolded(verdicts, by_field[name], record))
                      if name in by_field else number(None) for name in fields]
            rows.append(cells)
    return lines + markdown_table(["task", "checkpoint", *(markdown_text(names[f]) for f in fields)],
                                  rows).splitlines()


def _per_row_choice_tasks(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The tasks some record scored against per-row choice lists, with every choice count seen."""
    found: dict[str, Any] = {}
    for record in records:
        for task, entry in (record.get("smallbench") or {}).items():
            if isinstance(entry, dict) and entry.get("choices_per_row"):
                seen = found.setdefault(task, {"choices_per_row": True, "rows_by_choice_count": {}})
                seen["rows_by_choice_count"].update(entry.get("rows_by_choice_count") or {})
    return found


def _verdict_line(found: Verdict, label: dict[int, str]) -> str:
    figure = found.figure
    name = figure.label if figure.path[-1] != "acc" else f"{figure.label} acc"
    if found.best is None:
        return f"- {name}: {found.why}; not bolded"
    best, runner = found.best, found.runner_up
    text = (f"- {name}: {label[id(best)]} {number(figure.value(best), figure.digits)} vs runner-up "
            f"{label[id(runner)]} {number(figure.value(runner), figure.digits)}")
    result = found.result
    if result is not None:
        digits = max(figure.digits, 4)
        what = "log-perplexity difference" if figure.paired == DOC_PPL else "difference"
        text += (f", {what} {number(result.difference, digits, signed=True)}, {result.confidence:.0%} CI "
                 f"[{number(result.low, digits, signed=True)}, {number(result.high, digits, signed=True)}]")
        if result.p_value is not None:
            text += f", McNemar p = {number(result.p_value, significant=3)}"
    return text + f": {found.why}; {'bolded' if found.bold else 'not bolded'}"


def _verdict_lines(verdicts: dict[str, Verdict], label: dict[int, str], heading: str) -> list[str]:
    # a corpus split is listed only where its paired test had values to run on (records written before
    # per-document values were kept bold as they always did, and their tables read as before)
    tested = [v for v in verdicts.values() if v.figure.paired is not None and not (
        v.figure.paired in PER_DOCUMENT and (v.best is None or v.why.startswith("best value")))]
    tasks = list(dict.fromkeys(v.figure.task for v in tested if v.figure.task))
    # corpus splits first, then by task, the average last (stable: in table order within each)
    tested.sort(key=lambda v: -1 if v.figure.paired in PER_DOCUMENT
                else tasks.index(v.figure.task) if v.figure.task else len(tasks))
    if not tested:
        return []
    return ["", f"{heading} Best against runner-up", "",
            "A SmallBench value is bolded only where a paired test on the rows both checkpoints were scored on "
            "finds the best apart from the runner-up at the 0.05 level (two-sided): McNemar's exact test for "
            "accuracy (and accuracy above the majority rate, the same rows right and wrong); a paired bootstrap "
            f"({RESAMPLES} resamples, seed {SEED}) of the mean margin and of the gold continuations' bits per "
            "byte (rows resampled), and of the average accuracy (rows resampled within each task). Bits per byte "
            "and perplexity of a corpus split: a paired bootstrap over documents (perplexity as log perplexity, "
            "nats per token), where both records hold per-document values, else bolded by value as before. "
            "Differences are the best minus the runner-up.", ""] + [_verdict_line(v, label) for v in tested]


def _group_tables(records: list[dict[str, Any]], figures: list[Figure], order: Figure, label: dict[int, str],
                  heading: str) -> list[str]:
    """The main table, the per-task table and the verdicts behind their bold, for records measured alike."""
    comparable = shared_tokenizer(records)
    shown_figures = [f for f in figures if (f.column or f.task) and (comparable or not f.tokenizer_dependent)
                     and any(f.value(r) is not None for r in records)]
    verdicts = {f.key: verdict(f, records, label) for f in shown_figures}
    timed = [v for v in verdicts.values() if v.figure.gate == TIMING and v.best is not None]
    timing_lines = ["", f"{heading} Timings, best against runner-up", ""] + [
        _verdict_line(v, label) for v in timed] if timed else []
    return (_ranked_table(records, figures, order, label, verdicts)
            + _task_table(records, figures, order, label, verdicts, heading)
            + _verdict_lines(verdicts, label, heading) + timing_lines)


def render_comparison(records: list[dict[str, Any]], figures: list[Figure], sort_by: str,
                      plot: str | None = None) -> str:
    """Markdown: one row per checkpoint, sorted by the figure ``sort_by``, best value per column in
    bold. Records measured otherwise (``comparable_groups``) are not ranked together: each group
    gets its own table, titled by what sets it apart, under a sentence that says why."""
    order = sort_figure(figures, sort_by)
    label = {id(r): markdown_text(name) for r, name in zip(records, row_labels(records), strict=True)}
    groups = comparable_groups(records)
    runs = sorted({r["run_id"] for r in records})
    parts = [f"# Comparison of {len(records)} checkpoints", "",
             f"Run(s): {', '.join(map(markdown_text, runs))}. Sorted by {code_span(order.key)} "
             f"({order.better} is better); "
             "the best value of each column is in bold (none where all agree), a SmallBench value only where "
             "a paired test finds it apart from the runner-up (see Best against runner-up); accuracies and "
             "margins carry their standard error.", ""]
    if len(groups) == 1:
        parts += _group_tables(records, figures, order, label, "##")
    else:
        conditions = [_condition(g) for g in groups]
        reasons: list[str] = []
        for condition in conditions[1:]:
            reasons += [str(r) for r in differences(conditions[0], condition) if str(r) not in reasons]
        parts += [f"**These checkpoints were not all measured alike (later groups vs group 1: {'; '.join(reasons)})"
                  ". A figure ranks only against figures measured the same way, so they are not ranked together: "
                  "each group below is sorted, and its best values bolded, on its own, and paired tests compare "
                  "only checkpoints of one group.**"]
        for index, (group, condition) in enumerate(zip(groups, conditions, strict=True), start=1):
            parts += ["", f"## {_group_title(index, condition, conditions)} ({len(group)} checkpoint(s))", ""]
            parts += _group_tables(group, figures, order, label, "###")
    if plot:
        parts += ["", f"![quality against latency]({plot})" if len(groups) == 1
                  else f"![quality against latency, group 1 only]({plot})"]
    return "\n".join(parts) + "\n"


def _paired_sentence(kind: str, a: str, b: str, result: PairedResult) -> str:
    level = f"{1 - result.confidence:g}"
    if kind == "acc":
        better = a if result.difference > 0 else b
        figure = (f"accuracy {a} - {b} = {number(result.difference, signed=True)}, {result.confidence:.0%} CI "
                  f"[{number(result.low, signed=True)}, {number(result.high, signed=True)}], "
                  f"McNemar p = {number(result.p_value, significant=3)}")
    else:
        better = a if result.difference < 0 else b
        figure = (f"bits/byte {a} - {b} = {number(result.difference, 5, signed=True)}, {result.confidence:.0%} CI "
                  f"[{number(result.low, 5, signed=True)}, {number(result.high, 5, signed=True)}]")
    verdict = (f"**{better} is significantly better** at the {level} level" if result.significant
               else f"no significant difference at the {level} level")
    return f"{figure}: {verdict}"


def render_paired(records: list[dict[str, Any]], samples: dict[str, dict[str, list[dict[str, Any]]]],
                  resamples: int = 1000, seed: int = 1234) -> str:
    """Pairwise tests on the rows (documents) both checkpoints were scored on, for checkpoints of
    one group of ``comparable_groups`` (measured alike); a pair across groups is listed as not
    compared, with the reason. ``samples`` is keyed by ``row_labels(records)``."""
    labelled = dict(zip(row_labels(records), records, strict=True))
    names = sorted(labelled)
    shown = {name: markdown_text(name) for name in names}  # as Markdown text: a name cannot format the line
    by_name = labelled
    group_of = {id(r): index for index, group in enumerate(comparable_groups(records), start=1) for r in group}
    sets = sorted({key for name in names for key in samples.get(name, {})})
    lines = []
    for key in sets:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                rows_a, rows_b = samples.get(a, {}).get(key), samples.get(b, {}).get(key)
                if not rows_a or not rows_b:
                    continue
                groups = group_of[id(by_name[a])], group_of[id(by_name[b])]
                if groups[0] != groups[1]:
                    why = [str(d) for d in differences(by_name[b], by_name[a])] or [
                        f"group {groups[0]} vs group {groups[1]}"]
                    lines.append(f"- {key}, {shown[a]} vs {shown[b]}: not compared (measured otherwise: "
                                 f"{'; '.join(why)})")
                    continue
                if key.startswith("smallbench-"):
                    if [r["idx"] for r in rows_a] != [r["idx"] for r in rows_b]:
                        lines.append(f"- {key}, {shown[a]} vs {shown[b]}: not compared (different rows)")
                        continue
                    result = paired_accuracy([r["correct"] for r in rows_a], [r["correct"] for r in rows_b],
                                             resamples=resamples, seed=seed)
                    lines.append(f"- {key.removeprefix('smallbench-')} (n={result.n}): "
                                 + _paired_sentence("acc", shown[a], shown[b], result))
                else:
                    try:
                        result = paired_bits_per_byte([(r["nll"], r["bytes"]) for r in rows_a],
                                                      [(r["nll"], r["bytes"]) for r in rows_b],
                                                      resamples=resamples, seed=seed)
                    except ValueError as exc:
                        lines.append(f"- {key}, {shown[a]} vs {shown[b]}: not compared ({exc})")
                        continue
                    lines.append(f"- {key} ({result.n} documents): "
                                 + _paired_sentence("bpb", shown[a], shown[b], result))
    if not lines:
        return ""
    return ("\n## Paired comparison\n\n"
            f"On the same rows (documents): McNemar's exact test for accuracy, a paired bootstrap ({resamples} "
            f"resamples, seed {seed}) for the intervals; differences are the first checkpoint minus the second.\n\n"
            + "\n".join(lines) + "\n")


def write_comparison(records: list[dict[str, Any]], folder: Path, figures: list[Figure], sort_by: str,
                     samples: dict[str, dict[str, list[dict[str, Any]]]] | None = None) -> list[Path]:
    """comparison.md (and, with the plot extra, comparison.png of the first group: points measured
    otherwise would share its axes) in ``folder``; returns the paths written."""
    sort_figure(figures, sort_by)  # an unknown sort key fails before any file is written
    png = plot_comparison(comparable_groups(records)[0], folder / "comparison.png")
    text = render_comparison(records, figures, sort_by, plot=png.name if png else None)
    if samples:
        text += render_paired(records, samples)
    write_atomic(folder / "comparison.md", text)
    return [folder / "comparison.md"] + ([png] if png else [])
