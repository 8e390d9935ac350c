"""summary.md, one checkpoint's report, and the one line a run prints per checkpoint.

metrics.json is for tools; this is for the person who has to decide something from a
run without reading JSON. So it says first whether the figures can be trusted (the
errors, an incomplete run), then the figures, each family saying when it did not run
and why rather than leaving a gap, and it names what makes an accuracy meaningless for
a small model (one class predicted for every row, choices that vary per row). It reads
only the record and the table of figures, so a record of an earlier run, or a task or
corpus declared by a user, renders the same way; figures read as they do in every
other report (``core.formatting``).
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from ..core.formatting import COMPACT_FROM, code_span, markdown_table, markdown_text, number, visible
from ..suite.figures import Figure, known_corpora, known_tasks, lookup
from ..suite.registry import Registry
from .timing_noise import noisy_timings


def figure_text(figure: Figure, value: Any) -> str:
    """A figure's value as every report shows it: its table's digits, ``—`` when not measured."""
    return number(value, figure.digits)


def headline(record: dict[str, Any], figures: list[Figure]) -> str:
    """One terminal line per checkpoint: the headline figures it has, else every scored figure it has
    (a run of a few tasks has no average, but its accuracies are worth a line)."""
    present = [f for f in figures if f.value(record) is not None and f.better is not None]
    chosen = [f for f in present if f.headline] or [f for f in present if f.column]
    shown = [f"{f.label} {figure_text(f, f.value(record))}" for f in chosen]
    status = "" if not record["errors"] else f"  [{len(record['errors'])} error(s): see summary.md]"
    return visible(f"{record['checkpoint']['name']}: {', '.join(shown) or 'no figures'}{status}")


def _fmt(value: Any) -> str:
    """A field of a descriptive table (not a figure of the table of figures): 4 decimals, huge floats compact."""
    return value if isinstance(value, str) else number(value, compact_from=COMPACT_FROM)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    return markdown_table(header, [[_fmt(c) for c in row] for row in rows])


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
                         f"own list, on all {number(s['n'])} rows): its accuracy {_fmt(s['acc'])} is the share of rows "
                         "whose gold is at that position.")
            continue
        declared = registry.tasks.get(task)
        prompt = declared.prompts.get(s.get("prompt_set", "")) if declared else None
        known = prompt and index is not None and index < len(prompt.choices)
        choice = (f' "{markdown_text(prompt.choices[index])}"' if known
                  else f" choice {index}" if index is not None else "")
        lines.append(f"- {task} predicts one class for every row ({choice.strip()} on all {number(s['n'])} rows): "
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
    """summary.md: one section per family, each saying what was measured or why it was not."""
    parts = _header(record, figures)
    parts += _model_section(record)
    parts += _perplexity_sections(record, registry)
    parts += _smallbench_section(record, figures, registry)
    parts += _timing_section(record, plot_name)
    parts += _training_section(record)
    parts += _reproducibility_section(record)
    parts += _configuration_section(record)
    parts += _gates_and_items(record)
    return "\n".join(parts) + "\n"


def _header(record: dict[str, Any], figures: list[Figure]) -> list[str]:
    ckpt = record["checkpoint"]
    env = record["environment"]
    parts = [
        f"# {markdown_text(ckpt['name'])}: lmeval-fixtures summary",
        "",
        f"Run {code_span(record['run_id'])} at {record['timestamp']}, code {record['git_commit'] or 'unknown'}, "
        f"device {env['device']}, dtype {env['dtype']}, torch {env['torch']}."
        + ("" if record["complete"] else " **Incomplete run: only what finished is reported.**"),
        "",
        f"Checkpoint: {code_span(ckpt['path'])} (sha256 {code_span((ckpt.get('sha256') or '—')[:16])}).",
    ]
    if record["errors"]:
        parts += ["", "## Errors", ""] + [f"- {markdown_text(e)}" for e in record["errors"]]

    shown = [[markdown_text(f.label), figure_text(f, f.value(record))] for f in figures
             if f.headline and f.value(record) is not None]
    if shown:
        parts += ["", "## Headline figures", "", _table(["figure", "value"], shown)]
    return parts


def _model_section(record: dict[str, Any]) -> list[str]:
    parts = ["", "## Model and parameter allocation", ""]
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
        ]))
    return parts


def _perplexity_sections(record: dict[str, Any], registry: Registry) -> list[str]:
    parts: list[str] = []
    for corpus in known_corpora(registry.corpora.values(), [record]):
        parts += ["", f"## Perplexity ({markdown_text(corpus.label)})", ""]
        ppl = lookup(record, corpus.record_path("")[:-1]) or {}
        if ppl:
            parts += _perplexity_table(ppl, corpus.splits)
            missing = [split for split in corpus.splits if split not in ppl]
            if missing:
                parts += ["", f"Missing split {', '.join(missing)}: " + _not_run("perplexity", record)]
        else:
            parts.append(_not_run("perplexity", record))
    return parts


def _smallbench_section(record: dict[str, Any], figures: list[Figure], registry: Registry) -> list[str]:
    parts = ["", "## SmallBench", ""]
    bench = record.get("smallbench") or {}
    tasks = [t.name for t in known_tasks(registry.tasks.values(), [record])]
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
    return parts


def _timing_section(record: dict[str, Any], plot_name: str | None) -> list[str]:
    parts = ["", "## Latency and throughput", ""]
    latency = record.get("latency") or {}
    taken = {k: v for k, v in latency.items() if v.get("timing") == "taken"}
    if taken:
        parts.append(_table(["shape", "mean ms", "median", "p95", "p99", "stddev", "min", "rounds", "peak RSS MB"], [
            [shape, s["mean_ms"], s["median_ms"], s["p95_ms"], s["p99_ms"], s["stddev_ms"], s["min_ms"], s["rounds"],
             s.get("peak_rss_mb")] for shape, s in taken.items()]))
        parts += ["", f"Timer: {next(iter(taken.values()))['timer']}."]
        loads = [f"{shape} {s['load_before']} to {s['load_after']}" for shape, s in taken.items()
                 if s.get("load_before") is not None and s.get("load_after") is not None]
        if loads:
            parts += ["", f"Machine load (1-minute average, {next(iter(taken.values())).get('cpus')} cores) around "
                          f"each timing: {'; '.join(loads)}."]
    for shape, s in latency.items():
        if s.get("timing") != "taken":
            parts += ["", f"Latency {shape}: not taken ({s.get('reason')})."]
    throughput = record.get("throughput") or {}
    if throughput.get("timing") == "taken":
        parts += ["", f"Throughput: {number(throughput['tokens_per_sec'], 0)} tokens/s at batch "
                      f"{throughput['batch']} x sequence {throughput['seq']} (mean of {throughput['rounds']} rounds)"
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
        parts += ["", f"CUDA peak memory: {number(record['memory_allocated_mb'], 1)} MB allocated, "
                      f"{number(record['memory_reserved_mb'], 1)} MB reserved."]
    if not latency and not throughput:
        parts.append(_not_run("latency", record))
    noisy = noisy_timings(record)
    if noisy:
        parts += ["", "**Noisy timings** (gates do not judge them; comparison.md does not bold them):", ""]
        parts += [f"- {key}: {why}" for key, why in noisy.items()]
    return parts


NOT_RECORDED = "not recorded"
EVALUATE_CALL = "lmeval_fixtures.evaluate"  # an invocation's first argument when evaluate() made it


def training_source(record: dict[str, Any]) -> str | None:
    """Where the record's train loss came from: what ``evaluate(training=...)`` or a ``MetricsLogger``
    stated, else the checkpoint's own metadata; None when the record has no train loss."""
    training = record.get("checkpoint", {}).get("training") or {}
    if record.get("train_loss") is None and training.get("train_loss") is None:
        return None
    return training.get("source") or "checkpoint metadata"


def _training_section(record: dict[str, Any]) -> list[str]:
    """Train loss and perplexity with where they came from, then the other training facts recorded."""
    parts = ["", "## Training", ""]
    training = record.get("checkpoint", {}).get("training") or {}
    source = training_source(record)
    if source is None:
        parts.append(f"Train loss: {NOT_RECORDED} (the checkpoint's metadata holds none; from a training loop, "
                     "pass evaluate(..., training={'train_loss': ...}) or logger=).")
        rows = []
    else:
        rows = [["train loss", record.get("train_loss")], ["train perplexity", record.get("train_perplexity")],
                ["source", source]]
    rows += [[key.replace("_", " "), str(value) if key in ("seed", "step") else value]  # identifiers, not amounts
             for key, value in training.items() if key not in ("train_loss", "source")]
    if rows:
        parts += ([""] if source is None else []) + [_table(["field", "value"], rows)]
    return parts


def _recorded(value: Any) -> Any:
    return NOT_RECORDED if value in (None, "", {}, []) else value


def _reproducibility_section(record: dict[str, Any]) -> list[str]:
    """What it takes to run this again: seed, code, device and dtype, library versions, data, command."""
    env = record.get("environment") or {}
    device = env.get("device")
    if device and env.get("device_name"):
        device = f"{device} ({env['device_name']})"
    seed = record.get("seed")
    rows = [["seed", _recorded(None if seed is None else str(seed))],
            ["git commit", _recorded(record.get("git_commit"))], ["device", _recorded(device)],
            ["dtype", _recorded(env.get("dtype"))], ["python", _recorded(env.get("python"))],
            ["platform", _recorded(env.get("platform"))]]
    libraries = env.get("libraries") or {"torch": env.get("torch")}
    rows += [[name, _recorded(version)] for name, version in libraries.items()]
    parts = ["", "## Reproducibility", "", _table(["field", "value"], rows), ""]
    fingerprints = record.get("data_fingerprints") or {}
    if fingerprints:
        parts += ["Data fingerprints (sha256 of the data read):", "",
                  _table(["data", "sha256"], [[name, f"`{digest}`"] for name, digest in fingerprints.items()])]
    else:
        parts.append(f"Data fingerprints: {NOT_RECORDED} (no data was read).")
    blocks = [lines for lines in map(_invocation_lines, record.get("invocations") or []) if lines]
    if not blocks:
        return parts + ["", f"Command line: {NOT_RECORDED}."]
    parts += ["", f"Command line{'s' if len(blocks) > 1 else ''} that produced the run:"]
    for lines in blocks:
        parts += ["", *lines]
    return parts


def _invocation_lines(invocation: dict[str, Any]) -> list[str]:
    """One invocation: the process's command line, then the suite's arguments where they say more
    (``lmeval-fixtures run`` hands pytest its own; ``evaluate`` records the call with its options).
    A record written before the command was recorded has the arguments only."""
    command = [str(arg) for arg in invocation.get("command") or []]
    args = [str(arg) for arg in invocation.get("args") or []]
    # the program as run_info wrote it (``python -m pytest`` has spaces of its own), then quoted arguments
    lines = [_code_block(f"{command[0]} {shlex.join(command[1:])}".rstrip(), "")] if command else []
    if args and args != command[1:]:
        call = f"{args[0]}({', '.join(args[1:])})" if args[0] == EVALUATE_CALL else shlex.join(args)
        lines += ([""] if lines else []) + [("Arguments to the suite:" if command else "Arguments (as recorded):"),
                                           "", _code_block(call, "")]
    return lines


def _code_block(text: str, language: str) -> str:
    """A fenced block whose fence is longer than any run of backticks in ``text``, so none ends it early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _configuration_section(record: dict[str, Any]) -> list[str]:
    """The model's whole configuration as loaded, so a reader can rebuild it without the checkpoint."""
    config = record.get("checkpoint", {}).get("config")
    parts = ["", "## Full model configuration", ""]
    if not config:
        return parts + [f"_{NOT_RECORDED}_" + ("" if record.get("total_params") is not None
                                                else " (checkpoint not loaded)")]
    return parts + [_code_block(json.dumps(config, indent=2, sort_keys=True, default=str), "json")]


def cache_hits(record: dict[str, Any]) -> dict[str, str]:
    """Item -> the run whose figures the result cache gave it, for every item not recomputed."""
    return {item: str(hit.get("from_run")) for item, hit in sorted((record.get("cache") or {}).items())}


def _gates_and_items(record: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    if record.get("gates"):
        parts += ["", "## Gates", ""]
        parts.append(_table(["gate", "verdict", "detail"], [
            [name, "pass" if g["ok"] else "**FAIL**", g["message"]] for name, g in record["gates"].items()]))

    parts += ["", "## Items", ""]
    cached = cache_hits(record)
    if cached:
        parts += [f"Taken from the result cache, not recomputed (`--refresh` recomputes): "
                  f"{', '.join(f'{item} (run {run})' for item, run in cached.items())}.", ""]
    parts.append(_table(["item", "outcome", "seconds", "reason"], [
        [code_span(node), item["outcome"], item.get("duration_s"), item.get("reason") or ""]
        for node, item in record["items"].items()
    ]) if record["items"] else "_no items ran_")
    return parts
