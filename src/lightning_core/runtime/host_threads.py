"""One pool of host threads for memory-bound host work: the CUDA backend's staging copies and
the CPU backend's large elementwise ops.

NumPy copies and ufuncs release the GIL, so a few threads over disjoint chunks of one array
raise the bandwidth one Python call reaches. Memory bandwidth, not cores, is the limit, and
the best thread count grows with the size: each user asks for its own count (at most the
pool's size, ``LC_HOST_THREADS``; 0 means min(8, cores)). A pool is made on first use of its
size and kept (idle threads of an unused size cost nothing but memory).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .. import config

__all__ = ["host_threads", "host_pool", "chunks", "run_parallel"]

_lock = threading.Lock()
# One pool per size ever asked for (a knob change, even one scoped to a thread by
# ``config.override``, must not shut down a pool another thread is using).
_pools: dict[int, ThreadPoolExecutor] = {}


def host_threads() -> int:
    """Threads of the host pool (``LC_HOST_THREADS``; 0 means min(8, cores))."""
    wanted = int(config.get("LC_HOST_THREADS"))
    return wanted if wanted > 0 else min(8, os.cpu_count() or 1)


def host_pool() -> ThreadPoolExecutor:
    """The shared pool, sized by ``host_threads()``."""
    size = host_threads()
    pool = _pools.get(size)
    if pool is None:
        with _lock:
            pool = _pools.get(size)
            if pool is None:
                pool = _pools[size] = ThreadPoolExecutor(size, thread_name_prefix="lc-host")
    return pool


def chunks(n: int, *, parts: int, min_chunk: int, align: int = 1) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges covering ``0..n``: about ``parts`` of them, each at least
    ``min_chunk`` long (the last may be shorter) and starting at a multiple of ``align``."""
    if n <= 0:
        return []
    step = max(min_chunk, -(-n // max(1, parts)), 1)
    step = -(-step // align) * align
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


def run_parallel(fn: Callable[[int], object], count: int, *, workers: int | None = None,
                 then: Callable[[int], object] | None = None) -> None:
    """``fn(i)`` for ``i`` in ``range(count)`` on ``workers`` threads (default ``count``), worker
    ``k`` taking ``k, k + workers, ...`` in order. ``then(i)``, if given, runs on this thread in
    index order as soon as ``fn(i)`` is done (e.g. queueing the DMA of a staged chunk while
    later chunks are still being copied); without it this thread is one of the workers.
    Returns when every ``fn`` has finished; re-raises the first error (no ``then`` runs after
    a failure)."""
    workers = max(1, min(workers or count, count))
    if workers == 1:
        for i in range(count):
            fn(i)
            if then is not None:
                then(i)
        return
    done = [threading.Event() for _ in range(count)]
    failed: list[BaseException] = []

    def share(first: int) -> None:
        mine = range(first, count, workers)
        try:
            for i in mine:
                if failed:
                    return
                fn(i)
                done[i].set()
        except BaseException as exc:
            failed.append(exc)
            raise
        finally:
            for i in mine:  # never leave the ordered waiter below hanging
                done[i].set()

    pool = host_pool()
    own = 0 if then is None else None  # this thread's share, when it has nothing else to do
    futures = [pool.submit(share, k) for k in range(workers) if k != own]
    try:
        if own is not None:
            try:
                share(own)
            except BaseException:  # noqa: BLE001 - recorded in ``failed``, raised below
                pass
        else:
            for i, ready in enumerate(done):
                ready.wait()
                if failed:
                    break
                then(i)
    finally:
        for fut in futures:
            fut.exception()  # every worker has stopped before the caller reuses its buffers
    if failed:
        raise failed[0]
