"""What every reader of a record relies on beyond its JSON schema: names that become paths are one
path component, and the time is a time (``core.schema.validate_record``, ``name_problems``)."""

from __future__ import annotations

import copy
import json

import pytest

from lmeval_fixtures.core.errors import RecordInvalid
from lmeval_fixtures.core.schema import validate_record

from ..helpers import finished_run


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict:
    folder = finished_run(tmp_path_factory.mktemp("run"), "r", {"a": 2.0})
    return json.loads((folder / "a" / "metrics.json").read_text())


def changed(record: dict, **fields) -> dict:
    other = copy.deepcopy(record)
    for path, value in fields.items():
        *outer, last = path.split("__")
        target = other
        for key in outer:
            target = target.setdefault(key, {})
        target[last] = value
    return other


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../../etc", "a\\b", "x\x1b[2Jy", "line\nbreak", "nul\x00",
                                  "rtl\u202eevil", "x" * 256])
def test_a_checkpoint_name_that_is_not_one_path_component_is_refused(record, name):
    """``merge`` writes ``OUT/<name>/metrics.json`` and ``export-lmeval`` ``OUT/<name>/results_*.json``: a
    hand-edited record named ``..`` once made them write beside OUT."""
    with pytest.raises(RecordInvalid, match=r"^metrics record invalid at checkpoint/name: .*a checkpoint's name must "
                                            r"be one path component"):
        validate_record(changed(record, checkpoint__name=name))


@pytest.mark.parametrize("name", ["a|b", "my model (v2)", "*bold*_x_ <b>", "ref-e99", "...a", "a..b", "x" * 255,
                                  "ümlaut", "名前"])
def test_a_name_shown_as_written_is_accepted(record, name):
    validate_record(changed(record, checkpoint__name=name))


@pytest.mark.parametrize(("fields", "where"), [
    ({"corpora": {"../x": {"test": {}}}}, "corpora"),
    ({"corpora": {"web": {"../../t": {}}}}, "corpora/web"),
    ({"timestamp": "not-a-time"}, "timestamp"),
    ({"timestamp": "2026-13-01T00:00:00Z"}, "timestamp"),
])
def test_a_task_corpus_or_split_name_or_a_time_no_run_writes_is_refused(record, fields, where):
    other = copy.deepcopy(record) | fields
    try:
        validate_record(other)
    except RecordInvalid as exc:
        assert str(exc).startswith(f"metrics record invalid at {where}")
    else:
        pytest.fail("accepted")
