"""The cross-checkpoint comparison: the table (and picture) that decides an allocation study.

Token perplexity is only comparable between checkpoints that share a tokenizer;
when they do not, the table says so and bits per byte leads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .figures import Figure, sortable_keys
from .paired import PairedResult, paired_accuracy, paired_bits_per_byte
from .plots import plot_comparison
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


def render_comparison(records: list[dict[str, Any]], figures: list[Figure], sort_by: str,
                      plot: str | None = None) -> str:
    """Markdown: one row per checkpoint, sorted by the figure ``sort_by``, best value per column in bold."""
    order = sort_figure(figures, sort_by)
    present = [r for r in records if order.value(r) is not None]
    absent = [r for r in records if order.value(r) is None]
    ordered = sorted(present, key=lambda r: order.value(r) if order.lower_is_better else -order.value(r)) + absent
    label = {id(r): name for r, name in zip(records, row_labels(records), strict=True)}
    comparable = shared_tokenizer(records)
    columns = [f for f in figures if f.column and (comparable or not f.tokenizer_dependent)
               and any(f.value(r) is not None for r in records)]
    best = {f.key: _best(f, records) for f in columns}
    header = ["checkpoint"] + [f.label for f in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for record in ordered:
        cells = [label[id(record)]] + [
            _cell(record, f, best[f.key] is not None and f.value(record) == best[f.key]) for f in columns]
        lines.append("| " + " | ".join(cells) + " |")
    runs = sorted({r["run_id"] for r in records})
    parts = [f"# Comparison of {len(records)} checkpoints", "",
             f"Run(s): {', '.join(runs)}. Sorted by `{sort_by}` ({order.better} is better); "
             "the best value of each column is in bold (none where all agree); accuracies carry their "
             "standard error.", ""]
    if not comparable:
        parts += ["**Tokenizers differ between these checkpoints: token perplexity is not comparable and is "
                  "left out; compare bits per byte (tokenizer-independent).**", ""]
    fingerprints = {tuple(sorted(r.get("data_fingerprints", {}).items())) for r in records}
    if len(fingerprints) > 1:
        parts += ["**The checkpoints were not all measured on the same data (fingerprints differ).**", ""]
    parts += lines
    if plot:
        parts += ["", f"![quality against latency]({plot})"]
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
    """Pairwise tests on the rows (documents) both checkpoints were scored on, where the data matched.
    ``samples`` is keyed by ``row_labels(records)``."""
    labelled = dict(zip(row_labels(records), records, strict=True))
    names = sorted(labelled)
    by_name = labelled
    sets = sorted({key for name in names for key in samples.get(name, {})})
    lines = []
    for key in sets:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                rows_a, rows_b = samples.get(a, {}).get(key), samples.get(b, {}).get(key)
                if not rows_a or not rows_b:
                    continue
                shared = set(by_name[a].get("data_fingerprints", {})) & set(by_name[b].get("data_fingerprints", {}))
                if any(by_name[a]["data_fingerprints"][f] != by_name[b]["data_fingerprints"][f] for f in shared):
                    lines.append(f"- {key}, {a} vs {b}: not compared (different data)")
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
    sort_figure(figures, sort_by)  # an unknown sort key fails before any file is written
    png = plot_comparison(records, folder / "comparison.png")
    text = render_comparison(records, figures, sort_by, plot=png.name if png else None)
    if samples:
        text += render_paired(records, samples)
    write_atomic(folder / "comparison.md", text)
    return [folder / "comparison.md"] + ([png] if png else [])
