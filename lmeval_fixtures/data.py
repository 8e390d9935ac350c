"""Deprecated: the former home of the data readers a conftest.py uses for its own corpora.

Before the package was layered in wings, the README showed ``from lmeval_fixtures.data import
text_files``; conftests written then keep working, with a ``DeprecationWarning`` that names the
new import. Import these names from ``lmeval_fixtures`` itself (``from lmeval_fixtures import
text_files``). Nothing in the package imports this module.
"""

from __future__ import annotations

import warnings

from .core.errors import DataError, DataUnavailable
from .suite.sources import DataSource, read_text_file, text_files

__all__ = ["DataError", "DataSource", "DataUnavailable", "read_text_file", "text_files"]

warnings.warn("lmeval_fixtures.data is deprecated: import DataSource, DataError, DataUnavailable, read_text_file "
              "and text_files from lmeval_fixtures (e.g. `from lmeval_fixtures import text_files`)",
              DeprecationWarning, stacklevel=2)
