"""GEMM sweep: fp32 matmul from 256³ to the seed's large shapes, against cuBLAS through torch.

Cases: m=k=n = 256, 896, 1024, 1536, 2048, 3072 and (m, k, n) = (4096, 1024, 4096): the seed's
kernel GEMMs and its large-GEMM auto sweep. The seed ran each large shape under three tuning
modes and kept the best; here each row is the default routing (what a user gets), the
resident column is one call plus a sync (the seed divided a batch of calls), and device time
is measured with CUDA events and the L2 flushed on both sides.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

import lightning_core as lc

from .common import Case, add_arguments, run_suite, work

__all__ = ["DESCRIPTION", "RESULT_NAME", "TABLE_COLUMNS", "add_arguments", "gemm", "cases",
           "run"]

DESCRIPTION = "fp32 GEMM 256³ .. 4096x1024x4096 vs cuBLAS (torch), NumPy and the FLOP floor"
RESULT_NAME = "large_gemm_auto_sweep"
TABLE_COLUMNS = ("bench", "shape", "lc_resident_ms", "lc_kernel_ms", "torch_eager_ms",
                 "torch_kernel_ms", "speedup_eager", "speedup_kernel", "lc_oneshot_ms",
                 "torch_oneshot_ms", "speedup_oneshot", "lc_resident_over_floor", "status")

SHAPES = ((256, 256, 256), (896, 896, 896), (1024, 1024, 1024), (1536, 1536, 1536),
          (2048, 2048, 2048), (3072, 3072, 3072), (4096, 1024, 4096))


def _oneshot(x: tuple[Any, ...], device: str) -> Callable[[], Any]:
    return lambda: lc.matmul2d(x[0], x[1], device)


def _torch(torch: Any, t: tuple[Any, ...]) -> Any:
    return t[0] @ t[1]


def gemm(m: int, k: int, n: int, *, size: int | None = None, sweep: str = "") -> Case:
    """``a[m, k] @ b[k, n]``: one-shot ``matmul2d``, resident ``MatMulResidentSession``."""

    def resident(x: tuple[Any, ...], device: str) -> Callable[[], Any]:
        session = lc.MatMulResidentSession(m, k, n, device)
        host_out = np.empty((m, n), np.float32)  # not written by sync_into
        session.start_into(x[0], x[1], host_out)

        def call() -> Any:
            session.sync_into(x[0], x[1], host_out)
            return session.output

        return call

    return Case(
        "gemm", f"m={m},k={k},n={n}", ((m, k), (k, n)), np.matmul, _oneshot, resident,
        work(2.0 * m * k * n, ((m, k), (k, n)), (m, n)),
        "matmul2d; resident: MatMulResidentSession.sync_into",
        torch_fn=_torch, numpy_fn=np.matmul, kernel=_oneshot, size=size, sweep=sweep)


def cases() -> list[Case]:
    """The seven GEMM shapes, smallest first."""
    return [gemm(m, k, n) for m, k, n in SHAPES]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the selected cases on ``args.device``."""
    return run_suite(args, "gemm-sweep", cases(), kernel=True)
