"""Shards balanced by estimated cost (``evaluation.sharding``): every item in exactly one shard, the split
stable. (Sharded runs and their merge: e2e/test_sharding_runs.py.)"""

from __future__ import annotations

from lmeval_fixtures.evaluation.sharding import ShardItem, partition


def test_every_item_lands_in_exactly_one_shard_and_the_split_is_stable():
    items = [ShardItem(f"t[{c}-{i}]", c, cost) for c in "abc" for i, cost in enumerate((12, 11, 10, 2, 1, 1, 1))]
    for count in (1, 2, 3, 5, 8, 30):
        shards = partition(items, count)
        keys = [k for shard in shards for k in shard]
        assert sorted(keys) == sorted(i.key for i in items) and len(keys) == len(set(keys))
        assert partition(list(reversed(items)), count) == shards  # the order items arrive in does not matter


def test_a_checkpoint_stays_in_few_shards_when_balance_allows():
    items = [ShardItem(f"t[{c}-{i}]", c, cost) for c in "ab" for i, cost in enumerate((2.0, 1.0))]
    shards = partition(items, 2)
    assert [{k[2] for k in shard} for shard in shards] == [{"a"}, {"b"}]
