"""Experiment tracking (``records.tracking``): one record -> one logged run, read back from the tracker's own
files: a W&B offline run (its transaction log) and a TensorBoard event file (tensorboard's reader)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.core.errors import UsageError
from lmeval_fixtures.records.tracking import TrackSpec, tracked_figures, training_step
from lmeval_fixtures.suite.registry import Registry

from ..helpers import finished_run

CHECKPOINT = "sweep-step-300"  # its training step comes from its name


@pytest.fixture
def run_folder(tmp_path) -> Path:
    return finished_run(tmp_path, "r1", {CHECKPOINT: 2.25})


def test_a_record_s_figures_are_its_figure_table_s_numbers(run_folder):
    record = json.loads((run_folder / CHECKPOINT / "metrics.json").read_text())
    found = tracked_figures(record, Registry.default().figure_table([record]))
    assert found["val_bits_per_byte"] == 2.25  # the value the run measured
    assert all(isinstance(v, float) for v in found.values())
    assert "smallbench_avg_acc" not in found  # not measured: not logged as a number
    assert training_step(record) == 300


def wandb_records(path: Path):
    """The records of a W&B transaction log (``run-<id>.wandb``): a 7-byte file header, then LevelDB log blocks
    of 32 KiB whose chunks (a 7-byte header: checksum, length, kind) carry protobuf ``Record``s."""
    from wandb.proto import wandb_internal_pb2

    data, pos, pending = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        room = 32768 - pos % 32768
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        if room < 7 or (length == 0 and kind == 0):  # the rest of a block is padding
            pos += room
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or its last chunk
            yield wandb_internal_pb2.Record.FromString(pending)
            pending = b""


def transaction_log(path: Path, wait_s: float = 60.0) -> list:
    """The run's records once its log is whole (its ``exit`` record written): W&B's service process writes
    the log behind the run, and flushes it on a timer (about 15 s) or at exit."""
    import time

    give_up = time.monotonic() + wait_s
    while True:
        records = list(wandb_records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > give_up:
            return records
        time.sleep(0.2)


def test_a_wandb_offline_run_made_from_one_record(run_folder, tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    for variable, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": tmp_path / "cfg",
                            "WANDB_CACHE_DIR": tmp_path / "cache", "WANDB_DATA_DIR": tmp_path / "data"}.items():
        monkeypatch.setenv(variable, str(value))
    assert cli(["track", str(run_folder), "--to", f"wandb:{tmp_path / 'wb'}"]) == 0
    assert capsys.readouterr().out == f"r1/{CHECKPOINT}\n"
    [log] = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")  # one record, one run
    records = transaction_log(log)
    [run] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.display_name, run.project, run.job_type) == (f"r1/{CHECKPOINT}", "lmeval-fixtures", "eval")
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["checkpoint"] == CHECKPOINT and config["seed"] == 1234
    [history] = [r.history for r in records if r.WhichOneof("record_type") == "history"]
    logged = {item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in history.item}
    assert logged["val_bits_per_byte"] == 2.25 and logged["_step"] == 300


def test_a_tensorboard_event_file_made_from_one_record(run_folder, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert cli(["track", str(run_folder), "--to", f"tensorboard:{tmp_path / 'tb'}"]) == 0
    [folder] = [p.parent for p in (tmp_path / "tb").rglob("events.out.tfevents.*")]  # one record, one run
    assert folder == tmp_path / "tb" / "r1" / CHECKPOINT
    events = EventAccumulator(str(folder))
    events.Reload()
    [scalar] = events.Scalars("val_bits_per_byte")
    assert (scalar.step, scalar.value) == (300, 2.25)
    assert "val_perplexity" in events.Tags()["scalars"]


@pytest.mark.parametrize("backend, module", [("wandb", "wandb"), ("tensorboard", "torch.utils.tensorboard")])
def test_a_missing_tracker_is_one_line_naming_the_extra(run_folder, tmp_path, monkeypatch, capsys, backend, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    assert cli(["track", str(run_folder), "--to", f"{backend}:{tmp_path / 'x'}"]) == 2
    err = capsys.readouterr().err
    assert err == f"lmeval-fixtures track: --track {backend} needs {backend}: pip install 'lmeval-fixtures[track]'\n"


@pytest.mark.parametrize("text, says", [
    ("mlflow", "--track mlflow: choose wandb or tensorboard"), ("tensorboard:", "name a folder after the colon"),
    ("", "--track : choose wandb or tensorboard"), ("WANDB", "choose wandb or tensorboard"),
])
def test_a_bad_track_value_is_a_usage_error(text, says):
    with pytest.raises(UsageError, match=says):
        TrackSpec.parse(text)


def test_track_spec_reads_a_folder():
    assert TrackSpec.parse("tensorboard:runs/tb") == TrackSpec("tensorboard", Path("runs/tb"))
    assert TrackSpec.parse("wandb") == TrackSpec("wandb", None)


@pytest.mark.parametrize("backend", ["wandb", "tensorboard"])
def test_every_backend_has_the_tracking_backend_protocol_s_two_methods(backend):
    """``log(step, figures)`` and ``close()``: what H28's ``TrackingBackend`` protocol (``records.metrics_logger``)
    asks, so a training loop's logger forwards to these same objects."""
    import inspect

    from lmeval_fixtures.records.tracking import OPENERS

    opener = OPENERS[backend]
    assert list(inspect.signature(opener.log).parameters) == ["self", "step", "figures"]
    assert list(inspect.signature(opener.close).parameters) == ["self"]


def test_open_backend_logs_a_training_loop_s_figures_step_by_step(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lmeval_fixtures.records.tracking import open_backend

    backend = open_backend(f"tensorboard:{tmp_path}", "loop", {"lr": 0.1})
    for step, value in ((100, 3.0), (200, 2.5)):
        backend.log(step, {"val_bits_per_byte": value})
    backend.close()
    events = EventAccumulator(str(tmp_path / "loop"))
    events.Reload()
    assert [(s.step, s.value) for s in events.Scalars("val_bits_per_byte")] == [(100, 3.0), (200, 2.5)]


@pytest.mark.parametrize(("training", "name", "step"), [
    ({"step": 300}, "x", 300), ({"step": 12.0}, "x", 12), ({}, "run-step-0420", 420), ({}, "no-number", None),
    ({"step": float("nan")}, "ck-7", 7), ({"step": float("inf")}, "ck", None), ({"step": True}, "ck-3", 3),
    ({}, "step-١٢", None), ({}, "s" + "9" * 40, None), ({}, "s" + "9" * 18, 10**18 - 1),
])
def test_a_checkpoint_s_step_is_a_finite_number_or_ascii_digits_in_its_name(training, name, step):
    """A hand-written training step of NaN or infinity (JSON as Python reads it) was an internal error in
    ``watch`` and ``track`` (``int(nan)``); digits of another script in a name are not a step."""
    assert training_step({"checkpoint": {"name": name, "training": training}}) == step
