"""Our own float32 GEMM for small products: ``lc_gemm_tiled`` (``kernels/gemm.cu``).

cuBLAS runs a 256^3 product as a handful of large tiles on a few SMs (~8 us of device time on
an H200) and its host call costs several microseconds more than a kernel launch. This kernel
spreads a small product over every SM (32 x 16 tiles of C, the K range split between a block's
warps) and launches through ``KernelCall``. True fp32 FMAs only: precision policies that opt
into tensor cores stay on cuBLAS. The tuner's promoted rule sends products up to
``TILED_MAX_OPS`` multiply-adds here and larger ones to cuBLAS; ``lc tune`` measures both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...runtime.backend import register
from .compile import get_function
from .launch import KernelCall, native_launch

__all__ = ["matmul_tiled", "TILED_MAX_OPS", "plan"]

_FILE = "gemm.cu"
_BM, _BN, _KC, _GROUPS = 32, 16, 32, 8
# Products with at most this many multiply-adds take the tiled kernel by default. Measured on
# an H200 (device time, run 15): 256^3 4.8 us against cuBLAS's 8.1 us, 512^3 19.8 against
# 14.5 us, so the bound sits between them; above it cuBLAS's large tiles fill the GPU.
TILED_MAX_OPS = 320 ** 3
_SMEM = _GROUPS * _KC * (_BM + 1 + _BN) * 4
_plans: dict[tuple[int, int, int], KernelCall] = {}


def plan(m: int, k: int, n: int) -> KernelCall:
    """The launch of one (m, k, n): a, b, out go in per call."""
    key = (m, k, n)
    call = _plans.get(key)
    if call is None:
        kernel = get_function(_FILE, "lc_gemm_tiled", {"GROUPS": _GROUPS})
        # 49 KB: above the 48 KB a launch gets without opting in.
        kernel.max_dynamic_shared_size_bytes = max(kernel.max_dynamic_shared_size_bytes, _SMEM)
        grid = (-(-n // _BN), -(-m // _BM), 1)
        if len(_plans) >= 1024:
            _plans.clear()
        call = _plans[key] = KernelCall(kernel, grid, (32 * _GROUPS, 1, 1), _SMEM, 3,
                                        (np.int32(m), np.int32(n), np.int32(k)))
    return call


def _prepare(in_shapes: Any, shape: tuple[int, ...], dtype: np.dtype, precision: str) -> Any:
    (m, k), _ = in_shapes
    n = shape[1]
    if not (m and n):
        return None
    raw = plan(m, k, n).launch_raw

    def launch(ins: tuple[Any, ...], out: Any, stream: Any) -> None:
        raw(stream.ptr, ins[0].data.ptr, ins[1].data.ptr, out.data.ptr)

    # One launch at any alignment: the native lane runs it the same way (``PtrRun``).
    launch.native = ({"vec": raw, "one": raw, "vec_ok": False}  # type: ignore[attr-defined]
                     if native_launch() else None)
    return launch


@register("cuda", "matmul", "tiled", dtypes=("float32",), precisions=("fp32",),
          prepare=_prepare)
def matmul_tiled(a: Any, b: Any, *, out: Any, stream: Any, precision: str) -> str:
    """``out = a @ b`` (float32, true fp32) with the tiled small-GEMM kernel."""
    (m, k), n = a.shape, b.shape[1]
    if m and n:  # k == 0 gives zeros: the kernel's empty K range writes them
        plan(m, k, n)(stream, a, b, out)
    return "fp32"
