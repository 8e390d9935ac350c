"""The metrics record as a whole: an empty record, fragments merged in, records folded together, finalised.

Fragments (``fragments.py``) merge in item-id order, so the record is the same whichever
process produced which fragment, for any ``-n``. Figures live in the nested record; the
original schema's flat fields (``val_perplexity``, ``smallbench_sentiment_acc``,
``latency_batch1_seq128``, ...) are derived from it through the table of figures
(``suite.figures``) and are always present (``null`` when not measured). JSON has no NaN,
so non-finite figures become ``null`` and are listed under ``errors``. Two records fold
together only when measured alike (``alike.differences``); the schema and validation are
``core.schema``'s.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

from ..core.errors import RecordMergeError
from ..core.names import SHARDS_MOST, parse_shard
from ..core.schema import ORIGINAL_FIELDS, SCHEMA_VERSION, load_schema
from .alike import checkpoint_read, differences, refusal

if TYPE_CHECKING:
    from ..suite.figures import Figure


# ---------------------------------------------------------------- building and merging records


def deep_merge(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    """Merge ``fragment`` into ``base`` in place.

    Nested dicts merge; lists extend without repeating an entry already there (so
    the same fragment sent by two workers counts once); other values replace.
    """
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        elif isinstance(value, list) and isinstance(base.get(key), list):
            base[key].extend(copy.deepcopy(v) for v in value if v not in base[key])
        else:
            base[key] = copy.deepcopy(value)
    return base


def replace_non_finite(value: Any, path: str = "", found: list[str] | None = None) -> Any:
    """Copy of ``value`` with NaN/inf floats as ``None``; their paths go to ``found``."""
    if isinstance(value, float) and not math.isfinite(value):
        if found is not None:
            found.append(f"{path or 'value'} is {value} (written as null)")
        return None
    if isinstance(value, dict):
        return {k: replace_non_finite(v, f"{path}.{k}" if path else k, found) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_non_finite(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def empty_record(run: dict[str, Any], name: str) -> dict[str, Any]:
    record: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    record.update({key: None for key in ORIGINAL_FIELDS})
    record.update({
        "run_id": run["run_id"], "experiment_name": run.get("experiment_name"), "timestamp": run["timestamp"],
        "seed": run.get("seed"), "git_commit": run.get("git_commit"),
        "checkpoint": {"name": name, "path": ""},
        "environment": copy.deepcopy(run["environment"]),
        "settings": copy.deepcopy(run.get("settings", {})),
        "data_fingerprints": {}, "perplexity": {}, "items": {}, "errors": [], "complete": True,
        "invocations": [{"timestamp": run["timestamp"], "git_commit": run.get("git_commit"),
                         "args": run.get("args", []), "shard": (run.get("settings") or {}).get("shard")}
                        | ({"command": run["command"]} if run.get("command") else {})],
    })
    return record


def derive_fields(record: dict[str, Any], figures: list[Figure]) -> None:
    """Fields that follow from others, filled after every fragment is in: each flat field
    of the original schema from its figure, and the list of tasks that ran."""
    for figure in figures:
        if figure.legacy:
            record[figure.key] = figure.value(record)
    if record.get("smallbench"):
        record["smallbench_tasks"] = sorted(record["smallbench"])


def finalise(record: dict[str, Any], figures: list[Figure]) -> dict[str, Any]:
    """Derived fields, non-finite figures as null (listed under errors), keys in schema order."""
    derive_fields(record, figures)
    problems: list[str] = []
    record = replace_non_finite(record, found=problems)
    record["errors"] = list(record["errors"]) + [p for p in problems if p not in record["errors"]]
    return schema_order(record)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def merge_records(earlier: dict[str, Any], later: dict[str, Any], figures: list[Figure]) -> dict[str, Any]:
    """Fold a later invocation of the same run into an earlier record (e.g. timings after an -n auto run).

    The later figures win where both measured something; a figure the later
    invocation did not measure (null) never erases an earlier one. Records of
    different weights, or not measured alike (``alike.differences``: other settings,
    a setting recorded in one only, a data file read with other contents), are refused.
    """
    mine, theirs = checkpoint_read(earlier["checkpoint"]), checkpoint_read(later["checkpoint"])
    for key in sorted(mine.keys() & theirs.keys()):
        if mine[key] != theirs[key]:
            what = "weights differ" if key == "sha256" else f"{key} differs"
            raise RecordMergeError(f"{later['checkpoint']['name']}: {what} from the earlier record's "
                                   f"({str(theirs[key])[:12]} vs {str(mine[key])[:12]}); use another --run-id")
    found = differences(earlier, later)
    if found:
        why = refusal(found, "the earlier record", other="this record")
        raise RecordMergeError(f"{later['checkpoint']['name']}: {why}; one record holds figures measured one way: "
                               "use another --run-id")
    merged = copy.deepcopy(earlier)
    given = {k: v for k, v in later.items()
             if k not in ("schema_version", "run_id", "timestamp", "experiment_name", "invocations", "complete",
                          "errors")}
    update = _drop_nulls(given)
    # a timing entry is one measurement: a later one replaces it whole (a "not taken" note must not linger)
    for shape, entry in update.pop("latency", {}).items():
        merged.setdefault("latency", {})[shape] = entry
    for key in ("throughput", "batch_scaling"):
        if key in update:
            merged[key] = update.pop(key)
    deep_merge(merged, update)
    _fill_missing(merged, given)  # a null the earlier record lacks is kept: shards merge to the whole run
    merged["errors"] = earlier.get("errors", []) + [e for e in later.get("errors", []) if e not in earlier["errors"]]
    merged["invocations"] = earlier.get("invocations", []) + [
        i for i in later.get("invocations", []) if i not in earlier.get("invocations", [])]
    merged["complete"] = bool(earlier.get("complete", True) and later.get("complete", True))
    derive_fields(merged, figures)
    return schema_order(merged)


def shard_coverage(records: list[dict[str, Any]]) -> str | None:
    """What is wrong with the shards the ``records`` of one run come from (one line), or None,
    judged by the shards their invocations name (``--shard I/N``): a shard that no record comes
    from, a checkpoint's shard given twice, shards of different splits, shards made at different
    git commits. Shards are counted over the whole run: a shard may hold the items of only some
    checkpoints. A shard that ran no item writes no record, so it counts as missing too. Records
    that name no shard are no part of it."""
    seen: dict[tuple[str, str], int] = {}
    commits = set()
    unreadable = set()
    for record in records:
        for invocation in record.get("invocations") or []:
            shard = invocation.get("shard") if isinstance(invocation, dict) else None
            if shard is None:
                continue
            if parse_shard(shard) is None:  # a hand-edited record: named, never counted up to its N
                unreadable.add(repr(shard)[:40])
                continue
            key = (record["checkpoint"]["name"], shard)
            seen[key] = seen.get(key, 0) + 1
            commits.add(str(invocation.get("git_commit")))
    parts = [f"shard {', '.join(sorted(unreadable))} is not I/N with 1 <= I <= N <= {SHARDS_MOST:,}"] \
        if unreadable else []
    if not seen:
        return "; ".join(parts) or None
    shards = {shard for _, shard in seen}
    totals = sorted({parse_shard(shard)[1] for shard in shards})
    if len(totals) > 1:
        parts.append(f"shards of different splits ({', '.join(sorted(shards))})")
    else:
        missing = [f"{i}/{totals[0]}" for i in range(1, totals[0] + 1) if f"{i}/{totals[0]}" not in shards]
        if missing:
            more = f" and {len(missing) - 5:,} more" if len(missing) > 5 else ""
            parts.append(f"shard {', '.join(missing[:5])}{more} missing (its items were not run)")
    repeated = sorted({shard for (_, shard), count in seen.items() if count > 1})
    if repeated:
        parts.append(f"shard {', '.join(repeated)} given more than once")
    if len(commits) > 1:
        parts.append(f"shards made by different code (git commits {', '.join(c[:12] for c in sorted(commits))})")
    return "; ".join(parts) or None


def _fill_missing(base: dict[str, Any], given: dict[str, Any]) -> None:
    for key, value in given.items():
        if key not in base:
            base[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(base[key], dict):
            _fill_missing(base[key], value)


def schema_order(record: dict[str, Any]) -> dict[str, Any]:
    """Keys in the schema's order (then any extras), so records read and diff alike."""
    order = list(load_schema()["properties"])
    rank = {key: i for i, key in enumerate(order)}
    return dict(sorted(record.items(), key=lambda kv: (rank.get(kv[0], len(order)), kv[0])))
