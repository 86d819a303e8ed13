"""The seed's integrated conv → attention path, eager or as one captured graph.

conv2d + bias + ReLU → flatten → repeat cyclically to ``3·seq·d`` values → slice Q, K, V →
single-head attention (non-causal). ``execution_mode="graph"`` captures the chain once per
shape (and per set of device input addresses) and replays it; ``"eager"`` runs the operators
one by one. Both compute the same function; ``..._ab_report`` measures one against the other.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, ShapeError
from ..ops._checks import dim
from ..runtime.arrays import array_module, is_device_array
from .capture import CapturedFunction
from .core import shape_of

__all__ = [
    "lightning_conv_attention_torchstrong_nchw",
    "lightning_conv_attention_torchstrong_nchw_into",
    "lightning_conv_attention_torchstrong_nchw_ab_report",
    "clear_integrated_attention_session_cache",
    "conv_attention_reference",
]

_OP = "conv_attention_torchstrong_nchw"
_CACHE: OrderedDict[tuple[Any, ...], CapturedFunction] = OrderedDict()
_CACHE_LIMIT = 32
_ZERO_BIAS: dict[tuple[Any, ...], Any] = {}


def _pack_qkv(y: Any, seq: int, d: int) -> tuple[Any, Any, Any]:
    """Flatten ``y``, repeat it cyclically to 3·seq·d values, and slice q, k, v."""
    xp = array_module(y)
    flat = y.reshape(-1)
    total = 3 * seq * d
    reps = -(-total // flat.size)
    packed = xp.tile(flat, reps)[:total] if reps > 1 else flat[:total]
    sd = seq * d
    return (packed[:sd].reshape(seq, d), packed[sd:2 * sd].reshape(seq, d),
            packed[2 * sd:].reshape(seq, d))


def _chain(x: Any, w: Any, bias: Any, seq: int, d: int, geometry: tuple[int, int, int, int],
           device: str) -> Any:
    from ..ops.attention import attention_packed
    from ..ops.conv import lightning_conv_relu_nchw

    sh, sw, ph, pw = geometry
    y = lightning_conv_relu_nchw(x, w, bias, sh, sw, ph, pw, device)
    return attention_packed(y, seq, d, device).reshape(-1)


def conv_attention_reference(x: Any, w: Any, bias: Any, seq_len: int, head_dim: int,
                             stride_h: int = 1, stride_w: int = 1, pad_h: int = 0,
                             pad_w: int = 0) -> np.ndarray:
    """Float64 reference of the whole chain (flat ``seq_len*head_dim`` result)."""
    from ..ops.attention import attention_reference
    from ..ops.conv import conv2d_reference

    y = conv2d_reference(x, w, bias, stride_h, stride_w, pad_h, pad_w, relu=True)
    q, k, v = _pack_qkv(np.asarray(y, dtype=np.float64), seq_len, head_dim)
    return np.asarray(attention_reference(q, k, v, False)).reshape(-1)


def _check(x: Any, w: Any, seq_len: int, head_dim: int, mode: str) -> tuple[int, int]:
    seq = dim(_OP, "seq_len", seq_len, minimum=1)
    d = dim(_OP, "head_dim", head_dim, minimum=1)
    if mode not in ("eager", "graph"):
        raise InvalidArgumentError(f"[{_OP}] execution_mode must be 'eager' or 'graph', got "
                                   f"{mode!r}")
    if len(shape_of(x)) != 4 or len(shape_of(w)) != 4:
        raise ShapeError(f"[{_OP}] x and w must be 4-D (NCHW, OIHW); got {shape_of(x)} and "
                         f"{shape_of(w)}")
    return seq, d


def _graph(x: Any, w: Any, bias: Any, seq: int, d: int, geometry: tuple[int, int, int, int],
           device: str) -> Any:
    if bias is None:
        # One zero bias per (module, channels, dtype): a fresh one per call would have a new
        # address, and the "address" capture would then capture again every call.
        zkey = (array_module(w).__name__, shape_of(w)[0], np.dtype(w.dtype).name)
        bias = _ZERO_BIAS.get(zkey)
        if bias is None:
            bias = _ZERO_BIAS[zkey] = array_module(w).zeros((shape_of(w)[0],), dtype=w.dtype)
    key = (shape_of(x), shape_of(w), geometry, seq, d, x.dtype, device, type(x))
    sess = _CACHE.get(key)
    if sess is None:
        sess = CapturedFunction(lambda a, b, c: _chain(a, b, c, seq, d, geometry, device),
                                x, w, bias, device=device, inputs="address")
        _CACHE[key] = sess
        while len(_CACHE) > _CACHE_LIMIT:
            _CACHE.popitem(last=False)
        return sess.outputs
    _CACHE.move_to_end(key)
    return sess(x, w, bias)


def lightning_conv_attention_torchstrong_nchw(x: Any, w: Any, bias: Any, seq_len: int,
                                              head_dim: int, stride_h: int = 1,
                                              stride_w: int = 1, pad_h: int = 0, pad_w: int = 0,
                                              device: str = "auto",
                                              execution_mode: str = "eager") -> Any:
    """conv+ReLU → QKV packing → attention; returns ``seq_len*head_dim`` values (flat)."""
    seq, d = _check(x, w, seq_len, head_dim, execution_mode)
    geometry = (stride_h, stride_w, pad_h, pad_w)
    if execution_mode == "eager":
        return _chain(x, w, bias, seq, d, geometry, device)
    out = _graph(x, w, bias, seq, d, geometry, device)
    if is_device_array(x):
        return out
    host = np.empty(out.shape, dtype=out.dtype)
    host[...] = out.get() if is_device_array(out) else out
    return host


def lightning_conv_attention_torchstrong_nchw_into(x: Any, w: Any, bias: Any, out: Any,
                                                   seq_len: int, head_dim: int,
                                                   stride_h: int = 1, stride_w: int = 1,
                                                   pad_h: int = 0, pad_w: int = 0,
                                                   device: str = "auto",
                                                   execution_mode: str = "eager") -> Any:
    """As above, written into ``out`` (flat ``seq_len*head_dim`` or ``[seq_len, head_dim]``)."""
    seq, d = _check(x, w, seq_len, head_dim, execution_mode)
    if int(np.prod(shape_of(out))) != seq * d:
        from ..errors import OutBufferError

        raise OutBufferError(f"[{_OP}] out has shape {shape_of(out)}, expected {seq * d} values")
    result = lightning_conv_attention_torchstrong_nchw(x, w, bias, seq, d, stride_h, stride_w,
                                                       pad_h, pad_w, device, execution_mode)
    target = out.reshape(-1)
    if is_device_array(target) or not is_device_array(result):
        target[...] = result
    else:
        target[...] = result.get()
    return out


def lightning_conv_attention_torchstrong_nchw_ab_report(
        x: Any, w: Any, bias: Any, seq_len: int, head_dim: int, stride_h: int = 1,
        stride_w: int = 1, pad_h: int = 0, pad_w: int = 0, device: str = "auto",
        warmup: int = 1, repeat: int = 5, atol: float = 1e-4, rtol: float = 1e-4
) -> dict[str, Any]:
    """Run eager and graph modes, compare their outputs and time both (median ms)."""
    args = (x, w, bias, seq_len, head_dim, stride_h, stride_w, pad_h, pad_w, device)
    results, times = {}, {}
    for mode in ("eager", "graph"):
        for _ in range(max(0, warmup)):
            lightning_conv_attention_torchstrong_nchw(*args, execution_mode=mode)
        samples = []
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter_ns()
            res = lightning_conv_attention_torchstrong_nchw(*args, execution_mode=mode)
            if is_device_array(res):
                res = res.get()
            samples.append((time.perf_counter_ns() - t0) / 1e6)
        results[mode] = np.asarray(res, dtype=np.float64)
        times[mode] = float(np.median(samples))
    diff = np.abs(results["eager"] - results["graph"])
    denom = np.maximum(np.abs(results["eager"]), 1e-30)
    ratio = times["graph"] / times["eager"] if times["eager"] > 0 else math.nan
    winner = "tie" if abs(ratio - 1.0) < 0.02 else ("graph" if ratio < 1.0 else "eager")
    return {
        "seq_len": seq_len, "head_dim": head_dim, "warmup": warmup, "repeat": repeat,
        "device": device,
        "allclose": bool(np.allclose(results["graph"], results["eager"], atol=atol, rtol=rtol)),
        "max_abs_diff": float(diff.max(initial=0.0)),
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "max_rel_diff": float((diff / denom).max(initial=0.0)),
        "atol": atol, "rtol": rtol, "eager_ms": times["eager"], "graph_ms": times["graph"],
        "graph_over_eager": ratio,
        "eager_over_graph": 1.0 / ratio if ratio and math.isfinite(ratio) else math.nan,
        "winner": winner,
    }


def clear_integrated_attention_session_cache() -> None:
    """Drop every cached conv → attention capture (and the zero biases they read)."""
    _CACHE.clear()
    _ZERO_BIAS.clear()
