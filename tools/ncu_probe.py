"""Runs a few lc kernels once each so Nsight Compute can read their counters.

``ncu --clock-control none -k regex:NAME python3 tools/ncu_probe.py CASE ...`` with CASE one of
``attention:SEQ`` (head_dim 64, fp32), ``gemm:N`` (N^3 fp32), ``add:N`` (vector add), or torch's
``tadd:N`` / ``tgemm:N`` (fp32, no TF32), optionally ``CASE:REPS``. Each case runs REPS times
(default 2; the first call compiles and caches its launcher; skip it with ``--launch-skip``),
so with ``--cache-control none`` the later kernels read what the earlier left in L2, as in a
loop of calls.
Run on the GPU machine: PYTHONPATH=src python3 tools/ncu_probe.py attention:512
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np

import lightning_core as lc


def _case(spec: str) -> None:
    kind, _, rest = spec.partition(":")
    size, _, reps = rest.partition(":")
    n = int(size)
    rng = np.random.default_rng(n)

    def dev(*shape: int) -> cp.ndarray:
        return cp.asarray(rng.standard_normal(shape).astype(np.float32))

    if kind == "attention":
        q, k, v = dev(n, 64), dev(n, 64), dev(n, 64)
        run = lambda: lc.attention2d(q, k, v, False)  # noqa: E731
    elif kind == "gemm":
        a, b = dev(n, n), dev(n, n)
        run = lambda: lc.matmul2d(a, b)  # noqa: E731
    elif kind == "add":
        a, b = dev(n), dev(n)
        run = lambda: lc.vector_add(a, b)  # noqa: E731
    elif kind in ("tadd", "tgemm"):
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        shape = (n,) if kind == "tadd" else (n, n)
        ta, tb = (torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).cuda()
                  for _ in range(2))
        run = (lambda: ta + tb) if kind == "tadd" else (lambda: ta @ tb)
    else:
        raise SystemExit(f"unknown case {spec!r}")
    for _ in range(int(reps or 2)):
        run()
    cp.cuda.runtime.deviceSynchronize()


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        _case(arg)
