"""The run-folder store (``records.store``): an invalid record is never written, a failed write keeps the
previous file, and a bad metrics.json is named by the commands that read it."""

import pytest

from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.core.errors import RecordInvalid

from ..helpers import build, split_figures, write_report


def test_invalid_records_are_refused_and_nothing_is_written(tmp_path):
    record = build([("a", "t::x", {"perplexity": {"validation": split_figures(1.0, tokens="many")}})])["a"]
    with pytest.raises(RecordInvalid, match="tokens"):
        write_report(record, tmp_path / "a")
    assert not (tmp_path / "a" / "metrics.json").exists()


def test_atomic_write_keeps_the_previous_file_on_failure(tmp_path, monkeypatch):
    record = build([("a", "t::x", {"perplexity": {"validation": split_figures(1.0)}})])["a"]
    metrics = write_report(record, tmp_path / "a")[0]
    before = metrics.read_text()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    record["val_loss"] = 2.0
    with pytest.raises(OSError, match="disk full"):
        write_report(record, tmp_path / "a")
    assert metrics.read_text() == before
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["metrics.json", "summary.md"]


@pytest.mark.parametrize("content, says", [
    ("", "metrics.json is not valid JSON"), ("[1, 2]", "a JSON list, not an object"),
    ('{"run_id": "r"}', "not a valid metrics record"), ("{oops", "metrics.json is not valid JSON"),
])
def test_compare_and_merge_name_a_bad_record_file(tmp_path, capsys, content, says):
    bad = tmp_path / "run" / "x" / "metrics.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(content)
    for command in (["compare", str(tmp_path / "run"), "--out", str(tmp_path)],
                    ["merge", str(tmp_path / "out"), str(tmp_path / "run")]):
        assert cli(command) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and says in err and len(err.strip().splitlines()) == 1


def test_samples_whose_text_holds_line_separators_read_back_whole(tmp_path):
    """A samples file written by another tool with ensure_ascii=False holds U+2028, U+2029 and U+0085 raw;
    JSON allows them in strings, so each line stays one row."""
    import json

    from lmeval_fixtures.records.store import read_samples

    row = {"label": 0, "loglikelihoods": [-1.0, -2.0], "greedy": [True, False], "correct": True, "correct_norm": True}
    rows = [row | {"context": "a\u2028b", "idx": 0}, row | {"context": "\u2029", "idx": 1},
            row | {"context": "c\x85", "idx": 2}]
    (tmp_path / "samples-smallbench-x.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows), encoding="utf-8")
    assert read_samples(tmp_path) == {"smallbench-x": rows}
