"""Files as a hostile or broken neighbour leaves them: the same path as every kind of thing a reader can meet.

One maker for the tests of every reader of a run folder (records, samples, history, the lock), so each reader
is tried with the same kinds."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HUGE_BYTES = (1 << 30) + 1  # over every bound the suite reads a report file with; sparse, so it costs no disk

SPECIAL = ["a FIFO", "a socket", "a symlink to /dev/zero", "a symlink to /dev/urandom"]
NOT_A_FILE = ["a folder", "a dangling symlink"]
UNOPENABLE = ["no permissions"]
BAD_BYTES = ["invalid UTF-8", "truncated JSON", "empty", "huge"]
KINDS = SPECIAL + NOT_A_FILE + UNOPENABLE + BAD_BYTES


def make_hostile(path: Path, kind: str) -> None:
    """Replace ``path`` (a file or nothing) by ``kind``; skips the test where the kind cannot be made or means
    nothing (root reads a file without permissions)."""
    if (kind == "a FIFO" and not hasattr(os, "mkfifo")) or (kind == "a socket" and not hasattr(socket, "AF_UNIX")):
        pytest.skip(f"{kind}: not on this platform")
    if kind.startswith("a symlink to /dev/") and not Path(kind.rpartition(" ")[2]).exists():
        pytest.skip(f"{kind}: no such device here")
    if kind == "no permissions" and (sys.platform == "win32" or os.geteuid() == 0):
        pytest.skip("no permissions: root (or Windows) reads a file whatever its mode")
    original = path.read_bytes() if path.is_file() and not path.is_symlink() else b'{"a": 1}\n'
    if path.is_symlink() or path.is_file():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a socket":
        here = os.getcwd()
        os.chdir(path.parent)  # a socket's address is at most ~100 bytes: bound by its short name
        try:
            with socket.socket(socket.AF_UNIX) as server:
                server.bind(path.name)
        finally:
            os.chdir(here)
    elif kind.startswith("a symlink to /dev/"):
        path.symlink_to(kind.rpartition(" ")[2])
    elif kind == "a folder":
        (path / "inside").mkdir(parents=True)
    elif kind == "a dangling symlink":
        path.symlink_to(path.parent / "gone" / path.name)
    elif kind == "no permissions":
        path.write_bytes(original)
        path.chmod(0)
    elif kind == "invalid UTF-8":
        path.write_bytes(b'{"caf\xe9": 1}\n')
    elif kind == "truncated JSON":
        path.write_bytes(original[: max(1, len(original) - 3)])  # a write cut short: the last line unfinished
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "huge":
        with open(path, "wb") as handle:
            handle.truncate(HUGE_BYTES)
    else:
        raise ValueError(kind)


@contextlib.contextmanager
def ends_within(seconds: int) -> Iterator[None]:
    """Fail (rather than hang the test run) when the block is still running after ``seconds``: a reader that
    waits on a FIFO, or reads a device without end, is caught here (SIGALRM; POSIX)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def too_long(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s: a reader waited on or read without end")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# what each reader's one line says of each kind (the part after the file's name)
SAYS = {
    "a FIFO": "not a regular file (a named pipe (FIFO))", "a socket": "not a regular file (a socket)",
    "a symlink to /dev/zero": "not a regular file (a character device)",
    "a symlink to /dev/urandom": "not a regular file (a character device)",
    "a folder": "cannot be read (Is a directory)", "a dangling symlink": "which does not exist",
    "no permissions": "cannot be read (Permission denied)", "huge": "MiB, more than any the suite writes; not read",
}
