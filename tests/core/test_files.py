"""``core.files`` (and the timing reader) without the POSIX-only modules: the package imports and a missing
/proc gives no reading rather than a crash; the run-folder lock (``filelock``) keeps a second holder out."""

from __future__ import annotations

import subprocess
import sys

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
import sys
from filelock import FileLock, Timeout
try:
    FileLock(sys.argv[1] + "/.lock").acquire(timeout=0.2)
except Timeout:
    print("kept out")
else:
    print("got in")
'''


def test_the_run_folder_lock_keeps_another_process_out_until_released(tmp_path):
    from lmeval_fixtures.core.files import run_folder_lock

    def other_process() -> str:
        done = subprocess.run([sys.executable, "-c", HOLD_THEN_TRY, str(tmp_path)], capture_output=True, text=True)
        return done.stdout.strip() or done.stderr[-2000:]

    with run_folder_lock(tmp_path):
        assert other_process() == "kept out"
    assert other_process() == "got in"
