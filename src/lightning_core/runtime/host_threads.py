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

__all__ = ["host_threads", "host_pool", "chunks", "run_chunked"]

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


def run_chunked(fn: Callable[[int, int], object], ranges: list[tuple[int, int]]) -> None:
    """``fn(lo, hi)`` for every range: the first on this thread, the rest on the pool; returns
    when all are done and re-raises the first error."""
    if len(ranges) <= 1:
        for lo, hi in ranges:
            fn(lo, hi)
        return
    pool = host_pool()
    futures = [pool.submit(fn, lo, hi) for lo, hi in ranges[1:]]
    error: BaseException | None = None
    try:
        fn(*ranges[0])
    except BaseException as exc:  # noqa: BLE001 - re-raised after the workers finish
        error = exc
    for fut in futures:
        try:
            fut.result()
        except BaseException as exc:  # noqa: BLE001
            error = error or exc
    if error is not None:
        raise error
