"""CUDA elementwise kernels: binary arithmetic, relu, gelu, and the linear epilogue.

All come from ``kernels/elementwise.cu``. Each dtype's instantiations are compiled together
(one NVRTC call per dtype). A call picks the 16-byte vector variant when every pointer is
16-byte aligned (CuPy allocations are 256-byte aligned; views may not be) and the scalar
variant otherwise; launch geometry is cached per (kernel, dtype, size).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...runtime.backend import register
from .compile import get_function, grid_for

__all__ = ["bias_activation", "CTYPES"]

_DTYPES = ("float32", "float64", "float16")
CTYPES = {"f": "float", "d": "double", "e": "lc_half"}
# Kernel names with the storage type and the VEC flag left as {} (filled in by _plan).
_BINARY = {kind: f"lc_binary<{{}}, {op}, {{}}>"
           for kind, op in (("add", 0), ("sub", 1), ("mul", 2), ("div", 3))}
_UNARY = {act: f"lc_unary<{{}}, {act}, {{}}>" for act in (1, 2, 3)}
_GELU = {"tanh": 2, "none": 3}
_LINEAR_ACT = {None: 0, "relu": 1, "gelu_tanh": 2, "gelu_erf": 3}
_THREADS = 256
_MAX_PLANS = 4096

# (kernel, dtype, n, vec) -> (cupy Function, grid, block, n as int64): a launch is one lookup.
_plans: dict[tuple[Any, ...], tuple[Any, tuple[int], tuple[int], np.int64]] = {}


def _expressions(ctype: str) -> tuple[str, ...]:
    """Every instantiation of elementwise.cu for one storage type (compiled as one module)."""
    flags = ("true", "false")
    return (
        *(f"lc_binary<{ctype}, {op}, {v}>" for op in range(4) for v in flags),
        *(f"lc_unary<{ctype}, {act}, {v}>" for act in (1, 2, 3) for v in flags),
        *(f"lc_bias_act<{ctype}, {act}, {bias}, {v}>" for act in range(4)
          for bias in flags for v in flags if act or bias == "true"),
    )


def _plan(kernel: str, dtype: np.dtype, n: int,
          vec: bool) -> tuple[Any, tuple[int], tuple[int], np.int64]:
    """Launch plan of ``kernel`` (a template name with the dtype and VEC left as {})."""
    key = (kernel, dtype.char, n, vec)
    plan = _plans.get(key)
    if plan is None:
        ctype = CTYPES[dtype.char]
        flag = "true" if vec else "false"
        fn = get_function("elementwise.cu", kernel.format(ctype, flag),
                          name_expressions=_expressions(ctype))
        per_thread = 16 // dtype.itemsize if vec else 1
        blocks = -(-max(1, n // per_thread) // _THREADS)
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        plan = _plans[key] = (fn.kernel, (grid_for(blocks, _THREADS),), (_THREADS,),
                              np.int64(n))
    return plan


def _aligned(*arrays: Any) -> bool:
    mask = 0
    for a in arrays:
        mask |= a.data.ptr
    return not mask & 15


def _prepared(kernel: str, dtype: np.dtype, shape: tuple[int, ...]) -> Any:
    """The fast lane's launcher of one elementwise kernel: both alignment variants' plans
    resolved once; a call tests the pointers and launches."""
    n = int(np.prod(shape))
    vec_fn, vec_grid, block, n64 = _plan(kernel, dtype, n, True)
    one_fn, one_grid, _, _ = _plan(kernel, dtype, n, False)

    def launch(ins: tuple[Any, ...], out: Any, stream: Any) -> None:
        mask = out.data.ptr
        for a in ins:
            mask |= a.data.ptr
        if mask & 15:
            one_fn(one_grid, block, (*ins, out, n64), stream=stream)
        else:
            vec_fn(vec_grid, block, (*ins, out, n64), stream=stream)

    launch.flat_ok = True  # type: ignore[attr-defined] - flat memory in, flat memory out
    return launch


def _prepare_binary(in_shapes: Any, shape: tuple[int, ...], dtype: np.dtype, precision: str,
                    *, kind: str) -> Any:
    return _prepared(_BINARY[kind], dtype, shape)


@register("cuda", "binary", "vec", dtypes=_DTYPES, prepare=_prepare_binary)
def binary(a: Any, b: Any, *, out: Any, stream: Any, precision: str, kind: str) -> None:
    """out = a (+ - * /) b."""
    n = out.size
    fn, grid, block, n64 = _plan(_BINARY[kind], out.dtype, n, _aligned(a, b, out))
    fn(grid, block, (a, b, out, n64), stream=stream)


def _unary(x: Any, out: Any, stream: Any, act: int) -> None:
    n = out.size
    fn, grid, block, n64 = _plan(_UNARY[act], out.dtype, n, _aligned(x, out))
    fn(grid, block, (x, out, n64), stream=stream)


def _prepare_relu(in_shapes: Any, shape: tuple[int, ...], dtype: np.dtype,
                  precision: str) -> Any:
    return _prepared(_UNARY[1], dtype, shape)


def _prepare_gelu(in_shapes: Any, shape: tuple[int, ...], dtype: np.dtype, precision: str,
                  *, approximate: str = "none") -> Any:
    return _prepared(_UNARY[_GELU[approximate]], dtype, shape)


@register("cuda", "relu", "vec", dtypes=_DTYPES, prepare=_prepare_relu)
def relu(x: Any, *, out: Any, stream: Any, precision: str) -> None:
    """out = max(x, 0), NaN kept."""
    _unary(x, out, stream, 1)


@register("cuda", "gelu", "vec", dtypes=_DTYPES, prepare=_prepare_gelu)
def gelu(x: Any, *, out: Any, stream: Any, precision: str, approximate: str = "none") -> None:
    """out = gelu(x), tanh or erf form."""
    _unary(x, out, stream, _GELU[approximate])


def bias_activation(out: Any, bias: Any | None, activation: str | None, stream: Any) -> None:
    """In place on ``out [rows, cols]``: ``act(out + bias)`` (one launch; nothing if no-op)."""
    act = _LINEAR_ACT[activation]
    if bias is None and act == 0:
        return
    cols = out.shape[-1]
    n = out.size
    per = 16 // out.dtype.itemsize
    vec = cols % per == 0 and _aligned(out, *(() if bias is None else (bias,)))
    has_bias = "true" if bias is not None else "false"
    fn, grid, block, n64 = _plan(f"lc_bias_act<{{}}, {act}, {has_bias}, {{}}>", out.dtype, n,
                                 vec)
    bias_arg = bias if bias is not None else np.uint64(0)
    fn(grid, block, (out, bias_arg, n64, np.int64(cols)), stream=stream)
