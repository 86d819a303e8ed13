"""What one small call + host sync costs, piece by piece, against torch (sync each call).

Answers where the elementwise "one call + sync" microseconds go: the launch, the sync, and the
lc layers on top. Median of many calls, each followed by its sync. Run on the GPU machine:
PYTHONPATH=src python3 tools/probe_sync.py [out.txt]
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np
from profile_overhead import report

import lightning_core as lc
from lightning_core.backends.cuda import elementwise as ew
from lightning_core.bench.suites.timers import host_median_us


def main(path: str | None) -> None:
    import torch

    lines = []
    null = cp.cuda.get_current_stream()
    side = cp.cuda.Stream(non_blocking=True)
    for n in (1024, 65536, 1 << 20, 1 << 22):
        a, b, c = (cp.ones(n, cp.float32) for _ in range(3))
        ta, tb = (torch.ones(n, device="cuda") for _ in range(2))
        call = ew._plan(ew._BINARY["add"], np.dtype(np.float32), n, True, 3)
        pa, pb, pc = a.data.ptr, b.data.ptr, c.data.ptr
        rows = [
            ("KernelCall raw, null stream sync", lambda: call.launch_raw(0, pa, pb, pc),
             null.synchronize),
            ("KernelCall raw, own stream sync", lambda: call.launch_raw(side.ptr, pa, pb, pc),
             side.synchronize),
            ("KernelCall raw, device sync", lambda: call.launch_raw(0, pa, pb, pc),
             cp.cuda.runtime.deviceSynchronize),
            ("lc.vector_add_into", lambda: lc.vector_add_into(a, b, c), null.synchronize),
            ("lc.vector_add", lambda: lc.vector_add(a, b), null.synchronize),
            ("cupy.add", lambda: cp.add(a, b), null.synchronize),
            ("torch a + b, torch.cuda.synchronize", lambda: ta + tb, torch.cuda.synchronize),
            ("null stream sync alone", lambda: None, null.synchronize),
            ("torch.cuda.synchronize alone", lambda: None, torch.cuda.synchronize),
        ]
        for name, fn, sync in rows:
            lines.append(f"n={n:<8d} {name:40s} {host_median_us(fn, sync, warmup=50, iters=600, budget_s=2.0):7.2f} us")
            print(lines[-1], flush=True)
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
