"""Resident elementwise sessions: matrix sub/add/mul/div and vector add."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ops._checks import dim
from .core import ResidentOp, SessionFront

__all__ = [
    "MatrixElemwiseResidentSession",
    "MatrixElemwiseMetalResidentSession",
    "VectorAddResidentSession",
    "VectorAddMetalResidentSession",
]

_KINDS = ("sub", "add", "mul", "div")


class _Binary(SessionFront):
    """Shared start/run/finish logic over one resident binary op; kinds are step variants."""

    def __init__(self, op: str, shape: tuple[int, ...], device: str, dtype: Any) -> None:
        self._r = ResidentOp(op, "binary", {"a": shape, "b": shape}, shape, dtype=dtype,
                             device=device, params={"kind": "add"}, key="add")

    def _launch(self, kind: str, a: Any, b: Any, out: Any, *, upload: bool,
                finish: bool) -> Any:
        self._r.check_inputs({"a": a, "b": b})
        self._r.check("out", out, self._r.out_shape)
        self._r.bind(kind, {"kind": kind})
        if upload:
            self._r.upload({"a": a, "b": b})
        self._r.launch(1, key=kind)
        if finish:
            self._r.download(out)
        return out


class MatrixElemwiseResidentSession(_Binary):
    """``a ∘ b`` on resident ``[rows, cols]`` matrices; sub/add/mul/div × start/run/finish."""

    def __init__(self, rows: int, cols: int, device: str = "auto",
                 dtype: Any = np.float32) -> None:
        op = "MatrixElemwiseResidentSession"
        self.rows, self.cols = dim(op, "rows", rows, minimum=1), dim(op, "cols", cols, minimum=1)
        super().__init__(op, (self.rows, self.cols), device, dtype)


def _add_kind_methods(cls: type) -> None:
    for kind in _KINDS:
        def start_into(self, a, b, out, _k=kind):  # noqa: ANN001
            """Upload a and b, launch; no download, no sync."""
            return self._launch(_k, a, b, out, upload=True, finish=False)

        def run_into(self, a, b, out, _k=kind):  # noqa: ANN001
            """Launch on the resident inputs only."""
            return self._launch(_k, a, b, out, upload=False, finish=False)

        def finish_into(self, a, b, out, _k=kind):  # noqa: ANN001
            """Launch, wait, download into out."""
            return self._launch(_k, a, b, out, upload=False, finish=True)

        setattr(cls, f"{kind}_start_into", start_into)
        setattr(cls, f"{kind}_run_into", run_into)
        setattr(cls, f"{kind}_finish_into", finish_into)


_add_kind_methods(MatrixElemwiseResidentSession)
MatrixElemwiseMetalResidentSession = MatrixElemwiseResidentSession


class VectorAddResidentSession(_Binary):
    """``a + b`` on resident vectors of ``n`` elements."""

    def __init__(self, n: int, device: str = "auto", dtype: Any = np.float32) -> None:
        self.n = dim("VectorAddResidentSession", "n", n, minimum=1)
        super().__init__("VectorAddResidentSession", (self.n,), device, dtype)

    def start_into(self, a: Any, b: Any, out: Any) -> Any:
        """Upload a and b, launch; no download, no sync."""
        return self._launch("add", a, b, out, upload=True, finish=False)

    def run_into(self, a: Any, b: Any, out: Any) -> Any:
        """Launch on the resident inputs only."""
        return self._launch("add", a, b, out, upload=False, finish=False)

    def finish_into(self, a: Any, b: Any, out: Any) -> Any:
        """Launch, wait, download into out."""
        return self._launch("add", a, b, out, upload=False, finish=True)


VectorAddMetalResidentSession = VectorAddResidentSession
