"""The command line (``lmeval_fixtures.cli.main``): version, help for every subcommand, the deprecated
``--sort-by``, and ``fetch-data`` around ``suite.fetch_data``."""

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

from ..helpers import finished_run


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


@pytest.mark.parametrize("alias", ["VAL_BITS_PER_BYTE", "val-bits-per-byte"])
def test_compare_by_takes_a_figure_by_another_spelling(tmp_path, alias):
    run = finished_run(tmp_path, "r", {"a": 2.0, "b": 1.9})
    assert cli(["compare", str(run), "--out", str(tmp_path / "cmp"), "--compare-by", alias]) == 0
    assert "Sorted by `val_bits_per_byte`" in (tmp_path / "cmp/comparison.md").read_text()


# ---- issue 25: merge knows the shards from the records -----------------------------------------------


@pytest.mark.parametrize("given, problem", [
    (["1/2", "1/2"], "shard 2/2 missing (its items were not run); shard 1/2 given more than once"),
    (["1/3", "3/3"], "shard 2/3 missing (its items were not run)"),
    (["2/2"], "shard 1/2 missing (its items were not run)"),
])
def test_merge_of_missing_or_repeated_shards_is_incomplete_and_says_which(tmp_path, capsys, given, problem):
    from ..helpers import finished_run

    shards = [finished_run(tmp_path / f"s{i}", "r", {"a": 2.0}, settings={"shard": shard})
              for i, shard in enumerate(given)]
    before = [(s / "a" / "metrics.json").read_bytes() for s in shards]
    assert cli_module.main(["merge", str(tmp_path / "out"), *map(str, shards)]) == 2
    err = capsys.readouterr().err
    assert err == f"lmeval-fixtures merge: merged into {tmp_path / 'out'} with complete: false: {problem}\n"
    merged = json.loads((tmp_path / "out" / "a" / "metrics.json").read_text())
    assert merged["complete"] is False and f"merge: {problem}" in merged["errors"]
    assert merged["val_bits_per_byte"] == 2.0  # the figures the shards hold are kept
    assert [(s / "a" / "metrics.json").read_bytes() for s in shards] == before


def test_merge_of_every_shard_once_is_complete(tmp_path, capsys):
    from ..helpers import finished_run

    shards = [finished_run(tmp_path / f"s{i}", "r", {"a": 2.0}, settings={"shard": f"{i}/2"}) for i in (1, 2)]
    assert cli_module.main(["merge", str(tmp_path / "out"), *map(str, shards)]) == 0
    merged = json.loads((tmp_path / "out" / "a" / "metrics.json").read_text())
    assert merged["complete"] is True and [i["shard"] for i in merged["invocations"]] == ["1/2", "2/2"]


@pytest.mark.parametrize("command", ["merge", "export-lmeval", "compare"])
@pytest.mark.parametrize("name", ["..", "../../escaped", "."])
def test_a_record_whose_name_is_a_path_writes_nothing_outside_the_output_folder(tmp_path, capsys, monkeypatch, command,
                                                                               name):
    """A hand-edited record named ``..`` made ``export-lmeval`` write results_<date>.json beside --out;
    now the record is invalid (``core.schema.name_problems``) and named in one line."""
    from ..helpers import finished_run

    run = finished_run(tmp_path / "reports", "r", {"a": 2.0})
    record = json.loads((run / "a" / "metrics.json").read_text())
    record["checkpoint"]["name"] = name
    (run / "a" / "metrics.json").write_text(json.dumps(record))
    out = tmp_path / "deep" / "out"
    out.parent.mkdir()
    monkeypatch.chdir(out.parent)
    before = sorted(p for p in tmp_path.rglob("*"))
    args = {"merge": ["merge", str(out), str(run)], "export-lmeval": ["export-lmeval", str(run), "--out", str(out)],
            "compare": ["compare", str(run)]}[command]
    cli_module.main(args)
    err = capsys.readouterr().err
    assert f"{run / 'a' / 'metrics.json'}: " in err and "a checkpoint's name must be one path component" in err
    escaped = [p for p in tmp_path.rglob("*") if p not in before and out not in p.parents and p != out
               and p.name != "comparison.md"]
    assert escaped == []
