"""CUDA row reductions and gathers: ``softmax``, ``layer_norm`` (reduce_rows.cu) and
``embedding`` (embedding.cu).

Softmax and layer_norm use one warp per row up to 1024 columns (4 rows per 128-thread block,
no shared memory, no barriers) and one block per row beyond that. Launch plans (the compiled
function and its geometry) are cached per (kernel, dtype, rows, cols).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...runtime.backend import register
from .compile import get_function, grid_for
from .elementwise import CTYPES
from .launch import NULL, KernelCall

__all__: list[str] = []

_DTYPES = ("float32", "float64", "float16")
_WARP_MAX_COLS = 1024
_WARP_ROWS = 4  # rows per block in the warp-per-row variants (blockDim (32, 4))
_EMBED_UNITS = ((16, "uint4"), (8, "uint2"), (4, "unsigned int"), (2, "unsigned short"))
_MAX_PLANS = 4096

_plans: dict[tuple[Any, ...], Any] = {}


def _rows_expressions(ctype: str) -> tuple[str, ...]:
    names = ("lc_softmax_rows_warp", "lc_softmax_rows_block", "lc_layer_norm_rows_warp",
             "lc_layer_norm_rows_block")
    return tuple(f"{name}<{ctype}>" for name in names)


def _block_threads(cols: int) -> int:
    # Enough threads that each handles <= 8-16 columns, so long rows keep many loads in flight.
    if cols <= 2048:
        return 256
    return 512 if cols <= 8192 else 1024


def _rows_plan(family: str, dtype: np.dtype, rows: int, cols: int, pointers: int,
               extra: tuple[Any, ...] = ()) -> KernelCall:
    """Launch of a row kernel: ``pointers`` array arguments, rows (int64), cols (int32),
    ``extra``."""
    key = (family, dtype.char, rows, cols, extra)
    plan = _plans.get(key)
    if plan is None:
        ctype = CTYPES[dtype.char]
        if cols <= _WARP_MAX_COLS:
            name, block = f"{family}_warp<{ctype}>", (32, _WARP_ROWS, 1)
            grid = grid_for(-(-rows // _WARP_ROWS), 32 * _WARP_ROWS)
        else:
            threads = _block_threads(cols)
            name, block = f"{family}_block<{ctype}>", (threads, 1, 1)
            grid = grid_for(rows, threads)
        fn = get_function("reduce_rows.cu", name, name_expressions=_rows_expressions(ctype))
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        plan = _plans[key] = KernelCall(fn.kernel, (grid, 1, 1), block, 0, pointers,
                                        (np.int64(rows), np.int32(cols), *extra))
    return plan


@register("cuda", "softmax", "rows", dtypes=_DTYPES)
def softmax(x: Any, *, out: Any, stream: Any, precision: str) -> None:
    """Softmax over the last axis of ``x [rows, cols]``."""
    rows, cols = x.shape
    _rows_plan("lc_softmax_rows", out.dtype, rows, cols, 2)(stream, x, out)


@register("cuda", "layer_norm", "rows", dtypes=_DTYPES)
def layer_norm(x: Any, *affine: Any, out: Any, stream: Any, precision: str, eps: float,
               has_weight: bool, has_bias: bool) -> None:
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last axis of ``x [rows, cols]``."""
    rows, cols = x.shape
    weight = affine[0] if has_weight else NULL
    bias = affine[1 if has_weight else 0] if has_bias else NULL
    _rows_plan("lc_layer_norm_rows", out.dtype, rows, cols, 4,
               (np.float64(eps),))(stream, x, weight, bias, out)


def _embed_plan(row_bytes: int, aligned_to: int, n_ids: int) -> KernelCall:
    key = ("embedding", row_bytes, aligned_to, n_ids)
    plan = _plans.get(key)
    if plan is None:
        unit, ctype = next((u, c) for u, c in _EMBED_UNITS
                           if row_bytes % u == 0 and aligned_to % u == 0)
        units = row_bytes // unit
        tx = min(256, -(-units // 32) * 32)
        ty = max(1, 256 // tx)
        fn = get_function("embedding.cu", f"lc_embedding_gather<{ctype}>",
                          name_expressions=tuple(f"lc_embedding_gather<{c}>"
                                                 for _, c in _EMBED_UNITS))
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        plan = _plans[key] = KernelCall(fn.kernel, (grid_for(-(-n_ids // ty), tx * ty), 1, 1),
                                        (tx, ty, 1), 0, 3, (np.int64(n_ids), np.int64(units)))
    return plan


@register("cuda", "embedding", "gather", dtypes=_DTYPES)
def embedding(ids: Any, table: Any, *, out: Any, stream: Any, precision: str) -> None:
    """``out[i, :] = table[ids[i], :]`` for int64 ``ids`` of any shape."""
    row_bytes = table.shape[1] * table.dtype.itemsize
    # The largest power of two (<= 16) dividing both pointers: the widest safe copy unit.
    ptrs = table.data.ptr | out.data.ptr
    aligned_to = min(16, ptrs & -ptrs) if ptrs else 16
    n_ids = ids.size
    _embed_plan(row_bytes, aligned_to, n_ids)(stream, ids, table, out)
