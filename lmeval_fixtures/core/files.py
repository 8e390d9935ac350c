"""Files as the suite reads and writes them: untrusted on the way in, whole or not at all on the way out.

Every reader refuses a FIFO or a device before opening it (``special_file_message``:
reading one would hang a run), and every digest is the sha256 of the bytes read. Every
writer replaces a file atomically (``write_atomic``: a temporary file, then ``os.replace``),
so an interrupted run leaves the old report intact, and a run folder is changed by one
process at a time (``run_folder_lock``). These rules are shared by checkpoints, data,
records and the cache, so they live at the bottom of the package, once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import CheckpointError


def readable_by_umask(path: Path) -> None:
    """Give a written file the permissions ``open`` would (the writer may have made it private)."""
    os.chmod(path, default_file_mode())


_JSON_LINE_END = re.compile(r"\r\n|\r|\n")


def json_line_texts(text: str) -> list[str]:
    """The lines of a JSON Lines text, cut only at "\\n", "\\r\\n" and "\\r": JSON strings cannot
    hold those raw, but they may hold three other characters ``str.splitlines`` cuts at (U+2028,
    U+2029, U+0085), so a reader cutting there breaks a valid line in two. A
    UTF-8 byte-order mark before the first line is not part of it."""
    return _JSON_LINE_END.split(text.removeprefix("\ufeff"))


def json_lines(text: str, where: Path, error: type[Exception]) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank JSON Lines line; a bad line raises ``error``
    naming ``where`` and the line."""
    for number, line in enumerate(json_line_texts(text), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{where}:{number}: invalid JSON ({exc.msg})") from None

SPECIAL_FILE_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                      (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def special_file_message(path: Path) -> str | None:
    """The one-line refusal of a path that is neither a regular file nor a folder, else None.

    Decided by ``os.stat`` alone, never by opening: opening a FIFO blocks until a writer
    comes (the whole session hangs), and a device can be read forever. A path that cannot
    be stat'ed gives None, so that the reader's own "missing" message applies.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = next((name for is_kind, name in SPECIAL_FILE_KINDS if is_kind(mode)), "not a regular file")
    return f"{path}: not a regular file ({kind}); copy its content to a regular file and pass that"


def output_folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be made a folder to write into (it, or a folder above it, is a file or
    a special file), else None: asked before writing, so that the answer names the path and what
    to do rather than the operating system's "File exists" or "Not a directory"."""
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return None
        if os.path.lexists(candidate):
            what = "" if candidate == path else f", so {path} cannot be made a folder"
            return f"{candidate}: exists and is not a folder{what}; pass a new or existing folder"
    return None


def default_file_mode() -> int:
    """The permissions ``open`` gives a new file under the user's umask (mkstemp and some writers
    make files private, so a CI artifact step or a colleague could not read them)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def read_json_object(path: Path, error: type[Exception], what: str, missing_hint: str = "") -> dict[str, Any]:
    """The JSON object in ``path``, or ``error`` with one line naming the file and what is wrong: a
    special file (refused unopened), a missing file (``missing_hint`` says what to do), bytes that
    are not UTF-8 JSON, JSON that is not an object. One reader for every JSON file the suite is
    handed (a checkpoint's config, a record, a baseline), so each refuses the same inputs alike."""
    return read_json_object_and_sha256(path, error, what, missing_hint)[0]


def read_json_object_and_sha256(path: Path, error: type[Exception], what: str,
                                missing_hint: str = "") -> tuple[dict[str, Any], str]:
    """``read_json_object`` and the sha256 of the very bytes parsed: one read, so the digest a
    record states can never be of a file replaced between parsing and hashing."""
    raw = read_regular_bytes(path, error, what, JSON_OBJECT_LIMIT_BYTES, missing_hint)
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: {what} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise error(f"{path}: {what} is a JSON {type(value).__name__}, not an object")
    return value, hashlib.sha256(raw).hexdigest()


JSON_OBJECT_LIMIT_BYTES = 256 << 20  # a record, baseline or config: the largest the suite writes is a few MiB
REPORT_FILE_LIMIT_BYTES = 1 << 30  # a samples file or the history, which grow with rows and runs


def read_regular_bytes(path: Path, error: type[Exception], what: str, limit: int, missing_hint: str = "") -> bytes:
    """The bytes of ``path``, or ``error`` with one line naming it and what is wrong: a FIFO, device
    or socket (refused unread: reading one hangs or never ends), a missing file (``missing_hint``
    says what to do), one that cannot be opened (a folder, no permission), or one over ``limit``
    bytes (a bound, so that no file can make a run read without end). The one reader of every file
    a run folder or report folder holds.

    Opened without blocking and checked again once open, so a FIFO put in its place between the
    check and the open is refused too; the limit is checked on the size and while reading, since a
    file can grow, or state no size at all."""
    special = special_file_message(path)
    if special:
        raise error(special)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        if path.is_symlink():
            raise error(f"{path}: {what} is a link to {os.readlink(path)}, which does not exist") from None
        raise error(f"{path}: {what} not found" + (f" ({missing_hint})" if missing_hint else "")) from None
    except OSError as exc:  # no permission, a loop of links
        raise error(f"{path}: {what} cannot be read ({exc.strerror or exc})") from None
    try:
        problem, data = _read_open_file(fd, path, limit)
    finally:
        os.close(fd)
    if problem:
        raise error(f"{path}: {what} {problem}")
    return data


def read_regular_text(path: Path, error: type[Exception], what: str, limit: int) -> str:
    """``read_regular_bytes`` decoded as UTF-8; bytes that are not are ``error`` naming the file and
    the first bad byte (a samples file, a history, a report file copied into a baseline)."""
    raw = read_regular_bytes(path, error, what, limit)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8 (byte {exc.start})") from None


def _read_open_file(fd: int, path: Path, limit: int) -> tuple[str | None, bytes]:
    """(what is wrong, else None; the bytes) of an open descriptor: a regular file of at most ``limit`` bytes."""
    bound = f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit} bytes"
    too_large = f"is larger than {bound}, more than any the suite writes; not read (is it the file meant?)"
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return "cannot be read (Is a directory)", b""
        if not stat.S_ISREG(info.st_mode):
            return "is not a regular file (replaced while being opened)", b""
        if info.st_size > limit:
            return too_large, b""
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                return too_large, b""
    except OSError as exc:  # an I/O error part-way
        return f"cannot be read ({exc.strerror or exc})", b""
    return None, b"".join(chunks)


def require_regular(path: Path) -> None:
    """``special_file_message`` as a ``CheckpointError``."""
    message = special_file_message(path)
    if message is not None:
        raise CheckpointError(message)


def sha256_file(path: Path) -> str:
    """Digest read in 1 MiB blocks, so a large weights file is never held in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file, then rename: an interrupted run never leaves half a file.
    The file gets the permissions of the user's umask, as ``open`` would give it (``mkstemp``
    makes it private, and a CI artifact step or a colleague could not read it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, default_file_mode())  # by name: os.fchmod is POSIX-only before Python 3.13
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_for_append(path: Path) -> int:
    """A descriptor of the regular file ``path`` opened for appending (and reading its end; made when
    missing). A FIFO,
    device or socket in its place is refused with ``special_file_message`` as an ``OSError``, and
    never waited on: the open does not block, and what was opened is checked before it is used."""
    message = special_file_message(path)
    if message:
        raise OSError(message)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0), default_file_mode())
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the check and the open
        os.close(fd)
        raise OSError(special_file_message(path) or f"{path}: not a regular file")
    return fd


def append_whole(path: Path, text: str) -> None:
    """Append ``text`` (whole lines) to ``path`` whole or not at all: under an exclusive lock, after
    a line end when the file's last line was left unfinished (by a writer that died), and cut back
    to its former size when the write fails part-way (a full disk), so no reader ever meets half a
    line of ours and a later append never continues someone else's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_for_append(path)
    try:
        _lock(fd)
        size = os.fstat(fd).st_size
        data = text.encode("utf-8")
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
        except BaseException:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)  # closing releases the lock


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: appends of one write each; no advisory lock
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


@contextlib.contextmanager
def run_folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on a run folder while its records are read and written, so two
    invocations with the same run id (shards, or runs at once) merge instead of overwriting.

    The lock is the folder itself (``flock`` on the folder's own descriptor), not a file in it:
    a ``.lock`` file is a neighbour like any other, and one left as a FIFO, a folder, a device, a
    dangling link or a file nobody may open would otherwise cost the whole run its reports. The
    folder is one thing every run of it must be able to open anyway. Where a folder cannot be
    locked (no ``fcntl``: Windows; a file system that refuses: NFS) the lock is ``filelock``'s
    ``.lock`` file, and a FIFO or device in its place is refused in one line, never waited on."""
    folder.mkdir(parents=True, exist_ok=True)
    held = _lock_folder_itself(folder)
    if held is not None:
        try:
            yield
        finally:
            os.close(held)  # closing releases the lock
        return
    from filelock import FileLock

    lock = folder / ".lock"
    special = special_file_message(lock)
    if special:  # ours to make: the remedy is to remove it, not to copy it
        raise OSError(special.partition(";")[0] + "; remove it (the run folder's lock file is made again)")
    with FileLock(lock):
        yield


def _lock_folder_itself(folder: Path) -> int | None:
    """A descriptor of ``folder`` holding an exclusive ``flock`` (released when it is closed), or
    None where folders cannot be locked so (no ``fcntl``; a file system that refuses it)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # not openable as a folder: the lock file's own message says why
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # NFS emulates flock by a write lock, which a folder opened to read cannot take
        os.close(fd)
        return None
    return fd
