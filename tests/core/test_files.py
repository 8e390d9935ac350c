"""``core.files`` (and the timing reader) without the POSIX-only modules: the package imports, the run-folder
lock takes msvcrt's, and a missing /proc gives no reading rather than a crash."""

from __future__ import annotations

import subprocess
import sys

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
