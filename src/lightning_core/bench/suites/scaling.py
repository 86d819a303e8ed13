"""Scaling suite: how the cost of a call grows with its size, next to the physical floor.

Three sweeps (fp32), each plotted on log-log axes with the floor drawn in:
- square GEMM, m = k = n = 64, 128, ..., 8192;
- single-head attention, seq = 64, 128, ..., 8192 at head_dim 64;
- vector_add, n = 2^10, 2^12, ..., 2^26 elements.
Small sizes show the fixed cost of a call (launch and sync, or transfers), large ones the
compute or bandwidth limit. Device time (CUDA events, L2 flushed) is measured on both sides.
On the CPU the sweeps stop at GEMM 1024, attention 1024 and 2^22 elements, where one call
already takes long enough to show the trend and the whole sweep still runs in seconds.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import Case, add_arguments, run_suite
from .gemm_sweep import gemm
from .kernel import attention
from .ml import vector_add

__all__ = ["DESCRIPTION", "RESULT_NAME", "TABLE_COLUMNS", "add_arguments", "cases", "run"]

DESCRIPTION = "GEMM 64..8192, attention seq 64..8192 (d 64), vector_add 2^10..2^26 vs floor"
RESULT_NAME = "scaling_bench"
TABLE_COLUMNS = ("bench", "shape", "lc_resident_ms", "lc_kernel_ms", "torch_eager_ms",
                 "torch_kernel_ms", "speedup_eager", "lc_oneshot_ms", "torch_oneshot_ms",
                 "floor_resident_ms", "floor_bound", "status")

GEMM_SIZES = tuple(2 ** p for p in range(6, 14))  # 64 .. 8192
ATTENTION_SEQS = tuple(2 ** p for p in range(6, 14))  # 64 .. 8192
VECTOR_SIZES = tuple(2 ** p for p in range(10, 27, 2))  # 2^10 .. 2^26
HEAD_DIM = 64
# Largest size of each sweep on the cpu (see the module docstring).
CPU_LIMITS = {"gemm": 1024, "attention": 1024, "vector_add": 2 ** 22}


def cases(device: str = "cuda") -> list[Case]:
    """The three sweeps, smallest size first; on the cpu, cut at ``CPU_LIMITS``."""
    every = ([gemm(n, n, n, size=n, sweep="m = k = n") for n in GEMM_SIZES]
             + [attention(s, HEAD_DIM, size=s, sweep=f"sequence length (head_dim {HEAD_DIM})")
                for s in ATTENTION_SEQS]
             + [vector_add(n, kernel=True, size=n, sweep="elements") for n in VECTOR_SIZES])
    if device == "cuda":
        return every
    return [c for c in every if c.size is None or c.size <= CPU_LIMITS[c.bench]]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the selected cases on ``args.device``."""
    return run_suite(args, "scaling", cases(args.device), kernel=True)
