"""The cross-checkpoint comparison: the table (and picture) that decides an allocation study.

Token perplexity is only comparable between checkpoints that share a tokenizer;
when they do not, the table says so and bits per byte leads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .paired import PairedResult, paired_accuracy, paired_bits_per_byte
from .plots import plot_comparison
from .report import write_atomic

# (column, record key, lower is better?, digits)
COLUMNS = [
    ("params", "total_params", None, 0),
    ("emb ratio", "embedding_ratio", None, 3),
    ("GLU exp", "glu_expansion", None, 2),
    ("val bits/byte", "val_bits_per_byte", True, 4),
    ("test bits/byte", "test_bits_per_byte", True, 4),
    ("val ppl", "val_perplexity", True, 2),
    ("test ppl", "test_perplexity", True, 2),
    ("SST-2", "smallbench_sentiment_acc", False, 4),
    ("RTE", "smallbench_nli_acc", False, 4),
    ("BoolQ", "smallbench_qa_acc", False, 4),
    ("MRPC", "smallbench_paraphrase_acc", False, 4),
    ("SmallBench avg", "smallbench_avg_acc", False, 4),
    ("latency 1x128 ms", "latency_batch1_seq128", True, 3),
    ("latency 1x512 ms", "latency_batch1_seq512", True, 3),
    ("tokens/s", "throughput_tokens_per_sec", False, 0),
]
TASK_OF = {"smallbench_sentiment_acc": "sst2", "smallbench_nli_acc": "rte", "smallbench_qa_acc": "boolq",
           "smallbench_paraphrase_acc": "mrpc"}
LOWER_IS_BETTER_SORT = {key: lower for _, key, lower, _ in COLUMNS if lower is not None}


def shared_tokenizer(records: list[dict[str, Any]]) -> bool:
    return len({r["checkpoint"].get("tokenizer_sha256") for r in records}) == 1


def _cell(record: dict[str, Any], key: str, digits: int, best: bool) -> str:
    value = record.get(key)
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}"
    task = TASK_OF.get(key)
    stderr = (record.get("smallbench", {}).get(task) or {}).get("acc_stderr") if task else None
    if stderr is not None:
        text += f" ± {stderr:.3f}"
    return f"**{text}**" if best else text


def render_comparison(
    records: list[dict[str, Any]], sort_by: str = "val_bits_per_byte", plot: str | None = None
) -> str:
    """Markdown: one row per checkpoint, sorted by ``sort_by``, best value per column in bold."""
    if sort_by not in LOWER_IS_BETTER_SORT:
        raise ValueError(f"cannot sort by {sort_by!r}; choose one of {', '.join(LOWER_IS_BETTER_SORT)}")
    lower = LOWER_IS_BETTER_SORT[sort_by]
    present = [r for r in records if r.get(sort_by) is not None]
    absent = [r for r in records if r.get(sort_by) is None]
    ordered = sorted(present, key=lambda r: r[sort_by] if lower else -r[sort_by]) + absent
    comparable = shared_tokenizer(records)
    columns = [c for c in COLUMNS if comparable or c[1] not in ("val_perplexity", "test_perplexity")]
    best: dict[str, float] = {}
    for _, key, lower_better, _ in columns:
        values = [r[key] for r in records if r.get(key) is not None]
        if lower_better is not None and values:
            best[key] = min(values) if lower_better else max(values)
    header = ["checkpoint"] + [name for name, *_ in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for record in ordered:
        cells = [record["checkpoint"]["name"]] + [
            _cell(record, key, digits, key in best and record.get(key) == best[key]) for _, key, _, digits in columns]
        lines.append("| " + " | ".join(cells) + " |")
    runs = sorted({r["run_id"] for r in records})
    parts = [f"# Comparison of {len(records)} checkpoints", "",
             f"Run(s): {', '.join(runs)}. Sorted by `{sort_by}` ({'lower' if lower else 'higher'} is better); "
             "the best value of each column is in bold; accuracies carry their standard error.", ""]
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
    """Pairwise tests on the rows (documents) both checkpoints were scored on, where the data matched."""
    names = sorted(r["checkpoint"]["name"] for r in records)
    by_name = {r["checkpoint"]["name"]: r for r in records}
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


def write_comparison(records: list[dict[str, Any]], folder: Path, sort_by: str = "val_bits_per_byte",
                     samples: dict[str, dict[str, list[dict[str, Any]]]] | None = None) -> list[Path]:
    png = plot_comparison(records, folder / "comparison.png")
    text = render_comparison(records, sort_by, plot=png.name if png else None)
    if samples:
        text += render_paired(records, samples)
    write_atomic(folder / "comparison.md", text)
    return [folder / "comparison.md"] + ([png] if png else [])
