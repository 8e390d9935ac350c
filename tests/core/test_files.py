"""``core.files`` (and the timing reader) without the POSIX-only modules: the package imports and a missing
/proc gives no reading rather than a crash; the run-folder lock (the folder itself) keeps a second holder out and
no `.lock` neighbour can poison it; JSON Lines
cut only where JSON can end a line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..hostile_files import NOT_A_FILE, SPECIAL, UNOPENABLE, ends_within, make_hostile

WITHOUT_POSIX = '''
import sys
from pathlib import Path
sys.modules["resource"] = None  # as on Windows: import resource raises ImportError
sys.modules["fcntl"] = None
import lmeval_fixtures.plugin, lmeval_fixtures.core.files, lmeval_fixtures.engine.timing as timing
timing.STATUS = Path("/nonexistent/status")  # no /proc either
reading = timing.peak_rss_mb()
assert reading != reading, reading  # NaN: no reading, and no crash
print("ok")
'''


def test_the_package_imports_and_degrades_cleanly_without_posix_modules(tmp_path):
    done = subprocess.run([sys.executable, "-c", WITHOUT_POSIX, str(tmp_path)], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


HOLD_THEN_TRY = '''
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("kept out")
else:
    print("got in")
'''

needs_flock = pytest.mark.skipif(sys.platform == "win32", reason="the folder itself is locked where fcntl exists")


def other_process_tries(folder: Path) -> str:
    done = subprocess.run([sys.executable, "-c", HOLD_THEN_TRY, str(folder)], capture_output=True, text=True)
    return done.stdout.strip() or done.stderr[-2000:]


@needs_flock
def test_the_run_folder_lock_keeps_another_process_out_until_released(tmp_path):
    from lmeval_fixtures.core.files import run_folder_lock

    with run_folder_lock(tmp_path):
        assert other_process_tries(tmp_path) == "kept out"
    assert other_process_tries(tmp_path) == "got in"
    assert list(tmp_path.iterdir()) == []  # the folder is the lock: no file in it to leave behind or poison


@needs_flock
@pytest.mark.parametrize("kind", SPECIAL + NOT_A_FILE + UNOPENABLE + ["empty"])
def test_a_bad_lock_file_in_the_run_folder_is_never_opened_and_costs_nothing(tmp_path, kind):
    from lmeval_fixtures.core.files import run_folder_lock

    make_hostile(tmp_path / ".lock", kind)
    before = os.lstat(tmp_path / ".lock")
    with run_folder_lock(tmp_path):
        assert other_process_tries(tmp_path) == "kept out"
    after = os.lstat(tmp_path / ".lock")
    assert (after.st_mode, after.st_ino, after.st_mtime_ns) == (before.st_mode, before.st_ino, before.st_mtime_ns)
    assert not (tmp_path / "gone").exists()  # the dangling link was not followed to make its target


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_where_a_folder_cannot_be_locked_a_fifo_as_the_lock_file_is_refused_not_waited_on(tmp_path, monkeypatch):
    from lmeval_fixtures.core import files

    monkeypatch.setattr(files, "_lock_folder_itself", lambda folder: None)  # as on Windows or NFS
    os.mkfifo(tmp_path / ".lock")
    with pytest.raises(OSError, match=r"\.lock: not a regular file \(a named pipe \(FIFO\)\); remove it"), \
            files.run_folder_lock(tmp_path):
        pass
    (tmp_path / ".lock").unlink()
    with files.run_folder_lock(tmp_path):  # filelock's file, made again
        assert (tmp_path / ".lock").is_file()


LINE_LIKE = ["\u2028", "\u2029", "\x85"]  # str.splitlines cuts at these; JSON strings hold them raw


@pytest.mark.parametrize("char", LINE_LIKE)
@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"])
def test_json_lines_cut_only_where_json_can_end_a_line(char, line_end):
    from lmeval_fixtures.core.files import json_lines

    values = [{"text": f"a{char}b"}, {"text": f"{char}", "n": 1}, {"text": f"ends{char}"}, [f"x{char}{char}y"]]
    text = line_end.join(json.dumps(v, ensure_ascii=False) for v in values) + line_end
    assert char in text  # written raw, as ensure_ascii=False writes it
    assert list(json_lines(text, Path("r.jsonl"), ValueError)) == list(enumerate(values, start=1))
    bad = text + "{oops" + line_end
    with pytest.raises(ValueError, match=r"^r.jsonl:5: invalid JSON"):  # the line numbers stay JSON's lines
        list(json_lines(bad, Path("r.jsonl"), ValueError))


def test_json_lines_after_a_byte_order_mark():
    from lmeval_fixtures.core.files import json_lines

    assert list(json_lines('\ufeff{"a": 1}\n\n{"b": "\ufeff"}\n', Path("r.jsonl"), ValueError)) == [
        (1, {"a": 1}), (3, {"b": "\ufeff"})]  # only the mark before the first line is not text


def test_an_append_is_whole_or_not_at_all_when_the_disk_fills(tmp_path, monkeypatch):
    import errno

    from lmeval_fixtures.core import files

    path = tmp_path / "history.jsonl"
    path.write_text('{"a": 1}\n')
    real_write = os.write

    def half_then_full(fd, data):
        if len(data) > 4:
            real_write(fd, data[: len(data) // 2])  # part of the lines reach the disk ...
            raise OSError(errno.ENOSPC, "No space left on device")  # ... then it is full
        return real_write(fd, data)

    monkeypatch.setattr(files.os, "write", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        files.append_whole(path, '{"b": 2}\n{"c": 3}\n')
    assert path.read_text() == '{"a": 1}\n'  # cut back: no half line for later readers or appends
    monkeypatch.undo()
    files.append_whole(path, '{"b": 2}\n')
    assert path.read_text() == '{"a": 1}\n{"b": 2}\n'


@pytest.mark.parametrize("tail", ['{"a": 1', '{"a": 1}', "garbage"])
def test_an_append_after_an_unfinished_line_starts_a_line_of_its_own(tmp_path, tail):
    from lmeval_fixtures.core.files import append_whole

    path = tmp_path / "h.jsonl"
    path.write_text('{"z": 0}\n' + tail)
    append_whole(path, '{"b": 2}\n')
    assert path.read_text().split("\n") == ['{"z": 0}', tail, '{"b": 2}', ""]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_an_append_to_a_fifo_is_refused_not_waited_on(tmp_path):
    from lmeval_fixtures.core.files import append_whole

    os.mkfifo(tmp_path / "h.jsonl")
    with pytest.raises(OSError, match=r"h\.jsonl: not a regular file \(a named pipe \(FIFO\)\)"):
        append_whole(tmp_path / "h.jsonl", "x\n")


def test_a_read_is_bounded_by_the_size_and_while_reading(tmp_path):
    """Over the bound by its stated size (refused unread), and by what it gives (a file that states no size, as
    /proc's do, or grows): never read without end."""
    from lmeval_fixtures.core.files import read_regular_bytes

    path = tmp_path / "r.json"
    path.write_bytes(b"x" * 11)
    with pytest.raises(ValueError, match=r"^.*r\.json: record is larger than 10 bytes, more than any the suite "
                                         r"writes; not read \(is it the file meant\?\)$"):
        read_regular_bytes(path, ValueError, "record", 10)
    assert read_regular_bytes(path, ValueError, "record", 11) == b"x" * 11
    stated_none = Path("/proc/self/status")
    if stated_none.is_file() and stated_none.stat().st_size == 0:
        with pytest.raises(ValueError, match="larger than 10 bytes"):
            read_regular_bytes(stated_none, ValueError, "status", 10)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_fifo_put_in_place_between_the_check_and_the_open_is_refused_not_waited_on(tmp_path, monkeypatch):
    from lmeval_fixtures.core import files

    os.mkfifo(tmp_path / "metrics.json")
    monkeypatch.setattr(files, "special_file_message", lambda path: None)  # the check saw a regular file
    with ends_within(10), pytest.raises(ValueError, match=r"metrics\.json: record is not a regular file \(replaced "
                                                          r"while being opened\)$"):
        files.read_regular_bytes(tmp_path / "metrics.json", ValueError, "record", 100)


def test_a_dangling_link_is_named_as_one(tmp_path):
    from lmeval_fixtures.core.files import read_regular_bytes

    (tmp_path / "metrics.json").symlink_to(tmp_path / "gone.json")
    with pytest.raises(ValueError, match=rf"metrics\.json: record is a link to {tmp_path}/gone\.json, which does not "
                                         "exist$"):
        read_regular_bytes(tmp_path / "metrics.json", ValueError, "record", 100)
