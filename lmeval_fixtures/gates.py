"""Regression gates: a figure against a floor or against a baseline record.

Accuracy on a few hundred rows moves by a standard error or two between equally
good models, so accuracy tolerances are counted in standard errors; perplexity
and bits per byte are tight figures, so their tolerance is relative. A baseline
measured on other data (different fingerprints) is refused, never compared.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .metrics import SCHEMA_VERSION


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Gate:
    name: str
    ok: bool
    message: str


def load_baseline(path: Path, checkpoint: str) -> dict[str, Any] | None:
    """The baseline record for ``checkpoint``: a metrics.json, or a folder of ``<checkpoint>/metrics.json``.

    Returns None when a folder has no record for this checkpoint.
    """
    file = path / checkpoint / "metrics.json" if path.is_dir() else path
    if path.is_dir() and not file.is_file():
        return None
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"{file}: baseline not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{file}: baseline is not valid JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("schema_version") != SCHEMA_VERSION:
        version = record.get("schema_version") if isinstance(record, dict) else None
        raise BaselineError(f"{file}: baseline schema_version {version!r} is not {SCHEMA_VERSION}; "
                            "regenerate the baseline with this version")
    record["_source"] = str(file)
    return record


def same_data(baseline: dict[str, Any], fingerprints: dict[str, str]) -> str | None:
    """None when every file measured now was measured identically by the baseline, else why not."""
    theirs = baseline.get("data_fingerprints", {})
    for name, sha in fingerprints.items():
        if name in theirs and theirs[name] != sha:
            return f"{name} differs from the baseline's ({sha[:12]} vs {theirs[name][:12]})"
        if name not in theirs:
            return f"the baseline did not measure {name}"
    return None


def lower_is_better(name: str, value: float, baseline: float, relative_tolerance: float, source: str) -> Gate:
    limit = baseline * (1 + relative_tolerance)
    ok = math.isfinite(value) and value <= limit
    verdict = "within" if ok else "REGRESSED beyond"
    return Gate(name, ok, f"{name} {value:.6g} {verdict} baseline {baseline:.6g} + {relative_tolerance:.2%} "
                          f"(limit {limit:.6g}; baseline {source})")


def accuracy_vs_baseline(name: str, acc: float, stderr: float | None, baseline: float, tolerance_se: float,
                         source: str) -> Gate:
    se = stderr or 0.0
    limit = baseline - tolerance_se * se
    ok = acc >= limit
    verdict = "within" if ok else "REGRESSED beyond"
    return Gate(name, ok, f"{name} {acc:.4f} {verdict} baseline {baseline:.4f} - {tolerance_se:g} SE "
                          f"({se:.4f}) (limit {limit:.4f}; baseline {source})")


def accuracy_floor(name: str, acc: float, floor: float) -> Gate:
    ok = acc >= floor
    return Gate(name, ok, f"{name} {acc:.4f} {'meets' if ok else 'is BELOW'} the floor {floor:.4f}")


def _refuse(name: str, baseline: dict[str, Any], fingerprints: dict[str, str]) -> Gate | None:
    why = same_data(baseline, fingerprints)
    if why is None:
        return None
    return Gate(name, False, f"{name}: baseline {baseline['_source']} refused: {why}")


def perplexity_gates(split: str, prefix: str, figures: dict[str, Any], fingerprints: dict[str, str],
                     baseline: dict[str, Any] | None, relative_tolerance: float) -> list[Gate]:
    """Token perplexity and bits per byte of one split against the baseline's."""
    if baseline is None:
        return []
    refused = _refuse(f"{prefix}_perplexity", baseline, fingerprints)
    if refused:
        return [refused]
    theirs = baseline.get("perplexity", {}).get(split)
    if not theirs:
        return []
    settings = ("stride", "context_length", "max_eval_tokens", "detokenized")
    changed = [s for s in settings if theirs.get(s) != figures.get(s)]
    if changed:
        return [Gate(f"{prefix}_perplexity", False, f"{prefix}_perplexity: baseline {baseline['_source']} refused: "
                     f"measured with other {', '.join(changed)}")]
    return [
        lower_is_better(f"{prefix}_perplexity", figures["token_perplexity"], theirs["token_perplexity"],
                        relative_tolerance, baseline["_source"]),
        lower_is_better(f"{prefix}_bits_per_byte", figures["bits_per_byte"], theirs["bits_per_byte"],
                        relative_tolerance, baseline["_source"]),
    ]


def accuracy_gates(task: str, summary: dict[str, Any], fingerprints: dict[str, str],
                   baseline: dict[str, Any] | None, tolerance_se: float, floor: float | None) -> list[Gate]:
    gates = []
    if floor is not None:
        gates.append(accuracy_floor(f"{task}_acc", summary["acc"], floor))
    if baseline is None:
        return gates
    refused = _refuse(f"{task}_acc", baseline, fingerprints)
    if refused:
        return [*gates, refused]
    theirs = baseline.get("smallbench", {}).get(task)
    if theirs and theirs.get("prompt_set") == summary["prompt_set"] and theirs.get("fewshot") == summary["fewshot"]:
        gates.append(accuracy_vs_baseline(f"{task}_acc", summary["acc"], summary["acc_stderr"], theirs["acc"],
                                          tolerance_se, baseline["_source"]))
    return gates


def _same_machine(baseline: dict[str, Any], environment: dict[str, Any]) -> str | None:
    theirs = baseline.get("environment", {})
    for key in ("device", "dtype"):
        if theirs.get(key) != environment.get(key):
            return f"measured with {key} {theirs.get(key)!r}, this run uses {environment.get(key)!r}"
    return None


def latency_gates(shape: str, stats: dict[str, Any], environment: dict[str, Any], baseline: dict[str, Any] | None,
                  relative_tolerance: float) -> list[Gate]:
    """Mean latency of one shape against the baseline's, on the same device and dtype only."""
    if baseline is None:
        return []
    theirs = baseline.get("latency", {}).get(shape, {})
    if theirs.get("timing") != "taken":
        return []
    name = f"latency_{shape}"
    different = _same_machine(baseline, environment)
    if different:
        return [Gate(name, False, f"{name}: baseline {baseline['_source']} refused: {different}")]
    return [lower_is_better(f"{name}_mean_ms", stats["mean_ms"], theirs["mean_ms"], relative_tolerance,
                            baseline["_source"])]


def throughput_gates(tokens_per_sec: float, environment: dict[str, Any], baseline: dict[str, Any] | None,
                     relative_tolerance: float) -> list[Gate]:
    if baseline is None or baseline.get("throughput", {}).get("timing") != "taken":
        return []
    different = _same_machine(baseline, environment)
    if different:
        return [Gate("throughput", False, f"throughput: baseline {baseline['_source']} refused: {different}")]
    theirs = baseline["throughput"]["tokens_per_sec"]
    floor = theirs * (1 - relative_tolerance)
    ok = tokens_per_sec >= floor
    verdict = "within" if ok else "REGRESSED beyond"
    return [Gate("throughput", ok, f"throughput {tokens_per_sec:,.0f} tokens/s {verdict} baseline {theirs:,.0f} - "
                                   f"{relative_tolerance:.0%} (limit {floor:,.0f}; baseline {baseline['_source']})")]
