"""The one "did you mean" rule (``closest_name``): the command line's misspelt flags, ``evaluate()``'s keywords,
``watch --set`` and a config's fields all ask it."""

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
