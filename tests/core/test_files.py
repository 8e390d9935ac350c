"""``core.files`` (and the timing reader) without the POSIX-only modules: the package imports, the run-folder
lock takes msvcrt's, and a missing /proc gives no reading rather than a crash."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

WITHOUT_POSIX = '''
import sys, types
from pathlib import Path
sys.modules["resource"] = None  # as on Windows: import resource raises ImportError
sys.modules["fcntl"] = None
import lmeval_fixtures.plugin, lmeval_fixtures.core.files, lmeval_fixtures.engine.timing as timing
locks = []  # msvcrt faked only now: the standard library takes its presence for Windows
sys.modules["msvcrt"] = types.SimpleNamespace(LK_LOCK=1, LK_UNLCK=0, locking=lambda fd, mode, n: locks.append(mode))
timing.STATUS = Path("/nonexistent/status")  # no /proc either
reading = timing.peak_rss_mb()
assert reading != reading, reading  # NaN: no reading, and no crash
with lmeval_fixtures.core.files.run_folder_lock(Path(sys.argv[1])):
    pass
assert locks == [1, 0], locks
print("ok")
'''


def test_the_package_imports_and_degrades_cleanly_without_posix_modules(tmp_path):
    done = subprocess.run([sys.executable, "-c", WITHOUT_POSIX, str(tmp_path)], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


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
    from lmeval_fixtures.core.files import append_whole, run_folder_lock

    os.mkfifo(tmp_path / "h.jsonl")
    with pytest.raises(OSError, match=r"h\.jsonl: not a regular file \(a named pipe \(FIFO\)\)"):
        append_whole(tmp_path / "h.jsonl", "x\n")
    os.mkfifo(tmp_path / ".lock")
    with pytest.raises(OSError, match=r"\.lock: not a regular file \(a named pipe \(FIFO\)\); remove it"), \
            run_folder_lock(tmp_path):
        pass
