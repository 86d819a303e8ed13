"""Dense layer ``act(x @ w + bias)`` with ``w`` shaped ``[in, out]`` like the seed's matmul B.

``x`` is ``[..., in]`` (any leading dims, flattened to rows for the backends), ``bias`` is
``[out]`` or None, ``activation`` is None, "relu", "gelu" (= "gelu_tanh"), "gelu_tanh" or
"gelu_erf". The result is ``[..., out]``. ``in == 0`` gives ``act(bias)`` (NumPy's empty sum
is zero). Precision follows the policy, as for matmul.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, ShapeError
from ..runtime import dispatch as _dispatch
from ..runtime.arrays import as_operands, check_out
from ..runtime.dispatch import Call, LaneMiss, execute
from ..runtime.policy import ONE_SHOT, current_precision
from ._checks import need_rank, shape_text
from .activations import gelu_reference, relu_reference

__all__ = ["linear", "linear_into", "linear_reference"]

# Public activation names and the kernel parameter each maps to.
_ACTIVATIONS = {None: None, "relu": "relu", "gelu": "gelu_tanh", "gelu_tanh": "gelu_tanh",
                "gelu_erf": "gelu_erf"}


def linear_reference(x: Any, w: Any, bias: Any = None, activation: str | None = None
                     ) -> np.ndarray:
    """Float64 reference of ``act(x @ w + bias)``."""
    y = np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    kind = _ACTIVATIONS[activation]
    if kind == "relu":
        return relu_reference(y)
    if kind is not None:
        return gelu_reference(y, "tanh" if kind == "gelu_tanh" else "none")
    return y


def _activation(op: str, activation: Any) -> str | None:
    if not (activation is None or (isinstance(activation, str) and activation in _ACTIVATIONS)):
        names = ", ".join(repr(k) for k in _ACTIVATIONS)
        raise InvalidArgumentError(f"[{op}] activation must be one of {names}; "
                                   f"got {activation!r}")
    return _ACTIVATIONS[activation]


def _run(op: str, x: Any, w: Any, bias: Any, out: Any, activation: Any, device: Any,
         precision: str | None) -> Any:
    arrays = (x, w) if bias is None else (x, w, bias)
    scalars = (activation, current_precision(op, precision))
    result = _dispatch.lane_call(op, device, scalars, arrays, out)
    if type(result) is not LaneMiss:
        return result
    lane = result.key
    kind = _activation(op, activation)
    names = ("x", "w") + (("bias",) if bias is not None else ())
    values = (x, w) + ((bias,) if bias is not None else ())
    operands, dtype = as_operands(op, names, values)
    ox, ow = operands[0], operands[1]
    need_rank(op, "w", ow.array, 2)
    xshape = tuple(ox.array.shape)
    if not xshape:
        raise ShapeError(f"[{op}] x must be at least 1-D ([..., in]), got a scalar")
    k, n = ow.array.shape
    if xshape[-1] != k:
        raise ShapeError(f"[{op}] inner dimensions differ: x is {shape_text(xshape)}, "
                         f"w is {shape_text((k, n))} (w is [in, out])")
    if bias is not None and tuple(operands[2].array.shape) != (n,):
        raise ShapeError(f"[{op}] bias must have shape ({n},), got "
                         f"{shape_text(tuple(operands[2].array.shape))}")
    out_shape = xshape[:-1] + (n,)
    native_out = check_out(op, out, out_shape, dtype, operands) if out is not None else None
    prec = current_precision(op, precision)
    m = 1
    for d in xshape[:-1]:
        m *= d
    ox.array = ox.array.reshape(m, k)
    call = Call(op, "linear", operands, (m, n), dtype, {"activation": kind}, native_out,
                ONE_SHOT, prec)
    result = execute(call, device, lane=lane, final=out_shape)
    return out if out is not None else result.reshape(out_shape)


def linear(x: Any, w: Any, bias: Any = None, activation: str | None = None,
           device: str = "auto", *, precision: str | None = None) -> Any:
    """``act(x @ w + bias)`` for ``x [..., in]``, ``w [in, out]``; returns ``[..., out]``."""
    return _run("linear", x, w, bias, None, activation, device, precision)


def linear_into(x: Any, w: Any, bias: Any, out: Any, activation: str | None = None,
                device: str = "auto", *, precision: str | None = None) -> Any:
    """``act(x @ w + bias)`` written into ``out`` (``[..., out]``); returns ``out``."""
    return _run("linear_into", x, w, bias, out, activation, device, precision)
