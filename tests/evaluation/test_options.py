"""The option table (``evaluation.options``)."""

from __future__ import annotations

from lmeval_fixtures.evaluation.options import DEST_PREFIX, DTYPE_NAMES, OPTIONS


def test_option_dtype_names_match_the_loader():
    from lmeval_fixtures.models.loading import DTYPES

    assert tuple(DTYPES) == DTYPE_NAMES
    assert all(not o.dest.startswith(DEST_PREFIX) for o in OPTIONS)
