"""CPU binary elementwise ops (add, sub, mul, div): one NumPy ufunc straight into ``out``."""

from __future__ import annotations

import numpy as np

from ...runtime.backend import register

__all__ = ["binary_numpy"]

_UFUNCS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}


@register("cpu", "binary", "numpy")
def binary_numpy(a: np.ndarray, b: np.ndarray, *, out: np.ndarray, kind: str) -> None:
    """``out = a <kind> b``; ``out`` may be ``a`` or ``b`` itself (ufuncs handle exact aliasing)."""
    # IEEE results (x/0 = inf, 0/0 = nan, overflow = inf) are the contract, not a warning.
    with np.errstate(all="ignore"):
        _UFUNCS[kind](a, b, out=out)
