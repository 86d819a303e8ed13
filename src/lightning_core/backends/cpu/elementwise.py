"""CPU binary elementwise ops (add, sub, mul, div): NumPy ufuncs straight into ``out``.

A ufunc runs on one thread; on large arrays that leaves most of the host's memory bandwidth
unused (NumPy takes ~2.6 ms for a 4M-element add on the H200 host). Large contiguous operands
are therefore cut into chunks that the shared host pool (``runtime.host_threads``) runs at
once; ufuncs release the GIL. Measured there (probe_host, run 13): a 4 MB result went fastest
on 2 threads (468 against 664 us on one), 16 MB on 8 (1071 against 2701 us), so one thread
per ``_BYTES_PER_THREAD`` of result, up to the pool's size. Each chunk reads and writes one
index range, so ``out`` may be ``a`` or ``b`` itself; any other overlap takes the single call
(NumPy buffers it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...runtime.backend import register
from ...runtime.host_threads import chunks, host_threads, run_parallel

__all__ = ["binary_numpy", "chunked", "relu_into", "relu_flat", "PARALLEL_MIN_BYTES"]

_UFUNCS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}
# Below this many output bytes one thread wins: handing chunks out costs tens of microseconds.
PARALLEL_MIN_BYTES = 2 << 20
_BYTES_PER_THREAD = 2 << 20


# relu: NumPy's maximum against a broadcast 0 takes a slow, unvectorised loop (NumPy 2.4:
# 12.9 us for 32768 float32 values, 410 us for 1M), against a contiguous array of zeros a SIMD
# one (3.3 and 111 us). So relu reads a cached read-only block of zeros, block by block.
_ZERO_BLOCK = 1 << 16
_ZEROS: dict[np.dtype, np.ndarray] = {}


def _zeros(dtype: np.dtype) -> np.ndarray:
    block = _ZEROS.get(dtype)
    if block is None:
        block = np.zeros(_ZERO_BLOCK, dtype)
        block.flags.writeable = False
        _ZEROS[dtype] = block
    return block


def relu_into(x: np.ndarray, out: np.ndarray) -> None:
    """``out = max(x, 0)`` (NaN stays NaN; ``out`` may be ``x``) for float arrays."""
    if not (x.flags.c_contiguous and out.flags.c_contiguous and x.shape == out.shape
            and x.dtype == out.dtype and x.dtype.kind == "f"):
        np.maximum(x, x.dtype.type(0), out=out)
        return
    fx = x.reshape(-1)
    relu_flat(fx, fx if out is x else out.reshape(-1))


def relu_flat(fx: np.ndarray, fo: np.ndarray) -> None:
    """``relu_into`` for flat, contiguous float arrays of one dtype and size (unchecked)."""
    zeros = _zeros(fx.dtype)
    n = fx.size
    if n <= _ZERO_BLOCK:  # one block, without the loop's slicing (most of a small call)
        np.maximum(fx, zeros[:n], out=fo)
        return
    for lo in range(0, n, _ZERO_BLOCK):
        hi = min(n, lo + _ZERO_BLOCK)
        np.maximum(fx[lo:hi], zeros[:hi - lo], out=fo[lo:hi])


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


def chunked(fn: Callable[..., None], out: np.ndarray, *ins: np.ndarray) -> bool:
    """Run ``fn(*ins_chunk, out_chunk)`` over index chunks of the flattened operands on the
    host pool; False (nothing done) when ``out`` is too small or an operand does not allow it.
    ``fn`` must be elementwise and GIL-releasing (NumPy ufuncs); NumPy's error state is per
    thread, so ``fn`` sets its own."""
    if out.nbytes < PARALLEL_MIN_BYTES:  # the common small call: one comparison, no knob read
        return False
    workers = min(host_threads(), out.nbytes // _BYTES_PER_THREAD)
    if workers <= 1 or not _chunkable(out, *ins):
        return False
    flats, fo = [x.reshape(-1) for x in ins], out.reshape(-1)

    ranges = chunks(fo.size, parts=workers, min_chunk=1, align=16)

    def part(i: int) -> None:
        lo, hi = ranges[i]
        fn(*(f[lo:hi] for f in flats), fo[lo:hi])

    run_parallel(part, len(ranges))
    return True


def _ieee(ufunc: Any) -> Callable[..., None]:
    # IEEE results (x/0 = inf, 0/0 = nan, overflow = inf) are the contract, not a warning. The
    # decorator form of errstate sets the (per-thread) error state around each call without
    # making an errstate object per call: 0.9 against 1.36 us for a 16-value add (NumPy 2.4).
    @np.errstate(all="ignore")
    def run(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        ufunc(a, b, out=out)
    return run


_IEEE = {kind: _ieee(ufunc) for kind, ufunc in _UFUNCS.items()}


@register("cpu", "binary", "numpy")
def binary_numpy(a: np.ndarray, b: np.ndarray, *, out: np.ndarray, kind: str) -> None:
    """``out = a <kind> b``; ``out`` may be ``a`` or ``b`` itself (ufuncs handle exact aliasing)."""
    run = _IEEE[kind]
    if not chunked(run, out, a, b):
        run(a, b, out)
