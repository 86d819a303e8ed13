"""Clean, keyword-friendly names (``lc.api``) and the engine selector.

The engine decides who computes the integrated API calls: ``"lightning"`` (default: our
operators), ``"torch"`` (PyTorch on the same device, for A/B comparisons and interop) or
``"auto"`` (lightning whenever the requested device is usable, else torch if importable).
"""

from __future__ import annotations

import contextvars
from typing import Any

import numpy as np

from .errors import InvalidArgumentError, NotSupportedError
from .ops.attention import attention_forward, lightning_attention_into
from .ops.conv import lightning_conv_relu_nchw, lightning_conv_relu_nchw_into
from .ops.linear import linear
from .ops.matmul import matmul2d, matmul2d_into
from .sessions.integrated import (
    clear_integrated_attention_session_cache,
    lightning_conv_attention_torchstrong_nchw,
    lightning_conv_attention_torchstrong_nchw_ab_report,
    lightning_conv_attention_torchstrong_nchw_into,
)

__all__ = [
    "ENGINES",
    "set_engine",
    "get_engine",
    "set_backend",
    "get_backend",
    "matmul",
    "matmul_into",
    "linear",
    "attention",
    "attention_into",
    "conv_relu_nchw",
    "conv_relu_nchw_into",
    "conv_attention_torchstrong_nchw",
    "conv_attention_torchstrong_nchw_into",
    "conv_attention_torchstrong_nchw_ab_report",
    "clear_attention_session_cache",
]

ENGINES = ("lightning", "torch", "auto")
_engine: contextvars.ContextVar[str] = contextvars.ContextVar("lc_engine", default="lightning")


def set_engine(name: str) -> None:
    """Choose who computes the integrated API: "lightning", "torch" or "auto"."""
    if name not in ENGINES:
        raise InvalidArgumentError(f"[set_engine] engine must be one of {', '.join(ENGINES)}; "
                                   f"got {name!r}")
    if name == "torch" and _torch() is None:
        raise NotSupportedError("[set_engine] engine 'torch' needs PyTorch, which is not "
                                "importable here")
    _engine.set(name)


def get_engine() -> str:
    """The current engine name."""
    return _engine.get()


set_backend = set_engine
get_backend = get_engine


def _torch() -> Any:
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None
    return torch


def _use_torch() -> bool:
    return _engine.get() == "torch"


def _torch_call(fn_name: str, *arrays: Any, **kw: Any) -> np.ndarray:
    torch = _torch()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    tensors = [None if a is None else torch.as_tensor(np.asarray(a), device=dev) for a in arrays]
    functional = torch.nn.functional
    if fn_name == "attention":
        q, k, v = (t.reshape(1, 1, kw["seq"], kw["dim"]) for t in tensors)
        out = functional.scaled_dot_product_attention(q, k, v, is_causal=kw["causal"])
    elif fn_name == "conv_relu":
        x, w, b = tensors
        out = functional.relu(functional.conv2d(x, w, b, stride=kw["stride"],
                                                padding=kw["padding"]))
    else:
        out = tensors[0] @ tensors[1]
    return out.cpu().numpy().reshape(-1) if fn_name == "attention" else out.cpu().numpy()


def matmul(a: Any, b: Any, *, device: str = "auto", precision: str | None = None) -> Any:
    """``a @ b`` for 2-D arrays."""
    if _use_torch():
        return _torch_call("matmul", a, b)
    return matmul2d(a, b, device, precision=precision)


def matmul_into(a: Any, b: Any, out: Any, *, device: str = "auto",
                precision: str | None = None) -> Any:
    """``a @ b`` into ``out``."""
    return matmul2d_into(a, b, out, device, precision=precision)


def attention(q: Any, k: Any, v: Any, seq_len: int, head_dim: int, causal: bool = False,
              device: str = "auto") -> Any:
    """Single-head attention on flat ``seq_len*head_dim`` arrays; returns flat."""
    if _use_torch():
        return _torch_call("attention", q, k, v, seq=seq_len, dim=head_dim, causal=causal)
    return attention_forward(q, k, v, seq_len, head_dim, causal, device)


def attention_into(q: Any, k: Any, v: Any, out: Any, seq_len: int, head_dim: int,
                   causal: bool = False, device: str = "auto") -> Any:
    """Single-head attention into ``out``."""
    return lightning_attention_into(q, k, v, out, seq_len, head_dim, causal, device)


def conv_relu_nchw(x: Any, w: Any, bias: Any = None, stride_h: int = 1, stride_w: int = 1,
                   pad_h: int = 0, pad_w: int = 0, device: str = "auto") -> Any:
    """conv2d + bias + ReLU (NCHW)."""
    if _use_torch():
        return _torch_call("conv_relu", x, w, bias, stride=(stride_h, stride_w),
                           padding=(pad_h, pad_w))
    return lightning_conv_relu_nchw(x, w, bias, stride_h, stride_w, pad_h, pad_w, device)


def conv_relu_nchw_into(x: Any, w: Any, bias: Any, out: Any, stride_h: int = 1,
                        stride_w: int = 1, pad_h: int = 0, pad_w: int = 0,
                        device: str = "auto") -> Any:
    """conv2d + bias + ReLU into ``out``."""
    return lightning_conv_relu_nchw_into(x, w, bias, out, stride_h, stride_w, pad_h, pad_w,
                                         device)


conv_attention_torchstrong_nchw = lightning_conv_attention_torchstrong_nchw
conv_attention_torchstrong_nchw_into = lightning_conv_attention_torchstrong_nchw_into
conv_attention_torchstrong_nchw_ab_report = lightning_conv_attention_torchstrong_nchw_ab_report
clear_attention_session_cache = clear_integrated_attention_session_cache
