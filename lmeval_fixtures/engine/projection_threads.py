"""Threads that each score whole row slices of a vocabulary projection on one core.

Why not torch's own intra-op threads: each of the blocked projection's operations
(``vocab_blocks``; a matrix product, a maximum, an exponential, a sum per vocabulary
block) is a parallel region that ends at a barrier, and with another process on the
cores (a shared CI runner) the barrier waits for whichever thread the operating system
descheduled. The blocked head ran thousands of such short regions per call and took
2-5x longer loaded than quiet, while the raw forward's few large products took 1.5x.
Independent row slices, each scored from start to end by one thread that runs its
operations on one core, need no barrier: a descheduled worker delays its own slice
while the others take the rest of the queue. Measured on the project's 2-core AMD EPYC
(16384 rows with ranks, ``scripts/projection_chunks.py``): vocabulary 32000, 3.44 s ->
2.89 s quiet and 10.2 s -> 3.8 s loaded; vocabulary 8192, about the same quiet (0.77 s
against 0.79 s) and 1.91 -> 1.02 s loaded.

A second gain is reproducibility: every slice is computed on one thread, whatever the
number of workers, so a linear head's figures no longer depend on the thread count (a
multi-threaded matrix product may split its work, and round, differently with 1 or 2
threads; seen here for 7-row products).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

Result = TypeVar("Result")

def worker_count() -> int:
    """As many workers as this process has intra-op threads (its share under pytest-xdist)."""
    return max(1, torch.get_num_threads())


def _one_thread(ready: threading.Barrier) -> None:
    # torch gives a thread its count lazily, from the process-wide one, at its first use; use it
    # first, or that would later replace the one set here
    torch.get_num_threads()
    torch.set_num_threads(1)  # this thread's OpenMP and MKL teams: one thread
    ready.wait()


class ThreadPools:
    """Pools of one-core threads by worker count, owned by whoever scores (a run's
    ``projection.EngineCaches``), so that they live as long as that owner and no longer.

    Keyed by process id too: threads do not survive a fork, so a child starts its own."""

    def __init__(self) -> None:
        self._pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def get(self, workers: int) -> ThreadPoolExecutor:
        """The pool of ``workers`` one-core threads, started (and set to one thread) at its first use."""
        key = (os.getpid(), workers)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                threads = torch.get_num_threads()
                pool = ThreadPoolExecutor(workers, thread_name_prefix="lmeval-projection")
                ready = threading.Barrier(workers + 1)
                for _ in range(workers):  # each task holds its thread until all have started
                    pool.submit(_one_thread, ready)
                ready.wait()
                # torch.set_num_threads also records the count that threads started later begin with;
                # put back the caller's, so that only the pool's own threads run on one core
                torch.set_num_threads(threads)
                self._pools[key] = pool
        return pool

    def close(self) -> None:
        """Let this process's threads end (they finish what they hold; a later ``get`` starts anew)."""
        with self._lock:
            pools, self._pools = self._pools, {}
        for (pid, _), pool in pools.items():
            if pid == os.getpid():
                pool.shutdown(wait=False)


def map_on_one_core(work: Callable[[int, int], Result], slices: Sequence[tuple[int, int]], workers: int,
                    pools: ThreadPools | None = None) -> list[Result]:
    """``work(start, stop)`` for every slice, in the caller's inference and gradient modes, each
    on one core, spread over ``workers`` threads taking slices from one queue; results in
    slice order. ``pools``: whose threads (a run's); without, threads started for this call only."""
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def run(bounds: tuple[int, int]) -> Result:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return work(*bounds)

    if pools is not None:
        return list(pools.get(workers).map(run, slices))
    own = ThreadPools()
    try:
        return list(own.get(workers).map(run, slices))
    finally:
        own.close()
