"""Why does ``lc.vector_add`` cost more above a bare launch at 4M elements than at 64K?

One call + null-stream sync, median µs by the host clock, all rows of one size measured in
alternating rounds (``host_times_interleaved``) so drift hits every row alike: the bare
prepared launch into a fixed output, the same behind a fresh ``cupy.ndarray`` output, the
fast lane into a given output (``vector_add_into``), the fast lane with its own output
(``vector_add``), the same with results of that size recycled, and torch.

Run on the GPU machine: PYTHONPATH=src python3 tools/probe_ew_alloc.py [out.txt]
"""

from __future__ import annotations

import statistics
import sys

import cupy as cp
import numpy as np
from profile_overhead import report

import lightning_core as lc
from lightning_core.backends.cuda import elementwise as ew
from lightning_core.backends.cuda import memory
from lightning_core.bench.suites.timers import host_times_interleaved
from lightning_core.runtime.dispatch import clear_decisions


def main(path: str | None) -> None:
    import torch

    lines = []
    null = cp.cuda.get_current_stream()
    lines.append(f"current stream ptr {null.ptr}, recycle max {memory._RECYCLE_MAX_BYTES}")
    sync = null.synchronize
    for n in (65536, 1 << 20, 1 << 22, 1 << 24):
        a, b, c = (cp.ones(n, cp.float32) for _ in range(3))
        ta, tb = (torch.ones(n, device="cuda") for _ in range(2))
        call = ew._plan(ew._BINARY["add"], np.dtype(np.float32), n, True, 3)
        pa, pb, pc = a.data.ptr, b.data.ptr, c.data.ptr

        def fresh(n: int = n) -> None:
            out = cp.ndarray((n,), cp.float32)
            call.launch_raw(null.ptr, pa, pb, out.data.ptr)

        fns = {
            "bare launch": lambda: (call.launch_raw(null.ptr, pa, pb, pc), sync()),
            "bare launch, fresh output": lambda: (fresh(), sync()),
            "cupy.ndarray alone": lambda: cp.ndarray((n,), cp.float32),
            "lc.vector_add_into": lambda: (lc.vector_add_into(a, b, c), sync()),
            "lc.vector_add": lambda: (lc.vector_add(a, b), sync()),
            "torch a + b": lambda: (ta + tb, torch.cuda.synchronize()),
        }
        times = host_times_interleaved(fns, rounds=10, per_round=40, round_warmup=5,
                                       budget_s=6.0)
        saved = memory._RECYCLE_MAX_BYTES, memory._RECYCLE_BUDGET
        for limit in (8 << 20, 1 << 30):  # the old limit, and one that recycles every size
            memory._RECYCLE_MAX_BYTES, memory._RECYCLE_BUDGET = limit, 1 << 31
            clear_decisions()  # new lanes, new recyclers under this limit
            rec = host_times_interleaved({
                f"lc.vector_add, recycle <= {limit >> 20} MB": lambda: (lc.vector_add(a, b),
                                                                       sync()),
                f"bare launch (again, {limit >> 20})": lambda: (
                    call.launch_raw(null.ptr, pa, pb, pc), sync())},
                rounds=6, per_round=40, round_warmup=5, budget_s=3.0)
            times.update(rec)
        memory._RECYCLE_MAX_BYTES, memory._RECYCLE_BUDGET = saved
        clear_decisions()
        for name, samples in times.items():
            lines.append(f"n={n:<9d} {name:32s} {statistics.median(samples):7.2f} us")
        print("\n".join(lines[-len(times):]), flush=True)
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
