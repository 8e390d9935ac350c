"""Settings from the options and the ini (``evaluation.settings``): --corpus and --task-file resolved and checked,
the figure-changing settings recorded, devices offered."""

from __future__ import annotations

import pytest

from lmeval_fixtures.core.errors import UsageError
from lmeval_fixtures.evaluation.options import option_values
from lmeval_fixtures.evaluation.settings import settings_from_options
from lmeval_fixtures.records.alike import FIGURE_SETTINGS

from ..helpers import write


def test_settings_parse_the_option_and_else_the_ini(tmp_path, monkeypatch):
    (tmp_path / "held.txt").write_text("a\n")
    monkeypatch.chdir(tmp_path)
    given = settings_from_options(option_values(corpus=["a=held.txt"]), [], None, tmp_path,
                                  ini_corpora=["ignored=nothing.txt"])
    assert [spec.name for spec in given.corpora] == ["a"]
    ini_dir = tmp_path / "inidir"
    ini_dir.mkdir()
    (ini_dir / "near.txt").write_text("b\n")
    from_ini = settings_from_options(option_values(), [], None, tmp_path, ini_corpora=["n=near.txt"], ini_dir=ini_dir)
    assert from_ini.corpora[0].sources[0][1].path == ini_dir / "near.txt"
    with pytest.raises(UsageError, match="^ini lmeval_corpora 'x=held.txt': held.txt does not exist"):
        settings_from_options(option_values(), [], None, tmp_path, ini_corpora=["x=held.txt"], ini_dir=ini_dir)


def test_settings_check_the_task_files_exist(tmp_path, monkeypatch):
    from lmeval_fixtures.evaluation.options import option_values
    from lmeval_fixtures.evaluation.settings import settings_from_options

    monkeypatch.chdir(tmp_path)
    write(tmp_path / "here.yaml", "x: 1\n")
    assert settings_from_options(option_values(task_file=["here.yaml"]), [], None, tmp_path).task_files == [
        tmp_path / "here.yaml"]
    with pytest.raises(UsageError, match="^--task-file gone.yaml: no such file$"):
        settings_from_options(option_values(task_file=["gone.yaml"]), [], None, tmp_path)
    with pytest.raises(UsageError, match="^ini lmeval_task_files here.yaml: no such file$"):
        settings_from_options(option_values(), [], None, tmp_path, ini_task_files=["here.yaml"], ini_dir=tmp_path / "x")


def test_every_figure_changing_setting_is_in_what_a_run_records(tmp_path):
    from lmeval_fixtures.evaluation.options import option_values
    from lmeval_fixtures.evaluation.settings import settings_from_options

    recorded = settings_from_options(option_values(), ini_checkpoints=[], ini_data_dir=None,
                                     rootpath=tmp_path).as_record()
    assert set(FIGURE_SETTINGS) <= set(recorded)


def test_version_and_mps_are_offered():
    from lmeval_fixtures.cli.main import main
    from lmeval_fixtures.core.errors import UsageError
    from lmeval_fixtures.evaluation.settings import resolve_device

    with pytest.raises(SystemExit) as shown:
        main(["--version"])
    assert shown.value.code == 0
    import torch

    if not torch.backends.mps.is_available():
        with pytest.raises(UsageError, match="--device mps: Apple's Metal"):
            resolve_device("mps")
        assert resolve_device("auto") in ("cpu", "cuda")


def test_shape_options_are_read_by_the_one_shape_name_rule():
    from lmeval_fixtures.core.errors import UsageError
    from lmeval_fixtures.core.names import shape_name
    from lmeval_fixtures.evaluation.settings import parse_shapes

    shapes = parse_shapes(" 1X128, 1x512 ,32x512,1x128", "--latency-shapes")
    assert shapes == [(1, 128), (1, 512), (32, 512)]  # as typed, read once each, in order
    assert [shape_name(*s) for s in shapes] == ["1x128", "1x512", "32x512"]  # the record's keys
    for bad in ("01x128", "1x0", "0x8", "x128", "1x128x2", "1×128", ""):
        with pytest.raises(UsageError, match="--latency-shapes"):
            parse_shapes(bad, "--latency-shapes")


@pytest.mark.parametrize("given, device, budget", [
    ("auto", "cpu", 16384), ("AUTO", "cpu", 16384), ("auto", "cuda:0", 1 << 20), ("auto", "mps", 1 << 20),
    (4096, "cpu", 4096), ("512", "cuda:0", 512),
])
def test_batch_tokens_auto_is_the_largest_budget_tried_where_out_of_memory_is_an_exception(given, device, budget):
    """``--batch-tokens auto`` (lm-eval's ``--batch_size auto``): a GPU starts from a million tokens and halves on
    out-of-memory (``engine.memory_fit``); a CPU keeps the default, since the kernel, not torch, stops a process
    short of memory there."""
    from lmeval_fixtures.evaluation.settings import batch_tokens_for

    assert batch_tokens_for(option_values(batch_tokens=given).batch_tokens, device) == budget


@pytest.mark.parametrize("given", ["automatic", "0", "-5", 2.5, True])
def test_a_bad_batch_tokens_is_a_usage_error(tmp_path, given):
    with pytest.raises(UsageError, match="--batch-tokens"):
        settings_from_options(option_values(batch_tokens=given), [], None, tmp_path)


def test_batch_tokens_auto_from_the_command_line(tmp_path):
    import argparse

    from lmeval_fixtures.evaluation.options import OPTIONS

    parser = argparse.ArgumentParser()
    for option in OPTIONS:
        parser.add_argument(option.flag, **option.argparse_kwargs())
    assert settings_from_options(parser.parse_args(["--batch-tokens", "auto"]), [], None, tmp_path).batch_tokens == \
        16384  # this machine has no GPU run: cpu
    assert settings_from_options(parser.parse_args(["--batch-tokens", "300"]), [], None, tmp_path).batch_tokens == 300
