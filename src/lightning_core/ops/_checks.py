"""Argument checks shared by the op modules (messages start with ``[op]``)."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, ShapeError

__all__ = ["dim", "flag", "shape_text", "need_rank", "flat_view"]


def dim(op: str, name: str, value: Any, *, minimum: int | None = 0) -> int:
    """An integer argument (not a bool), at least ``minimum`` unless that is None."""
    if isinstance(value, bool):
        raise InvalidArgumentError(f"[{op}] {name} must be an integer, got a bool")
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise InvalidArgumentError(f"[{op}] {name} must be an integer, got "
                                   f"{type(value).__name__}") from None
    if minimum is not None and ivalue < minimum:
        raise InvalidArgumentError(f"[{op}] {name} must be >= {minimum}, got {ivalue}")
    return ivalue


def flag(op: str, name: str, value: Any) -> bool:
    """A boolean argument: a bool, or the integers 0 and 1."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    try:
        ivalue = operator.index(value)
    except TypeError:
        ivalue = None
    if ivalue not in (0, 1):
        raise InvalidArgumentError(f"[{op}] {name} must be a bool (or 0/1), got {value!r}")
    return bool(ivalue)


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def need_rank(op: str, name: str, array: Any, rank: int) -> None:
    if array.ndim != rank:
        raise ShapeError(f"[{op}] {name} must be {rank}-D, got shape {shape_text(array.shape)}")


def flat_view(op: str, name: str, array: Any, shape: tuple[int, ...]) -> Any:
    """View a flat (or any-shaped) array of the right size as ``shape``."""
    size = 1
    for d in shape:
        size *= d
    if array.size != size:
        raise ShapeError(f"[{op}] {name} has {array.size} elements, expected "
                         f"{shape_text(shape)} = {size}")
    return array.reshape(shape)
