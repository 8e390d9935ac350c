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


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _drawn(stream: FakeStream) -> str:
    return stream.written[-1].removeprefix(ProgressLine.SAVE).removeprefix(ProgressLine.RESTORE_AND_CLEAR)


def test_progress_estimates_follow_the_recent_rate_not_the_first_seconds():
    clock = FakeClock(0.0)
    stream = FakeStream()
    line = ProgressLine(FakeWriter(), None, "ck boolq", "rows", stream, clock=clock)
    clock.now = 60.0
    line(10, 1000)  # a slow start: 10 rows in the first minute (loading, the longest rows first)
    for second in range(61, 121):  # then 10 rows a second, steadily
        clock.now = float(second)
        line(10 + 10 * (second - 60), 1000)
    # 610 rows done, 390 left at 10/s: 39 s; the mean since the start (610 / 120 s) would say 77 s
    assert _drawn(stream) == " ck boolq: 610/1,000 rows (10.0/s, 39s left)"
    for second in range(121, 151):
        clock.now = float(second)
        line(610 + 5 * (second - 120), 1000)  # the rate halves: the estimate follows within the window
    assert _drawn(stream).endswith("(5.0/s, 48s left)")


def test_the_rate_and_time_left_survive_80_columns_with_running_figures():
    # pytest's line before the progress: "benchmarks/test_perplexity.py " and a dot per item done
    clock = FakeClock(0.0)
    for current, label, unit, figures in [
            (31, "ref-e35 wikitext validation", "windows", {"bpb": 1.23456, "ppl": 45.678}),
            (50, "ref-e35 wikitext validation", "windows", {"bpb": 1.23456, "ppl": 45.678}),
            (62, "ref-e35 wikitext validation", "windows", {"bpb": 1.23456, "ppl": 45.678}),
            (30, "ref-e35 boolq", "requests", {"acc": 0.6125}),
            (45, "a-long-checkpoint-name-from-a-sweep boolq", "requests", {"acc": 0.6125})]:
        writer = FakeWriter()
        writer.fullwidth, writer.width_of_current_line = 80, current
        stream = FakeStream()
        line = ProgressLine(writer, None, label, unit, stream, clock=clock)
        clock.now += 10.0
        line.live(figures)
        line(1234, 5678)
        text = _drawn(stream)
        assert len(text) <= 80 - current - 1
        rate = 1234 / 10.0
        assert f"{rate:,.1f}/s" in text, (current, text)
        if current <= 50:
            assert ("bpb 1.235" in text) if "bpb" in figures else ("acc 0.613" in text), (current, text)
    writer = FakeWriter()
    writer.fullwidth, writer.width_of_current_line = 80, 31
    stream = FakeStream()
    line = ProgressLine(writer, None, "ref-e35 wikitext validation", "windows", stream, clock=clock)
    clock.now += 10.0
    line.live({"bpb": 1.23456, "ppl": 45.678})
    line(1234, 5678)
    assert _drawn(stream) == " 1234/5678 bpb 1.235 123.4/s 36s left"  # 48 columns: label, unit, ppl gone
