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
from .launch import KernelCall, aligned, native_launch

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
# lc_binary / lc_unary: threads a block and 16-byte packs in flight per thread and input
# (LC_MAP_PACKS in elementwise.cu). Nsight Compute, L2 warm, one machine (run 40,
# ``ew_shape.txt``, tools/probe_ew_shape.py): 256 x 1 took 2.0 / 2.3 / 3.4 / 12.6 us at 64K /
# 256K / 1M / 4M float32 adds; 128 x 2 (torch's shape) 2.1 / 2.4 / 3.4 / 12.6, 64 x 4 and
# 128 x 4 no better. Torch's own kernel measured 1.9 / 2.1 / 3.2 / 12.3 (run 38).
_MAP_THREADS = 256
_MAP_PACKS = 1
_MAX_PLANS = 4096

# (kernel, dtype, n, vec, pointers, extra scalars) -> KernelCall: a launch is one lookup.
_plans: dict[tuple[Any, ...], KernelCall] = {}


def _expressions(ctype: str) -> tuple[str, ...]:
    """Every instantiation of elementwise.cu for one storage type (compiled as one module)."""
    flags = ("true", "false")
    return (
        *(f"lc_binary<{ctype}, {op}, {v}>" for op in range(4) for v in flags),
        *(f"lc_unary<{ctype}, {act}, {v}>" for act in (1, 2, 3) for v in flags),
        *(f"lc_bias_act<{ctype}, {act}, {bias}, {v}>" for act in range(4)
          for bias in flags for v in flags if act or bias == "true"),
    )


def _plan(kernel: str, dtype: np.dtype, n: int, vec: bool, pointers: int,
          extra: tuple[Any, ...] = ()) -> KernelCall:
    """Launch of ``kernel`` (a template name with the dtype and VEC left as {}) over ``n``
    elements: ``pointers`` array arguments, then ``n`` as int64, then ``extra``."""
    key = (kernel, dtype.char, n, vec, pointers, extra)
    plan = _plans.get(key)
    if plan is None:
        ctype = CTYPES[dtype.char]
        flag = "true" if vec else "false"
        fn = get_function("elementwise.cu", kernel.format(ctype, flag),
                          {"LC_MAP_PACKS": _MAP_PACKS}, name_expressions=_expressions(ctype))
        mapped = kernel.startswith(("lc_binary", "lc_unary"))
        threads = _MAP_THREADS if mapped else _THREADS
        per_thread = (16 // dtype.itemsize) * (_MAP_PACKS if mapped else 1) if vec else 1
        blocks = -(-max(1, n // per_thread) // threads)
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        plan = _plans[key] = KernelCall(fn.kernel, (grid_for(blocks, threads),), (threads,),
                                        0, pointers, (np.int64(n), *extra))
    return plan


def _prepared(kernel: str, dtype: np.dtype, shape: tuple[int, ...], pointers: int) -> Any:
    """The fast lane's launcher of one elementwise kernel (``pointers`` 2: unary, 3: binary):
    both alignment variants' launches resolved once; a call reads each pointer once, tests
    the alignment and launches."""
    n = int(np.prod(shape))
    vec = _plan(kernel, dtype, n, True, pointers).launch_raw
    one = _plan(kernel, dtype, n, False, pointers).launch_raw

    if pointers == 3:
        def launch(ins: tuple[Any, ...], out: Any, stream: Any) -> None:
            a, b = ins
            pa, pb, pc = a.data.ptr, b.data.ptr, out.data.ptr
            (one if (pa | pb | pc) & 15 else vec)(stream.ptr, pa, pb, pc)
    else:
        def launch(ins: tuple[Any, ...], out: Any, stream: Any) -> None:
            px, pc = ins[0].data.ptr, out.data.ptr
            (one if (px | pc) & 15 else vec)(stream.ptr, px, pc)
    # Both launches native: the backend may run the whole lane call in C (``PtrRun``).
    launch.native = {"vec": vec, "one": one} if native_launch() else None  # type: ignore[attr-defined]
    return launch


def _prepare_binary(in_shapes: Any, shape: tuple[int, ...], dtype: np.dtype, precision: str,
                    *, kind: str) -> Any:
    return _prepared(_BINARY[kind], dtype, shape, 3)


@register("cuda", "binary", "vec", dtypes=_DTYPES, prepare=_prepare_binary, flat=True)
def binary(a: Any, b: Any, *, out: Any, stream: Any, precision: str, kind: str) -> None:
    """out = a (+ - * /) b."""
    _plan(_BINARY[kind], out.dtype, out.size, aligned(a, b, out), 3)(stream, a, b, out)


def _unary(x: Any, out: Any, stream: Any, act: int) -> None:
    _plan(_UNARY[act], out.dtype, out.size, aligned(x, out), 2)(stream, x, out)


def _prepare_relu(in_shapes: Any, shape: tuple[int, ...], dtype: np.dtype,
                  precision: str) -> Any:
    return _prepared(_UNARY[1], dtype, shape, 2)


def _prepare_gelu(in_shapes: Any, shape: tuple[int, ...], dtype: np.dtype, precision: str,
                  *, approximate: str = "none") -> Any:
    return _prepared(_UNARY[_GELU[approximate]], dtype, shape, 2)


@register("cuda", "relu", "vec", dtypes=_DTYPES, prepare=_prepare_relu, flat=True)
def relu(x: Any, *, out: Any, stream: Any, precision: str) -> None:
    """out = max(x, 0), NaN kept."""
    _unary(x, out, stream, 1)


@register("cuda", "gelu", "vec", dtypes=_DTYPES, prepare=_prepare_gelu, flat=True)
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
    vec = cols % per == 0 and aligned(out, *(() if bias is None else (bias,)))
    has_bias = "true" if bias is not None else "false"
    # Without a bias the kernel never reads that pointer: out stands in for it.
    _plan(f"lc_bias_act<{{}}, {act}, {has_bias}, {{}}>", out.dtype, n, vec, 2,
          (np.int64(cols),))(stream, out, out if bias is None else bias)
