"""Writing metrics.json and summary.md: atomically, so an interrupted run never
leaves a half-written file and earlier reports stay intact."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .figures import Figure, known_corpora, known_tasks, lookup
from .loaded import default_file_mode, special_file_message
from .plots import plot_batch_scaling
from .record import validate_record
from .registry import Registry


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file, then rename: an interrupted run never leaves half a file.
    The file gets the permissions of the user's umask, as ``open`` would give it (``mkstemp``
    makes it private, and a CI artifact step or a colleague could not read it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, default_file_mode())  # by name: os.fchmod is POSIX-only before Python 3.13
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_samples(samples: dict[str, list[dict[str, Any]]], folder: Path) -> dict[str, str]:
    """``samples-<set>.jsonl`` per example set, atomically; returns each file's sha256 for the record."""
    fingerprints = {}
    for name, rows in sorted(samples.items()):
        text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        write_atomic(folder / f"samples-{name}.jsonl", text)
        fingerprints[f"samples-{name}.jsonl"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return fingerprints


def read_samples(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The per-example sets written beside a metrics.json (empty when none were logged)."""
    found = {}
    for path in sorted(folder.glob("samples-*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        found[path.stem.removeprefix("samples-")] = rows
    return found


@contextlib.contextmanager
def run_folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on a run folder while its records are read and written, so two
    invocations with the same run id (shards, or runs at once) merge instead of overwriting."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a", encoding="utf-8") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: msvcrt's byte-range lock (retried for about 10 s, then an OSError)
            fcntl = None
        if fcntl is None:
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


BASELINE_FILES = ("metrics.json", "summary.md", "samples-*.jsonl")


class BaselineTargetError(ValueError):
    """A baseline folder that must not be replaced; the message names it and why."""


def baseline_target_problem(run_folder: Path, target: Path) -> str | None:
    """Why ``target`` must not be replaced by a baseline (one line), or None. Only a new folder or
    an earlier baseline folder (``<checkpoint>/`` folders of record files, nothing else) is
    replaced; never the run's own folder or a folder holding it (the report folder)."""
    run, where = run_folder.resolve(), target.resolve()
    if run == where or where in run.parents:
        return f"{target}: holds this run's reports ({run_folder}); pass a folder of its own"
    if not target.exists():
        return None
    if not target.is_dir():
        return f"{target}: exists and is not a folder"
    for entry in sorted(target.iterdir()):
        files = list(entry.iterdir()) if entry.is_dir() and not entry.is_symlink() else None
        if files is None or not files or not all(
                f.is_file() and any(f.match(p) for p in BASELINE_FILES) for f in files):
            return (f"{target}: not a baseline folder (it holds {entry.name}); pass a new folder or one "
                    "--update-baseline wrote")
    return None


def publish_baseline(run_folder: Path, names: list[str], target: Path) -> list[Path]:
    """Copy the checkpoints' records (metrics.json, summary.md, samples) into ``target`` as a
    baseline folder (``target/<checkpoint>/metrics.json``), replacing it all at once: the
    new folder is built beside it and renamed into place, so a gate never reads half of one."""
    refusal = baseline_target_problem(run_folder, target)
    if refusal:
        raise BaselineTargetError(refusal)
    target.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    staging = target.parent / f".{target.name}.new-{token}"
    written = []
    try:
        for name in names:
            for pattern in BASELINE_FILES:
                for source in sorted((run_folder / name).glob(pattern)):
                    destination = staging / name / source.name
                    write_atomic(destination, source.read_text(encoding="utf-8"))
                    written.append(target / name / source.name)
        old = target.parent / f".{target.name}.old-{token}"
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


class RecordsNotFound(ValueError):
    """No readable metrics.json where one was named; the message names the path."""


def read_record(file: Path) -> dict[str, Any]:
    """A metrics.json that parses and validates, or ``RecordsNotFound`` naming the file and what is wrong."""
    special = special_file_message(file)
    if special:
        raise RecordsNotFound(special)
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordsNotFound(f"{file}: not a readable metrics.json ({exc})") from None
    if not isinstance(record, dict):
        raise RecordsNotFound(f"{file}: not a metrics record (a JSON {type(record).__name__}, not an object)")
    try:
        validate_record(record)
    except ValueError as exc:
        raise RecordsNotFound(f"{file}: not a valid metrics record: {exc}") from None
    return record


def find_records(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every metrics.json named, or found one or two levels under a folder named; each must validate."""
    found: list[Path] = []
    for path in paths:
        if path.is_file() or special_file_message(path):  # a FIFO is refused by read_record, not waited on
            found.append(path)
        elif path.is_dir():
            found += sorted(path.glob("metrics.json")) + sorted(path.glob("*/metrics.json"))
        else:
            raise RecordsNotFound(f"{path}: no such file or folder")
    if not found:
        raise RecordsNotFound(f"no metrics.json under {', '.join(map(str, paths))}")
    return [(file, read_record(file)) for file in found]


def read_run_folder(folder: Path) -> tuple[list[tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]],
                                           dict[str, str]]:
    """The records (and samples) of a run folder's checkpoints, and, by checkpoint folder, why a
    metrics.json there could not be read (it holds no figure that can be trusted)."""
    records, problems = [], {}
    for file in sorted(folder.glob("*/metrics.json")) if folder.is_dir() else []:
        try:
            records.append((read_record(file), read_samples(file.parent)))
        except RecordsNotFound as exc:
            problems[file.parent.name] = str(exc)
    return records, problems


def write_checkpoint_report(record: dict[str, Any], folder: Path, figures: list[Figure], registry: Registry,
                            comparison: bool = False,
                            samples: dict[str, list[dict[str, Any]]] | None = None) -> list[Path]:
    """Validate, then write ``metrics.json`` and ``summary.md`` (and samples) into ``folder``.

    ``comparison``: the run folder also gets a comparison.md, which the summary links.
    ``samples``: per-example rows, written first and fingerprinted in the record.
    """
    written: list[Path] = []
    if samples:
        validate_record(record)
        record.setdefault("samples", {}).update(write_samples(samples, folder))
        written += [folder / name for name in sorted(record["samples"])]
    validate_record(record)
    metrics = folder / "metrics.json"
    summary = folder / "summary.md"
    write_atomic(metrics, json.dumps(record, indent=2, sort_keys=False) + "\n")
    plot = plot_batch_scaling(record, folder / "batch_scaling.png")
    text = render_summary(record, figures, registry, plot.name if plot else None)
    if comparison:
        text += "\nCompared with the other checkpoints of this run in [comparison.md](../comparison.md).\n"
    write_atomic(summary, text)
    return [metrics, summary] + ([plot] if plot else []) + written


def figure_text(figure: Figure, value: Any) -> str:
    return "—" if value is None else f"{value:,.{figure.digits}f}"


def headline(record: dict[str, Any], figures: list[Figure]) -> str:
    """One terminal line per checkpoint: the headline figures it has, else every scored figure it has
    (a run of a few tasks has no average, but its accuracies are worth a line)."""
    present = [f for f in figures if f.value(record) is not None and f.better is not None]
    chosen = [f for f in present if f.headline] or [f for f in present if f.column]
    shown = [f"{f.label} {figure_text(f, f.value(record))}" for f in chosen]
    status = "" if not record["errors"] else f"  [{len(record['errors'])} error(s): see summary.md]"
    return f"{record['checkpoint']['name']}: {', '.join(shown) or 'no figures'}{status}"


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _not_run(family: str, record: dict[str, Any]) -> str:
    reasons = sorted({item["reason"] for node, item in record["items"].items()
                      if family in node and item.get("reason")})
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return f"_not run{why}_"


def _perplexity_table(ppl: dict[str, Any], splits: tuple[str, ...]) -> list[str]:
    rows = []
    for split in [*splits, *sorted(set(ppl) - set(splits))]:
        if split in ppl:
            s = ppl[split]
            rows.append([split, s["loss"], s["token_perplexity"], s["bits_per_byte"], s["byte_perplexity"],
                         s["word_perplexity"], s.get("top1_accuracy"), s.get("top5_accuracy"), s["tokens"],
                         s["bytes"], s["words"], s["documents"]])
    first = next(iter(ppl.values()))
    return [_table(["split", "loss", "token ppl", "bits/byte", "byte ppl", "word ppl", "top-1 acc", "top-5 acc",
                    "tokens", "bytes", "words", "docs"], rows),
            "", f"Context {first['context_length']}, stride {first['stride']}, "
                f"detokenized: {_fmt(first.get('detokenized'))}, token cap: {_fmt(first.get('max_eval_tokens'))}."]


def _single_class_lines(bench: dict[str, Any], registry: Registry) -> list[str]:
    """One sentence per task on which the checkpoint predicts one class for every row: its accuracy
    is then that class's share of the rows, and says nothing about the model."""
    lines = []
    for task, s in bench.items():
        if not s.get("single_class"):
            continue
        counts = s.get("prediction_counts") or []
        index = counts.index(max(counts)) if counts else None
        if s.get("choices_per_row"):  # no one list to name: the position in each row's own list
            lines.append(f"- {task} predicts the same choice position for every row (choice {index} of each row's "
                         f"own list, on all {s['n']:,} rows): its accuracy {_fmt(s['acc'])} is the share of rows "
                         "whose gold is at that position.")
            continue
        declared = registry.tasks.get(task)
        prompt = declared.prompts.get(s.get("prompt_set", "")) if declared else None
        choice = (f' "{prompt.choices[index]}"' if prompt and index is not None and index < len(prompt.choices)
                  else f" choice {index}" if index is not None else "")
        lines.append(f"- {task} predicts one class for every row ({choice.strip()} on all {s['n']:,} rows): "
                     f"its accuracy {_fmt(s['acc'])} is that class's share of the rows.")
    return ["", *lines] if lines else []


def per_row_choice_lines(bench: dict[str, Any]) -> list[str]:
    """A note naming the tasks whose rows were scored against their own choice lists (how many
    choices per row), and what acc_norm, majority and classes then mean; nothing when there are none."""
    tasks = []
    for task, s in bench.items():
        if s.get("choices_per_row"):
            counts = sorted(int(k) for k in s.get("rows_by_choice_count") or {})
            if not counts:
                tasks.append(task)
                continue
            span = str(counts[0]) if counts[0] == counts[-1] else f"{counts[0]}-{counts[-1]}"
            tasks.append(f"{task} ({span} choices per row)")
    if not tasks:
        return []
    return ["", f"Choices vary per row in {', '.join(tasks)}: each row is scored against its own choice list; "
                "acc_norm divides each choice's log-likelihood by the length of that row's choice string, and "
                "majority, classes and the predicted choice count choice positions within each row's list."]


def render_summary(record: dict[str, Any], figures: list[Figure], registry: Registry,
                   plot_name: str | None = None) -> str:
    ckpt = record["checkpoint"]
    env = record["environment"]
    parts = [
        f"# {ckpt['name']}: lmeval-fixtures summary",
        "",
        f"Run `{record['run_id']}` at {record['timestamp']}, code {record['git_commit'] or 'unknown'}, "
        f"device {env['device']}, dtype {env['dtype']}, torch {env['torch']}."
        + ("" if record["complete"] else " **Incomplete run: only what finished is reported.**"),
        "",
        f"Checkpoint: `{ckpt['path']}` (sha256 `{(ckpt.get('sha256') or '—')[:16]}`).",
    ]
    if record["errors"]:
        parts += ["", "## Errors", ""] + [f"- {e}" for e in record["errors"]]

    shown = [[f.label, figure_text(f, f.value(record))] for f in figures if f.headline and f.value(record) is not None]
    if shown:
        parts += ["", "## Headline figures", "", _table(["figure", "value"], shown)]

    parts += ["", "## Model and parameter allocation", ""]
    if record["total_params"] is None:
        parts.append("_checkpoint not loaded_")
    else:
        parts.append(_table(["field", "value"], [
            ["total parameters", record["total_params"]],
            ["embedding parameters", record.get("embedding_params")],
            ["non-embedding parameters", record.get("non_embedding_params")],
            ["embedding ratio (realised)", record["embedding_ratio"]],
            ["d_model", record["d_model"]], ["d_ff", record["d_ff"]],
            ["GLU expansion", record["glu_expansion"]], ["layers", record["n_layers"]],
            ["heads", record.get("n_heads")], ["vocabulary", record.get("vocab_size")],
            ["train loss (from checkpoint)", record["train_loss"]],
            ["train perplexity", record["train_perplexity"]],
        ]))

    for corpus in known_corpora(registry, [record]):
        parts += ["", f"## Perplexity ({corpus.label})", ""]
        ppl = lookup(record, corpus.record_path("")[:-1]) or {}
        if ppl:
            parts += _perplexity_table(ppl, corpus.splits)
            missing = [split for split in corpus.splits if split not in ppl]
            if missing:
                parts += ["", f"Missing split {', '.join(missing)}: " + _not_run("perplexity", record)]
        else:
            parts.append(_not_run("perplexity", record))

    parts += ["", "## SmallBench", ""]
    bench = record.get("smallbench") or {}
    tasks = [t.name for t in known_tasks(registry, [record])]
    if bench:
        rows = [[task, s["prompt_set"], s["fewshot"], s["n"], s["acc"], s["acc_stderr"], s["acc_norm"],
                 s["acc_norm_stderr"], s.get("majority_rate"), s.get("acc_above_majority"), s.get("predicted_classes"),
                 s.get("margin"), s.get("margin_stderr"), s.get("gold_bits_per_byte")] for task, s in bench.items()]
        parts.append(_table(["task", "prompts", "shots", "n", "acc", "± SE", "acc_norm", "± SE", "majority",
                             "acc - majority", "classes", "margin", "± SE", "gold bits/byte"], rows))
        average = next(f for f in figures if f.key == "smallbench_avg_acc").value(record)
        parts += ["", f"Average accuracy over the {len(tasks)} tasks ({', '.join(tasks)}): {_fmt(average)}"
                      + ("" if average is not None else f" (needs all {len(tasks)})") + "."]
        parts += _single_class_lines(bench, registry)
        if any("margin" in s for s in bench.values()):
            parts += ["", "majority: share of the most frequent gold label among the rows; classes: distinct "
                          "choices predicted; margin: mean log-likelihood of the gold choice minus the best other "
                          "choice (nats, the sums acc compares); gold bits/byte: the gold continuations' negative "
                          "log-likelihood in bits per UTF-8 byte of the continuation as scored (its leading space "
                          "included)."]
        parts += per_row_choice_lines(bench)
        capped = {s.get("max_samples") for s in bench.values()} - {None}
        if capped:
            parts += ["", f"Subset: first {', '.join(str(c) for c in sorted(capped))} rows per task (--max-samples)."]
        missing = [t for t in tasks if t not in bench]
        if missing:
            parts += ["", f"Not run: {', '.join(missing)} " + _not_run("smallbench", record)]
    else:
        parts.append(_not_run("smallbench", record))
    parts += ["", "## Latency and throughput", ""]
    latency = record.get("latency") or {}
    taken = {k: v for k, v in latency.items() if v.get("timing") == "taken"}
    if taken:
        parts.append(_table(["shape", "mean ms", "median", "p95", "p99", "stddev", "min", "rounds", "peak RSS MB"], [
            [shape, s["mean_ms"], s["median_ms"], s["p95_ms"], s["p99_ms"], s["stddev_ms"], s["min_ms"], s["rounds"],
             s.get("peak_rss_mb")] for shape, s in taken.items()]))
        parts += ["", f"Timer: {next(iter(taken.values()))['timer']}."]
    for shape, s in latency.items():
        if s.get("timing") != "taken":
            parts += ["", f"Latency {shape}: not taken ({s.get('reason')})."]
    throughput = record.get("throughput") or {}
    if throughput.get("timing") == "taken":
        parts += ["", f"Throughput: {throughput['tokens_per_sec']:,.0f} tokens/s at batch {throughput['batch']} x "
                      f"sequence {throughput['seq']} (mean of {throughput['rounds']} rounds)"
                  + (f"; {'; '.join(throughput['notes'])}" if throughput.get("notes") else "") + "."]
    elif throughput:
        parts += ["", f"Throughput: not taken ({throughput.get('reason')})."]
    scaling = record.get("batch_scaling") or {}
    if scaling.get("timing") == "taken" and scaling.get("points"):
        parts += ["", f"Batch scaling at sequence {scaling['seq']}:", ""]
        parts.append(_table(["batch", "tokens/s", "mean ms"], [
            [p["batch"], round(p["tokens_per_sec"]), p["mean_ms"]] for p in scaling["points"]]))
        if scaling.get("stopped"):
            parts += ["", f"Stopped: {scaling['stopped']}."]
        if plot_name:
            parts += ["", f"![batch scaling]({plot_name})"]
    elif scaling:
        parts += ["", f"Batch scaling: not taken ({scaling.get('reason')})."]
    if record.get("memory_allocated_mb") is not None:
        parts += ["", f"CUDA peak memory: {record['memory_allocated_mb']:,.1f} MB allocated, "
                      f"{record['memory_reserved_mb']:,.1f} MB reserved."]
    if not latency and not throughput:
        parts.append(_not_run("latency", record))

    if record.get("gates"):
        parts += ["", "## Gates", ""]
        parts.append(_table(["gate", "verdict", "detail"], [
            [name, "pass" if g["ok"] else "**FAIL**", g["message"]] for name, g in record["gates"].items()]))

    parts += ["", "## Items", ""]
    parts.append(_table(["item", "outcome", "seconds", "reason"], [
        [f"`{node}`", item["outcome"], item.get("duration_s"), item.get("reason") or ""]
        for node, item in record["items"].items()
    ]) if record["items"] else "_no items ran_")
    return "\n".join(parts) + "\n"
