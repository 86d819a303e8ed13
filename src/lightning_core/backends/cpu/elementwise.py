"""CPU binary elementwise ops (add, sub, mul, div): NumPy ufuncs straight into ``out``.

A ufunc runs on one thread; on large arrays that leaves most of the host's memory bandwidth
unused (NumPy takes ~2.6 ms for a 4M-element add on the H200 host). Large contiguous operands
are therefore cut into chunks that the shared host pool (``runtime.host_threads``) runs at
once; ufuncs release the GIL. Measured there (probe_host, run 13): a 4 MB result went fastest
on 2 threads (468 against 664 us on one), 16 MB on 8 (1071 against 2701 us), so one thread
per ``_BYTES_PER_THREAD`` of result, up to the pool's size. Each chunk reads and writes one index range, so ``out`` may be
``a`` or ``b`` itself; any other overlap takes the single call (NumPy buffers it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...runtime.backend import register
from ...runtime.host_threads import chunks, host_threads, run_chunked

__all__ = ["binary_numpy", "PARALLEL_MIN_BYTES"]

_UFUNCS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}
# Below this many output bytes one thread wins: handing chunks out costs tens of microseconds.
PARALLEL_MIN_BYTES = 2 << 20
_BYTES_PER_THREAD = 2 << 20


def _chunkable(out: np.ndarray, *ins: np.ndarray) -> bool:
    """True when every operand is C-contiguous with out's shape and each input is out itself
    or shares no memory with it."""
    if not out.flags.c_contiguous:
        return False
    base = out.__array_interface__["data"][0]
    for x in ins:
        if x.shape != out.shape or not x.flags.c_contiguous:
            return False
        if x.__array_interface__["data"][0] != base and np.may_share_memory(x, out):
            return False
    return True


def _ufunc_chunks(ufunc: Any, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> bool:
    """Run ``ufunc(a, b, out=out)`` over chunks on the host pool; False when it must not."""
    workers = min(host_threads(), out.nbytes // _BYTES_PER_THREAD)
    if out.nbytes < PARALLEL_MIN_BYTES or workers <= 1 or not _chunkable(out, a, b):
        return False
    fa, fb, fo = a.reshape(-1), b.reshape(-1), out.reshape(-1)

    def part(lo: int, hi: int) -> None:
        with np.errstate(all="ignore"):  # error state is per thread
            ufunc(fa[lo:hi], fb[lo:hi], out=fo[lo:hi])

    run_chunked(part, chunks(fo.size, parts=workers, min_chunk=1, align=16))
    return True


@register("cpu", "binary", "numpy")
def binary_numpy(a: np.ndarray, b: np.ndarray, *, out: np.ndarray, kind: str) -> None:
    """``out = a <kind> b``; ``out`` may be ``a`` or ``b`` itself (ufuncs handle exact aliasing)."""
    ufunc = _UFUNCS[kind]
    if _ufunc_chunks(ufunc, a, b, out):
        return
    # IEEE results (x/0 = inf, 0/0 = nan, overflow = inf) are the contract, not a warning.
    with np.errstate(all="ignore"):
        ufunc(a, b, out=out)
