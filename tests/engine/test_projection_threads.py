"""A linear head's row slices, each scored on one core by a pool of threads (projection_threads)."""

import os
import signal
import threading
import time

import pytest
import torch

from lmeval_fixtures.engine import projection_threads
from lmeval_fixtures.engine.projection import GRID_ROWS, chunk_candidates, row_slices, target_logprobs
from lmeval_fixtures.engine.vocab_blocks import VOCAB_BLOCK


def linear(vocab: int, width: int, generator: torch.Generator, bias: bool) -> torch.nn.Linear:
    layer = torch.nn.Linear(width, vocab, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(vocab, width, generator=generator) * 0.05)
        if bias:
            layer.bias.copy_(torch.randn(vocab, generator=generator))
    return layer


@pytest.fixture
def threads():
    """Sets this process's intra-op threads for one test and puts the count back after it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("vocab, width, bias", [(3000, 1024, False), (2 * VOCAB_BLOCK + 77, 768, True),
                                                (4096, 64, False)])
def test_figures_do_not_depend_on_the_thread_count(vocab, width, bias, threads):
    """Every slice is scored on one core whatever the number of workers, so 1, 2 or 3 threads give
    bit-identical figures. With intra-op threads they did not: a 7-row product of width 1024 or
    768 rounded differently on 1 and 2 threads on the project's CPU (rows 7 and 333 below)."""
    generator = torch.Generator().manual_seed(vocab)
    head = linear(vocab, width, generator, bias)
    for n in (1, 7, 333, 1200):
        features = torch.randn(n, width, generator=generator)
        targets = torch.randint(0, vocab, (n,), generator=generator)
        runs = []
        for count in (1, 2, 3):
            threads(count)
            with torch.inference_mode():
                runs.append(target_logprobs(head, features, targets, with_greedy=True, with_rank=True))
        for logprobs, greedy, rank in runs[1:]:
            assert torch.equal(logprobs, runs[0][0]) and torch.equal(greedy, runs[0][1])
            assert torch.equal(rank, runs[0][2])


def test_the_callers_thread_count_is_left_as_it_was(threads):
    threads(2)
    generator = torch.Generator().manual_seed(1)
    head = linear(300, 16, generator, False)
    target_logprobs(head, torch.randn(900, 16, generator=generator), torch.randint(0, 300, (900,)))
    assert torch.get_num_threads() == 2
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [2]  # threads started later begin with the caller's count, not the workers' one


@pytest.mark.parametrize("mode", ["inference", "no_grad", "grad"])
def test_any_caller_mode_works_and_nothing_keeps_a_graph(mode):
    generator = torch.Generator().manual_seed(2)
    head = linear(500, 16, generator, True)
    features = torch.randn(400, 16, generator=generator)
    targets = torch.randint(0, 500, (400,), generator=generator)
    context = {"inference": torch.inference_mode, "no_grad": torch.no_grad, "grad": torch.enable_grad}[mode]
    with context():
        logprobs, greedy, rank = target_logprobs(head, features, targets, with_greedy=True, with_rank=True)
    assert not logprobs.requires_grad
    with torch.no_grad():
        expected = torch.log_softmax(head(features).double(), -1).gather(1, targets[:, None])[:, 0]
    assert torch.allclose(logprobs.double(), expected, rtol=0, atol=4e-6)
    assert greedy.dtype == torch.bool and rank.dtype == torch.long


def test_no_rows_give_empty_figures():
    head = linear(300, 16, torch.Generator().manual_seed(3), False)
    logprobs, greedy, rank = target_logprobs(head, torch.empty(0, 16), torch.empty(0, dtype=torch.long),
                                             with_greedy=True, with_rank=True)
    assert logprobs.shape == greedy.shape == rank.shape == (0,)


def test_a_short_call_gives_every_worker_a_slice_of_whole_grid_blocks():
    assert row_slices(4 * GRID_ROWS, 4096, 2) == [(0, 2 * GRID_ROWS), (2 * GRID_ROWS, 4 * GRID_ROWS)]
    assert row_slices(GRID_ROWS + 5, 4096, 2) == [(0, GRID_ROWS), (GRID_ROWS, GRID_ROWS + 5)]
    assert row_slices(7, 4096, 4) == [(0, 7)]
    assert row_slices(10 * GRID_ROWS, 2 * GRID_ROWS, 2) == [(i * 2 * GRID_ROWS, (i + 1) * 2 * GRID_ROWS)
                                                            for i in range(5)]


def test_slice_buffers_shrink_when_many_threads_run():
    """One worker's buffer holds 2^24 logits; beyond four workers their total stays at 2^26."""
    assert chunk_candidates(32000, blocked=True, workers=4) == (128, 256, 512)
    assert chunk_candidates(8192, blocked=True, workers=16) == (128, 256, 512)  # 2^22 logits each


def test_work_runs_on_one_core_threads_in_slice_order():
    seen = projection_threads.map_on_one_core(lambda a, b: (a, b, torch.get_num_threads()),
                                              [(i, i + 1) for i in range(9)], 3)
    assert [(a, b) for a, b, _ in seen] == [(i, i + 1) for i in range(9)]
    assert {count for _, _, count in seen} == {1}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_starts_its_own_workers():
    pools = projection_threads.ThreadPools()  # a run's pools, shared by parent and (after fork) child
    projection_threads.map_on_one_core(lambda a, b: a, [(0, 1)], 2, pools)  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # the child: the parent's threads did not come along; this must not hang
        try:
            result = projection_threads.map_on_one_core(lambda a, b: a + b, [(1, 2), (3, 4)], 2, pools)
            os._exit(0 if result == [3, 7] else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung waiting for its projection threads")
    assert os.waitstatus_to_exitcode(done[1]) == 0
