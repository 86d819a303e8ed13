"""Elementwise activations: ``relu`` and ``gelu`` (tanh approximation or exact erf form).

Both keep the input's shape (any rank). An ``_into`` buffer may be exactly the input (in
place); any other overlap is an ``AliasingError``. NaN propagates.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ..runtime import dispatch as _dispatch
from ..runtime.arrays import as_operands, check_out
from ..runtime.dispatch import Call, LaneMiss, execute

__all__ = [
    "relu",
    "relu_into",
    "gelu",
    "gelu_into",
    "relu_reference",
    "gelu_reference",
]

_APPROXIMATIONS = ("tanh", "none")

# math.erf per element: slow, but an independent check of the backends' vectorised erf.
_ERF_PER_ELEMENT = np.frompyfunc(math.erf, 1, 1)


def relu_reference(x: Any) -> np.ndarray:
    """Float64 reference: ``max(x, 0)``."""
    return np.maximum(np.asarray(x, dtype=np.float64), 0.0)


def gelu_reference(x: Any, approximate: str = "tanh") -> np.ndarray:
    """Float64 reference of GELU (``approximate`` "tanh" or "none" for the erf form)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if approximate == "tanh":
            inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
            return 0.5 * x * (1.0 + np.tanh(inner))
        erf = _ERF_PER_ELEMENT(x / math.sqrt(2.0)).astype(np.float64)
        return 0.5 * x * (1.0 + erf)


def _check_approximate(op: str, approximate: Any) -> str:
    if not isinstance(approximate, str) or approximate not in _APPROXIMATIONS:
        raise InvalidArgumentError(f"[{op}] approximate must be one of "
                                   f"{', '.join(map(repr, _APPROXIMATIONS))}; "
                                   f"got {approximate!r}")
    return approximate


def _run(op: str, kernel: str, x: Any, out: Any, device: Any,
         params: dict[str, Any]) -> Any:
    scalars = tuple(params.values())
    result = _dispatch.lane_call(op, device, scalars, (x,), out)
    if type(result) is not LaneMiss:
        return result
    lane = result.key
    (ox,), dtype = as_operands(op, ("x",), (x,))
    shape = tuple(ox.array.shape)
    native_out = None
    if out is not None:
        native_out = check_out(op, out, shape, dtype, (ox,), alias_ok=True)
    result = execute(Call(op, kernel, (ox,), shape, dtype, params, native_out), device,
                     lane=lane)
    return out if out is not None else result


def relu(x: Any, device: str = "auto") -> Any:
    """``max(x, 0)`` elementwise, any shape."""
    return _run("relu", "relu", x, None, device, {})


def relu_into(x: Any, out: Any, device: str = "auto") -> Any:
    """``max(x, 0)`` written into ``out`` (may be ``x``); returns ``out``."""
    return _run("relu_into", "relu", x, out, device, {})


def gelu(x: Any, approximate: str = "tanh", device: str = "auto") -> Any:
    """GELU elementwise: ``approximate="tanh"`` (default) or ``"none"`` (exact, erf)."""
    mode = _check_approximate("gelu", approximate)
    return _run("gelu", "gelu", x, None, device, {"approximate": mode})


def gelu_into(x: Any, out: Any, approximate: str = "tanh", device: str = "auto") -> Any:
    """GELU written into ``out`` (may be ``x``); returns ``out``."""
    mode = _check_approximate("gelu_into", approximate)
    return _run("gelu_into", "gelu", x, out, device, {"approximate": mode})
