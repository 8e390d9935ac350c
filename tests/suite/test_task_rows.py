"""A task's rows (``suite.task_rows``): bad rows named by file and line, data that is not UTF-8."""

import pytest

from lmeval_fixtures.core.errors import DataError
from lmeval_fixtures.suite.task_rows import load_task_rows, read_task_rows
from lmeval_fixtures.suite.tasks import TASKS


def write_rows(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("lines, message", [
    (['{"sentence": "ok", "label": 0}', '{"label": 1}'], r"sst2/validation\.jsonl:2: missing field\(s\) sentence"),
    (['{"sentence": "ok", "label": 2}'], r"validation\.jsonl:1: label 2 out of range for sst2 \(0\.\.1\)"),
    (['{"sentence": "ok", "label": 0}', "{not json"], r"validation\.jsonl:2: invalid JSON"),
    ([], r"validation\.jsonl: no rows"),
    (['{"sentence": 5, "label": 0}'], r"validation\.jsonl:1: field sentence must be a string"),
])
def test_bad_rows_are_named_by_file_and_line(tmp_path, lines, message):
    path = write_rows(tmp_path / "smallbench" / "sst2" / "validation.jsonl", lines)
    with pytest.raises(DataError, match=message):
        read_task_rows(path, TASKS["sst2"])


def test_non_utf8_data_is_an_error(tmp_path):
    path = tmp_path / "smallbench" / "sst2" / "validation.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"sentence": "caf\xe9", "label": 0}\n')
    with pytest.raises(DataError, match=r"validation\.jsonl: not UTF-8 \(byte 17, line 1\)"):
        load_task_rows(TASKS["sst2"], "validation", tmp_path)
