"""Embedding lookup: rows of ``table [vocab, d]`` gathered by integer ``ids`` of any shape.

The result is ``[*ids.shape, d]``. Ids must be integers (bool and float ids are a
``DTypeError``) within ``[0, vocab)``: an id outside is an ``InvalidArgumentError`` naming it,
raised before any work; negative ids are errors, not wrap-around. Device-resident ids stay on
the device: their range is checked there with a min/max reduction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DTypeError, InvalidArgumentError
from ..runtime.arrays import Operand, adopt, as_operands, check_out, is_device_array
from ..runtime.dispatch import Call, execute
from ._checks import need_rank

__all__ = ["embedding", "embedding_into", "embedding_reference"]


def embedding_reference(ids: Any, table: Any) -> np.ndarray:
    """Float64 reference: ``table[ids]``."""
    return np.asarray(table, dtype=np.float64)[np.asarray(ids, dtype=np.int64)]


def _ids_operand(op: str, ids: Any) -> Operand:
    """Integer ids as a C-contiguous int64 operand, left where they live."""
    arr = ids if type(ids) is np.ndarray else adopt(op, "ids", ids)
    on_device = type(arr) is not np.ndarray and is_device_array(arr)
    if isinstance(ids, list | tuple) and arr.size == 0:
        arr = arr.astype(np.int64)  # np.asarray([]) is float64; an empty list holds no floats
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"[{op}] ids must be an integer array, got dtype "
                         f"{getattr(arr.dtype, 'name', arr.dtype)}")
    return Operand(arr, False, on_device)


def _check_range(op: str, ids: Any, vocab: int) -> None:
    """Raise for the first out-of-range id found (the smallest if any is negative)."""
    if ids.size == 0:
        return
    # On a device array min()/max() reduce there; int() brings back one scalar each.
    low, high = int(ids.min()), int(ids.max())
    bad = low if low < 0 else high if high >= vocab else None
    if bad is not None:
        raise InvalidArgumentError(f"[{op}] id {bad} is out of range: ids must be in "
                                   f"[0, {vocab}) for a table of {vocab} rows")


def _as_int64(operand: Operand) -> None:
    arr = operand.array
    if arr.dtype != np.int64:
        arr = arr.astype(np.int64)
        operand.copied = True
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
        operand.copied = True
    operand.array = arr


def _run(op: str, ids: Any, table: Any, out: Any, device: Any) -> Any:
    oid = _ids_operand(op, ids)
    (otable,), dtype = as_operands(op, ("table",), (table,))
    need_rank(op, "table", otable.array, 2)
    vocab, width = otable.array.shape
    _check_range(op, oid.array, vocab)
    _as_int64(oid)
    out_shape = tuple(oid.array.shape) + (width,)
    native_out = None
    if out is not None:
        native_out = check_out(op, out, out_shape, dtype, (oid, otable))
    result = execute(Call(op, "embedding", (oid, otable), out_shape, dtype, {}, native_out),
                     device)
    return out if out is not None else result


def embedding(ids: Any, table: Any, device: str = "auto") -> Any:
    """Rows of ``table [vocab, d]`` for integer ``ids`` of any shape; returns ``[*ids, d]``."""
    return _run("embedding", ids, table, None, device)


def embedding_into(ids: Any, table: Any, out: Any, device: str = "auto") -> Any:
    """Embedding lookup written into ``out`` (``[*ids.shape, d]``); returns ``out``."""
    return _run("embedding_into", ids, table, out, device)
