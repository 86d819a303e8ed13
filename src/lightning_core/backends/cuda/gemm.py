"""Our own float32 GEMM for small products (``kernels/gemm.cu``).

cuBLAS runs a 256^3 product as a handful of large tiles on a few SMs (~8 us of device time on
an H200) and its host call costs several microseconds more than a kernel launch. These
kernels spread a small product over every SM (32 x 16 tiles of C, the K range split between a
block's warps) and launch through ``KernelCall``: ``lc_gemm_tiled4`` (cp.async, 16-byte
loads) when K and N are multiples of 4 and every pointer is 16-byte aligned, ``lc_gemm_tiled``
otherwise. True fp32 FMAs only: precision policies that opt into tensor cores stay on cuBLAS.
The tuner's promoted rule sends products up to ``TILED_MAX_OPS`` multiply-adds here and
larger ones to cuBLAS; ``lc tune`` measures both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import NotSupportedError
from ...runtime.backend import register
from .compile import get_function
from .launch import KernelCall, aligned, native_launch

__all__ = ["matmul_tiled", "TILED_MAX_OPS", "TILED4_MAX_OPS", "tiled_by_default", "plan"]

_FILE = "gemm.cu"
_BM, _BN, _KC, _GROUPS = 32, 16, 32, 8
# Products with at most this many multiply-adds take the tiled kernel by default. Measured on
# an H200 (device time, run 15): 256^3 4.8 us against cuBLAS's 8.1 us, 512^3 19.8 against
# 14.5 us, so the bound sits between them; above it cuBLAS's large tiles fill the GPU.
TILED_MAX_OPS = 320 ** 3
# lc_gemm_tiled4 (K and N multiples of 4) moves the bound (device time, run 58,
# tools/probe_gemm_small.py): 384^3 9.3 us against cuBLAS's 11.1, 512^3 14.0 against 14.2.
TILED4_MAX_OPS = 384 ** 3
_SMEM = _GROUPS * _KC * (_BM + 1 + _BN) * 4
_MAX_ROWS = 65535 * _BM  # one block row of tiles per grid.y index (the launch limit)
_plans: dict[tuple[int, int, int, bool], KernelCall] = {}


def tiled_by_default(m: int, k: int, n: int) -> bool:
    """Whether (m, k, n) takes these kernels unless the tuner measured otherwise."""
    if m > _MAX_ROWS:
        return False
    ops = m * k * n
    return ops <= TILED_MAX_OPS or (ops <= TILED4_MAX_OPS and not (k % 4 or n % 4))


def _smem4(k: int) -> int:
    """``lc_gemm_tiled4``'s dynamic shared memory for a K of ``k`` (the kernel's own rule: two
    chunk buffers a warp when its K slice holds more than one chunk)."""
    per = -(-k // _GROUPS)
    kg = -(-per // _KC) * _KC
    nbuf = 2 if kg > _KC else 1
    return max(_GROUPS * nbuf * _KC * (_BM + 4 + _BN), _GROUPS * _BM * _BN) * 4


def plan(m: int, k: int, n: int, four: bool = False) -> KernelCall:
    """The launch of one (m, k, n): a, b, out go in per call. ``four``: ``lc_gemm_tiled4``,
    which needs k % 4 == n % 4 == 0 and 16-byte aligned pointers (the caller checks)."""
    key = (m, k, n, four)
    call = _plans.get(key)
    if call is None:
        if m > _MAX_ROWS:
            raise NotSupportedError(f"[matmul] the tiled kernels take at most {_MAX_ROWS} rows "
                                    f"(got {m}); the cublas variant takes any")
        name, smem = ("lc_gemm_tiled4", _smem4(k)) if four else ("lc_gemm_tiled", _SMEM)
        kernel = get_function(_FILE, name, {"GROUPS": _GROUPS})
        # Above the 48 KB a launch gets without opting in.
        kernel.max_dynamic_shared_size_bytes = max(kernel.max_dynamic_shared_size_bytes, smem)
        grid = (-(-n // _BN), -(-m // _BM), 1)
        if len(_plans) >= 1024:
            _plans.clear()
        call = _plans[key] = KernelCall(kernel, grid, (32 * _GROUPS, 1, 1), smem, 3,
                                        (np.int32(m), np.int32(n), np.int32(k)))
    return call


def _four(k: int, n: int, *arrays: Any) -> bool:
    """Whether this call may take ``lc_gemm_tiled4``."""
    return not (k % 4 or n % 4) and aligned(*arrays)


def _prepare(in_shapes: Any, shape: tuple[int, ...], dtype: np.dtype, precision: str) -> Any:
    (m, k), _ = in_shapes
    n = shape[1]
    if not (m and n):
        return None
    one = plan(m, k, n).launch_raw
    shape_ok = not (k % 4 or n % 4)
    vec = plan(m, k, n, True).launch_raw if shape_ok else one

    def launch(ins: tuple[Any, ...], out: Any, stream: Any) -> None:
        pa, pb, pc = ins[0].data.ptr, ins[1].data.ptr, out.data.ptr
        (one if (pa | pb | pc) & 15 else vec)(stream.ptr, pa, pb, pc)

    # The native lane tests the same alignment (``PtrRun``: every pointer, 16 bytes).
    launch.native = ({"vec": vec, "one": one, "vec_ok": shape_ok}  # type: ignore[attr-defined]
                     if native_launch() else None)
    return launch


@register("cuda", "matmul", "tiled", dtypes=("float32",), precisions=("fp32",),
          prepare=_prepare)
def matmul_tiled(a: Any, b: Any, *, out: Any, stream: Any, precision: str) -> str:
    """``out = a @ b`` (float32, true fp32) with the tiled small-GEMM kernel."""
    (m, k), n = a.shape, b.shape[1]
    if m and n:  # k == 0 gives zeros: the kernel's empty K range writes them
        plan(m, k, n, _four(k, n, a, b, out))(stream, a, b, out)
    return "fp32"
