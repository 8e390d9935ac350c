"""The typed view of metrics.json (``records.metrics_record``): it agrees with the schema, property for property
and type for type, so the two cannot drift; it round-trips the reference records, a fresh run's record and a
load failure's; a record the schema refuses is refused in one line."""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from lmeval_fixtures import MetricsRecord
from lmeval_fixtures.core.errors import RecordInvalid
from lmeval_fixtures.core.schema import load_schema
from lmeval_fixtures.records.fragments import load_failure
from lmeval_fixtures.records.metrics_record import GROUPS

from ..helpers import ROOT, build, one_line, split_figures

REFERENCE_RECORDS = sorted((ROOT / "reports" / "baselines" / "ci").glob("*/metrics.json"))
JSON_TYPES = {"integer": int, "number": float, "string": str, "boolean": bool, "object": dict, "array": list,
              "null": type(None)}
NOT_PROPERTIES = {"extra", "present_nulls"}  # the view's own bookkeeping, explicitly not schema properties


def python_types(hint) -> set[type]:
    """``int | None`` -> {int, NoneType}; ``dict[str, Any]`` -> {dict}."""
    parts = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    return {typing.get_origin(part) or part for part in parts}


def schema_types(spec: dict) -> set[type]:
    if "const" in spec:
        return {type(spec["const"])}
    kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    return {JSON_TYPES[kind] for kind in kinds}


def test_every_schema_property_is_a_field_and_every_field_a_property():
    schema = load_schema()
    names = [f.name for f in fields(MetricsRecord) if f.name not in NOT_PROPERTIES]
    assert names == list(schema["properties"])  # same set, and the schema's order
    assert MetricsRecord.schema_fields() == names


def test_each_field_has_its_property_type_and_a_required_property_has_no_default():
    schema = load_schema()
    hints = typing.get_type_hints(MetricsRecord)
    required = set(schema["required"])
    for field in fields(MetricsRecord):
        if field.name in NOT_PROPERTIES:
            continue
        spec = schema["properties"][field.name]
        absent = {type(None)} if field.name not in required else set()  # an optional property: None when absent
        assert python_types(hints[field.name]) == schema_types(spec) | absent, field.name
        has_default = field.default is not MISSING or field.default_factory is not MISSING
        assert has_default == (field.name not in required), field.name
        assert field.metadata["group"] in GROUPS, field.name


def test_the_groups_hold_what_a_reader_looks_for():
    assert MetricsRecord.group("training") == ["train_loss", "train_perplexity"]
    assert MetricsRecord.group("validation") == ["val_loss", "val_perplexity", "val_bits_per_byte",
                                                 "val_word_perplexity"]
    assert {"seed", "git_commit", "environment", "data_fingerprints", "invocations"} <= set(
        MetricsRecord.group("reproducibility"))
    assert sum(len(MetricsRecord.group(g)) for g in GROUPS) == len(load_schema()["properties"])
    with pytest.raises(ValueError, match="group 'train': choose among identity, model"):
        MetricsRecord.group("train")


@pytest.mark.parametrize("path", REFERENCE_RECORDS, ids=lambda p: f"baseline-{p.parent.name}")  # not a checkpoint id
def test_reference_records_round_trip(path: Path):
    text = json.loads(path.read_text())
    view = MetricsRecord.from_json(path)
    assert view.to_json() == text
    assert list(view.to_json()) == list(text)  # keys in the schema's order too
    assert MetricsRecord.from_json(text) == view
    assert view.name == path.parent.name
    assert view.val_bits_per_byte == text["val_bits_per_byte"] and view.checkpoint["sha256"] == text["checkpoint"][
        "sha256"]
    assert view.smallbench["sst2"]["acc"] == text["smallbench_sentiment_acc"]


def test_reference_records_are_there():
    assert [p.parent.name for p in REFERENCE_RECORDS] == ["ref-e25", "ref-e35", "ref-e50"]


def test_records_with_absent_and_null_optional_fields_and_unknown_keys_round_trip():
    fresh = build([("a", "t::wikitext", {"perplexity": {"validation": split_figures(2.0)}})])["a"]
    failed = build([("b", "~checkpoint", load_failure("b", "/x/b.pt", "b: cannot load"))])["b"]
    for record in (fresh, failed, fresh | {"embedding_params": None}, fresh | {"future_field": [1, {"x": 2}]}):
        view = MetricsRecord.from_json(record)
        assert view.to_json() == record
    assert "smallbench" not in MetricsRecord.from_json(fresh).to_json()  # absent stays absent
    assert MetricsRecord.from_json(fresh | {"future_field": 1}).extra == {"future_field": 1}
    view = MetricsRecord.from_json(fresh)
    view.to_json()["perplexity"]["validation"]["loss"] = 99.0  # a copy: the view is not changed through it
    assert view.perplexity["validation"]["loss"] == 2.0


def test_a_record_the_schema_refuses_is_refused_in_one_line(tmp_path):
    record = build([("a", "t::x", {})])["a"]
    with pytest.raises(RecordInvalid) as info:
        MetricsRecord.from_json(record | {"total_params": "many"})
    assert one_line(info) == "metrics record invalid at total_params: 'many' is not of type 'integer', 'null'"
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({k: v for k, v in record.items() if k != "run_id"}))
    with pytest.raises(RecordInvalid) as info:
        MetricsRecord.from_json(path)
    assert one_line(info) == f"{path}: metrics record invalid at (top level): 'run_id' is a required property"
    path.write_text("[1, 2]")
    with pytest.raises(RecordInvalid) as info:
        MetricsRecord.from_json(str(path))
    assert one_line(info) == f"{path}: metrics record is a JSON list, not an object"
    with pytest.raises(RecordInvalid, match="metrics record not found"):
        MetricsRecord.from_json(tmp_path / "none.json")
