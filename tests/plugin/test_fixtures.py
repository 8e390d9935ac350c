"""The progress line the ``progress`` fixture draws (``plugin.fixtures.ProgressLine``)."""

from __future__ import annotations

from lmeval_fixtures.plugin.fixtures import ProgressLine


class FakeWriter:
    fullwidth = 100
    width_of_current_line = 30  # "benchmarks/test_smallbench.py "


class FakeStream:
    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, text: str) -> None:
        self.written.append(text)

    def flush(self) -> None:
        pass


class FakeCapture:
    def __init__(self) -> None:
        self.suspended = 0

    def global_and_fixture_disabled(self):
        import contextlib

        self.suspended += 1
        return contextlib.nullcontext()


def test_progress_line_shows_done_total_rate_and_time_left(monkeypatch):
    clock = iter([100.0, 102.0, 104.0, 104.1, 110.0])
    monkeypatch.setattr("lmeval_fixtures.plugin.fixtures.time.perf_counter", lambda: next(clock))
    stream, capture = FakeStream(), FakeCapture()
    line = ProgressLine(FakeWriter(), capture, "ck boolq", "rows", stream)  # started at t=100
    line(200, 1000)  # t=102: 100 rows/s, 8 s left
    line(400, 1000)  # t=104
    line(410, 1000)  # t=104.1: within half a second of the last, not redrawn
    line(1000, 1000)  # t=110: done, the line is erased
    save, restore = ProgressLine.SAVE, ProgressLine.RESTORE_AND_CLEAR
    assert stream.written == [save + " ck boolq: 200/1,000 rows (100.0/s, 8s left)",
                              restore + " ck boolq: 400/1,000 rows (100.0/s, 6s left)", restore]
    assert capture.suspended == 3  # written with pytest's capture suspended, so it shows without -s


def test_progress_line_never_wraps_the_terminal():
    stream = FakeStream()
    writer = FakeWriter()
    writer.width_of_current_line = 90
    ProgressLine(writer, None, "a very long label for a checkpoint", "windows", stream)(1, 10)
    assert len(stream.written[0]) - len(ProgressLine.SAVE) == 9  # what is left of the 100 columns, less one
