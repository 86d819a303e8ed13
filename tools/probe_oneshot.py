"""Where a one-shot (NumPy in, NumPy out) CUDA call spends its time.

For matmul 1024^3 with ordinary and with pinned NumPy inputs and matrix_sub 1024^2 with pinned
inputs: the call's median, the staged upload of the same inputs alone (native and Python copy
pools), the driver's own pageable copy and torch's, the host copy into pinned memory alone,
the device GEMM plus the pinned download, the pinned call's steps alone (its floor from
Python), the pinned result allocation alone, and a cProfile of 40 calls of each (wall time
sits in the waits: copy threads, DMA, sync). Run on the GPU machine:
PYTHONPATH=src python3 tools/probe_oneshot.py [out.txt]
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np
from profile_overhead import profile_text, report

import lightning_core as lc
from lightning_core.backends.cuda import memory
from lightning_core.backends.cuda.memory import pinned_empty
from lightning_core.bench.suites.timers import host_median_us
from lightning_core.runtime.backend import get_backend
from lightning_core.runtime.host_threads import run_parallel


def main(path: str | None) -> None:
    rng = np.random.default_rng(0)
    io = get_backend("cuda").io
    a, b = (rng.standard_normal((1024, 1024)).astype(np.float32) for _ in range(2))
    pa, pb = lc.pinned_like(a), lc.pinned_like(b)
    pa[...], pb[...] = a, b
    da, db = cp.empty_like(cp.asarray(a)), cp.empty_like(cp.asarray(b))
    flat_a, flat_b = pa.reshape(-1), pb.reshape(-1)

    def upload_two() -> None:
        io.upload_many([(a, da), (b, db)])
        io._stream.synchronize()

    def upload_two_on(pool: str):
        def run() -> None:
            saved = memory._host_copy
            if pool == "python":
                memory._host_copy = lambda: None
            try:
                upload_two()
            finally:
                memory._host_copy = saved
        return run

    def driver_pageable() -> None:  # the driver's own staging (cudaMemcpy from pageable)
        da.set(a, stream=io._stream)
        db.set(b, stream=io._stream)
        io._stream.synchronize()

    stage_block = pinned_empty((1024, 1024))

    def host_copy(workers: int):
        src, dst = a.reshape(-1), stage_block.reshape(-1)
        parts = np.array_split(np.arange(src.size), workers)
        bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts]

        def one(i: int) -> None:
            lo, hi = bounds[i]
            np.copyto(dst[lo:hi], src[lo:hi])

        return lambda: run_parallel(one, workers, workers=workers)

    def gemm_and_download() -> None:
        io.download_new(lc.matmul2d(da, db))

    def composite() -> None:  # the call's three steps, outside the dispatcher
        io.upload_many([(a, da), (b, db)])
        io.download_new(lc.matmul2d(da, db))

    def composite_fresh() -> None:  # the same with new device arrays, as the call allocates
        xa, xb = cp.empty_like(da), cp.empty_like(db)
        io.upload_many([(a, xa), (b, xb)])
        io.download_new(lc.matmul2d(xa, xb))

    stream = io._stream
    out_pinned = pinned_empty((1024, 1024))
    dc = cp.empty((1024, 1024), np.float32)
    memcpy = cp.cuda.runtime.memcpyAsync

    def pinned_floor(fresh: bool):
        # The pinned one-shot's steps with nothing else: two direct uploads, cuBLAS through
        # CuPy, the download into a pinned result, the sync (fresh: a new pinned result).
        def run() -> None:
            out = pinned_empty((1024, 1024)) if fresh else out_pinned
            sp = stream.ptr
            memcpy(da.data.ptr, pa.ctypes.data, pa.nbytes, 1, sp)
            memcpy(db.data.ptr, pb.ctypes.data, pb.nbytes, 1, sp)
            with stream:
                cp.matmul(da, db, out=dc)
            memcpy(out.ctypes.data, dc.data.ptr, out.nbytes, 2, sp)
            stream.synchronize()
        return run

    import torch

    def torch_two() -> None:
        torch.from_numpy(a).cuda()
        torch.from_numpy(b).cuda()
        torch.cuda.synchronize()

    rows = [
        ("matmul 1024^3 one-shot, pageable", lambda: lc.matmul2d(a, b, "cuda")),
        ("matmul 1024^3 one-shot, pinned", lambda: lc.matmul2d(pa, pb, "cuda")),
        ("upload_many 2 x 4 MB pageable + sync", upload_two),
        *[(f"upload_many 2 x 4 MB, {p} pool", upload_two_on(p)) for p in ("native", "python")],
        ("driver pageable copy 2 x 4 MB + sync", driver_pageable),
        ("torch from_numpy().cuda() 2 x 4 MB + sync", torch_two),
        *[(f"host copy 4 MB into pinned, {w} threads", host_copy(w)) for w in (1, 4)],
        ("device gemm + download_new (pinned out)", gemm_and_download),
        ("upload_many + gemm + download_new", composite),
        ("the same on new device arrays", composite_fresh),
        ("matmul 1024^3 one-shot, pageable (again)", lambda: lc.matmul2d(a, b, "cuda")),
        ("pinned_empty 4 MB", lambda: pinned_empty((1024, 1024))),
        ("pinned steps alone (uploads, GEMM, download, sync)", pinned_floor(False)),
        ("the same into a new pinned result", pinned_floor(True)),
        ("matmul 1024^3 one-shot, pinned (again)", lambda: lc.matmul2d(pa, pb, "cuda")),
        ("matrix_sub 1024^2 one-shot, pinned", lambda: lc.matrix_sub(flat_a, flat_b, 1024, 1024,
                                                                     "cuda")),
    ]
    lines = [f"{name:44s} {host_median_us(fn):9.1f} us" for name, fn in rows]
    by_name = dict(rows)
    for name in ("matmul 1024^3 one-shot, pageable", "matmul 1024^3 one-shot, pinned",
                 "matrix_sub 1024^2 one-shot, pinned"):
        lines.append(profile_text(name, by_name[name], 40, 16))
    report("\n".join(lines), path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
