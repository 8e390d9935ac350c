"""History and comparison compare like with like; the command line's names, help and version (issue 14).

A figure measured with other figure-changing settings (token cap, row cap, prompts, shots,
stride, detokenizer, seed, device, dtype, context) or on other data is never trended or
ranked against it: the history leaves such runs out and says so; the comparison puts
such records in groups of their own and says why.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest

from lmeval_fixtures.cli import main as cli_module
from lmeval_fixtures.cli.main import build_parser
from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.core.errors import DataError, DataUnavailable
from lmeval_fixtures.evaluation.run import Run
from lmeval_fixtures.records.comparison import comparable_groups, render_comparison, render_paired
from lmeval_fixtures.records.history import differences, read_history, trend
from lmeval_fixtures.records.record import FIGURE_SETTINGS
from lmeval_fixtures.suite.registry import Registry

ENVIRONMENT = {"device": "cpu", "dtype": "float32", "python": "3.11", "torch": "x", "platform": "p"}
SETTINGS = {"seed": 1234, "max_eval_tokens": None, "ppl_stride": None, "detokenize": True, "prompts": "smallbench",
            "max_samples": None, "fewshot": 0, "device": "cpu", "dtype": "float32",
            "batch_tokens": 16384, "baseline": None, "checkpoints": ["a"]}  # the last three change no figure
DATA = {"wikitext-2-raw/validation.txt": "1" * 64}


def split_figures(bpb: float, context: int = 64) -> dict:
    """A perplexity split as items record it (the schema's required fields)."""
    return {"loss": bpb * 2, "token_perplexity": 2.0 ** (bpb * 2), "bits_per_byte": bpb, "byte_perplexity": 1.5,
            "word_perplexity": 9.0, "tokens": 10, "bytes": 30, "words": 6, "documents": 1, "stride": context,
            "context_length": context, "max_eval_tokens": None, "detokenized": True}


def finished_run(folder: Path, run_id: str, bpb: dict[str, float], settings: dict | None = None,
                 data: dict | None = None, history: Path | None = None, context: int = 64) -> Path:
    """A run of checkpoints (name -> validation bits per byte) written by ``Run.finish`` as pytest
    would write it: metrics.json per checkpoint, the comparison, and (given a file) history lines."""
    metadata_ = {"run_id": run_id, "timestamp": f"2026-01-0{len(run_id) % 9 + 1}T00:00:00+00:00", "seed": 1234,
                 "git_commit": None, "environment": ENVIRONMENT, "settings": SETTINGS | (settings or {})}
    run = Run(metadata_)
    for name, value in bpb.items():
        run.absorb([(name, "t::ppl[validation]", {"perplexity": {"validation": split_figures(value, context)},
                                                    "data_fingerprints": DATA if data is None else data}),
                    (name, "~checkpoint", {"checkpoint": {"name": name, "path": "p", "sha256": name * 8}})])
        run.add_outcome(name, "t::ppl[validation]", "passed")
    done = run.finish(folder / run_id, compare_by="val_bits_per_byte", history=history, run_id=run_id)
    assert not done.errors, done.errors
    return folder / run_id


# ---- history lines carry how they were measured ------------------------------------------------

def test_a_history_line_carries_the_figure_changing_settings_and_data(tmp_path):
    history = tmp_path / "history.jsonl"
    finished_run(tmp_path, "r1", {"a": 2.0}, settings={"max_samples": 200}, history=history)
    line = json.loads(history.read_text().splitlines()[0])
    assert line["settings"] == {key: (SETTINGS | {"max_samples": 200})[key] for key in FIGURE_SETTINGS} | {
        "context": 64}
    assert "batch_tokens" not in line["settings"] and "baseline" not in line["settings"]
    assert line["data_fingerprints"] == DATA
    assert line["val_bits_per_byte"] == 2.0 and line["run_id"] == "r1" and line["sha256"] == "a" * 8
    assert read_history(history)[0] == line  # the validated reader takes the new fields


def test_every_figure_changing_setting_is_in_what_a_run_records(tmp_path):
    from lmeval_fixtures.evaluation.options import option_values
    from lmeval_fixtures.evaluation.settings import settings_from_options

    recorded = settings_from_options(option_values(), ini_checkpoints=[], ini_data_dir=None,
                                     rootpath=tmp_path).as_record()
    assert set(FIGURE_SETTINGS) <= set(recorded)


def line(run_id: str, value: float, data: dict | None = None, **settings) -> dict:
    return {"run_id": run_id, "timestamp": f"2026-01-01T00:00:0{run_id[-1]}+00:00", "git_commit": None,
            "checkpoint": "a", "sha256": "x", "complete": True, "val_bits_per_byte": value,
            "settings": {k: SETTINGS[k] for k in FIGURE_SETTINGS} | {"context": 64} | settings,
            "data_fingerprints": DATA if data is None else data}


def write_lines(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(entry) + "\n" for entry in lines))
    return path


def test_the_trend_leaves_out_runs_measured_otherwise_and_says_so(tmp_path, capsys):
    lines = [line("r1", 2.0, max_samples=200), line("r2", 2.0, max_samples=200), line("r3", 2.1),
             line("r4", 2.5, data={"wikitext-2-raw/validation.txt": "2" * 64}), line("r5", 2.1),
             line("r6", 2.1, context=128), line("r7", 2.3)]
    history = write_lines(tmp_path / "history.jsonl", lines)
    assert cli(["history", "--file", str(history)]) == 0
    out = capsys.readouterr().out
    assert "a val_bits_per_byte: 4 earlier run(s) with other settings or data left out (earlier vs latest: " \
           "max_samples 200 vs all; data wikitext-2-raw/validation.txt differs; context 128 vs 64)" in out
    trended = [row.split()[1] for row in out.splitlines() if row.startswith("  ")]
    assert trended == ["r3", "r5", "r7"]
    assert "latest 2.3 is OUTSIDE the previous 2 run(s): mean 2.1" in out  # 2.5 (other data) is not in the mean

    found = trend(read_history(history), "a", "val_bits_per_byte")
    assert len(found.rows) == 3 and len(found.notes) == 1


@pytest.mark.parametrize("setting, value, says", [
    ("max_eval_tokens", 20000, "max_eval_tokens 20000 vs all"), ("ppl_stride", 32, "ppl_stride 32 vs context"),
    ("detokenize", False, "detokenize off vs on"), ("prompts", "lm-eval", "prompts lm-eval vs smallbench"),
    ("fewshot", 3, "fewshot 3 vs 0"), ("seed", 7, "seed 7 vs 1234"), ("device", "cuda", "device cuda vs cpu"),
    ("dtype", "bfloat16", "dtype bfloat16 vs float32"),
])
def test_each_figure_changing_setting_splits_the_trend(setting, value, says):
    found = trend([line("r1", 2.0, **{setting: value}), line("r2", 2.0)], "a", "val_bits_per_byte")
    assert found.rows == [found.rows[0]] and "r2" in found.rows[0]
    assert says in found.notes[0] and "1 run(s) measured alike, nothing to compare yet" in found.verdict


def test_a_run_of_fewer_items_reads_less_data_but_still_trends():
    fewer = line("r2", 2.0, data={})  # e.g. -m smallbench: read no WikiText; nothing contradicts
    assert differences(line("r1", 2.0), fewer) == []
    assert differences(line("r1", 2.0), line("r2", 2.0, context=None) | {"settings": {
        k: SETTINGS[k] for k in FIGURE_SETTINGS}}) == []  # a run without perplexity states no context


def test_old_history_lines_without_settings_still_read(tmp_path, capsys):
    old = [{"run_id": f"r{i}", "timestamp": f"2026-01-01T00:00:0{i}+00:00", "git_commit": None, "checkpoint": "a",
            "sha256": "x", "complete": True, "val_bits_per_byte": 2.0} for i in (1, 2)]
    history = write_lines(tmp_path / "history.jsonl", old)
    assert cli(["history", "--file", str(history)]) == 0
    out = capsys.readouterr().out
    assert "within the previous 1 run(s)" in out and "the latest line records no settings" in out

    write_lines(history, [*old, line("r3", 2.2), line("r4", 2.2)])
    assert cli(["history", "--file", str(history), "--checkpoint", "a"]) == 0
    out = capsys.readouterr().out
    assert "2 earlier run(s) with other settings or data left out (earlier vs latest: settings not recorded)" in out
    assert "latest 2.2 is within the previous 1 run(s)" in out


@pytest.mark.parametrize("entry, says", [
    ({"settings": [1]}, ":1: settings is [1], not an object"),
    ({"settings": {"max_samples": [200]}}, ":1: settings['max_samples'] is [200], not a setting's value"),
    ({"data_fingerprints": {"f": 3}}, ":1: data_fingerprints['f'] is 3, not a sha256"),
])
def test_a_bad_settings_field_is_named_by_file_and_line(tmp_path, capsys, entry, says):
    history = write_lines(tmp_path / "history.jsonl", [{"run_id": "r", "timestamp": "t", "checkpoint": "a"} | entry])
    assert cli(["history", "--file", str(history)]) == 2
    assert f"{history}{says}" in capsys.readouterr().err


# ---- the comparison ranks only records measured alike ------------------------------------------

def record(name: str, bpb: float, run_id: str = "r", data: dict | None = None, **settings) -> dict:
    return {"run_id": run_id, "data_fingerprints": DATA if data is None else data, "embedding_ratio": 0.3,
            "settings": SETTINGS | settings, "checkpoint": {"name": name, "tokenizer_sha256": "t"},
            "perplexity": {"validation": {"bits_per_byte": bpb, "token_perplexity": 10.0}}}


def test_records_with_other_settings_are_grouped_apart_and_ranked_on_their_own():
    figures = Registry.default().figure_table()
    records = [record("a", 2.0), record("b", 1.8, max_samples=200), record("c", 1.9), record("d", 2.2, max_samples=200),
               record("e", 1.5, data={"wikitext-2-raw/validation.txt": "2" * 64})]
    assert [[r["checkpoint"]["name"] for r in g] for g in comparable_groups(records)] == [["a", "c"], ["b", "d"],
                                                                                          ["e"]]
    text = render_comparison(records, figures, "val_bits_per_byte")
    assert "**These checkpoints were not all measured alike (later groups vs group 1: max_samples 200 vs all; " \
           "data wikitext-2-raw/validation.txt differs)" in text
    assert "not ranked together" in text and "paired tests compare only checkpoints of one group" in text
    assert "## Group 1: max_samples all, data wikitext-2-raw/validation.txt 111111111111 (2 checkpoint(s))" in text
    assert "## Group 2: max_samples 200, data wikitext-2-raw/validation.txt 111111111111 (2 checkpoint(s))" in text
    assert "## Group 3: max_samples all, data wikitext-2-raw/validation.txt 222222222222 (1 checkpoint(s))" in text
    rows = [row for row in text.splitlines() if row.startswith("| ") and not row.startswith("| checkpoint")]
    assert [row.split(" | ")[0] for row in rows] == ["| c", "| a", "| b", "| d", "| e"]  # sorted within each group
    assert "| c | 0.300 | **1.9000** |" in rows[0] and "| b | 0.300 | **1.8000** |" in rows[2]
    assert "**1.5000**" not in text  # alone in its group: the best of nothing

    alike = render_comparison([record("a", 2.0), record("c", 1.9)], figures, "val_bits_per_byte")
    assert "Group" not in alike and "measured alike" not in alike and "| c | 0.300 | **1.9000** |" in alike


def test_records_without_settings_form_their_own_group():
    figures = Registry.default().figure_table()
    old = {k: v for k, v in record("c", 1.0).items() if k != "settings"}  # written before settings were recorded
    text = render_comparison([record("a", 2.0), record("b", 1.9), old], figures, "val_bits_per_byte")
    assert "(later groups vs group 1: settings not recorded)" in text
    assert "## Group 1: settings recorded (2 checkpoint(s))" in text
    assert "## Group 2: settings not recorded (1 checkpoint(s))" in text
    fewer = render_comparison([record("a", 2.0), record("b", 1.9, data={})], figures, "val_bits_per_byte")
    assert "Group" not in fewer and "did not all read the same data files" in fewer  # one group, noted


def test_paired_tests_do_not_cross_groups():
    rows = [{"idx": i, "correct": i % 2 == 0} for i in range(20)]
    records = [record("a", 2.0), record("b", 1.9, max_samples=20), record("c", 1.8)]
    text = render_paired(records, {name: {"smallbench-sst2": rows} for name in "abc"}, resamples=50)
    assert "- sst2 (n=20): accuracy a - c" in text
    assert "- smallbench-sst2, a vs b: not compared (measured otherwise: max_samples all vs 20)" in text
    assert "- smallbench-sst2, b vs c: not compared (measured otherwise: max_samples 20 vs all)" in text


def test_the_compare_command_groups_runs_measured_otherwise(tmp_path, capsys):
    full = finished_run(tmp_path, "full", {"a": 2.0, "b": 1.9})
    quick = finished_run(tmp_path, "quick", {"a": 2.05, "b": 1.8}, settings={"max_eval_tokens": 20000})
    assert cli(["compare", str(full), str(quick), "--out", str(tmp_path / "cmp"),
                "--compare-by", "val_bits_per_byte"]) == 0
    text = (tmp_path / "cmp/comparison.md").read_text()
    assert "(later groups vs group 1: max_eval_tokens 20000 vs all)" in text
    assert "## Group 1: max_eval_tokens all (2 checkpoint(s))" in text
    assert "## Group 2: max_eval_tokens 20000 (2 checkpoint(s))" in text
    rows = [row for row in text.splitlines() if "@" in row]
    assert rows[0].startswith("| b @ full | **1.9000** |") and rows[1].startswith("| a @ full | 2.0000 |")
    assert rows[2].startswith("| b @ quick | **1.8000** |") and rows[3].startswith("| a @ quick | 2.0500 |")
    assert str(tmp_path / "cmp/comparison.md") in capsys.readouterr().out
    assert "Group" not in (full / "comparison.md").read_text()  # one run: measured alike


# ---- the command line ------------------------------------------------------------------------------

def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        cli(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"lmeval-fixtures {metadata.version('lmeval-fixtures')}"


def test_version_without_an_installed_distribution(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(cli_module.metadata, "version", missing)
    assert "version unknown" in cli_module.package_version()


@pytest.mark.parametrize("command", [["compare", "x"], ["merge", "out", "x"]])
def test_compare_by_and_its_deprecated_alias_sort_by(capsys, command):
    parser = build_parser()
    assert parser.parse_args(command).compare_by == "val_bits_per_byte"
    assert parser.parse_args([*command, "--compare-by", "smallbench_avg_acc"]).compare_by == "smallbench_avg_acc"
    assert capsys.readouterr().err == ""
    assert parser.parse_args([*command, "--sort-by", "smallbench_avg_acc"]).compare_by == "smallbench_avg_acc"
    assert f"lmeval-fixtures {command[0]}: --sort-by is deprecated; use --compare-by" in capsys.readouterr().err
    sub = subcommands()[command[0]]
    assert "--compare-by" in sub.format_help() and "--sort-by" not in sub.format_help()


def test_the_deprecated_sort_by_still_sorts(tmp_path, capsys):
    run = finished_run(tmp_path, "r", {"a": 2.0, "b": 1.9})
    assert cli(["compare", str(run), "--out", str(tmp_path / "cmp"), "--sort-by", "total_params"]) == 2
    assert "cannot sort by 'total_params'" in capsys.readouterr().err  # the alias reaches the same check
    assert cli(["compare", str(run), "--out", str(tmp_path / "cmp"), "--sort-by", "val_bits_per_byte"]) == 0
    assert "Sorted by `val_bits_per_byte`" in (tmp_path / "cmp/comparison.md").read_text()


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_and_positional_has_help():
    found = subcommands()
    assert {"merge", "compare", "export-hf", "history", "fetch-data"} <= set(found)
    for name, sub in found.items():
        for action in sub._actions:
            if not action.option_strings:
                assert action.help and action.help != argparse.SUPPRESS, f"{name} {action.dest}"
            elif action.help == argparse.SUPPRESS:
                assert action.option_strings == ["--sort-by"], f"{name} hides {action.option_strings}"


def test_help_and_version_do_not_import_torch():
    code = ("import sys\nfrom lmeval_fixtures.cli.main import build_parser, main\n"
            "for argv in (['--help'], ['--version'], ['history', '--help'], ['fetch-data', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"


# ---- fetch-data: the command around lmeval_fixtures.suite.fetch_data.fetch_data -------------------------

@pytest.fixture
def fake_fetch(monkeypatch):
    """``lmeval_fixtures.suite.fetch_data`` replaced by a module whose ``fetch_data`` has the real
    signature and records its calls (the command imports it only when it runs)."""
    calls = []
    module = types.ModuleType("lmeval_fixtures.suite.fetch_data")

    def fetch_data(dest: Path, *, hub=None, tasks=None, corpora=None, overwrite=False, progress=None):
        calls.append({"dest": dest, "overwrite": overwrite, "hub": hub, "tasks": tasks, "corpora": corpora})
        if module.fail is not None:
            raise module.fail
        progress("fetched sst2 validation")
        return [dest / "smallbench/sst2/validation.jsonl", dest / "FETCHED.json"]

    module.fetch_data, module.fail = fetch_data, None
    monkeypatch.setitem(sys.modules, "lmeval_fixtures.suite.fetch_data", module)
    return module, calls


@pytest.mark.parametrize("overwrite", [False, True])
def test_fetch_data_writes_and_prints_the_paths(tmp_path, capsys, fake_fetch, overwrite):
    module, calls = fake_fetch
    assert cli(["fetch-data", str(tmp_path / "data"), *(["--overwrite"] if overwrite else [])]) == 0
    assert calls == [{"dest": tmp_path / "data", "overwrite": overwrite, "hub": None, "tasks": None,
                      "corpora": None}]
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [str(tmp_path / "data/smallbench/sst2/validation.jsonl"),
                                         str(tmp_path / "data/FETCHED.json")]
    assert "fetched sst2 validation" in captured.err  # progress goes to stderr, paths alone to stdout


@pytest.mark.parametrize("error", [DataUnavailable("the hub is unreachable (offline?)"),
                                   DataError("sst2 validation: row 3 has no label"),
                                   FileExistsError("DIR/wikitext-2-raw/test.txt exists; pass --overwrite")])
def test_fetch_data_failures_are_one_line_and_exit_2(tmp_path, capsys, fake_fetch, error):
    module, _ = fake_fetch
    module.fail = error
    assert cli(["fetch-data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"lmeval-fixtures fetch-data: {error}\n"
