"""Resident matmul session (the seed's ``MatMulMetalResidentSession``), CUDA-graph replayed.

Execution model: ``start_into`` uploads A and B and launches; ``run_into`` launches on the
resident data; ``finish_into`` launches, waits and downloads; ``sync_into`` launches and waits;
the batch forms launch ``repeat`` times with one wait. The ``a``/``b`` arguments of the
run/finish forms are checked for shape and dtype but not uploaded: use ``update`` (or
``start_into``) to change the resident inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ops._checks import dim
from .core import ResidentOp, SessionFront

__all__ = ["MatMulResidentSession", "MatMulMetalResidentSession", "matmul2d_resident_session"]


class MatMulResidentSession(SessionFront):
    """``C[m, n] = A[m, k] @ B[k, n]`` kept on the device between calls."""

    def __init__(self, m: int, k: int, n: int, device: str = "auto",
                 precision: str = "fp32", dtype: Any = np.float32) -> None:
        op = "MatMulResidentSession"
        self.m, self.k, self.n = (dim(op, nm, v, minimum=1) for nm, v in
                                  (("m", m), ("k", k), ("n", n)))
        self._r = ResidentOp(op, "matmul", {"a": (self.m, self.k), "b": (self.k, self.n)},
                             (self.m, self.n), dtype=dtype, device=device,
                             precision=precision)

    def _check(self, a: Any, b: Any, out: Any) -> None:
        self._r.check_inputs({"a": a, "b": b})
        if out is not None:
            self._r.check("out", out, self._r.out_shape)

    def update(self, a: Any = None, b: Any = None) -> None:
        """Re-upload changed inputs (either or both)."""
        values = {name: v for name, v in (("a", a), ("b", b)) if v is not None}
        self._r.upload(values)

    def start_into(self, a: Any, b: Any, out: Any) -> None:
        """Upload A and B, launch; no download, no sync."""
        self._check(a, b, out)
        self._r.upload({"a": a, "b": b})
        self._r.launch()

    def run_into(self, a: Any, b: Any, out: Any) -> None:
        """Launch on the resident inputs only."""
        self._check(a, b, out)
        self._r.launch()

    def finish_into(self, a: Any, b: Any, out: Any) -> Any:
        """Launch, wait, download into ``out``."""
        self._check(a, b, out)
        self._r.launch()
        self._r.download(out)
        return out

    def sync_into(self, a: Any, b: Any, out: Any) -> None:
        """Launch and wait; no download."""
        self._check(a, b, out)
        self._r.launch()
        self._r.sync()

    def run_batch_sync_into(self, a: Any, b: Any, out: Any, repeat: int) -> Any:
        """Launch ``repeat`` times, wait once, download the result into ``out``."""
        self._check(a, b, out)
        self._r.launch(repeat)
        self._r.download(out)
        return out

    def run_batch_sync_no_download_into(self, a: Any, b: Any, out: Any, repeat: int) -> None:
        """Launch ``repeat`` times and wait once; ``out`` is not written."""
        self._check(a, b, out)
        self._r.launch(repeat)
        self._r.sync()

    def run_batch_sync_cached_no_download(self, repeat: int) -> None:
        """Launch ``repeat`` times on the resident data and wait once."""
        self._r.launch(repeat)
        self._r.sync()


MatMulMetalResidentSession = MatMulResidentSession


def matmul2d_resident_session(a: Any, b: Any, device: str = "auto",
                              precision: str = "fp32") -> MatMulResidentSession:
    """A session sized from 2-D ``a [m, k]`` and ``b [k, n]``, with them uploaded."""
    m, k = np.shape(a)
    k2, n = np.shape(b)
    if k != k2:
        from ..errors import ShapeError

        raise ShapeError(f"[matmul2d_resident_session] inner dimensions differ: a is {m}x{k}, "
                         f"b is {k2}x{n}")
    session = MatMulResidentSession(m, k, n, device, precision)
    session.update(a, b)
    return session
