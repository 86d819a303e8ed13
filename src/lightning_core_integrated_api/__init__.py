"""The seed's integrated helper module: the engine selector and engine-aware entry points.

``import lightning_core_integrated_api as lc_api``; ``lc_api.set_backend("torch")`` routes the
entry points below to PyTorch for A/B runs, ``"lightning"`` (default) to Lightning Core.
Note the seed's argument order of ``lightning_attention`` here: ``device`` before ``causal``.
"""

from __future__ import annotations

from typing import Any

from lightning_core import api as _api
from lightning_core.api import get_backend, get_engine, set_backend, set_engine
from lightning_core.ops.matmul import lightning_matmul, lightning_matmul_into
from lightning_core.sessions.integrated import (
    clear_integrated_attention_session_cache as clear_attention_session_cache,
)
from lightning_core.sessions.integrated import (
    lightning_conv_attention_torchstrong_nchw,
    lightning_conv_attention_torchstrong_nchw_ab_report,
)

__all__ = [
    "set_backend",
    "get_backend",
    "set_engine",
    "get_engine",
    "lightning_matmul",
    "lightning_matmul_into",
    "lightning_attention",
    "lightning_conv_relu_nchw",
    "lightning_conv_attention_torchstrong_nchw",
    "lightning_conv_attention_torchstrong_nchw_ab_report",
    "clear_attention_session_cache",
]


def lightning_attention(q: Any, k: Any, v: Any, seq: int, head_dim: int, device: str = "auto",
                        causal: bool = False) -> Any:
    """Engine-aware single-head attention on flat arrays (seed order: device, then causal)."""
    return _api.attention(q, k, v, seq, head_dim, causal, device)


def lightning_conv_relu_nchw(x: Any, weight: Any, bias: Any, stride_h: int = 1,
                             stride_w: int = 1, pad_h: int = 0, pad_w: int = 0,
                             device: str = "auto", out: Any = None) -> Any:
    """Engine-aware conv + bias + ReLU; writes into ``out`` when given."""
    if out is not None:
        return _api.conv_relu_nchw_into(x, weight, bias, out, stride_h, stride_w, pad_h, pad_w,
                                        device)
    return _api.conv_relu_nchw(x, weight, bias, stride_h, stride_w, pad_h, pad_w, device)
