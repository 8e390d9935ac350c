"""The corpus readers' former import path still works for conftests written before the wings,
and says where the readers live now."""

from __future__ import annotations

import subprocess
import sys

import lmeval_fixtures


def test_the_old_data_module_warns_and_gives_the_same_readers():
    code = ("import warnings\nwarnings.simplefilter('always')\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    from lmeval_fixtures.data import DataSource, read_text_file, text_files\n"
            "import lmeval_fixtures\n"
            "assert text_files is lmeval_fixtures.text_files and DataSource is lmeval_fixtures.DataSource\n"
            "assert read_text_file is lmeval_fixtures.read_text_file\n"
            "print([str(w.message) for w in caught if w.category is DeprecationWarning])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "lmeval_fixtures.data is deprecated" in out.stdout and "from lmeval_fixtures import text_files" in out.stdout


def test_the_public_names_resolve():
    for name in lmeval_fixtures.__all__:
        assert getattr(lmeval_fixtures, name) is not None, name
