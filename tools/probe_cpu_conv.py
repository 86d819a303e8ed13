"""Where the CPU conv of the tiny ``device="auto"`` cases spends its time.

Times (median µs, host clock) the GEMM alone, the CPU backend's whole conv function, ``lc``
forced to the CPU and ``auto``, for the seed's tiny conv cases; prints the BLAS NumPy was built
with. Run it twice, once with ``OPENBLAS_NUM_THREADS=1``, to see whether BLAS threads cost the
small GEMMs anything. (Runs 29 and 31 used an earlier version that also timed the pad,
im2col and ReLU steps of the conv before its kept buffers.)

    PYTHONPATH=src python3 tools/probe_cpu_conv.py [out.txt]
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
from contextlib import redirect_stdout
from typing import Any

import numpy as np

import lightning_core as lc
from lightning_core.backends.cpu.conv import conv2d_im2col


def median_us(fn: Any, n: int = 2000) -> float:
    for _ in range(100):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1e3


def main(path: str | None) -> None:
    lines = [f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')} "
             f"cores={os.cpu_count()} numpy={np.__version__}"]
    buf = io.StringIO()
    with redirect_stdout(buf):
        np.show_config()
    lines += [ln for ln in buf.getvalue().splitlines() if "name" in ln or "version" in ln][:8]
    rng = np.random.default_rng(0)
    for n, h in ((1, 16), (1, 24), (2, 16), (1, 32), (2, 32)):
        x = rng.standard_normal((n, 3, h, h), dtype=np.float32)
        w = rng.standard_normal((16, 3, 3, 3), dtype=np.float32)
        b = rng.standard_normal(16, dtype=np.float32)
        out = np.empty((n, 16, h, h), np.float32)
        # The GEMM alone, on the operands the backend builds: weights + bias column against the
        # columns with their row of ones (row stride as the backend pads it).
        weights = np.concatenate([w.reshape(16, 27), b.reshape(16, 1)], axis=1)
        cols = np.ones((n, 28, h * h + (16 if h * h * 4 % 2048 == 0 else 0)),
                       np.float32)[..., :h * h]
        planes = out.reshape(n, 16, h * h)
        parts = {
            "gemm": lambda: np.matmul(weights, cols, out=planes),
            "backend fn": lambda: conv2d_im2col(x, w, b, out=out, stride_h=1, stride_w=1,
                                                pad_h=1, pad_w=1, relu=True),
            "lc cpu": lambda: lc.lightning_conv_relu_nchw(x, w, b, 1, 1, 1, 1, "cpu"),
            "lc auto": lambda: lc.lightning_conv_relu_nchw(x, w, b, 1, 1, 1, 1, "auto"),
        }
        cells = "  ".join(f"{k} {median_us(fn):7.1f}" for k, fn in parts.items())
        lines.append(f"conv {n}x3x{h}x{h}->16  {cells}")
    a = rng.standard_normal(65536, dtype=np.float32)
    lines.append("vector_add 65536  " + "  ".join(
        f"{k} {median_us(fn):6.1f}" for k, fn in (
            ("numpy", lambda: np.add(a, a)), ("lc cpu", lambda: lc.vector_add(a, a, "cpu")),
            ("lc auto", lambda: lc.vector_add(a, a, "auto")))))
    text = "\n".join(lines)
    print(text)
    if path:
        with open(path, "a") as f:
            f.write(text + "\n\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
