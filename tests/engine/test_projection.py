"""The chunked vocabulary projection (``engine.projection``) against a direct float64 log-softmax, and the
chunk chooser."""

import random

import pytest
import torch

from lmeval_fixtures.engine import projection as lm_interface
from lmeval_fixtures.engine.projection import (
    GRID_ROWS,
    ChunkChooser,
    chunk_bounds,
    chunk_candidates,
    chunk_rows,
    target_logprobs,
)
from lmeval_fixtures.engine.vocab_blocks import VOCAB_BLOCK

from ..helpers import linear_head


@pytest.mark.parametrize("vocab, chunk", [(50, None), (50, 7), (3000, None), (3000, 1000)])
def test_chunks_give_the_direct_log_probabilities_greedy_flags_and_ranks(vocab, chunk):
    generator = torch.Generator().manual_seed(vocab)
    weight = torch.randn(vocab, 16, generator=generator)
    features = torch.randn(1500, 16, generator=generator)  # several chunks of any size used here
    targets = torch.randint(0, vocab, (1500,), generator=generator)
    logprobs, greedy, rank = target_logprobs(lambda h: h @ weight.T, features, targets,
                                             with_greedy=True, with_rank=True, chunk=chunk)
    logits = (features @ weight.T).double()
    expected = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]
    assert torch.allclose(logprobs.double(), expected, atol=1e-4)
    assert torch.equal(greedy, logits.argmax(-1) == targets)
    assert torch.equal(rank, (logits > logits.gather(1, targets[:, None])).sum(-1))


def test_ties_count_as_lm_eval_counts_them():
    """Logits with many ties: greedy is argmax's verdict (the first maximum wins, as lm-evaluation-
    harness tests it) and the rank counts only strictly greater logits."""
    generator = torch.Generator().manual_seed(11)
    logits = torch.randint(0, 3, (700, 8), generator=generator).float()  # every row has ties
    targets = torch.randint(0, 8, (700,), generator=generator)
    _, greedy, rank = target_logprobs(lambda h: h, logits, targets, with_greedy=True, with_rank=True)
    assert torch.equal(greedy, logits.argmax(-1) == targets)
    assert torch.equal(rank, (logits > logits.gather(1, targets[:, None])).sum(-1))
    at_max = logits.gather(1, targets[:, None])[:, 0] == logits.amax(-1)
    assert bool((at_max & ~greedy).any())  # some targets tie the maximum after an earlier index


def test_chunk_rows_keep_about_a_million_logits():
    assert chunk_rows(4096) == 256
    assert chunk_rows(32000) == 128  # never fewer rows than 128: small matmuls are slow
    assert chunk_rows(50) == 1024  # never more than 1024


class RandomChooser:
    """Stands in for the timing chooser: a different chunk (any multiple of the grid) each call."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.candidates = tuple(GRID_ROWS * k for k in (1, 2, 3, 4, 8, 16, 64))

    def next_rows(self, remaining: int) -> int:
        return self.random.choice(self.candidates)

    def observe(self, rows: int, requested: int, seconds: float) -> None:
        pass


@pytest.mark.parametrize("form", ["logits", "linear", "linear with bias"])
@pytest.mark.parametrize("n", [1, 2, 5, 127, 129, 131, 1001, 3001])
def test_the_chosen_chunk_never_changes_a_figure(n, form, monkeypatch):
    """The chunk is chosen by timing, so it must not matter: every row's log-probability, greedy
    flag and rank are bit-identical for any chunk and any sequence of chunks (checked on the
    machine that runs the tests), for a head that gives whole logits and for a linear layer,
    which is projected a vocabulary block at a time. Row counts that leave 1-3 rows over
    matter: a product of one or a few rows takes another kernel, whose rounding differs in
    the last bit. Vocabularies of several blocks, the last one partial, are among them."""
    generator = torch.Generator().manual_seed(3)
    for vocab in (512, 4096, 2 * VOCAB_BLOCK + 77):
        weight = torch.randn(vocab, 64, generator=generator) * 0.1
        features = torch.randn(n, 64, generator=generator)
        targets = torch.randint(0, vocab, (n,), generator=generator)
        if form == "logits":
            head = lambda x, w=weight: x @ w.T  # noqa: E731
        else:
            head = linear_head(weight, torch.randn(vocab, generator=generator) if "bias" in form else None)

        def run(chunk=None, h=head, f=features, t=targets):
            return target_logprobs(h, f, t, with_greedy=True, with_rank=True, chunk=chunk)

        runs = [run(c) for c in (128, 1, 256, 512, 2048, n)]
        for seed in range(3):
            monkeypatch.setattr(lm_interface, "chunk_chooser", lambda *_, s=seed, **__: RandomChooser(s))
            runs.append(run())
        for logprobs, greedy, rank in runs[1:]:
            assert torch.equal(logprobs, runs[0][0]) and torch.equal(greedy, runs[0][1])
            assert torch.equal(rank, runs[0][2])


def test_chunks_are_whole_grid_blocks_and_the_partial_block_stands_alone():
    n = 3 * GRID_ROWS + 5
    assert chunk_bounds(0, 1, n) == GRID_ROWS  # rounded up to a whole block
    assert chunk_bounds(0, 10 * GRID_ROWS, n) == 3 * GRID_ROWS  # the partial block is not joined on
    assert chunk_bounds(3 * GRID_ROWS, GRID_ROWS, n) == n
    assert chunk_bounds(0, GRID_ROWS, 5) == 5


def run_chooser(chooser: ChunkChooser, cost: dict[int, float], rows: int) -> dict[int, int]:
    """Feed the chooser ``rows`` rows at the given seconds per row; rows processed per chunk size."""
    done: dict[int, int] = {}
    while rows > 0:
        size = chooser.next_rows(rows)
        taken = min(size, rows)
        chooser.observe(taken, size, cost[size] * taken)
        done[size] = done.get(size, 0) + taken
        rows -= taken
    return done


def test_chunk_chooser_settles_on_the_fastest_and_keeps_probing():
    chooser = ChunkChooser(chunk_candidates(4096, blocked=False))
    small, middle, large = chooser.candidates
    assert (small, middle, large) == (256, 1024, 4096) and chooser.block == large
    cost = {small: 4e-6, middle: 1e-6, large: 2e-6}  # seconds per row, as if the cores were shared
    done = run_chooser(chooser, cost, 200 * large)
    assert set(chooser.seconds_per_row) == {small, middle, large}  # each measured on a block of real work
    seconds = {size: rows * cost[size] for size, rows in done.items()}
    assert seconds[small] + seconds[large] < 0.15 * sum(seconds.values())  # probing costs about a ninth
    assert done[small] >= 2 * large and done[large] >= 2 * large  # still probing the others
    cost[small] = 1e-7  # the machine went quiet: small chunks are now fastest
    done = run_chooser(chooser, cost, 60 * large)
    assert max(done, key=done.get) == small
    cost[small] = 1e-5  # and busy again: the best one's own block shows it at once
    done = run_chooser(chooser, cost, 20 * large)
    assert max(done, key=done.get) == middle and done.get(small, 0) <= 2 * large  # one block, one probe


def test_a_block_is_measured_whole_across_calls():
    chooser = ChunkChooser(chunk_candidates(4096, blocked=False))
    size = chooser.next_rows(100)
    chooser.observe(100, size, 1.0)  # a short call: part of a block, not yet a reading
    assert chooser.seconds_per_row == {}
    chooser.observe(chooser.block - 100, size, 3.0)
    assert chooser.seconds_per_row == {size: 4.0 / chooser.block}


def test_chunk_candidates():
    assert chunk_candidates(4096, blocked=False) == (256, 1024, 4096)
    assert chunk_candidates(32000, blocked=True) == (128, 256, 512)  # 512 rows: 2^24 logits at most
    assert chunk_candidates(4096, blocked=True) == (1024, 2048, 4096)
    assert chunk_candidates(256000, blocked=True) == (GRID_ROWS,)  # never fewer than a grid block


def test_a_chooser_of_one_candidate_never_probes():
    chooser = ChunkChooser((GRID_ROWS,))
    assert set(run_chooser(chooser, {GRID_ROWS: 1e-6}, 100 * GRID_ROWS)) == {GRID_ROWS}
