"""Pictures, with the optional ``plot`` extra (matplotlib); every function returns None without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    figure.savefig(tmp, dpi=120)
    tmp.replace(path)
    return path


def plot_comparison(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Quality (bits per byte, else SmallBench average) against latency, one labelled point per
    checkpoint, coloured by embedding ratio. None when matplotlib (the ``plot`` extra) is absent
    or no checkpoint has both figures."""
    quality_key = "val_bits_per_byte" if any(r.get("val_bits_per_byte") for r in records) else "smallbench_avg_acc"
    latency_key = "latency_batch1_seq128"
    points = [r for r in records if r.get(quality_key) is not None and r.get(latency_key) is not None]
    if not points:
        return None  # decided before matplotlib is imported (0.4 s a run)
    plt = _pyplot()
    if plt is None:
        return None
    figure, axes = plt.subplots(figsize=(6, 4.5))
    scatter = axes.scatter([r[latency_key] for r in points], [r[quality_key] for r in points],
                           c=[r.get("embedding_ratio") or 0 for r in points], cmap="viridis", s=60)
    for r in points:
        axes.annotate(r["checkpoint"]["name"], (r[latency_key], r[quality_key]), textcoords="offset points",
                      xytext=(5, 5), fontsize=8)
    axes.set_xlabel("latency, batch 1 x 128 tokens (ms)")
    axes.set_ylabel("validation bits per byte (lower is better)" if quality_key == "val_bits_per_byte"
                    else "SmallBench average accuracy")
    figure.colorbar(scatter, label="embedding ratio")
    axes.grid(alpha=0.3)
    axes.margins(0.15)
    figure.tight_layout()
    saved = _save(figure, path)
    plt.close(figure)
    return saved




def plot_batch_scaling(record: dict[str, Any], path: Path) -> Path | None:
    """Tokens per second against batch size for one checkpoint (log-log)."""
    points = (record.get("batch_scaling") or {}).get("points") or []
    plt = _pyplot() if len(points) >= 2 else None
    if plt is None:
        return None
    figure, axes = plt.subplots(figsize=(5, 3.5))
    axes.plot([p["batch"] for p in points], [p["tokens_per_sec"] for p in points], marker="o")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel(f"batch size (sequence {record['batch_scaling']['seq']})")
    axes.set_ylabel("tokens per second")
    axes.set_title(record["checkpoint"]["name"])
    axes.grid(alpha=0.3, which="both")
    figure.tight_layout()
    saved = _save(figure, path)
    plt.close(figure)
    return saved
