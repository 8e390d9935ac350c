"""How per-row and per-document values travel inside a metrics record.

A paired test (comparison.md's bold, ``--gate paired``) needs each row's verdict and
each document's loss, long after the run that scored them, and without the samples
files, which are optional and large. So the record keeps them itself, compact enough
that a metrics.json stays readable and small, and fingerprinted (``rows_sha256``) so
two checkpoints are only ever paired on the same rows. Decoding never trusts the
record: an older record without these values, or one edited by hand so that the
counts no longer match, decodes to None, and the paired test says it cannot run
rather than testing something else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

# Per-row values travel in the record as strings, one line of JSON each, not as lists (which an
# indented metrics.json would spread over one line per row: 3,270 lines for BoolQ). Log-likelihoods
# and margins keep 4 decimals (1e-4 nats, far below any difference a paired test can see); the
# figures themselves are computed from the unrounded values. About 20 bytes per row: some 90 kB
# for the four shipped tasks.
PER_ROW_DECIMALS = 4


def rows_fingerprint(idx: list[int], labels: list[int]) -> str:
    """sha256 of the rows' ``idx:label`` in order: two checkpoints are paired only on the same rows."""
    return hashlib.sha256(",".join(f"{i}:{label}" for i, label in zip(idx, labels, strict=True)).encode()).hexdigest()


def encode_per_row(rows: dict[str, list[Any]]) -> dict[str, Any]:
    """The compact ``per_row`` entry of a task (see ``PerRow``) from ``TaskResult.per_row()``."""
    def numbers(values: list[float | None]) -> str | None:
        return None if any(v is None for v in values) else " ".join(f"{v:.{PER_ROW_DECIMALS}f}" for v in values)

    return {"rows_sha256": rows_fingerprint(rows["idx"], rows["label"]),
            "correct": "".join("1" if c else "0" for c in rows["correct"]),
            "margin": numbers(rows["margin"]), "gold_loglikelihood": numbers(rows["gold_loglikelihood"]),
            "gold_bytes": " ".join(str(b) for b in rows["gold_bytes"])}


@dataclass(frozen=True)
class PerRow:
    """A task's per-row values as a record holds them: ``correct`` is acc's verdict per row
    ("1"/"0"), ``margin`` ll[gold] - max(ll[other]) and ``gold_loglikelihood`` in nats, rounded to
    ``PER_ROW_DECIMALS``, ``gold_bytes`` the UTF-8 bytes of the gold continuation as scored."""

    rows_sha256: str
    correct: list[bool]
    margin: list[float] | None
    gold_loglikelihood: list[float]
    gold_bytes: list[int]


def decode_per_row(entry: dict[str, Any] | None) -> PerRow | None:
    """A task entry's per-row values, or None where it has none (an older record) or they do not
    hold one value per row (a record edited by hand): a paired test then says it cannot run."""
    found = (entry or {}).get("per_row")
    if not isinstance(found, dict):
        return None
    try:
        correct = [c == "1" for c in found["correct"]]
        margin = None if found.get("margin") is None else [float(v) for v in found["margin"].split()]
        gold = [float(v) for v in found["gold_loglikelihood"].split()]
        gold_bytes = [int(v) for v in found["gold_bytes"].split()]
        rows_sha256 = str(found["rows_sha256"])  # a hand-edited entry without it cannot be paired, nor crash
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    n = entry.get("n")
    if any(len(values) != n for values in (correct, gold, gold_bytes, margin or correct)):
        return None
    return PerRow(rows_sha256, correct, margin, gold, gold_bytes)


def encode_per_document(per_document: list[tuple[float, int, int, int]]) -> dict[str, str]:
    """Each scored document's summed NLL (nats, 4 decimals), tokens and UTF-8 bytes, compact as
    ``per_row``: enough for a paired bootstrap over documents (``--gate paired``) without samples."""
    return {"nll": " ".join(f"{d[0]:.{PER_ROW_DECIMALS}f}" for d in per_document),
            "tokens": " ".join(str(d[1]) for d in per_document),
            "bytes": " ".join(str(d[2]) for d in per_document)}


def decode_per_document(entry: dict[str, Any] | None) -> list[tuple[float, int, int]] | None:
    """(NLL, tokens, bytes) per document of a split entry, or None where it has none or they do
    not hold one value per document."""
    found = (entry or {}).get("per_document")
    try:
        nll = [float(v) for v in found["nll"].split()]
        tokens = [int(v) for v in found["tokens"].split()]
        n_bytes = [int(v) for v in found["bytes"].split()]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not (len(nll) == len(tokens) == len(n_bytes) == entry.get("documents")):
        return None
    return list(zip(nll, tokens, n_bytes, strict=True))
