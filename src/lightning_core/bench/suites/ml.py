"""ML suite: the seed's linear classifier, matrix preprocessing and feature-scaling cases.

Cases (fp32): linear classifier logits ``x @ w + b`` with (batch, in, out) = (1024,1024,512),
(2048,1024,512), (4096,1024,1024); matrix_sub (rows, cols) = (512,512), (1024,1024),
(2048,1024); vector_add n = 65536, 262144, 1048576, 4194304. Unlike the seed, the resident
column waits for its result (the seed timed launches without a sync), and one-shot and
resident are separate columns instead of one "best of".
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

import lightning_core as lc

from .common import Case, add_arguments, captured, run_suite, synced, work

__all__ = ["DESCRIPTION", "RESULT_NAME", "TABLE_COLUMNS", "add_arguments", "linear",
           "vector_add", "matrix_sub", "cases", "run"]

DESCRIPTION = "linear classifier, matrix_sub, vector_add (seed ML cases) vs PyTorch and NumPy"
RESULT_NAME = "ml_all_bench"
TABLE_COLUMNS = ("bench", "shape", "lc_resident_ms", "torch_eager_ms", "torch_graph_ms",
                 "speedup_eager", "lc_oneshot_ms", "torch_oneshot_ms", "numpy_ms",
                 "speedup_oneshot", "status")

LINEAR = ((1024, 1024, 512), (2048, 1024, 512), (4096, 1024, 1024))
MATRIX = ((512, 512), (1024, 1024), (2048, 1024))
VECTOR = (65536, 262144, 1048576, 4194304)


def _linear(x: Any, w: Any, b: Any) -> Any:
    return lc.linear(x, w, b)


def _linear_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return lc.linear_reference(x, w, b)


def _linear_oneshot(x: tuple[Any, ...], device: str) -> Callable[[], Any]:
    return lambda: lc.linear(x[0], x[1], x[2], None, device)


def _linear_resident(x: tuple[Any, ...], device: str) -> Callable[[], Any]:
    return captured(_linear, x, device)


def _addmm(torch: Any, t: tuple[Any, ...]) -> Any:
    return torch.addmm(t[2], t[0], t[1])


def linear(batch: int, d_in: int, d_out: int) -> Case:
    """Classifier logits ``x @ w + b`` (w is ``[in, out]``, scaled by 1/√in)."""
    shapes = ((batch, d_in), (d_in, d_out), (d_out,))
    return Case(
        "linear_classifier", f"batch={batch},in={d_in},out={d_out}", shapes,
        _linear_reference, _linear_oneshot, _linear_resident,
        work(2.0 * batch * d_in * d_out, shapes, (batch, d_out)),
        "linear; resident: lc.capture(linear) replayed on device inputs",
        torch_fn=_addmm, numpy_fn=lambda x, w, b: x @ w + b, scales=(1.0, d_in ** -0.5, 1.0))


def _binary(bench: str, shape_text: str, shape: tuple[int, ...],
            oneshot: Callable[[Any, Any, str], Any], session: Callable[[str], Any],
            session_name: str, kind: str, np_fn: Callable[..., Any],
            torch_op: Callable[[Any, Any], Any], *, kernel: bool, size: int | None,
            sweep: str) -> Case:
    """An elementwise case whose resident side is a ``<kind>start_into`` / ``run_into``
    session."""

    def resident(x: tuple[Any, ...], device: str) -> Callable[[], Any]:
        sess = session(device)
        host_out = np.empty(shape, np.float32)  # not written by run_into
        getattr(sess, f"{kind}start_into")(x[0], x[1], host_out)
        lc.synchronize(device)
        run = getattr(sess, f"{kind}run_into")
        return synced(device, lambda: run(x[0], x[1], host_out), lambda: sess.output)

    def one(x: tuple[Any, ...], device: str) -> Callable[[], Any]:
        return lambda: oneshot(x[0], x[1], device)

    return Case(
        bench, shape_text, (shape, shape), np_fn, one, resident,
        work(float(np.prod(shape)), (shape, shape), shape),
        f"{bench}; resident: {session_name}.{kind}run_into + lc.synchronize",
        torch_fn=lambda torch, t: torch_op(t[0], t[1]), numpy_fn=np_fn,
        kernel=one if kernel else None, size=size, sweep=sweep)


def vector_add(n: int, *, kernel: bool = False, size: int | None = None,
               sweep: str = "") -> Case:
    """``a + b`` on vectors of ``n`` elements (resident: ``VectorAddResidentSession``)."""
    return _binary("vector_add", f"n={n}", (n,), lc.vector_add,
                   lambda device: lc.VectorAddResidentSession(n, device),
                   "VectorAddResidentSession", "", np.add, lambda a, b: a + b, kernel=kernel,
                   size=size, sweep=sweep)


def matrix_sub(rows: int, cols: int) -> Case:
    """``a - b`` on ``[rows, cols]`` (resident: ``MatrixElemwiseResidentSession``)."""
    return _binary("matrix_sub", f"rows={rows},cols={cols}", (rows, cols),
                   lambda a, b, device: lc.matrix_sub(a, b, rows, cols, device),
                   lambda device: lc.MatrixElemwiseResidentSession(rows, cols, device),
                   "MatrixElemwiseResidentSession", "sub_", np.subtract, lambda a, b: a - b,
                   kernel=False, size=None, sweep="")


def cases() -> list[Case]:
    """Linear classifier, matrix_sub, vector_add, in the seed's order."""
    return ([linear(*shape) for shape in LINEAR]
            + [matrix_sub(r, c) for r, c in MATRIX]
            + [vector_add(n) for n in VECTOR])


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the selected cases on ``args.device``."""
    return run_suite(args, "ml", cases())
