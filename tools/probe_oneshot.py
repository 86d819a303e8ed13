"""Where a one-shot (NumPy in, NumPy out) CUDA call spends its time.

For matmul 1024^3 with ordinary NumPy inputs and matrix_sub 1024^2 with pinned inputs: the
call's median, the staged upload of the same inputs alone, the pinned result allocation
alone, and a cProfile of 40 calls (wall time sits in the waits: copy threads, DMA, sync). Run
on the GPU machine: PYTHONPATH=src python3 tools/probe_oneshot.py [out.txt]
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np
from profile_overhead import profile_text, report

import lightning_core as lc
from lightning_core.backends.cuda.memory import pinned_empty
from lightning_core.bench.suites.timers import host_median_us
from lightning_core.runtime.backend import get_backend


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

    rows = [
        ("matmul 1024^3 one-shot, pageable", lambda: lc.matmul2d(a, b, "cuda")),
        ("matmul 1024^3 one-shot, pinned", lambda: lc.matmul2d(pa, pb, "cuda")),
        ("upload_many 2 x 4 MB pageable + sync", upload_two),
        ("pinned_empty 4 MB", lambda: pinned_empty((1024, 1024))),
        ("matrix_sub 1024^2 one-shot, pinned", lambda: lc.matrix_sub(flat_a, flat_b, 1024, 1024,
                                                                     "cuda")),
    ]
    lines = [f"{name:44s} {host_median_us(fn):9.1f} us" for name, fn in rows]
    by_name = dict(rows)
    for name in ("matmul 1024^3 one-shot, pageable", "matrix_sub 1024^2 one-shot, pinned"):
        lines.append(profile_text(name, by_name[name], 40, 16))
    report("\n".join(lines), path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
