"""2-D convolution on NCHW inputs with OIHW weights (cross-correlation, as in every DL library).

``x [N, C, H, W]``, ``w [OC, C, KH, KW]``, ``bias [OC]`` or None; the output is
``[N, OC, OH, OW]`` with ``OH = (H + 2*pad_h - KH) // stride_h + 1`` (``OW`` likewise). Any
kernel size, stride >= 1 and pad >= 0 (zero padding). Zero-size: ``N == 0`` or ``OC == 0`` gives
an empty result; ``C == 0`` gives the bias (or zeros), NumPy's empty sum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import PolicyError, ShapeError
from ..runtime import dispatch as _dispatch
from ..runtime.arrays import as_operands, check_out
from ..runtime.dispatch import Call, LaneMiss, execute
from ..runtime.policy import ONE_SHOT, Conv2dIoPolicy, current_precision
from ._checks import dim, flag, need_rank, shape_text

__all__ = [
    "conv2d_nchw",
    "conv2d_nchw_into",
    "conv2d_nchw_with_policy",
    "lightning_conv_relu_nchw",
    "lightning_conv_relu_nchw_into",
    "conv2d_reference",
]


def conv2d_reference(x: Any, w: Any, bias: Any, stride_h: int, stride_w: int, pad_h: int,
                     pad_w: int, relu: bool = False) -> np.ndarray:
    """Float64 reference."""
    x64 = np.asarray(x, dtype=np.float64)
    w64 = np.asarray(w, dtype=np.float64)
    n, _, h, width = x64.shape
    oc, _, kh, kw = w64.shape
    oh = (h + 2 * pad_h - kh) // stride_h + 1
    ow = (width + 2 * pad_w - kw) // stride_w + 1
    xp = np.pad(x64, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    out = np.zeros((n, oc, oh, ow), dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            patch = xp[:, :, dy:dy + stride_h * (oh - 1) + 1:stride_h,
                       dx:dx + stride_w * (ow - 1) + 1:stride_w]
            out += np.einsum("nchw,oc->nohw", patch, w64[:, :, dy, dx])
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64)[None, :, None, None]
    if relu:
        out = np.maximum(out, 0.0)
    return out


def _out_size(op: str, axis: str, size: int, kernel: int, stride: int, pad: int) -> int:
    out = (size + 2 * pad - kernel) // stride + 1
    if out <= 0:
        raise ShapeError(f"[{op}] kernel {axis} {kernel} is larger than the padded input {axis} "
                         f"{size} + 2*{pad} = {size + 2 * pad}: output {axis} would be {out}")
    return out


def _run(op: str, x: Any, w: Any, bias: Any, out: Any, stride_h: Any, stride_w: Any,
         pad_h: Any, pad_w: Any, device: Any, *, relu: Any,
         policy: Conv2dIoPolicy | None = None) -> Any:
    lane = None
    if policy is None:
        arrays = (x, w) if bias is None else (x, w, bias)
        scalars = (stride_h, stride_w, pad_h, pad_w, relu, current_precision(op))
        result = _dispatch.lane_call(op, device, scalars, arrays, out)
        if type(result) is not LaneMiss:
            return result
        lane = result.key
    apply_relu = flag(op, "apply_relu", relu)
    geometry = {"stride_h": dim(op, "stride_h", stride_h, minimum=1),
                "stride_w": dim(op, "stride_w", stride_w, minimum=1),
                "pad_h": dim(op, "pad_h", pad_h), "pad_w": dim(op, "pad_w", pad_w)}
    if policy is not None and not isinstance(policy, Conv2dIoPolicy):
        raise PolicyError(f"[{op}] policy must be an lc.Conv2dIoPolicy, got "
                          f"{type(policy).__name__}")
    names, values = ("x", "w"), (x, w)
    if bias is not None:
        names, values = ("x", "w", "bias"), (x, w, bias)
    operands, dtype = as_operands(op, names, values)
    xa, wa = operands[0].array, operands[1].array
    need_rank(op, "x", xa, 4)
    need_rank(op, "w", wa, 4)
    n, c, h, width = xa.shape
    oc, wc, kh, kw = wa.shape
    if wc != c:
        raise ShapeError(f"[{op}] channels differ: x is {shape_text(xa.shape)} (C={c}), w is "
                         f"{shape_text(wa.shape)} (C={wc})")
    if kh == 0 or kw == 0:
        raise ShapeError(f"[{op}] kernel size must be >= 1, w is {shape_text(wa.shape)}")
    if bias is not None:
        ba = operands[2].array
        if ba.shape != (oc,):
            raise ShapeError(f"[{op}] bias must have shape ({oc},) to match w "
                             f"{shape_text(wa.shape)}, got {shape_text(ba.shape)}")
    oh = _out_size(op, "height", h, kh, geometry["stride_h"], geometry["pad_h"])
    ow = _out_size(op, "width", width, kw, geometry["stride_w"], geometry["pad_w"])
    out_shape = (n, oc, oh, ow)
    native_out = None
    if out is not None:
        native_out = check_out(op, out, out_shape, dtype, operands)
    call = Call(op, "conv2d", operands, out_shape, dtype, {**geometry, "relu": apply_relu},
                native_out, policy.plan() if policy is not None else ONE_SHOT,
                current_precision(op))
    result = execute(call, device, lane=lane)
    return out if out is not None else result


def conv2d_nchw(x: Any, w: Any, bias: Any = None, stride_h: int = 1, stride_w: int = 1,
                pad_h: int = 0, pad_w: int = 0, device: str = "auto") -> Any:
    """Convolution of ``x [N,C,H,W]`` with ``w [OC,C,KH,KW]`` (+ bias); returns NCHW."""
    return _run("conv2d_nchw", x, w, bias, None, stride_h, stride_w, pad_h, pad_w, device,
                relu=False)


def conv2d_nchw_into(x: Any, w: Any, bias: Any, out: Any, stride_h: int = 1, stride_w: int = 1,
                     pad_h: int = 0, pad_w: int = 0, device: str = "auto") -> Any:
    """Convolution written into ``out [N,OC,OH,OW]``; returns ``out``."""
    return _run("conv2d_nchw_into", x, w, bias, out, stride_h, stride_w, pad_h, pad_w, device,
                relu=False)


def lightning_conv_relu_nchw(x: Any, w: Any, bias: Any = None, stride_h: int = 1,
                             stride_w: int = 1, pad_h: int = 0, pad_w: int = 0,
                             device: str = "auto") -> Any:
    """Fused convolution + ReLU; returns NCHW."""
    return _run("lightning_conv_relu_nchw", x, w, bias, None, stride_h, stride_w, pad_h, pad_w,
                device, relu=True)


def lightning_conv_relu_nchw_into(x: Any, w: Any, bias: Any, out: Any, stride_h: int = 1,
                                  stride_w: int = 1, pad_h: int = 0, pad_w: int = 0,
                                  device: str = "auto") -> Any:
    """Fused convolution + ReLU written into ``out``; returns ``out``."""
    return _run("lightning_conv_relu_nchw_into", x, w, bias, out, stride_h, stride_w, pad_h,
                pad_w, device, relu=True)


def conv2d_nchw_with_policy(x: Any, w: Any, bias: Any = None, stride_h: int = 1,
                            stride_w: int = 1, pad_h: int = 0, pad_w: int = 0,
                            device: str = "auto", policy: Conv2dIoPolicy | None = None,
                            apply_relu: bool = False) -> Any:
    """Convolution (+ ReLU when ``apply_relu``) under an explicit ``Conv2dIoPolicy``."""
    return _run("conv2d_nchw_with_policy", x, w, bias, None, stride_h, stride_w, pad_h, pad_w,
                device, relu=apply_relu,
                policy=Conv2dIoPolicy() if policy is None else policy)
