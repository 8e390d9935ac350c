"""The plugin's module hooks (``plugin.hooks``): importing the plugin imports neither torch nor transformers."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_plugin_imports_neither_torch_nor_transformers():
    code = ("import sys, lmeval_fixtures.plugin, lmeval_fixtures.evaluation.options, lmeval_fixtures; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
