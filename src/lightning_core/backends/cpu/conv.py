"""CPU convolution: im2col by a strided view of a zero-padded copy, then one BLAS GEMM per image.

The columns of image ``b`` are the matrix ``[C*KH*KW, OH*OW]``; ``w`` viewed as ``[OC, C*KH*KW]``
times it is exactly the NCHW output plane ``[OC, OH*OW]``, so the GEMM writes straight into
``out`` with no transpose afterwards. A bias is one more weight column against a row of ones
in the columns (no pass over ``out``); ReLU is applied in place on ``out``.
"""

from __future__ import annotations

import numpy as np

from ...runtime.backend import register
from .elementwise import relu_into

# im2col scratch per chunk of images: 2**24 elements (64 MiB in float32) bounds peak memory on
# large batches while each chunk still hands BLAS whole images.
_COLS_LIMIT = 1 << 24


def _padded(x: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
    """``x`` with ``pad_h`` / ``pad_w`` zeros around each image (``x`` itself when no pad)."""
    if not (pad_h or pad_w):
        return x
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * pad_h, w + 2 * pad_w), dtype=x.dtype)
    xp[:, :, pad_h:pad_h + h, pad_w:pad_w + w] = x
    return xp


@register("cpu", "conv2d", "im2col")
def conv2d_im2col(x: np.ndarray, w: np.ndarray, *bias: np.ndarray, out: np.ndarray,
                  stride_h: int, stride_w: int, pad_h: int, pad_w: int, relu: bool) -> None:
    """Convolution (+ bias, + ReLU) straight into ``out [N, OC, OH, OW]``."""
    n, c = x.shape[:2]
    oc, _, kh, kw = w.shape
    oh, ow = out.shape[2:]
    depth = c * kh * kw
    xp = _padded(x, pad_h, pad_w)
    sn, sc, sh, sw = xp.strides
    # [N, C, KH, KW, OH, OW]: tap (i, j) of output (y, x) is xp[.., y*stride_h + i,
    # x*stride_w + j]; the shape fits inside xp since (OH-1)*stride_h + KH <= H + 2*pad_h.
    # (A strided ndarray over xp's buffer: sliding_window_view costs ~15 us a call on small
    # images, as_strided ~3 us, this ~0.7 us.)
    cols_view = np.ndarray((n, c, kh, kw, oh, ow), xp.dtype, buffer=xp,
                           strides=(sn, sc, sh, sw, sh * stride_h, sw * stride_w))
    planes = out.reshape(n, oc, oh * ow)
    if bias:
        # The bias rides in the GEMM: one more column of weights against a row of ones in the
        # columns, instead of a broadcast pass over the output.
        weights = np.concatenate([w.reshape(oc, depth), bias[0].reshape(oc, 1)], axis=1)
        rows = depth + 1
    else:
        weights, rows = w.reshape(oc, depth), depth
    chunk = max(1, _COLS_LIMIT // max(1, rows * oh * ow))
    for first in range(0, n, chunk):
        last = min(n, first + chunk)
        if bias:
            # The one im2col copy, into columns with a row of ones under them.
            cols = np.empty((last - first, rows, oh * ow), xp.dtype)
            cols[:, depth] = 1
            cols[:, :depth].reshape(last - first, c, kh, kw, oh, ow)[...] = cols_view[first:last]
        else:
            # The reshape is the one im2col copy (a free view for 1x1 kernels at stride 1).
            cols = cols_view[first:last].reshape(last - first, depth, oh * ow)
        np.matmul(weights, cols, out=planes[first:last])
    if relu:
        relu_into(out, out)  # NaN stays NaN, as in the CUDA kernels
