"""The command line tells the user's mistakes from the suite's bugs by the error's family."""

from __future__ import annotations

import pytest

from lmeval_fixtures.cli import main as cli
from lmeval_fixtures.core.errors import CheckpointError, DataError, MissingExtra, RecordsNotFound


def _compare_raising(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    def compare(*_args, **_kwargs):
        raise exc

    monkeypatch.setattr(cli, "compare", compare)


@pytest.mark.parametrize("exc", [DataError("data/x.jsonl: line 3: not JSON"), RecordsNotFound("r/: no metrics.json"),
                                 CheckpointError("a.pt: truncated"), MissingExtra("needs the hf extra"),
                                 PermissionError(13, "Permission denied", "out/comparison.md")])
def test_an_error_of_the_family_or_the_os_is_one_line_and_exit_2(monkeypatch, capsys, exc):
    _compare_raising(monkeypatch, exc)
    assert cli.main(["compare", "somewhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lmeval-fixtures compare: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize("exc", [ValueError("boom"), ImportError("cannot import name 'x'"), KeyError("figure"),
                                 TypeError("unsupported operand")])
def test_any_other_exception_is_a_bug_with_its_traceback_and_exit_3(monkeypatch, capsys, exc):
    _compare_raising(monkeypatch, exc)
    assert cli.main(["compare", "somewhere"]) == cli.INTERNAL_ERROR == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and type(exc).__name__ in err
    assert "internal error (a bug in lmeval-fixtures" in err
    assert "usage" not in err.lower()
