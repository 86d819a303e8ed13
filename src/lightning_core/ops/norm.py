"""Layer normalisation over the last axis of an array of any rank (biased variance, as torch).

``y = (x - mean) / sqrt(var + eps) * weight + bias`` with ``weight`` and ``bias`` of the last
axis' length, each optional. Backends see ``x`` as ``[rows, cols]``. A last axis of length 0
is a ``ShapeError``; ``eps`` must be a finite number >= 0.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, ShapeError
from ..runtime import dispatch as _dispatch
from ..runtime.arrays import as_operands, check_out
from ..runtime.dispatch import Call, LaneMiss, execute
from ._checks import shape_text

__all__ = ["layer_norm", "layer_norm_into", "layer_norm_reference"]


def layer_norm_reference(x: Any, weight: Any = None, bias: Any = None,
                         eps: float = 1e-5) -> np.ndarray:
    """Float64 reference over the last axis."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = centred / np.sqrt(var + eps)
    if weight is not None:
        y = y * np.asarray(weight, dtype=np.float64)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return y


def _eps(op: str, eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise InvalidArgumentError(f"[{op}] eps must be a float, got {type(eps).__name__}")
    value = float(eps)
    if not math.isfinite(value) or value < 0.0:
        raise InvalidArgumentError(f"[{op}] eps must be finite and >= 0, got {value!r}")
    return value


def _run(op: str, x: Any, weight: Any, bias: Any, out: Any, eps: Any, device: Any) -> Any:
    values = tuple(v for v in (x, weight, bias) if v is not None)
    # eps and which of weight and bias are given are part of the lane's key.
    scalars = (eps, weight is None, bias is None)
    result = _dispatch.lane_call(op, device, scalars, values, out)
    if type(result) is not LaneMiss:
        return result
    lane = result.key
    eps_value = _eps(op, eps)
    names = ("x",) + (("weight",) if weight is not None else ()) + (
        ("bias",) if bias is not None else ())
    operands, dtype = as_operands(op, names, values)
    ox = operands[0]
    shape = tuple(ox.array.shape)
    if not shape or shape[-1] == 0:
        raise ShapeError(f"[{op}] x must have a last axis of length >= 1 to normalise over; "
                         f"got shape {shape_text(shape)}")
    cols = shape[-1]
    for name, operand in zip(names[1:], operands[1:], strict=True):
        if tuple(operand.array.shape) != (cols,):
            raise ShapeError(f"[{op}] {name} must have shape ({cols},) to match x's last axis "
                             f"(x is {shape_text(shape)}); got "
                             f"{shape_text(tuple(operand.array.shape))}")
    native_out = check_out(op, out, shape, dtype, operands) if out is not None else None
    rows = 1
    for d in shape[:-1]:
        rows *= d
    ox.array = ox.array.reshape(rows, cols)
    params = {"eps": eps_value, "has_weight": weight is not None, "has_bias": bias is not None}
    result = execute(Call(op, "layer_norm", operands, (rows, cols), dtype, params, native_out),
                     device, lane=lane, final=shape)
    return out if out is not None else result.reshape(shape)


def layer_norm(x: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5,
               device: str = "auto") -> Any:
    """Layer norm of ``x`` over its last axis, optionally scaled by ``weight`` and shifted."""
    return _run("layer_norm", x, weight, bias, None, eps, device)


def layer_norm_into(x: Any, weight: Any, bias: Any, out: Any, eps: float = 1e-5,
                    device: str = "auto") -> Any:
    """Layer norm written into ``out`` (``x``'s shape); returns ``out``."""
    return _run("layer_norm_into", x, weight, bias, out, eps, device)
