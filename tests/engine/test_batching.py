"""Cutting length-sorted rows into batches: the token budget and the padding bound."""

import random

import pytest

from lmeval_fixtures.engine.batching import MAX_PADDING, length_batches


def test_a_batch_pads_no_row_by_more_than_an_eighth_of_its_width():
    lengths = [100, 99, 90, 88, 87, 60, 59, 8, 7, 7, 2, 1]
    assert [len(b) for b in length_batches(lengths, batch_tokens=300)] == [3, 2, 2, 3, 1, 1]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("budget", [1, 50, 700, 16384])
def test_every_row_once_in_order_within_budget_and_padding_bound(seed, budget):
    rng = random.Random(seed)
    lengths = sorted((rng.randint(1, 600) for _ in range(rng.randint(1, 400))), reverse=True)
    batches = length_batches(lengths, budget)
    assert [i for batch in batches for i in batch] == list(range(len(lengths)))
    for batch in batches:
        width = lengths[batch.start]
        assert all(lengths[i] >= width * (1 - MAX_PADDING) for i in batch)
        assert len(batch) == 1 or len(batch) * width <= budget
    # a batch stops only at the budget, the padding bound or the end
    for batch, following in zip(batches, batches[1:], strict=False):
        width = lengths[batch.start]
        assert (len(batch) + 1) * width > budget or lengths[following.start] < width * (1 - MAX_PADDING)


def test_no_rows_no_batches():
    assert length_batches([], 100) == []
