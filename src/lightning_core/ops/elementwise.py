"""Binary elementwise ops with the seed's names: ``vector_add`` and ``matrix_sub/add/mul/div``.

``vector_add`` takes two arrays of the same shape (any rank) and returns that shape (a list
when ``a`` is a list, as in the seed). The ``matrix_*`` forms take flat inputs of
``rows*cols`` values (or ``[rows, cols]`` arrays) and return a flat result. No broadcasting.
Division follows IEEE like NumPy: ``x/0 = ±inf``, ``0/0 = nan``. An ``_into`` buffer may be
exactly one of the inputs (in place); any other overlap with an input is an ``AliasingError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, PolicyError, ShapeError
from ..runtime import dispatch as _dispatch
from ..runtime.arrays import as_operands, check_out
from ..runtime.dispatch import Call, LaneMiss, execute
from ..runtime.policy import ONE_SHOT, IoPlan, MatrixElementwiseIoPolicy, VectorAddIoPolicy
from ._checks import dim, flat_view, shape_text

__all__ = [
    "vector_add",
    "vector_add_into",
    "vector_add_with_policy",
    "matrix_sub",
    "matrix_sub_into",
    "matrix_sub_with_policy",
    "matrix_add",
    "matrix_add_into",
    "matrix_add_with_policy",
    "matrix_mul",
    "matrix_mul_into",
    "matrix_mul_with_policy",
    "matrix_div",
    "matrix_div_into",
    "matrix_div_with_policy",
    "binary_reference",
]

_REFERENCE = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}


def binary_reference(a: Any, b: Any, kind: str = "add") -> np.ndarray:
    """Float64 reference of ``a <kind> b`` (kind: add, sub, mul, div)."""
    if kind not in _REFERENCE:
        raise InvalidArgumentError(f"[binary_reference] kind must be one of "
                                   f"{', '.join(_REFERENCE)}; got {kind!r}")
    with np.errstate(all="ignore"):
        return _REFERENCE[kind](np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def _plan(op: str, policy: Any, expected: type) -> IoPlan:
    if policy is None:
        return ONE_SHOT
    if not isinstance(policy, MatrixElementwiseIoPolicy):
        raise PolicyError(f"[{op}] policy must be a {expected.__name__}, got "
                          f"{type(policy).__name__}")
    return policy.plan()


def _run(op: str, kind: str, a: Any, b: Any, out: Any, device: Any, *,
         flat: tuple[Any, Any] | None = None, policy: Any = None,
         miss: LaneMiss | None = None) -> Any:
    """The full road of one call. Every public function without a policy has tried the call's
    lane itself (one Python frame less on the lane) and passes its ``miss``; policy calls have
    no lane."""
    lane = None if miss is None else miss.key
    plan = _plan(op, policy, VectorAddIoPolicy if flat is None else MatrixElementwiseIoPolicy)
    (oa, ob), dtype = as_operands(op, ("a", "b"), (a, b))
    if flat is not None:
        shape = (dim(op, "rows", flat[0]), dim(op, "cols", flat[1]))
        oa.array = flat_view(op, "a", oa.array, shape)
        ob.array = flat_view(op, "b", ob.array, shape)
    else:
        shape = tuple(oa.array.shape)
        if tuple(ob.array.shape) != shape:
            raise ShapeError(f"[{op}] a and b must have the same shape: a is "
                             f"{shape_text(shape)}, b is {shape_text(tuple(ob.array.shape))}")
    native_out = None
    if out is not None:
        native_out = check_out(op, out, shape, dtype, (oa, ob), flat_ok=flat is not None,
                               alias_ok=True)
    call = Call(op, "binary", (oa, ob), shape, dtype, {"kind": kind}, native_out, plan)
    result = execute(call, device, lane=lane,
                     final=(shape[0] * shape[1],) if flat is not None else None)
    if out is not None:
        return out
    if flat is not None:
        result = result.reshape(shape[0] * shape[1])
    return result.tolist() if isinstance(a, list) else result


def vector_add(a: Any, b: Any, device: str = "auto") -> Any:
    """``a + b`` for two arrays of the same shape (a list when ``a`` is a list)."""
    result = _dispatch.lane_call("vector_add", device, ("add",), (a, b), None)
    if type(result) is not LaneMiss:
        return result
    return _run("vector_add", "add", a, b, None, device, miss=result)


def vector_add_into(a: Any, b: Any, out: Any, device: str = "auto") -> Any:
    """``a + b`` written into ``out`` (may be ``a`` or ``b``); returns ``out``."""
    result = _dispatch.lane_call("vector_add_into", device, ("add",), (a, b), out)
    if type(result) is not LaneMiss:
        return result
    return _run("vector_add_into", "add", a, b, out, device, miss=result)


def vector_add_with_policy(a: Any, b: Any, device: str = "auto",
                           policy: VectorAddIoPolicy | None = None) -> Any:
    """``a + b`` under an explicit ``VectorAddIoPolicy``."""
    return _run("vector_add_with_policy", "add", a, b, None, device,
                policy=VectorAddIoPolicy() if policy is None else policy)


def matrix_sub(a: Any, b: Any, rows: int, cols: int, device: str = "auto") -> Any:
    """``a - b`` over ``rows*cols`` values; returns a flat result."""
    result = _dispatch.lane_call("matrix_sub", device, ("sub", rows, cols), (a, b), None)
    if type(result) is not LaneMiss:
        return result
    return _run("matrix_sub", "sub", a, b, None, device, flat=(rows, cols), miss=result)


def matrix_sub_into(a: Any, b: Any, out: Any, rows: int, cols: int,
                    device: str = "auto") -> Any:
    """``a - b`` written into ``out`` (flat or ``[rows, cols]``; may be ``a`` or ``b``)."""
    result = _dispatch.lane_call("matrix_sub_into", device, ("sub", rows, cols), (a, b), out)
    if type(result) is not LaneMiss:
        return result
    return _run("matrix_sub_into", "sub", a, b, out, device, flat=(rows, cols), miss=result)


def matrix_sub_with_policy(a: Any, b: Any, rows: int, cols: int, device: str = "auto",
                           policy: MatrixElementwiseIoPolicy | None = None) -> Any:
    """``a - b`` under an explicit ``MatrixElementwiseIoPolicy``; returns a flat result."""
    return _run("matrix_sub_with_policy", "sub", a, b, None, device, flat=(rows, cols),
                policy=MatrixElementwiseIoPolicy() if policy is None else policy)


def matrix_add(a: Any, b: Any, rows: int, cols: int, device: str = "auto") -> Any:
    """``a + b`` over ``rows*cols`` values; returns a flat result."""
    result = _dispatch.lane_call("matrix_add", device, ("add", rows, cols), (a, b), None)
    if type(result) is not LaneMiss:
        return result
    return _run("matrix_add", "add", a, b, None, device, flat=(rows, cols), miss=result)


def matrix_add_into(a: Any, b: Any, out: Any, rows: int, cols: int,
                    device: str = "auto") -> Any:
    """``a + b`` written into ``out`` (flat or ``[rows, cols]``; may be ``a`` or ``b``)."""
    result = _dispatch.lane_call("matrix_add_into", device, ("add", rows, cols), (a, b), out)
    if type(result) is not LaneMiss:
        return result
    return _run("matrix_add_into", "add", a, b, out, device, flat=(rows, cols), miss=result)


def matrix_add_with_policy(a: Any, b: Any, rows: int, cols: int, device: str = "auto",
                           policy: MatrixElementwiseIoPolicy | None = None) -> Any:
    """``a + b`` under an explicit ``MatrixElementwiseIoPolicy``; returns a flat result."""
    return _run("matrix_add_with_policy", "add", a, b, None, device, flat=(rows, cols),
                policy=MatrixElementwiseIoPolicy() if policy is None else policy)


def matrix_mul(a: Any, b: Any, rows: int, cols: int, device: str = "auto") -> Any:
    """Elementwise ``a * b`` over ``rows*cols`` values; returns a flat result."""
    result = _dispatch.lane_call("matrix_mul", device, ("mul", rows, cols), (a, b), None)
    if type(result) is not LaneMiss:
        return result
    return _run("matrix_mul", "mul", a, b, None, device, flat=(rows, cols), miss=result)


def matrix_mul_into(a: Any, b: Any, out: Any, rows: int, cols: int,
                    device: str = "auto") -> Any:
    """Elementwise ``a * b`` written into ``out`` (flat or ``[rows, cols]``)."""
    result = _dispatch.lane_call("matrix_mul_into", device, ("mul", rows, cols), (a, b), out)
    if type(result) is not LaneMiss:
        return result
    return _run("matrix_mul_into", "mul", a, b, out, device, flat=(rows, cols), miss=result)


def matrix_mul_with_policy(a: Any, b: Any, rows: int, cols: int, device: str = "auto",
                           policy: MatrixElementwiseIoPolicy | None = None) -> Any:
    """Elementwise ``a * b`` under an explicit policy; returns a flat result."""
    return _run("matrix_mul_with_policy", "mul", a, b, None, device, flat=(rows, cols),
                policy=MatrixElementwiseIoPolicy() if policy is None else policy)


def matrix_div(a: Any, b: Any, rows: int, cols: int, device: str = "auto") -> Any:
    """Elementwise ``a / b`` (IEEE: x/0 = inf, 0/0 = nan); returns a flat result."""
    result = _dispatch.lane_call("matrix_div", device, ("div", rows, cols), (a, b), None)
    if type(result) is not LaneMiss:
        return result
    return _run("matrix_div", "div", a, b, None, device, flat=(rows, cols), miss=result)


def matrix_div_into(a: Any, b: Any, out: Any, rows: int, cols: int,
                    device: str = "auto") -> Any:
    """Elementwise ``a / b`` written into ``out`` (flat or ``[rows, cols]``)."""
    result = _dispatch.lane_call("matrix_div_into", device, ("div", rows, cols), (a, b), out)
    if type(result) is not LaneMiss:
        return result
    return _run("matrix_div_into", "div", a, b, out, device, flat=(rows, cols), miss=result)


def matrix_div_with_policy(a: Any, b: Any, rows: int, cols: int, device: str = "auto",
                           policy: MatrixElementwiseIoPolicy | None = None) -> Any:
    """Elementwise ``a / b`` under an explicit policy; returns a flat result."""
    return _run("matrix_div_with_policy", "div", a, b, None, device, flat=(rows, cols),
                policy=MatrixElementwiseIoPolicy() if policy is None else policy)
