"""The option table (``evaluation.options``)."""

from __future__ import annotations

import math

import pytest

from lmeval_fixtures.core.errors import UsageError
from lmeval_fixtures.evaluation.options import DEST_PREFIX, DTYPE_NAMES, OPTIONS, option_values
from lmeval_fixtures.evaluation.settings import settings_from_options

from ..helpers import one_line, write_native_checkpoint


def test_option_dtype_names_match_the_loader():
    from lmeval_fixtures.models.loading import DTYPES

    assert tuple(DTYPES) == DTYPE_NAMES
    assert all(not o.dest.startswith(DEST_PREFIX) for o in OPTIONS)


def test_every_numeric_option_has_a_documented_range():
    numeric = [o for o in OPTIONS if o.type in (int, float)]
    assert numeric and all(o.bounds is not None for o in numeric)
    assert all(o.bounds.whole == (o.type is int) for o in numeric)


@pytest.mark.parametrize("given, line", [
    ({"seed": 2**70}, "--seed must be an integer from 0 to 4,294,967,295, got 1180591620717411303424"),
    ({"seed": -1}, "--seed must be an integer from 0 to 4,294,967,295, got -1"),
    ({"threads": 0}, "--threads must be an integer from 1 to 4,096, got 0"),
    ({"threads": 10**6}, "--threads must be an integer from 1 to 4,096, got 1000000"),
    ({"timing_budget": math.nan}, "--timing-budget must be between 0 and 86400, got nan"),
    ({"timing_budget": 1e12}, "--timing-budget must be between 0 and 86400, got 1000000000000.0"),
    ({"gate_alpha": 1.0}, "--gate-alpha must be between 0 and 1 (exclusive), got 1.0"),
    ({"gate_alpha": 0}, "--gate-alpha must be between 0 and 1 (exclusive), got 0.0"),
    ({"cache_max_mb": 0}, "--cache-max-mb must be an integer from 1 to 1,000,000,000, got 0"),
    ({"fewshot": 10**9}, "--fewshot must be an integer from 0 to 1,024, got 1000000000"),
    ({"latency_warmup": -1}, "--latency-warmup must be an integer from 0 to 1,000,000, got -1"),
    ({"ppl_tolerance": math.inf}, "--ppl-tolerance must be a finite number >= 0, got inf"),
    ({"shard": "1/1000000000"}, "--shard 1/1000000000: expected I/N with 1 <= I <= N <= 10,000, e.g. 2/4"),
    ({"latency_shapes": "1x9999999999"}, "--latency-shapes '1x9999999999': expected BATCHxSEQUENCE, each from 1 to"),
    ({"throughput_shape": "4096000x8"}, "--throughput-shape '4096000x8': expected BATCHxSEQUENCE, each from 1 to"),
    ({"batch_sweep": "1,99999999"}, "--batch-sweep 1,99999999: expected batch sizes from 1 to 1,048,576"),
    # digits str.isdigit() accepts and int() refuses (once an INTERNALERROR) or reads (once accepted)
    ({"shard": "²/3"}, "--shard ²/3: expected I/N with 1 <= I <= N <= 10,000, e.g. 2/4"),
    ({"shard": "١/٢"}, "--shard ١/٢: expected I/N with 1 <= I <= N <= 10,000, e.g. 2/4"),
    ({"batch_sweep": "1,²"}, "--batch-sweep 1,²: expected batch sizes from 1 to 1,048,576"),
    ({"latency_shapes": "1x1²"}, "--latency-shapes '1x1²': expected BATCHxSEQUENCE, each from 1 to"),
])
def test_a_value_outside_an_options_range_is_one_line_at_start_up(tmp_path, given, line):
    values = option_values(checkpoint=[str(write_native_checkpoint(tmp_path / "ck"))], **given)
    with pytest.raises(UsageError) as caught:
        settings_from_options(values, [], None, tmp_path)
    assert one_line(caught).startswith(line)


@pytest.mark.parametrize("given", [{"seed": 0}, {"seed": 2**32 - 1}, {"threads": 4096}, {"gate_alpha": 0.999},
                                   {"timing_budget": 0.0}, {"shard": "10000/10000"}, {"fewshot": 0}])
def test_the_ends_of_a_range_are_accepted(tmp_path, given):
    values = option_values(checkpoint=[str(write_native_checkpoint(tmp_path / "ck"))], **given)
    settings_from_options(values, [], None, tmp_path)
