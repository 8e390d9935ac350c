"""``evaluate()`` and the command line are two doors into one run: every option of ``OPTIONS`` is given
through both, on the same checkpoint and data, and everything each door wrote must agree; an option that
has no meaning for one model in one process is refused by name (``api.REFUSED_OPTIONS``).

Each door writes into a report folder of its own (``cli``, ``lib``) under the same run id, and the two
are compared file by file (``written``): the records (settings, figures, item outcomes with their
reasons, errors, environment, gate verdicts), the history lines, summary.md, comparison.md, samples
files, baseline folders, the result cache's entries (by name: the digest of their identity) and the
tracker's files. What may differ is what says when and how the run was asked for (times, durations,
the command line) and what a clock measured (the timings' values, not their shapes or rounds).
Options that do not interact share one pytest run, so the whole table costs a few runs.

``test_every_option_is_honoured_through_both_doors_or_refused_by_name`` keeps the class closed: an
option added to ``OPTIONS`` fails it until a case here gives it through both doors or it is refused.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from lmeval_fixtures.api import REFUSED_OPTIONS, evaluate
from lmeval_fixtures.core.errors import UsageError
from lmeval_fixtures.evaluation import items
from lmeval_fixtures.evaluation.options import OPTIONS
from lmeval_fixtures.evaluation.result_cache import MARKER

from ..helpers import LATENCY, REVIEWS, jsonl, one_line, write, write_native_checkpoint

RUN_ID = "r"
DOORS = ("cli", "lib")
FLAGS = {option.dest: option.flag for option in OPTIONS}
# every case gives these through both doors (``both_doors``): where the data is, where reports go, the run id
GIVEN_IN_EVERY_CASE = ("data_dir", "report_dir", "run_id")

# ---- what each door wrote, in comparable form ---------------------------------------------------------

# what says when and how a run was asked for, or what a clock measured: never compared
WHEN = frozenset({"timestamp", "invocations", "seconds", "tokens_per_second", "duration_s", "created"})
CLOCK = frozenset({"load_before", "load_after", "peak_rss_mb", "tokens_per_sec", "noisy", "memory_allocated_mb",
                   "memory_reserved_mb"})
TIMED_HEADLINES = ("latency_batch", "throughput_tokens_per_sec")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
ITEM_ROW = re.compile(r"^\| `(?:evaluate::)?([^`]*)` \| (\w+(?: \w+)?) \| [^|]*\|")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?")


def scrub(value: Any, timed: bool = False) -> Any:
    """``value`` without what a clock decides (``WHEN``, ``CLOCK``); ``timed``: no number in any text either
    (a timing gate's message quotes the milliseconds), nor a gate's message (only whether it passed)."""
    if isinstance(value, dict):  # timed: a gate's message says whether the clock was steady enough to judge
        return {k: scrub(v, timed) for k, v in value.items()
                if k not in WHEN and k not in CLOCK and not k.endswith("_ms") and not k.startswith(TIMED_HEADLINES)
                and not (timed and k == "message")}
    if isinstance(value, list):
        return [scrub(v, timed) for v in value]
    return NUMBER.sub("#", value) if timed and isinstance(value, str) else value


def outcomes(record: dict) -> dict[str, tuple[str, str | None]]:
    """Each item's outcome and reason by its pytest name (``test_perplexity[a-test]``), whichever door ran it."""
    return {item_id.split("::")[-1]: (o["outcome"], o["reason"]) for item_id, o in record["items"].items()}


def comparable(record: dict, timed: bool = False) -> dict:
    """A record as both doors must write it: item ids by their pytest name, no clock readings."""
    return scrub(record, timed) | {"items": {k: scrub(v, timed) for k, v in outcomes(record).items()}}


def summary_line(line: str, timed: bool) -> str:
    """A line of summary.md without the time it was written or an item's duration (``timed``: no number)."""
    line = ITEM_ROW.sub(r"| `\1` | \2 | |", TIME.sub("<time>", line))
    return NUMBER.sub("#", line) if timed else line


def written(root: Path, timed: bool = False) -> dict[str, Any]:
    """Everything under ``root``, by relative path, in comparable form (empty when nothing was written)."""
    found: dict[str, Any] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []:
        name = path.relative_to(root).as_posix()
        if path.name == "metrics.json":
            found[name] = comparable(json.loads(path.read_text()), timed)
        elif path.name == "history.jsonl":
            found[name] = [scrub(json.loads(line), timed) for line in path.read_text().splitlines()]
        elif path.name == "summary.md":  # not the command line that made it: that is each door's own
            found[name] = [summary_line(line, timed) for line in path.read_text().splitlines()
                           if "lmeval_fixtures.evaluate(" not in line and "pytest" not in line
                           and not (timed and not ITEM_ROW.match(line))]  # timed: which timings were noisy (and
            # so not gated) is the clock's; the records and the items' outcomes are compared all the same
        elif re.fullmatch(r"[0-9a-f]{64}\.json", path.name):
            found[name] = "cache entry"  # its name is the digest of the measurement's identity: the name is the claim
        elif path.name.startswith("events.out.tfevents."):
            found[str(path.parent.relative_to(root))] = tensorboard_scalars(path, timed)
        elif path.suffix in (".jsonl", ".md"):
            found[name] = path.read_text()
        else:
            found[name] = "present"
    return found


def tensorboard_scalars(path: Path, timed: bool) -> dict[str, list[tuple[int, float]]]:
    """The scalars a TensorBoard event file holds, by tag (timings' values left out)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(path))
    events.Reload()
    return {tag: [(e.step, "#" if timed or tag.startswith(TIMED_HEADLINES) else e.value)
                  for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


# ---- the two doors -------------------------------------------------------------------------------------


def for_door(value: Any, door: str) -> Any:
    """``{door}`` in a value names each door's own output (a cache folder, a tracker folder)."""
    return value.replace("{door}", door) if isinstance(value, str) else value


def both_doors(suite, args: list[str], options: dict[str, Any], families: tuple[str, ...] = ("perplexity",),
               checkpoint: str = "ck/a") -> tuple[Any, BaseException | None]:
    """The same options through both doors: ``args`` to pytest, ``options`` to ``evaluate()``, each into its own
    report folder under the same run id. Returns pytest's result and what ``evaluate()`` raised (None)."""
    threads = torch.get_num_threads()
    result = suite.runpytest("--checkpoint", checkpoint, "--data-dir", "data", "-m", " or ".join(families),
                             "--run-id", RUN_ID, "--report-dir", "cli", "-p", "no:randomly",
                             *[for_door(arg, "cli") for arg in args])
    torch.set_num_threads(threads)  # as a process of its own leaves them: pytest's --threads is its process's
    try:
        evaluate(checkpoint, families=list(families), data_dir="data", report_dir="lib", run_id=RUN_ID,
                 **{key: for_door(value, "lib") for key, value in options.items()})
    except UsageError as exc:
        return result, exc
    return result, None


def assert_same_output(suite, outputs: tuple[str, ...] = ("{door}",), timed: bool = False) -> None:
    """Each door wrote the same files with the same content (comparable form) into its folders."""
    for output in outputs:
        cli, lib = (written(suite.path / for_door(output, door), timed) for door in DOORS)
        assert cli, f"nothing written into {for_door(output, 'cli')}"
        found = differences(cli, lib)
        assert not found, "\n".join([f"{output}: cli and lib differ", *found])


def differences(cli: Any, lib: Any, where: str = "") -> list[str]:
    """Where the two doors' output differ (``path: cli's | lib's``), for a message that says where."""
    if isinstance(cli, dict) and isinstance(lib, dict):
        return [found for key in sorted(cli.keys() | lib.keys(), key=str) for found in (
            differences(cli[key], lib[key], f"{where}/{key}") if key in cli and key in lib else
            [f"{where}/{key}: only {'cli' if key in cli else 'lib'}"])]
    if isinstance(cli, list) and isinstance(lib, list) and len(cli) == len(lib):
        pairs = enumerate(zip(cli, lib, strict=True))
        return [found for i, (a, b) in pairs for found in differences(a, b, f"{where}[{i}]")]
    if isinstance(cli, list) and isinstance(lib, list) and all(isinstance(x, str) for x in cli + lib):
        return [f"{where}: {line}" for line in difflib.unified_diff(cli, lib, "cli", "lib", n=0, lineterm="")]
    return [] if cli == lib else [f"{where}: {cli!r} | {lib!r}"]


# ---- the cases: options that do not interact share one run ---------------------------------------------


@dataclass(frozen=True)
class Case:
    """Options given through both doors in one run each: ``args`` (pytest's) mean ``options`` (evaluate's)."""

    args: list[str]
    options: dict[str, Any]
    families: tuple[str, ...] = ("perplexity",)
    prepare: Callable[[Path], None] | None = None  # what the run needs beyond ``suite`` (made in its folder)
    outputs: tuple[str, ...] = ("{door}",)  # the folders each door writes into, compared
    checkpoint: str = "ck/a"
    timed: bool = False
    passed: int | None = None  # items pytest must pass (so the case measures what it means to)


def own_declarations(root: Path) -> None:
    """A corpus (a text file) and a task (our YAML over JSON Lines) of one's own."""
    write(root / "own.txt", "one document here, about a fox\n\nanother document there, about a dog\n")
    jsonl(root / "mine/v.jsonl", [{"text": t, "label": g} for t, g in REVIEWS])
    write(root / "mine/ours.yaml", "name: ours\nlabel: Ours\ndata: v.jsonl\ntemplate: 'Review: {text}'\n"
                                   "choices: [bad, good]\n")


def halved_baseline(root: Path) -> None:
    """A baseline whose validation bits per byte are half this checkpoint's: that split regresses."""
    evaluate("ck/a", families=["perplexity", "smallbench"], data_dir="data", report_dir="base", run_id="b",
             max_samples=4, history=False)
    path = root / "base/b/a/metrics.json"
    record = json.loads(path.read_text())
    record["perplexity"]["validation"]["bits_per_byte"] /= 2
    path.write_text(json.dumps(record))


def paired_baseline(root: Path) -> None:
    """A baseline with per-document values (``update_baseline``), then other weights under the same name."""
    evaluate("ck/a", families=["perplexity"], data_dir="data", report_dir="base", run_id="b", update_baseline="bb",
             history=False)
    write_native_checkpoint(root / "ck" / "a", seed=3)


def only_a_baselined(root: Path) -> None:
    """A baseline folder with a record of ``a`` only (``b`` has none)."""
    evaluate("ck/a", families=["perplexity"], data_dir="data", report_dir="base", run_id="b", history=False)


def bad_rows(root: Path) -> None:
    """A task file whose fourth row's label is none of its choices."""
    jsonl(root / "bad/v.jsonl", [{"text": t, "label": g} for t, g in REVIEWS] + [{"text": "x", "label": "maybe"}])
    write(root / "bad/bad.yaml", "name: bad\nlabel: Bad\ndata: v.jsonl\ntemplate: 'Review: {text}'\n"
                                 "choices: [bad, good]\n")


TIMED_SHAPES = {"latency_shapes": "1x8,2x16", "throughput_shape": "2x16", "batch_sweep": "1,2", "timing_budget": 0.0}


def fast_baseline(root: Path) -> None:
    """A timing baseline a million times faster than any run: only a huge --latency-tolerance passes it."""
    (root / "test_latency.py").write_text(LATENCY)
    evaluate("ck/a", families=["latency", "throughput"], report_dir="base", run_id="b", history=False,
             **TIMED_SHAPES)
    path = root / "base/b/a/metrics.json"
    record = json.loads(path.read_text())
    for entry in record["latency"].values():
        entry["mean_ms"] /= 1e6
    record["throughput"]["tokens_per_sec"] *= 1e6
    path.write_text(json.dumps(record))


CASES = {
    "perplexity-settings": Case(
        ["--max-eval-tokens", "40", "--ppl-stride", "16", "--detokenize", "off", "--dtype", "bfloat16",
         "--device", "auto", "--experiment-name", "sweep-7", "--log-samples", "hash"],
        {"max_eval_tokens": 40, "ppl_stride": 16, "detokenize": "off", "dtype": "bfloat16", "device": "auto",
         "experiment_name": "sweep-7", "log_samples": "hash"}, passed=2),
    "engine-settings": Case(  # --log-samples alone is True: the flag without a value
        ["--seed", "7", "--batch-tokens", "128", "--no-cache", "--threads", "1", "--log-samples"],
        {"seed": 7, "batch_tokens": 128, "no_cache": True, "threads": 1, "log_samples": True}, passed=2),
    "smallbench": Case(
        ["--prompts", "lm-eval", "--fewshot", "2", "--max-samples", "5", "--seed", "11"],
        {"prompts": "lm-eval", "fewshot": 2, "max_samples": 5, "seed": 11}, families=("smallbench",), passed=4),
    "declarations": Case(
        ["--corpus", "own=own.txt", "--task-file", "mine/ours.yaml", "--cache-dir", "{door}-cache",
         "--cache-max-mb", "64", "--log-samples", "full"],
        {"corpus": ["own=own.txt"], "task_file": "mine/ours.yaml", "cache_dir": "{door}-cache", "cache_max_mb": 64,
         "log_samples": "full"},
        families=("perplexity", "smallbench"), prepare=own_declarations, outputs=("{door}", "{door}-cache"), passed=8),
    "refused-at-set-up": Case(  # a stride beyond the context, a row no rule can read: each item's set-up fails
        ["--ppl-stride", "100", "--task-file", "bad/bad.yaml", "--max-samples", "2"],
        {"ppl_stride": 100, "task_file": "bad/bad.yaml", "max_samples": 2},
        families=("perplexity", "smallbench"), prepare=bad_rows, passed=4),
    "threshold-gates": Case(
        ["--baseline", "base/b", "--ppl-tolerance", "0.2", "--acc-tolerance-se", "0.5", "--min-acc", "0.6",
         "--max-samples", "4"],
        {"baseline": "base/b", "ppl_tolerance": 0.2, "acc_tolerance_se": 0.5, "min_acc": 0.6, "max_samples": 4},
        families=("perplexity", "smallbench"), prepare=halved_baseline, passed=1),
    "paired-gate": Case(
        ["--baseline", "base/baselines/bb", "--gate", "paired", "--gate-alpha", "0.3", "--update-baseline", "nb",
         "--track", "tensorboard:{door}-tb"],
        {"baseline": "base/baselines/bb", "gate": "paired", "gate_alpha": 0.3, "update_baseline": "nb",
         "track": "tensorboard:{door}-tb"},
        prepare=paired_baseline, outputs=("{door}", "{door}-tb"), passed=0),
    "two-checkpoints": Case(
        ["--compare-by", "test_bits_per_byte", "--baseline", "base/b", "--allow-missing-baseline",
         "--update-baseline", "nb"],
        {"compare_by": "test_bits_per_byte", "baseline": "base/b", "allow_missing_baseline": True,
         "update_baseline": "nb"},
        prepare=only_a_baselined, checkpoint="ck", passed=4),
    "timings": Case(
        ["--latency-shapes", "1x8,2x16", "--throughput-shape", "2x16", "--batch-sweep", "1,2", "--timing-budget", "0",
         "--latency-rounds", "3", "--latency-warmup", "1", "--throughput-rounds", "3", "--baseline", "base/b",
         "--latency-tolerance", "1e9"],
        TIMED_SHAPES | {"latency_rounds": 3, "latency_warmup": 1, "throughput_rounds": 3, "baseline": "base/b",
                        "latency_tolerance": 1e9},
        families=("latency", "throughput"), prepare=fast_baseline, timed=True, passed=4),
}


@pytest.mark.parametrize("name", CASES)
def test_options_mean_the_same_through_both_doors(request, suite, monkeypatch, name):
    case = CASES[name]
    if case.checkpoint == "ck":  # a folder of two: comparison.md, a checkpoint without a baseline record
        write_native_checkpoint(suite.path / "ck" / "b", seed=2)
    monkeypatch.chdir(suite.path)
    if case.prepare:
        case.prepare(suite.path)
    result, refused = both_doors(suite, case.args, case.options, case.families, case.checkpoint)
    assert refused is None
    assert result.parseoutcomes().get("passed", 0) == case.passed
    assert_same_output(suite, case.outputs, case.timed)


def test_each_case_gives_the_same_options_through_both_doors():
    """A case's pytest flags are exactly its keywords' flags (so no case compares different options)."""
    for name, case in CASES.items():
        flags = {arg for arg in case.args if arg.startswith("--")}
        assert flags == {FLAGS[key] for key in case.options}, name


def test_a_checkpoint_that_does_not_load_errs_each_of_its_items_through_both_doors(suite, monkeypatch):
    monkeypatch.chdir(suite.path)
    (suite.path / "ck/a/model.safetensors").write_bytes(b"not weights")
    result, _ = both_doors(suite, [], {}, families=("perplexity", "smallbench"))
    assert result.parseoutcomes()["errors"] == 6
    assert_same_output(suite)
    record = json.loads((suite.path / "lib/r/a/metrics.json").read_text())
    assert {outcome for outcome, _ in outcomes(record).values()} == {"error"} and len(record["items"]) == 6


def test_a_run_stopped_by_ctrl_c_writes_what_finished_through_both_doors(suite, monkeypatch):
    """Ctrl-C in the middle (here: in the first SmallBench item): the perplexity figures are written, the rest
    listed as not run, ``complete: false``, a history line; ``evaluate()`` then raises the KeyboardInterrupt."""
    monkeypatch.chdir(suite.path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(items, "smallbench", interrupted)
    result = suite.runpytest("--checkpoint", "ck/a", "--data-dir", "data", "--run-id", RUN_ID, "--report-dir", "cli",
                             "-p", "no:randomly", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    with pytest.raises(KeyboardInterrupt):
        evaluate("ck/a", families=["perplexity", "smallbench"], data_dir="data", report_dir="lib", run_id=RUN_ID)
    assert_same_output(suite)
    record = json.loads((suite.path / "lib/r/a/metrics.json").read_text())
    assert record["complete"] is False and record["val_bits_per_byte"] > 0
    assert [outcome for outcome, _ in outcomes(record).values()].count("not run") == 4


# ---- options whose meaning takes more than one run to show ---------------------------------------------

HONOURED_BY_TESTS: dict[str, str] = {}


def honours(*dests: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Registers a test as the proof that ``dests`` mean the same through both doors."""
    def register(test: Callable[..., None]) -> Callable[..., None]:
        HONOURED_BY_TESTS.update(dict.fromkeys(dests, test.__name__))
        return test
    return register


@honours("strict_skips")
def test_strict_skips_fail_a_skipped_item_through_both_doors(suite, monkeypatch):
    monkeypatch.chdir(suite.path)
    (suite.path / "data/wikitext-2-raw/test.txt").unlink()
    result, _ = both_doors(suite, ["--strict-skips"], {"strict_skips": True})
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert_same_output(suite)
    lib = json.loads((suite.path / "lib/r/a/metrics.json").read_text())
    outcome, reason = outcomes(lib)["test_perplexity[a-test]"]
    assert outcome == "error" and reason.startswith("skipped under --strict-skips: ")  # at set-up, as pytest's


@honours("baseline")
def test_a_gated_item_that_skips_fails_under_a_baseline_through_both_doors(suite, monkeypatch):
    monkeypatch.chdir(suite.path)
    base = evaluate(suite.path / "ck" / "a", families=["perplexity"], data_dir=suite.path / "data",
                    report_dir=suite.path / "base", run_id="b")
    (suite.path / "data/wikitext-2-raw/test.txt").unlink()
    baseline = str(base.paths[0])
    result, _ = both_doors(suite, ["--baseline", baseline], {"baseline": baseline})
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert_same_output(suite)
    lib = json.loads((suite.path / "lib/r/a/metrics.json").read_text())
    outcome, reason = outcomes(lib)["test_perplexity[a-test]"]
    assert outcome == "error" and reason.startswith("--baseline given, but this gated item skipped: ")
    assert outcomes(lib)["test_perplexity[a-validation]"][0] == "passed"


@honours("merge_into")
def test_merge_into_folds_into_the_named_folder_without_a_history_line_through_both_doors(suite, monkeypatch):
    monkeypatch.chdir(suite.path)
    for door in DOORS:
        evaluate("ck/a", families=["perplexity"], data_dir="data", report_dir=door, run_id="first", max_eval_tokens=40)
    history = (suite.path / "cli/history.jsonl").read_text()
    result, _ = both_doors(suite, ["--merge-into", "{door}/first", "--max-eval-tokens", "40"],
                           {"merge_into": "{door}/first", "max_eval_tokens": 40}, families=("smallbench",))
    assert result.ret == pytest.ExitCode.OK
    assert (suite.path / "cli/history.jsonl").read_text() == history  # no second line
    assert sorted(p.name for p in (suite.path / "lib").iterdir() if p.is_dir()) == [".cache", "first"]  # no r/
    assert_same_output(suite)
    assert json.loads((suite.path / "lib/first/a/metrics.json").read_text())["smallbench"]


@honours("threads")
def test_threads_set_the_intra_op_threads_of_every_item_through_both_doors(suite, monkeypatch):
    monkeypatch.chdir(suite.path)
    seen: list[int] = []
    measure = items.perplexity

    def probe(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return measure(*args, **kwargs)

    monkeypatch.setattr(items, "perplexity", probe)
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    try:
        both_doors(suite, ["--threads", str(target)], {"threads": target})
    finally:
        assert torch.get_num_threads() == before  # evaluate() gives the caller's threads back
        torch.set_num_threads(before)
    assert seen == [target] * 4  # two splits, each door
    assert_same_output(suite)  # the records say so: environment.cpu_threads


def cache_entries(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*/*.json")}


def entries_from(folder: Path) -> set[str]:
    """The runs that stored the cache entries of ``folder``."""
    return {json.loads(p.read_text())["run_id"] for p in folder.glob("*/*.json")}


@honours("cache_dir", "refresh", "cache_max_mb")
def test_one_cache_folder_serves_both_doors_and_its_options_mean_the_same(suite, monkeypatch):
    """What one door stores, the other finds (the same identity, so the same key); ``refresh`` recomputes and
    stores again; ``cache_max_mb`` bounds the folder (least recently used first). (``no_cache``: the case
    ``engine-settings``, which writes no cache entry through either door.)"""
    monkeypatch.chdir(suite.path)
    shared = ["--cache-dir", "shared"]
    pytest_run = ["--checkpoint", "ck/a", "--data-dir", "data", "-m", "perplexity", "--report-dir", "cli",
                  "-p", "no:randomly"]
    assert suite.runpytest(*pytest_run, "--run-id", "cli-1", *shared).ret == pytest.ExitCode.OK
    stored = cache_entries(suite.path / "shared")
    assert len(stored) == 2
    served = evaluate("ck/a", families=["perplexity"], data_dir="data", report_dir="lib", run_id="lib-1",
                      cache_dir="shared")
    assert {v["from_run"] for v in served.records["a"]["cache"].values()} == {"cli-1"}  # both splits, pytest's
    again = evaluate("ck/a", families=["perplexity"], data_dir="data", report_dir="lib", run_id="lib-2",
                     cache_dir="shared", refresh=True)
    assert "cache" not in again.records["a"] and entries_from(suite.path / "shared") == {"lib-2"}  # stored again
    assert suite.runpytest(*pytest_run, "--run-id", "cli-2", "--refresh", *shared).ret == pytest.ExitCode.OK
    record = json.loads((suite.path / "cli/cli-2/a/metrics.json").read_text())
    assert "cache" not in record and entries_from(suite.path / "shared") == {"cli-2"}

    for door in DOORS:  # a stale entry of 2 MiB beside them: over a 1 MiB bound it goes, the run's stay
        (suite.path / door).rename(suite.path / f"{door}-served")
        stale = suite.path / f"{door}-bounded" / "00" / f"{'0' * 64}.json"
        stale.parent.mkdir(parents=True)
        stale.write_bytes(b" " * 2**21)
        (suite.path / f"{door}-bounded" / MARKER).write_text("{}\n")
        os.utime(stale, (1, 1))  # the least recently used
    both_doors(suite, ["--cache-dir", "{door}-bounded", "--cache-max-mb", "1"],
               {"cache_dir": "{door}-bounded", "cache_max_mb": 1})
    for door in DOORS:
        assert cache_entries(suite.path / f"{door}-bounded") == stored
    assert_same_output(suite, ("{door}", "{door}-bounded"))


# ---- refused by name, and the same start-up checks -----------------------------------------------------


@pytest.mark.parametrize("options, line", [
    ({"shard": "1/2"}, "shard: evaluate() runs every item of its model in this process; a shard is a part of a "
                       "pytest run (pytest benchmarks --shard I/N, then lmeval-fixtures merge)"),
    ({"checkpoint": ["ck/a"]}, "checkpoint: pass the checkpoint (or the in-memory model) as evaluate's first "
                               "argument"),
])
def test_an_option_evaluate_cannot_honour_is_refused_by_name(suite, monkeypatch, options, line):
    monkeypatch.chdir(suite.path)
    with pytest.raises(UsageError) as caught:
        evaluate(suite.path / "ck" / "a", data_dir=suite.path / "data", **options)
    assert one_line(caught) == line
    assert not (suite.path / "reports").exists()


def test_a_refused_option_left_unset_is_no_option_at_all(suite, monkeypatch):
    """None means "not given" for every keyword (a caller passing a whole table of settings), refused ones too."""
    monkeypatch.chdir(suite.path)
    done = evaluate("ck/a", families=["perplexity"], data_dir="data", max_eval_tokens=20, shard=None, checkpoint=None,
                    history=False)
    assert done.records["a"]["settings"]["shard"] is None and done.records["a"]["val_bits_per_byte"] > 0


@pytest.mark.parametrize("keyword, line", [
    ("max_eval_token", "evaluate: no such keyword max_eval_token; did you mean max_eval_tokens?"),
    ("familes", "evaluate: no such keyword familes; did you mean families?"),
    ("stride", "evaluate: no such keyword stride; did you mean ppl_stride?"),
    ("checkpoints", "evaluate: no such keyword checkpoints; did you mean checkpoint?"),  # then refused by name
    ("colour", "evaluate: no such keyword colour; the keywords are evaluate()'s own (name, families, registry, "
                "history, training, logger) and the command line's options by name (docs/options.md)"),
    ("strict-skips", "evaluate: no such keyword strict-skips; did you mean strict_skips?"),
])
def test_an_unknown_keyword_is_one_line_naming_it(suite, monkeypatch, keyword, line):
    monkeypatch.chdir(suite.path)
    with pytest.raises(UsageError) as caught:
        evaluate(suite.path / "ck" / "a", data_dir=suite.path / "data", **{keyword: 1})
    assert one_line(caught) == line
    assert not (suite.path / "reports").exists()


@pytest.mark.parametrize("args, options", [
    (["--seed", str(2**70)], {"seed": 2**70}),
    (["--device", "tpu"], {"device": "tpu"}),
    (["--task-file", "gone.yaml"], {"task_file": "gone.yaml"}),
    (["--compare-by", "nonsense"], {"compare_by": "nonsense"}),
    (["--latency-shapes", "0x8"], {"latency_shapes": "0x8"}),
    (["--track", "mlflow"], {"track": "mlflow"}),
    (["--corpus", "own=nothing.txt"], {"corpus": "own=nothing.txt"}),
    (["--update-baseline", "a b"], {"update_baseline": "a b"}),
    (["--merge-into", "nowhere"], {"merge_into": "nowhere"}),
    (["--cache-dir", "data/wikitext-2-raw/test.txt"], {"cache_dir": "data/wikitext-2-raw/test.txt"}),
])
def test_a_value_the_command_line_refuses_is_refused_by_evaluate_in_the_same_words(suite, monkeypatch, args,
                                                                                    options):
    monkeypatch.chdir(suite.path)
    result, refused = both_doors(suite, args, options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR and refused is not None
    said = [line.removeprefix("ERROR: ") for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert said == [str(refused)]
    assert not (suite.path / "cli").exists() and not (suite.path / "lib").exists()


@pytest.mark.parametrize("args, options", [
    (["--prompts", "house"], {"prompts": "house"}),
    (["--fewshot", "two"], {"fewshot": "two"}),
    (["--log-samples", "all"], {"log_samples": "all"}),
])
def test_a_value_the_parser_refuses_is_refused_by_evaluate_naming_option_and_value(suite, monkeypatch, args,
                                                                                   options):
    """A choice or a type the command line's parser refuses (in argparse's words) is refused by ``evaluate()`` in
    one line naming the same option and value."""
    monkeypatch.chdir(suite.path)
    result, refused = both_doors(suite, args, options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR and refused is not None
    flag, value = args
    result.stderr.fnmatch_lines([f"*argument {flag}: invalid*'{value}'*"])
    assert str(refused).startswith(f"{flag} '{value}': ") and "\n" not in str(refused)
    assert not (suite.path / "cli").exists() and not (suite.path / "lib").exists()


def test_an_in_memory_model_is_recorded_where_it_ran(tiny_lm, tmp_path, monkeypatch):
    model, tokenizer = tiny_lm
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as caught:
        evaluate(model, tokenizer, families=["latency"], dtype="bfloat16")
    assert one_line(caught) == ("dtype 'bfloat16': the in-memory model is on cpu in float32; move it there "
                                "(model.to(...)) or leave dtype= out")
    done = evaluate(model, tokenizer, families=["latency"], latency_shapes="1x8", timing_budget=0.0, device="auto")
    assert (done.records["model"]["settings"]["device"], done.records["model"]["settings"]["dtype"]) == \
        ("cpu", "float32")


def test_an_in_memory_models_device_is_the_runs_for_every_auto(tiny_lm, tmp_path, monkeypatch):
    """``batch_tokens="auto"`` for a model on a GPU is the GPU's budget, as ``--device cuda --batch-tokens auto``
    gives it, not the CPU's (checked without a GPU: the model is said to be on cuda; the run stops at its start)."""
    from lmeval_fixtures import api
    from lmeval_fixtures.evaluation.settings import AUTO_BATCH_TOKENS, settings_from_options

    model, tokenizer = tiny_lm
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(api, "where_it_is", lambda model, options: {"device": "cuda", "dtype": "float32"})
    budgets = []

    def start(values, **kwargs):
        budgets.append(settings_from_options(values, [], None, tmp_path).batch_tokens)
        raise UsageError("stopped at the start")

    monkeypatch.setattr(api, "start_run", start)
    with pytest.raises(UsageError, match="stopped at the start"):
        evaluate(model, tokenizer, families=["perplexity"], batch_tokens="auto")
    assert budgets == [AUTO_BATCH_TOKENS]


# ---- the class stays closed ----------------------------------------------------------------------------


@dataclass
class Coverage:
    honoured: dict[str, str] = field(default_factory=dict)  # option -> the test that gives it through both doors

    @classmethod
    def now(cls) -> Coverage:
        found = cls()
        for dest in GIVEN_IN_EVERY_CASE:
            found.honoured[dest] = "both_doors (every case)"
        for name, case in CASES.items():
            for dest in case.options:
                found.honoured.setdefault(dest, f"test_options_mean_the_same_through_both_doors[{name}]")
        for dest, test in HONOURED_BY_TESTS.items():
            found.honoured.setdefault(dest, test)
        return found


def test_every_option_is_honoured_through_both_doors_or_refused_by_name():
    coverage = Coverage.now()
    options = {option.dest for option in OPTIONS}
    assert not coverage.honoured.keys() & REFUSED_OPTIONS.keys()
    assert coverage.honoured.keys() - options == set()  # no case names an option that is not one
    assert options - coverage.honoured.keys() - REFUSED_OPTIONS.keys() == set(), \
        "give the new option through both doors in a case here, or refuse it by name in api.REFUSED_OPTIONS"
