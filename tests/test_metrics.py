import json

import pytest

from lmeval_fixtures.metrics import ORIGINAL_FIELDS, RecordInvalid, RunRecorder, validate_record
from lmeval_fixtures.report import write_checkpoint_report

RUN = {"run_id": "r1", "timestamp": "2026-01-01T00:00:00+00:00", "seed": 1, "git_commit": None,
       "environment": {"device": "cpu", "dtype": "float32", "python": "3.11", "torch": "x", "platform": "p"}}


def test_fragments_merge_the_same_in_any_order():
    fragments = [
        ("a", "t::x[val]", {"val_loss": 1.0, "perplexity": {"validation": {"tokens": 3}}, "errors": ["e1"]}),
        ("a", "t::x[test]", {"test_loss": 2.0, "perplexity": {"test": {"tokens": 4}}, "errors": ["e1", "e2"]}),
        ("a", "~checkpoint", {"total_params": 10, "checkpoint": {"name": "a", "path": "p"}}),
    ]
    built = []
    for order in (fragments, fragments[::-1]):
        recorder = RunRecorder(RUN)
        for name, item, fragment in order:
            recorder.add(name, item, fragment)
        built.append(recorder.records()["a"])
    assert built[0] == built[1]
    record = built[0]
    assert record["perplexity"] == {"validation": {"tokens": 3}, "test": {"tokens": 4}}
    assert record["errors"] == ["e1", "e2"]
    assert all(key in record for key in ORIGINAL_FIELDS)


def test_worker_export_round_trips():
    worker = RunRecorder({})
    worker.add("a", "t::x", {"val_loss": 1.5})
    controller = RunRecorder(RUN)
    controller.absorb(worker.export())
    assert controller.records()["a"]["val_loss"] == 1.5


def test_non_finite_figures_become_null_and_are_listed(tmp_path):
    recorder = RunRecorder(RUN)
    recorder.add("a", "t::x", {"val_loss": float("nan"), "val_perplexity": float("inf")})
    record = recorder.records()["a"]
    assert record["val_loss"] is None and record["val_perplexity"] is None
    assert any("val_loss is nan" in e for e in record["errors"])
    paths = write_checkpoint_report(record, tmp_path / "a")
    text = paths[0].read_text()
    assert "NaN" not in text and "Infinity" not in text
    validate_record(json.loads(text))


def test_invalid_records_are_refused_and_nothing_is_written(tmp_path):
    recorder = RunRecorder(RUN)
    recorder.add("a", "t::x", {"val_loss": "high"})
    record = recorder.records()["a"]
    with pytest.raises(RecordInvalid, match="val_loss"):
        write_checkpoint_report(record, tmp_path / "a")
    assert not (tmp_path / "a" / "metrics.json").exists()


def test_atomic_write_keeps_the_previous_file_on_failure(tmp_path, monkeypatch):
    recorder = RunRecorder(RUN)
    recorder.add("a", "t::x", {"val_loss": 1.0})
    record = recorder.records()["a"]
    metrics = write_checkpoint_report(record, tmp_path / "a")[0]
    before = metrics.read_text()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    record["val_loss"] = 2.0
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint_report(record, tmp_path / "a")
    assert metrics.read_text() == before
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["metrics.json", "summary.md"]


def test_merging_invocations_keeps_earlier_figures_and_refuses_other_weights():
    from lmeval_fixtures.metrics import RecordMergeError, merge_records

    first, second = RunRecorder(RUN), RunRecorder(RUN | {"timestamp": "2026-01-02T00:00:00+00:00"})
    first.add("a", "p", {"val_loss": 1.0, "checkpoint": {"name": "a", "path": "p", "sha256": "aa"}})
    second.add("a", "l", {"latency_batch1_seq128": 3.0, "checkpoint": {"name": "a", "path": "p", "sha256": "aa"}})
    merged = merge_records(first.records()["a"], second.records()["a"])
    assert merged["val_loss"] == 1.0 and merged["latency_batch1_seq128"] == 3.0
    assert len(merged["invocations"]) == 2
    validate_record(merged)
    other = RunRecorder(RUN)
    other.add("a", "l", {"checkpoint": {"name": "a", "path": "p", "sha256": "bb"}})
    with pytest.raises(RecordMergeError, match="weights differ"):
        merge_records(first.records()["a"], other.records()["a"])
