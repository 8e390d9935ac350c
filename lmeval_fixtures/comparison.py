"""The cross-checkpoint comparison: the table (and picture) that decides an allocation study.

Token perplexity is only comparable between checkpoints that share a tokenizer;
when they do not, the table says so and bits per byte leads. Figures measured with
other figure-changing settings or on other data are not comparable at all: such
records (from ``lmeval-fixtures compare`` over several runs) are shown in groups,
each ranked on its own, never ranked, bolded or paired against each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .figures import Figure, sortable_keys
from .history import differences, figure_settings, shown
from .paired import PairedResult, paired_accuracy, paired_bits_per_byte
from .plots import plot_comparison
from .record import FIGURE_SETTINGS
from .report import write_atomic


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
        return "—"
    text = f"{value:,.{figure.digits}f}"
    stderr = figure.stderr(record)
    if stderr is not None:
        text += f" ± {stderr:.3f}"
    return f"**{text}**" if best else text


def _best(figure: Figure, records: list[dict[str, Any]]) -> float | None:
    """The best value of a scored column, or None when fewer than two checkpoints differ in it:
    a value every checkpoint shares is not "best"."""
    values = [v for v in (figure.value(r) for r in records) if v is not None]
    if figure.better is None or len(set(values)) < 2:
        return None
    return min(values) if figure.lower_is_better else max(values)


def sort_figure(figures: list[Figure], sort_by: str) -> Figure:
    """The figure comparison.md is sorted by; a key that is not a scored figure is a ValueError."""
    found = next((f for f in figures if f.key == sort_by and f.better is not None), None)
    if found is None:
        raise ValueError(f"cannot sort by {sort_by!r}; choose one of {', '.join(sortable_keys(figures))}")
    return found


def comparable_groups(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The records split into groups measured alike (``history.differences``: the same
    figure-changing settings, no data file read with other contents), since a figure ranks
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


def _ranked_table(records: list[dict[str, Any]], figures: list[Figure], order: Figure,
                  label: dict[int, str]) -> list[str]:
    """The table of one group: sorted by ``order``, the best value of each column in bold."""
    present = [r for r in records if order.value(r) is not None]
    absent = [r for r in records if order.value(r) is None]
    ordered = sorted(present, key=lambda r: order.value(r) if order.lower_is_better else -order.value(r)) + absent
    comparable = shared_tokenizer(records)
    columns = [f for f in figures if f.column and (comparable or not f.tokenizer_dependent)
               and any(f.value(r) is not None for r in records)]
    best = {f.key: _best(f, records) for f in columns}
    header = ["checkpoint"] + [f.label for f in columns]
    lines = []
    if not comparable:
        lines += ["**Tokenizers differ between these checkpoints: token perplexity is not comparable and is "
                  "left out; compare bits per byte (tokenizer-independent).**", ""]
    if len({tuple(sorted((r.get("data_fingerprints") or {}).items())) for r in records}) > 1:
        lines += ["**These checkpoints did not all read the same data files (fingerprints differ), though no "
                  "file that two of them read differs: a run of fewer items, or data from another source.**", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for record in ordered:
        cells = [label[id(record)]] + [
            _cell(record, f, best[f.key] is not None and f.value(record) == best[f.key]) for f in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_comparison(records: list[dict[str, Any]], figures: list[Figure], sort_by: str,
                      plot: str | None = None) -> str:
    """Markdown: one row per checkpoint, sorted by the figure ``sort_by``, best value per column in
    bold. Records measured otherwise (``comparable_groups``) are not ranked together: each group
    gets its own table, titled by what sets it apart, under a sentence that says why."""
    order = sort_figure(figures, sort_by)
    label = {id(r): name for r, name in zip(records, row_labels(records), strict=True)}
    groups = comparable_groups(records)
    runs = sorted({r["run_id"] for r in records})
    parts = [f"# Comparison of {len(records)} checkpoints", "",
             f"Run(s): {', '.join(runs)}. Sorted by `{sort_by}` ({order.better} is better); "
             "the best value of each column is in bold (none where all agree); accuracies carry their "
             "standard error.", ""]
    if len(groups) == 1:
        parts += _ranked_table(records, figures, order, label)
    else:
        conditions = [_condition(g) for g in groups]
        reasons: list[str] = []
        for condition in conditions[1:]:
            reasons += [r for r in differences(conditions[0], condition) if r not in reasons]
        parts += [f"**These checkpoints were not all measured alike (later groups vs group 1: {'; '.join(reasons)})"
                  ". A figure ranks only against figures measured the same way, so they are not ranked together: "
                  "each group below is sorted, and its best values bolded, on its own, and paired tests compare "
                  "only checkpoints of one group.**"]
        for index, (group, condition) in enumerate(zip(groups, conditions, strict=True), start=1):
            parts += ["", f"## {_group_title(index, condition, conditions)} ({len(group)} checkpoint(s))", ""]
            parts += _ranked_table(group, figures, order, label)
    if plot:
        parts += ["", f"![quality against latency]({plot})" if len(groups) == 1
                  else f"![quality against latency, group 1 only]({plot})"]
    return "\n".join(parts) + "\n"


def _paired_sentence(kind: str, a: str, b: str, result: PairedResult) -> str:
    level = f"{1 - result.confidence:g}"
    if kind == "acc":
        better = a if result.difference > 0 else b
        figure = (f"accuracy {a} - {b} = {result.difference:+.4f}, {result.confidence:.0%} CI "
                  f"[{result.low:+.4f}, {result.high:+.4f}], McNemar p = {result.p_value:.3g}")
    else:
        better = a if result.difference < 0 else b
        figure = (f"bits/byte {a} - {b} = {result.difference:+.5f}, {result.confidence:.0%} CI "
                  f"[{result.low:+.5f}, {result.high:+.5f}]")
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
                    why = differences(by_name[b], by_name[a]) or [f"group {groups[0]} vs group {groups[1]}"]
                    lines.append(f"- {key}, {a} vs {b}: not compared (measured otherwise: {'; '.join(why)})")
                    continue
                if key.startswith("smallbench-"):
                    if [r["idx"] for r in rows_a] != [r["idx"] for r in rows_b]:
                        lines.append(f"- {key}, {a} vs {b}: not compared (different rows)")
                        continue
                    result = paired_accuracy([r["correct"] for r in rows_a], [r["correct"] for r in rows_b],
                                             resamples=resamples, seed=seed)
                    lines.append(f"- {key.removeprefix('smallbench-')} (n={result.n}): "
                                 + _paired_sentence("acc", a, b, result))
                else:
                    try:
                        result = paired_bits_per_byte([(r["nll"], r["bytes"]) for r in rows_a],
                                                      [(r["nll"], r["bytes"]) for r in rows_b],
                                                      resamples=resamples, seed=seed)
                    except ValueError as exc:
                        lines.append(f"- {key}, {a} vs {b}: not compared ({exc})")
                        continue
                    lines.append(f"- {key} ({result.n} documents): " + _paired_sentence("bpb", a, b, result))
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
