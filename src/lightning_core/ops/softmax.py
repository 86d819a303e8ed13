"""Softmax along one axis of an array of any rank (numerically stable: the max is subtracted).

Backends see rows: the op module views ``x`` as ``[rows, cols]`` with the softmax axis last.
When the axis is not last it is moved there with one contiguous copy and the result is moved
back. A zero-length axis gives an empty result (NumPy semantics); NaN or +inf in a row makes
that row NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..runtime import dispatch as _dispatch
from ..runtime.arrays import as_operands, check_out, is_device_array, to_numpy
from ..runtime.dispatch import Call, LaneMiss, execute
from ..runtime.policy import ONE_SHOT, IoPlan
from ._checks import dim, shape_text

__all__ = ["softmax", "softmax_into", "softmax_reference"]


def softmax_reference(x: Any, axis: int = -1) -> np.ndarray:
    """Float64 reference: ``exp(x - max) / sum(exp(x - max))`` along ``axis``."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)


def _axis(op: str, axis: Any, shape: tuple[int, ...]) -> int:
    """Normalise ``axis`` to ``0 <= axis < len(shape)``."""
    value = dim(op, "axis", axis, minimum=None)
    ndim = len(shape)
    if ndim == 0:
        raise ShapeError(f"[{op}] x must have at least 1 dimension, got a scalar")
    if not -ndim <= value < ndim:
        raise ShapeError(f"[{op}] axis {value} is out of range for x of shape "
                         f"{shape_text(shape)} (valid: {-ndim}..{ndim - 1})")
    return value % ndim


def _move_back(result: Any, moved_shape: tuple[int, ...], perm: tuple[int, ...],
               native_out: Any) -> Any:
    """Undo the axis move: a new C-contiguous array, or a copy into ``native_out``."""
    back = result.reshape(moved_shape).transpose(tuple(int(i) for i in np.argsort(perm)))
    if native_out is None:
        return back.copy(order="C")
    if type(native_out) is np.ndarray:
        np.copyto(native_out, to_numpy(back))
    elif type(back) is np.ndarray:
        native_out.set(np.ascontiguousarray(back))  # a cpu run's result into a CuPy out
    else:
        native_out[...] = back
    return native_out


def _run(op: str, x: Any, out: Any, axis: Any, device: Any) -> Any:
    # Calls take the fast lane when their axis is last (a moved axis is a copy, which never
    # has one): the checks cost a small call as much as the softmax.
    result = _dispatch.lane_call(op, device, (axis,), (x,), out)
    if type(result) is not LaneMiss:
        return result
    lane = result.key
    (ox,), dtype = as_operands(op, ("x",), (x,))
    shape = tuple(ox.array.shape)
    ax = _axis(op, axis, shape)
    native_out = check_out(op, out, shape, dtype, (ox,)) if out is not None else None
    last = ax == len(shape) - 1
    perm = tuple(d for d in range(len(shape)) if d != ax) + (ax,)
    plan = ONE_SHOT
    if not last:
        # Backends want the softmax axis contiguous: one copy with it moved last.
        ox.array = ox.array.transpose(perm).copy(order="C")
        ox.copied = True
        if native_out is not None and is_device_array(native_out):
            plan = IoPlan(download=False)  # the result goes into out device to device
    moved_shape = tuple(ox.array.shape)
    rows = 1
    for d in moved_shape[:-1]:
        rows *= d
    ox.array = ox.array.reshape(rows, moved_shape[-1])
    call = Call(op, "softmax", (ox,), tuple(ox.array.shape), dtype, {},
                native_out if last else None, plan)
    result = execute(call, device, lane=lane, final=shape)
    if not last:
        result = _move_back(result, moved_shape, perm, native_out)
        return out if out is not None else result
    return out if out is not None else result.reshape(shape)


def softmax(x: Any, axis: int = -1, device: str = "auto") -> Any:
    """Softmax of ``x`` along ``axis`` (any rank); returns an array of ``x``'s shape."""
    return _run("softmax", x, None, axis, device)


def softmax_into(x: Any, out: Any, axis: int = -1, device: str = "auto") -> Any:
    """Softmax of ``x`` along ``axis`` written into ``out`` (same shape); returns ``out``."""
    return _run("softmax_into", x, out, axis, device)
