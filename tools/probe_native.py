"""The native lane against the Python lane and torch: one call + sync, and host time alone.

Run once per lane (the lane is chosen per process):
  PYTHONPATH=src python3 tools/probe_native.py out_native.txt
  LC_NATIVE_LANE=0 PYTHONPATH=src python3 tools/probe_native.py out_python.txt
Rows of one size are measured in alternating rounds (``host_times_interleaved``); "host only"
is the mean host time of 3000 calls with no sync between them (the queue drained after).
"""

from __future__ import annotations

import statistics
import sys
import time

import cupy as cp
import numpy as np
from profile_overhead import report

import lightning_core as lc
from lightning_core import native
from lightning_core.backends.cuda import elementwise as ew
from lightning_core.bench.suites.timers import host_times_interleaved


def host_only(fn, calls: int = 3000, warmup: int = 200) -> float:
    """Mean host µs of ``calls`` back-to-back calls with no sync between them (queued
    launches make this a GPU-bound upper bound once the queue fills)."""
    for _ in range(warmup):
        fn()
    cp.cuda.Device(0).synchronize()
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter_ns() - t0
    cp.cuda.Device(0).synchronize()
    return elapsed / calls / 1e3


def rows(label: str, synced: dict, host: dict, budget_s: float) -> list[str]:
    """Lines for one case: each ``synced`` callable (a call + its sync) timed in interleaved
    rounds (median), then each ``host`` callable by ``host_only``."""
    times = host_times_interleaved(synced, rounds=10, per_round=40, round_warmup=5,
                                   budget_s=budget_s)
    out = [f"{label} {name:26s} {statistics.median(t):7.2f} us" for name, t in times.items()]
    out += [f"{label} {name + ' host only':26s} {host_only(fn):7.2f} us"
            for name, fn in host.items()]
    print("\n".join(out), flush=True)
    return out


def main(path: str | None) -> None:
    import torch

    lines = [f"native lane: {native.status()}"]
    sync = cp.cuda.get_current_stream().synchronize
    tsync = torch.cuda.synchronize
    rng = np.random.default_rng(7)
    for n in (65536, 1 << 20, 1 << 22):
        host = [rng.standard_normal(n).astype(np.float32) for _ in range(2)]
        a, b = (cp.asarray(h) for h in host)
        ta, tb = (torch.from_numpy(h).cuda() for h in host)
        c = cp.empty_like(a)
        call = ew._plan(ew._BINARY["add"], np.dtype(np.float32), n, True, 3)
        null = cp.cuda.get_current_stream()
        pa, pb, pc = a.data.ptr, b.data.ptr, c.data.ptr
        lines += rows(f"n={n:<8d}", {
            "launch_raw + sync": lambda: (call.launch_raw(null.ptr, pa, pb, pc), sync()),
            "lc.vector_add + sync": lambda: (lc.vector_add(a, b), sync()),
            "torch a + b + sync": lambda: (ta + tb, tsync())},
            {"lc.vector_add": lambda: lc.vector_add(a, b), "torch a + b": lambda: ta + tb}, 5.0)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for seq, d in ((8, 16), (96, 48)):
        qs = [rng.standard_normal((seq, d)).astype(np.float32) for _ in range(3)]
        cq, ck, cv = (cp.asarray(x) for x in qs)
        tq, tk, tv = (torch.from_numpy(x).cuda().view(1, 1, seq, d) for x in qs)
        lines += rows(f"seq={seq:<3d} d={d:<3d}", {
            "lc.attention2d + sync": lambda: (lc.attention2d(cq, ck, cv, False), sync()),
            "torch sdpa + sync": lambda: (sdpa(tq, tk, tv), tsync())},
            {"lc.attention2d": lambda: lc.attention2d(cq, ck, cv, False)}, 4.0)
    m = [rng.standard_normal((256, 256)).astype(np.float32) for _ in range(2)]
    ca, cb = (cp.asarray(x) for x in m)
    ta, tb = (torch.from_numpy(x).cuda() for x in m)
    lines += rows("gemm 256^3", {
        "lc.matmul2d + sync": lambda: (lc.matmul2d(ca, cb), sync()),
        "torch a @ b + sync": lambda: (ta @ tb, tsync())},
        {"lc.matmul2d": lambda: lc.matmul2d(ca, cb)}, 4.0)
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
