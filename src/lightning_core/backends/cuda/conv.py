"""CUDA conv2d (NCHW, OIHW, zero padding) with bias and ReLU fused: direct or im2col + cuBLAS.

Kernels live in ``kernels/conv.cu`` (its header lists the variants and launch limits). ``auto``
(the default) runs ``direct`` (one launch, the seed's small 3x3 cases) when the reduction per
output is short (``DIRECT_MAX_TAPS``) or the problem small (``DIRECT_MAX_MACS``), else
``im2col_gemm`` (im2col, one GEMM per group of images, a fused bias + ReLU epilogue). Launch
plans and scratch are cached per shape and stream.

The GEMM is ``blas.gemm`` (the backend's one cuBLAS caller): ``CUBLAS_COMPUTE_32F`` on a
default-math handle for float32, so true fp32 unless the call asks for "tf32"; CuPy's own
process-wide switch (``CUPY_TF32``, which ``cupy.matmul`` obeys) does not reach it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...runtime.backend import register
from .blas import gemm
from .compile import get_function
from .launch import KernelCall
from .memory import stream_scratch

__all__ = ["conv2d_auto", "conv2d_direct", "conv2d_im2col_gemm", "DIRECT_MAX_MACS",
           "DIRECT_MAX_TAPS"]

_FILE = "conv.cu"
_DTYPES = ("float32", "float64")
_DTYPE_CODE = {"float32": 0, "float64": 1}
# The direct kernel wins while the reduction per output (c*kh*kw) is short or the problem is
# small: on an H200 it beat im2col + GEMM + epilogue up to 3.7G multiply-adds at c*kh*kw = 576
# and lost at 1152 (925M). The tuner refines this per shape.
DIRECT_MAX_MACS = 1 << 27
DIRECT_MAX_TAPS = 576
_THREADS = 256
_SMEM_BUDGET = 48 * 1024  # the default per-block limit: no opt-in attribute needed
_SPECIALISED_KSIZE = (1, 3, 5, 7)
_COLS_BUDGET = 256 << 20  # bytes of im2col scratch per group of images
_GRID_X, _GRID_Y = 1024, 65535
# Lowered plans hold only kernels and geometry (their scratch is ``stream_scratch``'s).
_DIRECT_CACHE_LIMIT = 64
_LOWERED_CACHE_LIMIT = 64
_sm_counts: dict[int, int] = {}
_plans: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_lowered: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


@dataclass(frozen=True)
class _Lowered:
    im2col: Any
    epilogue: Any
    group: int  # images per GEMM
    cols: Any  # flat scratch of at least c*kh*kw * group*oh*ow values (``stream_scratch``)
    tmp: Any  # flat scratch of at least oc * group*oh*ow values
    grid_cols: tuple[int, int, int]
    grid_out: tuple[int, int, int]


def _remember(cache: OrderedDict, limit: int, key: tuple[Any, ...], value: Any) -> Any:
    cache[key] = value
    if len(cache) > limit:
        cache.popitem(last=False)
    return value


def _sm_count() -> int:
    import cupy  # noqa: PLC0415 - CuPy only once a CUDA implementation runs

    dev = cupy.cuda.runtime.getDevice()
    count = _sm_counts.get(dev)
    if count is None:
        props = cupy.cuda.runtime.getDeviceProperties(dev)
        count = _sm_counts[dev] = int(props["multiProcessorCount"])
    return count


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _direct_geometry(n: int, c: int, oc: int, oh: int, ow: int, kh: int, kw: int, sh: int,
                     sw: int, item: int) -> tuple[int, int, int, int] | None:
    """(tile_w, tile_h, oc_block, channel chunk) for the direct kernel, or None when even a
    one-pixel tile of one channel does not fit the shared-memory budget."""
    tw = min(32, _pow2_at_least(ow))
    th = min(max(1, _THREADS // tw), _pow2_at_least(oh))
    ocb = 16 if oc > 8 else (8 if oc > 4 else 4)
    tiles = -(-ow // tw) * -(-oh // th)
    # Fewer channels per thread when the grid would not cover the SMs (tiny problems).
    while ocb > 4 and tiles * -(-oc // ocb) * n < _sm_count():
        ocb //= 2

    def per_channel(tw: int, th: int) -> int:
        return (((th - 1) * sh + kh) * ((tw - 1) * sw + kw) + kh * kw * ocb) * item

    while per_channel(tw, th) > _SMEM_BUDGET and (th > 1 or tw > 1):
        th, tw = (th // 2, tw) if th > 1 else (th, tw // 2)
    if per_channel(tw, th) > _SMEM_BUDGET:
        return None
    return tw, th, ocb, max(1, min(c, _SMEM_BUDGET // per_channel(tw, th)))


def _direct_plan(x: Any, w: Any, out: Any, geometry: tuple[int, int, int, int], sh: int,
                 sw: int, ph: int, pw: int, has_bias: bool, relu: bool) -> KernelCall:
    n, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    _, _, oh, ow = out.shape
    tw, th, ocb, cb = geometry
    ksize = kh if kh == kw and kh in _SPECIALISED_KSIZE else 0
    kernel = get_function(_FILE, "lc_conv2d_direct", {
        "LC_DTYPE": _DTYPE_CODE[x.dtype.name], "OC_BLOCK": ocb, "KSIZE": ksize})
    tiles_w = -(-ow // tw)
    tiles = tiles_w * -(-oh // th)
    groups = -(-oc // ocb)
    ih_t, iw_t = (th - 1) * sh + kh, (tw - 1) * sw + kw
    smem = cb * (ih_t * iw_t + kh * kw * ocb) * x.dtype.itemsize
    i32 = np.int32
    scalars = tuple(i32(v) for v in (c, h, wd, oc, oh, ow, kh, kw, sh, sw, ph, pw, cb, tiles_w,
                                     tiles, groups, has_bias, relu))
    # Per call: x, w, bias (w stands in when there is none: never read), out.
    return KernelCall(kernel, (tiles * groups * n, 1, 1), (tw, th, 1), smem, 4, scalars)


def _lowered_plan(x: Any, w: Any, out: Any, stream: Any) -> _Lowered:
    n, c, _, _ = x.shape
    oc, _, kh, kw = w.shape
    _, _, oh, ow = out.shape
    defines = {"LC_DTYPE": _DTYPE_CODE[x.dtype.name]}
    rows, ohw, item = c * kh * kw, oh * ow, x.dtype.itemsize
    group = max(1, min(n, _COLS_BUDGET // max(1, rows * ohw * item)))
    # Scratch outlives the plan: a captured graph may keep using it (``stream_scratch``).
    cols = stream_scratch("conv.cols", x.dtype, stream, rows * group * ohw)
    tmp = stream_scratch("conv.tmp", x.dtype, stream, oc * group * ohw)
    # Grid-stride loops in both dimensions: x over columns/pixels, y over rows/planes.
    grid_cols = (max(1, min(_GRID_X, -(-group * ohw // _THREADS))), max(1, min(_GRID_Y, rows)), 1)
    grid_out = (max(1, min(_GRID_X, -(-ohw // _THREADS))), max(1, min(_GRID_Y, group * oc)), 1)
    return _Lowered(get_function(_FILE, "lc_conv2d_im2col", defines),
                    get_function(_FILE, "lc_conv2d_bias_act", defines), group, cols, tmp,
                    grid_cols, grid_out)


def _plan(requested: str, x: Any, w: Any, out: Any, stream: Any, sh: int, sw: int, ph: int,
          pw: int, has_bias: bool, relu: bool) -> KernelCall | _Lowered:
    """The cached launch plan of this call's shape; ``requested`` is a variant name."""
    import cupy  # noqa: PLC0415

    key = (requested, x.shape, w.shape, x.dtype.char, sh, sw, ph, pw, has_bias, relu,
           cupy.cuda.runtime.getDevice(), stream.ptr)
    plan = _plans.get(key) or _lowered.get(key)
    if plan is None:
        n, c, _, _ = x.shape
        oc, _, kh, kw = w.shape
        _, _, oh, ow = out.shape
        geometry = None
        if requested != "im2col_gemm":
            geometry = _direct_geometry(n, c, oc, oh, ow, kh, kw, sh, sw, x.dtype.itemsize)
        macs = n * oc * oh * ow * c * kh * kw
        short = c * kh * kw <= DIRECT_MAX_TAPS or macs <= DIRECT_MAX_MACS
        if geometry is not None and (requested == "direct" or short):
            plan = _remember(_plans, _DIRECT_CACHE_LIMIT, key,
                             _direct_plan(x, w, out, geometry, sh, sw, ph, pw, has_bias, relu))
        else:
            plan = _remember(_lowered, _LOWERED_CACHE_LIMIT, key,
                             _lowered_plan(x, w, out, stream))
    return plan


def _run(requested: str, x: Any, w: Any, maybe_bias: tuple[Any, ...], out: Any, stream: Any,
         precision: str, sh: int, sw: int, ph: int, pw: int, relu: bool) -> str:
    bias = maybe_bias[0] if maybe_bias else None
    plan = _plan(requested, x, w, out, stream, sh, sw, ph, pw, bias is not None, relu)
    # Without a bias the kernels never read that pointer: w stands in for it.
    bias_arg = w if bias is None else bias
    if type(plan) is KernelCall:
        plan(stream, x, w, bias_arg, out)
        return "fp32"
    n, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    _, _, oh, ow = out.shape
    i32 = np.int32
    w2 = w.reshape(oc, c * kh * kw)
    used = "fp32"
    for n0 in range(0, n, plan.group):
        nb = min(plan.group, n - n0)
        # A short last group uses contiguous views of the front of the scratch buffers.
        cols = plan.cols[:c * kh * kw * nb * oh * ow].reshape(c * kh * kw, nb * oh * ow)
        tmp = plan.tmp[:oc * nb * oh * ow].reshape(oc, nb * oh * ow)
        plan.im2col(plan.grid_cols, (_THREADS, 1, 1),
                    (x[n0:n0 + nb], cols, i32(nb), i32(c), i32(h), i32(wd), i32(kh), i32(kw),
                     i32(oh), i32(ow), i32(sh), i32(sw), i32(ph), i32(pw)), stream=stream)
        with stream:  # CuPy's cuBLAS wrappers rebind the handle to the current stream per call
            used = gemm(w2, cols, tmp, stream, precision)
        plan.epilogue(plan.grid_out, (_THREADS, 1, 1),
                      (tmp, bias_arg, out[n0:n0 + nb], i32(nb), i32(oc), i32(oh * ow),
                       i32(bias is not None), i32(relu)), stream=stream)
    return used


def _prepare(requested: str) -> Any:
    """The fast lane's launcher factory of one variant: a call finds its plan by stream and
    launches the direct kernel at once (the lowered path runs ``_run`` as usual)."""

    def prepare(in_shapes: Any, shape: tuple[int, ...], dtype: np.dtype, precision: str, *,
                stride_h: int, stride_w: int, pad_h: int, pad_w: int, relu: bool) -> Any:
        has_bias = len(in_shapes) == 3
        mine: dict[int, Any] = {}

        def launch(ins: tuple[Any, ...], out: Any, stream: Any) -> None:
            x, w = ins[0], ins[1]
            plan = mine.get(stream.ptr)
            if plan is None:
                if len(mine) >= 8:
                    mine.clear()
                plan = mine[stream.ptr] = _plan(requested, x, w, out, stream, stride_h,
                                                stride_w, pad_h, pad_w, has_bias, relu)
            if type(plan) is KernelCall:
                plan.launch_raw(stream.ptr, x.data.ptr, w.data.ptr,
                                (ins[2] if has_bias else w).data.ptr, out.data.ptr)
            else:
                _run(requested, x, w, ins[2:], out, stream, precision, stride_h, stride_w,
                     pad_h, pad_w, relu)

        return launch

    return prepare


@register("cuda", "conv2d", "auto", dtypes=_DTYPES, precisions=("fp32", "tf32"),
          prepare=_prepare("auto"))
def conv2d_auto(x: Any, w: Any, *maybe_bias: Any, out: Any, stream: Any, precision: str,
                stride_h: int, stride_w: int, pad_h: int, pad_w: int, relu: bool) -> str:
    """``direct`` for short reductions or small problems, else ``im2col_gemm``; returns the
    precision used."""
    return _run("auto", x, w, maybe_bias, out, stream, precision, stride_h, stride_w, pad_h,
                pad_w, relu)


@register("cuda", "conv2d", "direct", dtypes=_DTYPES,
          prepare=_prepare("direct"))
def conv2d_direct(x: Any, w: Any, *maybe_bias: Any, out: Any, stream: Any, precision: str,
                  stride_h: int, stride_w: int, pad_h: int, pad_w: int, relu: bool) -> str:
    """One fused launch; kernels too large for its shared-memory tiles run ``im2col_gemm``."""
    return _run("direct", x, w, maybe_bias, out, stream, precision, stride_h, stride_w, pad_h,
                pad_w, relu)


@register("cuda", "conv2d", "im2col_gemm", dtypes=_DTYPES, precisions=("fp32", "tf32"),
          prepare=_prepare("im2col_gemm"))
def conv2d_im2col_gemm(x: Any, w: Any, *maybe_bias: Any, out: Any, stream: Any,
                       precision: str, stride_h: int, stride_w: int, pad_h: int, pad_w: int,
                       relu: bool) -> str:
    """im2col + one cuBLAS GEMM per group of images + bias/ReLU epilogue; returns the
    precision used ("tf32" only when asked for on float32)."""
    return _run("im2col_gemm", x, w, maybe_bias, out, stream, precision, stride_h, stride_w,
                pad_h, pad_w, relu)
