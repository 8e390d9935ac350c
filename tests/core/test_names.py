"""Numbers and shards typed in an option or written in a record: one reading of each (``core.names``)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("text", "number"), [
    ("0", 0), ("7", 7), ("0042", 42), ("9" * 18, 10**18 - 1),
    ("", None), ("9" * 19, None), ("²", None), ("١", None), ("1.0", None), ("-1", None), (" 1", None), ("1_000", None),
    (7, None), (None, None),
])
def test_a_whole_number_is_ascii_digits_only(text, number):
    """str.isdigit holds for '²' (int() then raises: an INTERNALERROR under --shard) and '١' (int() reads it)."""
    from lmeval_fixtures.core.names import whole_number

    assert whole_number(text) == number


@pytest.mark.parametrize(("text", "shard"), [
    ("1/1", (1, 1)), ("2/4", (2, 4)), ("10000/10000", (10000, 10000)),
    ("0/2", None), ("3/2", None), ("1/10001", None), ("²/3", None), ("1/", None), ("/2", None), ("1/2/3", None),
    ("1 /2", None), (None, None), (12, None),
])
def test_a_shard_is_i_of_n_within_bounds(text, shard):
    from lmeval_fixtures.core.names import parse_shard

    assert parse_shard(text) == shard
