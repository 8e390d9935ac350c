"""core.names: the one "did you mean" rule (``closest_name``: the command line's misspelt flags, ``evaluate()``'s
keywords, ``watch --set`` and a config's fields all ask it), and numbers and shards typed in an option or written
in a record, one reading of each."""

from __future__ import annotations

import pytest

from lmeval_fixtures.core.names import closest_name

KEYWORDS = ("max_eval_tokens", "max_samples", "ppl_stride", "strict_skips", "families", "seed")
FLAGS = ("--checkpoint", "--data-dir", "--max-eval-tokens")


@pytest.mark.parametrize("name, known, meant", [
    ("max_eval_token", KEYWORDS, "max_eval_tokens"),
    ("max-eval-tokens", KEYWORDS, "max_eval_tokens"),  # a flag's spelling as a keyword finds the keyword
    ("strict-skips", KEYWORDS, "strict_skips"),
    ("--data_dir", FLAGS, "--data-dir"),  # and a keyword's spelling as a flag finds the flag, as it is spelt
    ("--chekpoint", FLAGS, "--checkpoint"),
    ("familes", KEYWORDS, "families"),
    ("colour", KEYWORDS, None),
    ("", KEYWORDS, None),
])
def test_the_name_meant_is_the_closest_known_one_or_none(name, known, meant):
    assert closest_name(name, known) == meant


def test_a_lower_cutoff_finds_farther_names():
    assert closest_name("n_layer", ("n_layers", "n_heads"), cutoff=0.6) == "n_layers"
    assert closest_name("depth", ("n_layers", "n_heads"), cutoff=0.6) is None


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
