"""Per-row values in the record (``records.codecs``): they round trip and validate."""

import pytest

from lmeval_fixtures.core.errors import RecordInvalid
from lmeval_fixtures.core.schema import validate_record
from lmeval_fixtures.evaluation.run import Run
from lmeval_fixtures.records.codecs import decode_per_row, encode_per_row
from lmeval_fixtures.records.fragments import smallbench
from lmeval_fixtures.suite.tasks import TASKS

from ..helpers import HAND_ROWS, RUN, task_result


def test_per_row_values_round_trip_and_validate():
    rows = task_result(HAND_ROWS).per_row()
    encoded = encode_per_row(rows)
    assert encoded["correct"] == "0101" and encoded["gold_bytes"] == "4 3 4 5"
    assert encoded["margin"] == "-1.5000 2.5000 -2.0000 0.2500"
    decoded = decode_per_row({"n": 4, "per_row": encoded})
    assert decoded.correct == [False, True, False, True] and decoded.gold_loglikelihood == [-2.5, -0.5, -4.0, -1.0]
    assert decode_per_row({"n": 5, "per_row": encoded}) is None  # not one value per row
    assert decode_per_row({"n": 4}) is None  # an older record
    record = Run(RUN)
    record.absorb([("a", "t::boolq", smallbench(TASKS["boolq"], task_result(HAND_ROWS), {}))])
    built = record.records()["a"]
    validate_record(built)
    built["smallbench"]["boolq"]["per_row"]["correct"] = "01x1"
    with pytest.raises(RecordInvalid, match="per_row"):
        validate_record(built)
