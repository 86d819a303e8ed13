"""CPU convolution: im2col by a strided view of a zero-padded copy, then BLAS GEMMs.

The columns of image ``b`` are the matrix ``[C*KH*KW, OH*OW]``; ``w`` viewed as ``[OC, C*KH*KW]``
times it is exactly the NCHW output plane ``[OC, OH*OW]``, so the GEMM writes straight into
``out`` with no transpose afterwards. A bias is one more weight column against a row of ones
in the columns (no pass over ``out``); ReLU is applied in place on ``out``.

Two schedules, by the size of the whole batch's columns:

* Up to ``_COLS_LIMIT`` elements (the tiny ``device="auto"`` convs among them): one pad copy,
  one im2col copy and one GEMM for the whole batch. At a few microseconds a step the glue
  around them counts, so each thread keeps the buffers of its last ``_PLANS`` geometries (up
  to ``_PLAN_BYTES`` each) and refills them in place: the padded input (zero border written
  once), its im2col view, the columns (row of ones written once) and the weight matrix. Only
  shapes key them, never the caller's arrays (those may change in place between calls).
* Larger: image by image, in bands of output rows whose columns fit in ``_COLS_LIMIT``, each
  band's GEMM writing its rows of the output plane (a strided BLAS ``ldc``). One padded image
  and one band of columns serve the whole batch, so the GEMM reads columns that are still in
  cache instead of a batch-sized matrix from memory.
"""

from __future__ import annotations

import threading

import numpy as np

from ...runtime.backend import register
from .elementwise import relu_into

# The columns one GEMM reads: 2**20 elements (4 MiB in float32), which stay in cache between
# the im2col copy and the GEMM. Smaller bands did as well on one BLAS thread but worse on two
# (8x16x64x64->32: 3.8 ms in two bands against 3.3 in one); the whole batch goes in one GEMM
# when its columns fit.
_COLS_LIMIT = 1 << 20
# Per-thread scratch of the one-GEMM schedule: the last 4 geometries, each kept only when its
# buffers total 1 MiB at most, so a thread holds 4 MiB at most.
_PLANS = 4
_PLAN_BYTES = 1 << 20


def _padded(x: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
    """``x`` with ``pad_h`` / ``pad_w`` zeros around each image (``x`` itself when no pad).

    The schedules below pad into buffers they reuse; tools/probe_cpu_conv.py times this."""
    if not (pad_h or pad_w):
        return x
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * pad_h, w + 2 * pad_w), dtype=x.dtype)
    xp[:, :, pad_h:pad_h + h, pad_w:pad_w + w] = x
    return xp


def _columns(rows: int, width: int, dtype: np.dtype, n: int | None = None) -> np.ndarray:
    """Uninitialised columns ``[(n,) rows, width]`` whose row stride is not a multiple of
    2 KiB: BLAS reads B rows that far apart through few cache sets (16x28 @ 28x1024 took 10.9
    against 9.5 us with 16 more floats a row, 32x145 @ 145x2048 161 against 123 us)."""
    pitch = width + (64 // dtype.itemsize if width * dtype.itemsize % 2048 == 0 else 0)
    shape = (rows, pitch) if n is None else (n, rows, pitch)
    return np.empty(shape, dtype)[..., :width]


def _windows(xp: np.ndarray, kh: int, kw: int, oh: int, ow: int, stride_h: int,
             stride_w: int) -> np.ndarray:
    """``[N, C, KH, KW, OH, OW]`` view of the padded ``xp [N, C, Hp, Wp]``: tap ``(i, j)`` of
    output ``(y, x)`` is ``xp[.., y*stride_h + i, x*stride_w + j]``."""
    # Fits inside xp since (OH-1)*stride_h + KH <= Hp. (A strided ndarray over xp's buffer:
    # sliding_window_view costs ~15 us a call on small images, as_strided ~3 us, this ~0.7 us.)
    sn, sc, sh, sw = xp.strides
    return np.ndarray((xp.shape[0], xp.shape[1], kh, kw, oh, ow), xp.dtype, buffer=xp,
                      strides=(sn, sc, sh, sw, sh * stride_h, sw * stride_w))


class _Plan:
    """Scratch of the one-GEMM schedule for one geometry, filled in place by each call."""

    __slots__ = ("inner", "view", "cols", "dst", "weights", "kept", "zeros")

    def __init__(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...], dtype: np.dtype,
                 oh: int, ow: int, stride_h: int, stride_w: int, pad_h: int, pad_w: int,
                 bias: bool) -> None:
        n, c, h, width = x_shape
        oc, _, kh, kw = w_shape
        depth = c * kh * kw
        rows = depth + bias
        item = dtype.itemsize
        padded = (n * c * (h + 2 * pad_h) * (width + 2 * pad_w)) if pad_h or pad_w else 0
        nbytes = (padded + n * rows * oh * ow + oc * rows + n * oc * oh * ow) * item
        self.kept = nbytes <= _PLAN_BYTES  # larger plans serve one call
        self.inner: np.ndarray | None = None
        self.view: np.ndarray | None = None  # without padding: a view of each call's x
        if padded:
            xp = np.zeros((n, c, h + 2 * pad_h, width + 2 * pad_w), dtype)
            self.inner = xp[:, :, pad_h:pad_h + h, pad_w:pad_w + width]
            self.view = _windows(xp, kh, kw, oh, ow, stride_h, stride_w)
        self.cols = _columns(rows, oh * ow, dtype, n)
        if bias:
            self.cols[:, depth] = 1
        self.dst = self.cols[:, :depth].reshape(n, c, kh, kw, oh, ow)
        self.weights = np.empty((oc, rows), dtype) if bias else None
        # ReLU against a contiguous block of zeros: NumPy's maximum against a scalar 0 takes a
        # slow unvectorised loop (see elementwise.relu_into); only kept plans carry one.
        self.zeros = np.zeros(n * oc * oh * ow, dtype) if self.kept else None


class _Scratch(threading.local):
    """Each thread's plans, least recently used first."""

    def __init__(self) -> None:
        self.plans: dict[tuple[object, ...], _Plan] = {}


_scratch = _Scratch()


def _banded(x: np.ndarray, w: np.ndarray, bias: tuple[np.ndarray, ...], out: np.ndarray,
            stride_h: int, stride_w: int, pad_h: int, pad_w: int, relu: bool) -> None:
    """Image by image, in bands of output rows whose columns fit in ``_COLS_LIMIT``."""
    n, c, h, width = x.shape
    oc, _, kh, kw = w.shape
    oh, ow = out.shape[2:]
    depth = c * kh * kw
    rows = depth + bool(bias)
    band = max(1, min(oh, _COLS_LIMIT // max(1, rows * ow)))
    band = -(-oh // -(-oh // band))  # the same number of bands, evened out
    cols = _columns(rows, band * ow, x.dtype)
    if bias:
        cols[depth] = 1
        weights = np.concatenate([w.reshape(oc, depth), bias[0].reshape(oc, 1)], axis=1)
    else:
        weights = w.reshape(oc, depth)
    if pad_h or pad_w:
        # One padded image, reused for every image: its zero border is written once.
        xp = np.zeros((1, c, h + 2 * pad_h, width + 2 * pad_w), x.dtype)
        inner = xp[0, :, pad_h:pad_h + h, pad_w:pad_w + width]
        view = _windows(xp, kh, kw, oh, ow, stride_h, stride_w)
    else:
        view = _windows(x, kh, kw, oh, ow, stride_h, stride_w)
    # Per band: output rows, the band's columns (a view of cols: its row stride stays that of
    # the full band, which BLAS takes) and the same as the [C, KH, KW, rows, OW] copy target.
    spans = []
    for y0 in range(0, oh, band):
        y1 = min(oh, y0 + band)
        m = (y1 - y0) * ow
        spans.append((y0, y1, cols[:, :m], cols[:depth, :m].reshape(c, kh, kw, y1 - y0, ow)))
    planes = out.reshape(n, oc, oh * ow)
    for b in range(n):
        if pad_h or pad_w:
            inner[...] = x[b]
            taps = view[0]
        else:
            taps = view[b]
        for y0, y1, band_cols, dst in spans:
            dst[...] = taps[:, :, :, y0:y1]
            np.matmul(weights, band_cols, out=planes[b, :, y0 * ow:y1 * ow])
    if relu:
        relu_into(out, out)


@register("cpu", "conv2d", "im2col")
def conv2d_im2col(x: np.ndarray, w: np.ndarray, *bias: np.ndarray, out: np.ndarray,
                  stride_h: int, stride_w: int, pad_h: int, pad_w: int, relu: bool) -> None:
    """Convolution (+ bias, + ReLU) straight into ``out [N, OC, OH, OW]``."""
    n, c = x.shape[:2]
    oc, _, kh, kw = w.shape
    oh, ow = out.shape[2:]
    depth = c * kh * kw
    if not bias and kh == kw == stride_h == stride_w == 1 and not (pad_h or pad_w):
        # 1x1 kernel, stride 1, no pad: the columns are x itself, no copy at all.
        np.matmul(w.reshape(oc, c), x.reshape(n, c, oh * ow), out=out.reshape(n, oc, oh * ow))
        if relu:
            relu_into(out, out)
        return
    if n * (depth + 1) * oh * ow > _COLS_LIMIT:
        _banded(x, w, bias, out, stride_h, stride_w, pad_h, pad_w, relu)
        return
    # The whole batch in one im2col copy and one GEMM, on this thread's scratch.
    key = (x.shape, w.shape, x.dtype, stride_h, stride_w, pad_h, pad_w, not bias)
    plans = _scratch.plans
    # Taken out while in use (a re-entrant call builds its own) and put back last (LRU order).
    plan = plans.pop(key, None)
    if plan is None:
        plan = _Plan(x.shape, w.shape, x.dtype, oh, ow, stride_h, stride_w, pad_h, pad_w,
                     bool(bias))
    if plan.inner is not None:
        plan.inner[...] = x
        plan.dst[...] = plan.view
    else:
        plan.dst[...] = _windows(x, kh, kw, oh, ow, stride_h, stride_w)
    if bias:
        weights = plan.weights
        weights[:, :depth] = w.reshape(oc, depth)
        weights[:, depth] = bias[0]
    else:
        weights = w.reshape(oc, depth)
    np.matmul(weights, plan.cols, out=out.reshape(n, oc, oh * ow))
    if relu:
        if plan.zeros is None:
            relu_into(out, out)
        else:
            flat = out.reshape(-1)
            np.maximum(flat, plan.zeros, out=flat)
    if plan.kept:
        plans[key] = plan
        if len(plans) > _PLANS:
            del plans[next(iter(plans))]
