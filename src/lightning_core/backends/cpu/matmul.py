"""CPU matmul: NumPy's BLAS-backed matmul straight into the output buffer."""

from __future__ import annotations

import numpy as np

from ...runtime.backend import register


@register("cpu", "matmul", "blas")
def matmul_blas(a: np.ndarray, b: np.ndarray, *, out: np.ndarray) -> None:
    np.matmul(a, b, out=out)
