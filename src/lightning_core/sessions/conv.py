"""Resident conv2d (+ fused ReLU) session."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..ops._checks import dim
from .core import ResidentOp, SessionFront

__all__ = ["Conv2dResidentSession", "Conv2dMetalResidentSession"]


class Conv2dResidentSession(SessionFront):
    """NCHW conv with bias (and ReLU when ``apply_relu``) kept resident between calls."""

    def __init__(self, batch: int, in_channels: int, in_h: int, in_w: int, out_channels: int,
                 kernel_h: int, kernel_w: int, stride_h: int = 1, stride_w: int = 1,
                 pad_h: int = 0, pad_w: int = 0, apply_relu: bool = True,
                 device: str = "auto", dtype: Any = np.float32) -> None:
        op = "Conv2dResidentSession"
        n, c, h, w, oc = (dim(op, nm, v, minimum=1) for nm, v in (
            ("batch", batch), ("in_channels", in_channels), ("in_h", in_h), ("in_w", in_w),
            ("out_channels", out_channels)))
        kh, kw = dim(op, "kernel_h", kernel_h, minimum=1), dim(op, "kernel_w", kernel_w, minimum=1)
        sh, sw = dim(op, "stride_h", stride_h, minimum=1), dim(op, "stride_w", stride_w, minimum=1)
        ph, pw = dim(op, "pad_h", pad_h), dim(op, "pad_w", pad_w)
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if oh <= 0 or ow <= 0:
            raise ShapeError(f"[{op}] output would be {oh}x{ow}: kernel {kh}x{kw} does not fit "
                             f"the padded input {h + 2 * ph}x{w + 2 * pw}")
        self.apply_relu = bool(apply_relu)
        params = {"stride_h": sh, "stride_w": sw, "pad_h": ph, "pad_w": pw,
                  "relu": self.apply_relu}
        self._r = ResidentOp(op, "conv2d",
                             {"x": (n, c, h, w), "w": (oc, c, kh, kw), "bias": (oc,)},
                             (n, oc, oh, ow), dtype=dtype, device=device, params=params)

    def _values(self, x: Any, w: Any, bias: Any) -> dict[str, Any]:
        if bias is None:
            bias = np.zeros(self._r.shapes["bias"], dtype=self._r.dtype)
        return {"x": x, "w": w, "bias": bias}

    def _check(self, x: Any, w: Any, bias: Any, out: Any) -> None:
        self._r.check_inputs(self._values(x, w, bias))
        self._r.check("out", out, self._r.out_shape)

    def start_into(self, x: Any, w: Any, bias: Any, out: Any) -> None:
        """Upload x, w and bias, launch; no download, no sync."""
        self._check(x, w, bias, out)
        self._r.upload(self._values(x, w, bias))
        self._r.launch()

    def update(self, x: Any = None, w: Any = None, bias: Any = None) -> None:
        """Re-upload changed inputs."""
        values = {nm: v for nm, v in (("x", x), ("w", w), ("bias", bias)) if v is not None}
        self._r.upload(values)

    def run_into(self, x: Any, w: Any, bias: Any, out: Any) -> None:
        """Launch on the resident inputs only."""
        self._check(x, w, bias, out)
        self._r.launch()

    def sync_into(self, x: Any, w: Any, bias: Any, out: Any) -> None:
        """Launch and wait; no download."""
        self._check(x, w, bias, out)
        self._r.launch()
        self._r.sync()

    def finish_into(self, x: Any, w: Any, bias: Any, out: Any) -> Any:
        """Launch, wait, download into ``out``."""
        self._check(x, w, bias, out)
        self._r.launch()
        self._r.download(out)
        return out

    def run_batch_sync_into(self, x: Any, w: Any, bias: Any, out: Any, repeat: int) -> Any:
        """Launch ``repeat`` times, wait once, download into ``out``."""
        self._check(x, w, bias, out)
        self._r.launch(repeat)
        self._r.download(out)
        return out


Conv2dMetalResidentSession = Conv2dResidentSession
