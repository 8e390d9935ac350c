"""Splitting a run's items into N shards of about equal cost, each loading few checkpoints.

Contiguous slices of the item list (the first rule) gave shards of very unequal
length, because BoolQ and the perplexity splits cost about ten times the other
items. Here the longest-processing-time rule places items, longest first, on the
least loaded shard, counting the load of a checkpoint a shard has not yet loaded
as a small extra cost, so a checkpoint's items stay together where balance allows.
Every process computes the same split from the same collection (the order is fixed
by cost, then checkpoint, then id), so shards started on different machines agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CHECKPOINT_LOAD_COST = 0.5  # in item-cost units: a small checkpoint loads in about half an SST-2 item


@dataclass(frozen=True)
class ShardItem:
    key: str  # the item's node id
    checkpoint: str
    cost: float


def partition(items: Sequence[ShardItem], count: int) -> list[list[str]]:
    """Node ids per shard (``count`` lists), balanced by estimated cost."""
    loads = [0.0] * count
    loaded: list[set[str]] = [set() for _ in range(count)]
    shards: list[list[str]] = [[] for _ in range(count)]
    for item in sorted(items, key=lambda i: (-i.cost, i.checkpoint, i.key)):
        def load_after(shard: int, item: ShardItem = item) -> tuple[float, int]:
            extra = 0.0 if item.checkpoint in loaded[shard] else CHECKPOINT_LOAD_COST
            return loads[shard] + item.cost + extra, shard

        chosen = min(range(count), key=load_after)
        loads[chosen] = load_after(chosen)[0]
        loaded[chosen].add(item.checkpoint)
        shards[chosen].append(item.key)
    return shards


def shard_costs(items: Sequence[ShardItem], count: int) -> list[float]:
    """Estimated cost of each shard (items only), as ``partition`` splits them."""
    cost = {item.key: item.cost for item in items}
    return [sum(cost[key] for key in shard) for shard in partition(items, count)]
