"""Single-head attention ``softmax(Q Kᵀ / √d) V`` on ``[seq, d]`` inputs, with the seed's names.

``causal=True`` masks key ``j > i`` for query ``i``: a masked key takes no part in row ``i``,
so a NaN or Inf in a masked row of ``k`` or ``v`` does not reach it. ``seq == 0`` gives an
empty result; ``head_dim == 0`` is a ``ShapeError`` (the scale ``1/√d`` does not exist).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import PolicyError, ShapeError
from ..runtime import dispatch as _dispatch
from ..runtime.arrays import as_operands, check_out
from ..runtime.dispatch import Call, LaneMiss, execute
from ..runtime.policy import ONE_SHOT, AttentionIoPolicy, current_precision
from ._checks import dim, flag, flat_view, need_rank, shape_text

__all__ = [
    "attention2d",
    "attention2d_into",
    "attention_forward",
    "attention_forward_with_policy",
    "lightning_attention",
    "lightning_attention_into",
    "attention_reference",
]


def attention_reference(q: Any, k: Any, v: Any, causal: bool,
                        scale: float | None = None,
                        post: tuple[float, float, bool] | None = None) -> np.ndarray:
    """Float64 reference."""
    q64, k64, v64 = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    seq, d = q64.shape
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    scores = (q64 @ k64.T) * scale
    out = np.empty((seq, v64.shape[1]), dtype=np.float64)
    for i in range(seq):
        # Row by row so that masked keys are left out of the sum, not multiplied by zero.
        keys = i + 1 if causal else seq
        row = scores[i, :keys]
        p = np.exp(row - row.max())
        out[i] = (p / p.sum()) @ v64[:keys]
    if post is not None:
        out_scale, out_bias, relu = post
        out = out * out_scale + out_bias
        if relu:
            out = np.maximum(out, 0.0)
    return out


def _postprocess(op: str, policy: Any) -> tuple[float, float, bool] | None:
    if not isinstance(policy, AttentionIoPolicy):
        raise PolicyError(f"[{op}] policy must be an lc.AttentionIoPolicy, got "
                          f"{type(policy).__name__}")
    try:
        return policy.postprocess()
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"[{op}] policy output_scale/output_bias must be numbers: "
                          f"{exc}") from None


def _run(op: str, q: Any, k: Any, v: Any, out: Any, causal: Any, device: Any, *,
         flat: tuple[Any, Any] | None = None, policy: AttentionIoPolicy | None = None,
         miss: LaneMiss | None = None) -> Any:
    """One call: its lane (unless the caller tried it and passes the ``miss``: the hot public
    functions do, one Python frame less per call), else the full road."""
    if policy is None and miss is None:
        scalars = (causal, current_precision(op), *(flat or ()))
        miss = _dispatch.lane_call(op, device, scalars, (q, k, v), out)
        if type(miss) is not LaneMiss:
            return miss
    lane = None if miss is None else miss.key
    is_causal = flag(op, "causal", causal)
    post = _postprocess(op, policy) if policy is not None else None
    operands, dtype = as_operands(op, ("q", "k", "v"), (q, k, v))
    if flat is not None:
        seq = dim(op, "seq_len", flat[0])
        d = dim(op, "head_dim", flat[1])
        for name, operand in zip("qkv", operands, strict=True):
            operand.array = flat_view(op, name, operand.array, (seq, d))
    else:
        for name, operand in zip("qkv", operands, strict=True):
            need_rank(op, name, operand.array, 2)
        shapes = [tuple(o.array.shape) for o in operands]
        if len(set(shapes)) != 1:
            raise ShapeError(f"[{op}] q, k and v must have the identical shape [seq, d]; got "
                             f"q {shape_text(shapes[0])}, k {shape_text(shapes[1])}, "
                             f"v {shape_text(shapes[2])}")
        seq, d = shapes[0]
    if d == 0:
        raise ShapeError(f"[{op}] head_dim must be >= 1, got 0 (q is {shape_text((seq, d))})")
    out_shape = (seq, d)
    native_out = None
    if out is not None:
        native_out = check_out(op, out, out_shape, dtype, operands, flat_ok=flat is not None)
    params = {"causal": is_causal, "scale": 1.0 / math.sqrt(d), "post": post}
    call = Call(op, "attention", operands, out_shape, dtype, params, native_out,
                policy.plan() if policy is not None else ONE_SHOT, current_precision(op))
    result = execute(call, device, lane=lane, final=(seq * d,) if flat is not None else None)
    if out is not None:
        return out
    return result.reshape(seq * d) if flat is not None else result


def attention2d(q: Any, k: Any, v: Any, causal: bool = False, device: str = "auto") -> Any:
    """Attention on ``[seq, d]`` inputs; returns ``[seq, d]``."""
    result = _dispatch.lane_call("attention2d", device, (causal, current_precision("attention2d")),
                                 (q, k, v), None)
    if type(result) is not LaneMiss:
        return result
    return _run("attention2d", q, k, v, None, causal, device, miss=result)


def attention2d_into(q: Any, k: Any, v: Any, out: Any, causal: bool = False,
                     device: str = "auto") -> Any:
    """Attention written into ``out`` of shape ``[seq, d]``; returns ``out``."""
    return _run("attention2d_into", q, k, v, out, causal, device)


def attention_forward(q: Any, k: Any, v: Any, seq_len: int, head_dim: int,
                      causal: bool = False, device: str = "auto") -> Any:
    """Attention on flat inputs of ``seq_len*head_dim`` values; returns a flat result."""
    return _run("attention_forward", q, k, v, None, causal, device, flat=(seq_len, head_dim))


def attention_forward_with_policy(q: Any, k: Any, v: Any, seq_len: int, head_dim: int,
                                  causal: bool = False, device: str = "auto",
                                  policy: AttentionIoPolicy | None = None) -> Any:
    """Flat attention under an ``AttentionIoPolicy`` (I/O plan and output postprocess)."""
    return _run("attention_forward_with_policy", q, k, v, None, causal, device,
                flat=(seq_len, head_dim),
                policy=AttentionIoPolicy() if policy is None else policy)


def lightning_attention(q: Any, k: Any, v: Any, seq_len: int, head_dim: int,
                        causal: bool = False, device: str = "auto") -> Any:
    """The seed's integrated name for ``attention_forward``."""
    return _run("lightning_attention", q, k, v, None, causal, device, flat=(seq_len, head_dim))


def lightning_attention_into(q: Any, k: Any, v: Any, out: Any, seq_len: int, head_dim: int,
                             causal: bool = False, device: str = "auto") -> Any:
    """Flat attention written into ``out`` (flat ``seq_len*head_dim`` or ``[seq, d]``)."""
    return _run("lightning_attention_into", q, k, v, out, causal, device,
                flat=(seq_len, head_dim))


def attention_packed(y: Any, seq_len: int, head_dim: int, device: str = "auto") -> Any:
    """Non-causal attention of Q, K, V cut in that order from ``y``'s values repeated cyclically
    to ``3*seq_len*head_dim`` (the integrated conv -> attention packing); returns
    ``[seq_len, head_dim]``. Internal: on CUDA the kernel reads Q, K, V in place, so the
    packing costs no kernel and no copy."""
    op = "attention_packed"
    result = _dispatch.lane_call(op, device, (seq_len, head_dim), (y,), None)
    if type(result) is not LaneMiss:
        return result
    lane = result.key
    seq = dim(op, "seq_len", seq_len, minimum=1)
    d = dim(op, "head_dim", head_dim, minimum=1)
    (oy,), dtype = as_operands(op, ("y",), (y,))
    if oy.array.size == 0:
        raise ShapeError(f"[{op}] y is empty: there are no values to repeat")
    oy.array = oy.array.reshape(-1)
    call = Call(op, "attention_packed", (oy,), (seq, d), dtype, {"seq": seq, "d": d},
                precision=current_precision(op))
    return execute(call, device, lane=lane)
