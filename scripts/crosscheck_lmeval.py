"""Cross-check our figures against EleutherAI's lm-evaluation-harness on the very same weights.

    python scripts/crosscheck_lmeval.py --lmeval-python /path/to/lmeval-venv/bin/python \\
        --data-dir ../shared/data --out /tmp/crosscheck

1. exports the checkpoint to a Hugging Face Llama folder (or takes an HF folder as it is);
2. runs lm-evaluation-harness (``--model hf``) in its own environment, on local copies of the
   data: each task ``include``s lm-eval's own glue / super_glue / wikitext YAML and swaps only
   the dataset for the ``json`` loader over our files, so its prompts are its own;
3. runs our suite (``pytest benchmarks --prompts lm-eval --log-samples``) on the same folder;
4. compares per-example log-likelihoods, accuracies, acc_norm, word and byte perplexity, bits
   per byte and both wall times, prints a table and writes it to ``OUT/crosscheck.md``.

Exit status 0 when every figure agrees within the tolerances, 1 otherwise. lm-evaluation-harness
lives in a separate virtual environment (see docs/crosscheck.md for how to make one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lmeval_fixtures.evaluation.settings import REFERENCE_DIR
from lmeval_fixtures.models.discovery import checkpoint_name, is_hf_folder
from lmeval_fixtures.models.hf_export import export_hf
from lmeval_fixtures.suite.sources import read_text_file
from lmeval_fixtures.suite.tasks import TASKS
from lmeval_fixtures.suite.wikitext import split_wikitext_articles

ROOT = Path(__file__).resolve().parents[1]
LMEVAL_YAML = {  # our task -> lm-eval's own task definition, relative to lm_eval/tasks
    "sst2": "glue/sst2/default.yaml", "rte": "glue/rte/default.yaml",
    "mrpc": "glue/mrpc/default.yaml", "boolq": "super_glue/boolq/default.yaml",
}
LL_TOLERANCE = 1e-4  # absolute, per example log-likelihood
REL_TOLERANCE = 1e-4  # relative, perplexity figures
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def prepare_data(data_dir: Path, out: Path, limit: int | None) -> Path:
    """One data folder both tools read: our layout for the suite, JSON Lines for lm-eval."""
    data = out / "data"
    for task in TASKS:
        source = data_dir / TASKS[task].local_file("validation")
        target = data / TASKS[task].local_file("validation")
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
        target.write_text("".join(lines[:limit] if limit else lines), encoding="utf-8")
    wikitext = data / "wikitext-2-raw"
    wikitext.mkdir(parents=True, exist_ok=True)
    raw, _ = read_text_file(data_dir / "wikitext-2-raw" / "validation.txt")
    (wikitext / "validation.txt").write_text(raw, encoding="utf-8")
    (wikitext / "test.txt").write_text(raw, encoding="utf-8")  # never scored here; the suite wants both files
    pages = split_wikitext_articles(raw)  # the EleutherAI/wikitext_document_level grouping
    with open(data / "wikitext_validation.jsonl", "w", encoding="utf-8") as handle:
        for page in pages:
            handle.write(json.dumps({"page": page}) + "\n")
    return data


def lmeval_tasks_dir(python: str) -> Path:
    code = "import lm_eval, os; print(os.path.join(os.path.dirname(lm_eval.__file__), 'tasks'))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"--lmeval-python {python}: cannot import lm_eval ({done.stderr.strip().splitlines()[-1:]}); "
                 "see docs/crosscheck.md for the environment")
    return Path(done.stdout.strip())


def write_task_yamls(tasks_dir: Path, data: Path, out: Path) -> list[str]:
    """lm-eval's own task files, included, with only the data swapped for our local copies."""
    folder = out / "tasks"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for task, relative in LMEVAL_YAML.items():
        name = f"crosscheck_{task}"
        names.append(name)
        (folder / f"{name}.yaml").write_text("\n".join([
            f"include: {tasks_dir / relative}",
            f"task: {name}",
            "dataset_path: json",
            "dataset_name: null",
            f"dataset_kwargs: {{data_files: {{validation: {data / TASKS[task].local_file('validation')}}}}}",
            "training_split: null",
            "metric_list: [{metric: acc}, {metric: acc_norm}]",
        ]) + "\n")
    (folder / "crosscheck_wikitext.yaml").write_text("\n".join([
        f"include: {tasks_dir / 'wikitext/wikitext.yaml'}",
        "task: crosscheck_wikitext",
        "dataset_path: json",
        "dataset_name: null",
        f"dataset_kwargs: {{data_files: {{validation: {data / 'wikitext_validation.jsonl'}}}}}",
        "training_split: null",
        "test_split: null",
    ]) + "\n")
    return [*names, "crosscheck_wikitext"]


def timed(command: list[str], log: Path, env: dict[str, str]) -> float:
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=os.environ | env, cwd=ROOT,
                              check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        sys.exit(f"{command[0]} exited {done.returncode} after {seconds:.0f} s; last lines of {log}:\n"
                 + "\n".join(tail))
    return seconds


def run_lmeval(python: str, model: Path, task_names: list[str], out: Path, batch_size: str) -> float:
    return timed([python, "-m", "lm_eval", "--model", "hf",
                  "--model_args", f"pretrained={model},dtype=float32",
                  "--tasks", ",".join(task_names), "--include_path", str(out / "tasks"),
                  "--device", "cpu", "--batch_size", batch_size, "--log_samples",
                  "--output_path", str(out / "lmeval")], out / "lmeval.log", OFFLINE)


def run_ours(model: Path, data: Path, out: Path) -> float:
    perplexity = f"benchmarks/test_perplexity.py::test_perplexity[{checkpoint_name(model)}-validation]"
    return timed([sys.executable, "-m", "pytest", perplexity, "benchmarks/test_smallbench.py",
                  "--checkpoint", str(model), "--data-dir", str(data),
                  "--prompts", "lm-eval", "--log-samples", "--report-dir", str(out / "ours"), "--run-id", "crosscheck",
                  "-p", "no:xdist", "-p", "no:cacheprovider", "-q"], out / "ours.log", OFFLINE)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def lmeval_outputs(out: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    results_file = max((out / "lmeval").rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    results = json.loads(results_file.read_text())["results"]
    samples = {}
    for path in results_file.parent.glob("samples_crosscheck_*.jsonl"):
        task = path.name.removeprefix("samples_crosscheck_").rsplit("_", 1)[0]
        samples[task] = sorted(read_jsonl(path), key=lambda s: s["doc_id"])
    return results, samples


def loglikelihood(response: Any) -> float:
    """lm-eval logs a response as [ll, is_greedy] (or [ll] for rolling); old versions as a string."""
    value = response[0] if isinstance(response, list) else response
    return float(value.strip("()[]").split(",")[0]) if isinstance(value, str) else float(value)


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def compare(out: Path, name: str) -> tuple[list[list[str]], bool]:
    """Rows of the report table, and whether every figure agreed."""
    results, theirs = lmeval_outputs(out)
    ours_dir = out / "ours" / "crosscheck" / name
    record = json.loads((ours_dir / "metrics.json").read_text())
    rows: list[list[str]] = []
    ok = True

    def add(what: str, ours: float | int | str, lmeval: float | int | str, difference: str, agrees: bool) -> None:
        nonlocal ok
        ok &= agrees
        rows.append([what, str(ours), str(lmeval), difference, "yes" if agrees else "NO"])

    for task in LMEVAL_YAML:
        mine = read_jsonl(ours_dir / f"samples-smallbench-{task}.jsonl")
        other = theirs[task]
        if len(mine) != len(other):
            add(f"{task} examples", len(mine), len(other), "", False)
            continue
        worst = max(abs(a - loglikelihood(b)) for m, o in zip(mine, other, strict=True)
                    for a, b in zip(m["loglikelihoods"], o["filtered_resps"], strict=True))
        add(f"{task} per-example log-likelihood ({len(mine)} x {len(mine[0]['loglikelihoods'])})",
            "", "", f"max abs {worst:.2e}", worst <= LL_TOLERANCE)
        summary, result = record["smallbench"][task], results[f"crosscheck_{task}"]
        for metric in ("acc", "acc_norm"):
            same_rows = all(bool(m["correct" if metric == "acc" else "correct_norm"]) == bool(o[metric])
                            for m, o in zip(mine, other, strict=True))
            add(f"{task} {metric}", f"{summary[metric]:.6f}", f"{result[f'{metric},none']:.6f}",
                "same rows" if same_rows else "rows differ", same_rows and summary[metric] == result[f"{metric},none"])

    mine = read_jsonl(ours_dir / "samples-perplexity-validation.jsonl")
    other = theirs["wikitext"]
    pairs = [(-m["nll"], loglikelihood(o["filtered_resps"][0] if isinstance(o["filtered_resps"], list)
                                       else o["filtered_resps"])) for m, o in zip(mine, other, strict=True)]
    worst_abs = max(abs(a - b) for a, b in pairs)
    worst_rel = max(relative(a, b) for a, b in pairs)
    add(f"wikitext per-document log-likelihood ({len(pairs)} articles)", "", "",
        f"max abs {worst_abs:.2e}, rel {worst_rel:.1e}", worst_rel <= REL_TOLERANCE and len(mine) == len(other))
    ppl, result = record["perplexity"]["validation"], results["crosscheck_wikitext"]
    for ours_key, theirs_key in (("word_perplexity", "word_perplexity"), ("byte_perplexity", "byte_perplexity"),
                                 ("bits_per_byte", "bits_per_byte")):
        a, b = ppl[ours_key], result[f"{theirs_key},none"]
        add(f"wikitext {ours_key}", f"{a:.8g}", f"{b:.8g}", f"rel {relative(a, b):.1e}",
            relative(a, b) <= REL_TOLERANCE)
    return rows, ok


def markdown(rows: list[list[str]]) -> str:
    header = ["figure", "lmeval-fixtures", "lm-evaluation-harness", "difference", "agrees"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmeval-python", required=True, help="python of an environment with lm-eval installed")
    parser.add_argument("--checkpoint", type=Path, default=REFERENCE_DIR / "ref-e35" / "model.safetensors",
                        help="native checkpoint (exported first) or Hugging Face folder")
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("LMEVAL_DATA_DIR"),
                        required="LMEVAL_DATA_DIR" not in os.environ,
                        help="data in the suite's layout (default $LMEVAL_DATA_DIR)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "lmeval-crosscheck",
                        help="working folder (data copies, exported model, both tools' outputs); "
                             "outside the repository by default, since it holds copies of the data")
    parser.add_argument("--limit", type=int, help="first N rows of each SmallBench task (quick runs)")
    parser.add_argument("--lmeval-batch-size", default="32", help="lm-eval's --batch_size (its default is 1)")
    args = parser.parse_args(argv)

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for previous in ("lmeval", "ours"):  # outputs of an earlier run would be read as this run's
        shutil.rmtree(out / previous, ignore_errors=True)
    if is_hf_folder(args.checkpoint):
        model = args.checkpoint.resolve()
    else:
        model = export_hf(args.checkpoint, out / f"{checkpoint_name(args.checkpoint)}-hf").resolve()
    data = prepare_data(args.data_dir.resolve(), out, args.limit)
    task_names = write_task_yamls(lmeval_tasks_dir(args.lmeval_python), data, out)

    lmeval_seconds = run_lmeval(args.lmeval_python, model, task_names, out, args.lmeval_batch_size)
    ours_seconds = run_ours(model, data, out)
    rows, ok = compare(out, model.name)
    rows.append(["wall time, s (whole process)", f"{ours_seconds:.1f}", f"{lmeval_seconds:.1f}",
                 f"ratio {ours_seconds / lmeval_seconds:.3f}", "yes"])
    table = markdown(rows)
    heading = (f"Cross-check of {args.checkpoint} ({model.name}), lm-eval batch size {args.lmeval_batch_size}"
               + (f", first {args.limit} rows per task" if args.limit else ", full validation splits") + "\n\n")
    (out / "crosscheck.md").write_text(heading + table)
    (out / "crosscheck.json").write_text(json.dumps({"rows": rows, "agrees": ok, "ours_seconds": ours_seconds,
                                                     "lmeval_seconds": lmeval_seconds}, indent=2) + "\n")
    print(heading + table)
    print("all figures agree" if ok else "DISAGREEMENT: see the rows marked NO", f"({out / 'crosscheck.md'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
