"""CPU convolution: im2col by a strided view of a zero-padded copy, then BLAS GEMMs.

The columns of image ``b`` are the matrix ``[C*KH*KW, OH*OW]``; ``w`` viewed as ``[OC, C*KH*KW]``
times it is exactly the NCHW output plane ``[OC, OH*OW]``, so the GEMM writes straight into
``out`` with no transpose afterwards. A bias is one more weight column against a row of ones
in the columns (no pass over ``out``); ReLU is applied in place on ``out``.

Two schedules:

* When the buffers fit in ``_PLAN_BYTES`` (the tiny ``device="auto"`` convs among them): one
  pad copy, one im2col copy and one GEMM for the whole batch. At a few microseconds a step the
  glue around them counts, so each thread keeps the buffers of its last ``_PLANS`` geometries
  and refills them in place: the padded input (zero border written once), its im2col view,
  the columns (row of ones written once) and the weight matrix. Only shapes
  key them, never the caller's arrays (those may change in place between calls).
* Larger: chunk by chunk, a chunk being as many whole images as fit in ``_COLS_LIMIT``
  elements of columns or, when one image does not, a band of its output rows (that band's GEMM
  writes its rows of the output plane through a strided BLAS ``ldc``). One pad buffer and one
  columns buffer, carved from a block each thread keeps, serve every chunk, so each GEMM reads
  columns the im2col copy has just left in cache instead of a batch-sized matrix from memory.

Columns have a row stride that is not a multiple of 2 KiB (``_pitch``).
"""

from __future__ import annotations

import threading

import numpy as np

from ...runtime.backend import register
from .elementwise import relu_flat, relu_into

# Per-thread plans of the one-GEMM schedule: the last 4 geometries whose buffers total 1 MiB at
# most, so a thread keeps 4 MiB of plans at most.
_PLANS = 4
_PLAN_BYTES = 1 << 20
# The columns of one chunk: 2**20 elements (4 MiB in float32) stay in cache between the im2col
# copy and the GEMM. Smaller chunks did as well on one BLAS thread but worse on two, which pay
# per GEMM call (8x16x64x64->32: 3.8 ms in bands of half an image against 3.3 in whole ones).
_COLS_LIMIT = 1 << 20
# The chunked schedule's buffers come from one block per thread, kept up to 16 MiB: fresh
# buffers fault a page per 4 KiB on first touch (16x3x64x64->16 with a new output each call,
# as lc hands it: 5.4 ms on fresh buffers against 1.2 on the kept block).
_BLOCK_BYTES = 16 << 20


def _pitch(width: int, itemsize: int) -> int:
    """Row stride (elements) for columns ``width`` wide: never a multiple of 2 KiB, as BLAS
    reads B rows that far apart through few cache sets (16x28 @ 28x1024 took 10.9 against
    9.5 us with 16 more floats a row, 32x145 @ 145x2048 161 against 123 us)."""
    return width + (64 // itemsize if width * itemsize % 2048 == 0 else 0)


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
    """Buffers of the one-GEMM schedule for one geometry, refilled in place by each call."""

    __slots__ = ("inner", "view", "cols", "dst", "weights")

    def __init__(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...], dtype: np.dtype,
                 oh: int, ow: int, stride_h: int, stride_w: int, pad_h: int, pad_w: int,
                 bias: bool) -> None:
        n, c, h, width = x_shape
        oc, _, kh, kw = w_shape
        depth = c * kh * kw
        self.inner: np.ndarray | None = None
        self.view: np.ndarray | None = None  # without padding: a view of each call's x
        if pad_h or pad_w:
            xp = np.zeros((n, c, h + 2 * pad_h, width + 2 * pad_w), dtype)
            self.inner = xp[:, :, pad_h:pad_h + h, pad_w:pad_w + width]
            self.view = _windows(xp, kh, kw, oh, ow, stride_h, stride_w)
        self.cols = np.empty((n, depth + bias, _pitch(oh * ow, dtype.itemsize)),
                             dtype)[..., :oh * ow]
        if bias:
            self.cols[:, depth] = 1
        self.dst = self.cols[:, :depth].reshape(n, c, kh, kw, oh, ow)
        self.weights = np.empty((oc, depth + 1), dtype) if bias else None

    @staticmethod
    def nbytes(x_shape: tuple[int, ...], w_shape: tuple[int, ...], itemsize: int, oh: int,
               ow: int, pad_h: int, pad_w: int, bias: bool) -> int:
        """What a plan for this geometry holds."""
        n, c, h, width = x_shape
        oc, _, kh, kw = w_shape
        rows = c * kh * kw + bias
        padded = n * c * (h + 2 * pad_h) * (width + 2 * pad_w) if pad_h or pad_w else 0
        return (padded + n * rows * _pitch(oh * ow, itemsize) + oc * rows) * itemsize


class _Scratch(threading.local):
    """Each thread's plans (least recently used first) and block."""

    def __init__(self) -> None:
        self.plans: dict[tuple[object, ...], _Plan] = {}
        self.block = np.empty(0, np.uint8)


_scratch = _Scratch()


def _from_block(*sizes: int) -> list[np.ndarray]:
    """Byte buffers of these sizes, 64-byte aligned, from this thread's block (grown when too
    small; a block over ``_BLOCK_BYTES`` serves this call only)."""
    total = sum(-(-size // 64) * 64 for size in sizes) + 64
    block = _scratch.block
    if block.nbytes < total:
        block = np.empty(total, np.uint8)
        if total <= _BLOCK_BYTES:
            _scratch.block = block
    at = -block.__array_interface__["data"][0] % 64
    buffers = []
    for size in sizes:
        buffers.append(block[at:at + size])
        at += -(-size // 64) * 64
    return buffers


def _chunked(x: np.ndarray, w: np.ndarray, bias: tuple[np.ndarray, ...], out: np.ndarray,
             stride_h: int, stride_w: int, pad_h: int, pad_w: int, relu: bool) -> None:
    """Chunks of whole images, or bands of output rows of one image, whose columns fit in
    ``_COLS_LIMIT``; one pad buffer and one columns buffer serve every chunk."""
    n, c, h, width = x.shape
    oc, _, kh, kw = w.shape
    oh, ow = out.shape[2:]
    depth = c * kh * kw
    rows = depth + bool(bias)
    if rows * oh * ow <= _COLS_LIMIT:
        images, band = min(n, _COLS_LIMIT // max(1, rows * oh * ow)), oh
        images = -(-n // -(-n // images))  # the same number of chunks, evened out
    else:
        images, band = 1, max(1, _COLS_LIMIT // max(1, rows * ow))
        band = -(-oh // -(-oh // band))
    dtype, pitch = x.dtype, _pitch(band * ow, x.dtype.itemsize)
    padded = (images, c, h + 2 * pad_h, width + 2 * pad_w)
    cols_bytes = images * rows * pitch * dtype.itemsize
    pad_bytes = images * c * padded[2] * padded[3] * dtype.itemsize if pad_h or pad_w else 0
    cols_buffer, pad_buffer = _from_block(cols_bytes, pad_bytes)
    cols = cols_buffer.view(dtype).reshape(images, rows, pitch)[..., :band * ow]
    if bias:
        cols[:, depth] = 1
        weights = np.concatenate([w.reshape(oc, depth), bias[0].reshape(oc, 1)], axis=1)
    else:
        weights = w.reshape(oc, depth)
    if pad_h or pad_w:
        # Padded in place chunk after chunk; the block held anything before, so zero the border.
        xp = pad_buffer.view(dtype).reshape(padded)
        xp[:, :, :pad_h] = 0
        xp[:, :, h + pad_h:] = 0
        xp[:, :, :, :pad_w] = 0
        xp[:, :, :, width + pad_w:] = 0
        inner = xp[:, :, pad_h:pad_h + h, pad_w:pad_w + width]
        view = _windows(xp, kh, kw, oh, ow, stride_h, stride_w)
    else:
        view = _windows(x, kh, kw, oh, ow, stride_h, stride_w)
    planes = out.reshape(n, oc, oh * ow)
    for first in range(0, n, images):
        last = min(n, first + images)
        if pad_h or pad_w:
            inner[:last - first] = x[first:last]
            taps = view[:last - first]
        else:
            taps = view[first:last]
        for y0 in range(0, oh, band):
            y1 = min(oh, y0 + band)
            # Views of cols (a band keeps the full band's row stride, which BLAS takes).
            chunk = cols[:last - first, :, :(y1 - y0) * ow]
            chunk[:, :depth].reshape(last - first, c, kh, kw, y1 - y0, ow)[...] = \
                taps[..., y0:y1, :]
            np.matmul(weights, chunk, out=planes[first:last, :, y0 * ow:y1 * ow])
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
    key = (x.shape, w.shape, x.dtype, stride_h, stride_w, pad_h, pad_w, not bias)
    plans = _scratch.plans
    # Taken out while in use (a re-entrant call builds its own) and put back last (LRU order).
    plan = plans.pop(key, None)
    if plan is None:
        if _Plan.nbytes(x.shape, w.shape, x.dtype.itemsize, oh, ow, pad_h, pad_w,
                        bool(bias)) > _PLAN_BYTES:
            _chunked(x, w, bias, out, stride_h, stride_w, pad_h, pad_w, relu)
            return
        plan = _Plan(x.shape, w.shape, x.dtype, oh, ow, stride_h, stride_w, pad_h, pad_w,
                     bool(bias))
    # The whole batch in one im2col copy and one GEMM.
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
        flat = out.reshape(-1)  # contiguous: the backend's own output
        relu_flat(flat, flat)
    plans[key] = plan
    if len(plans) > _PLANS:
        del plans[next(iter(plans))]
