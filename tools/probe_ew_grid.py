"""Is the elementwise kernel's grid (capped at one wave, grid-stride) right for mid-size adds?

Device µs per call (``held_device_us``: launch gaps excluded) and one call + sync by the host
clock, for ``lc_binary<float, add, VEC>`` launched with the capped grid the backend uses, with
one block per 256 threads' worth of packs (no grid-stride iterations), and for torch's add and
``lc.vector_add``. Run on the GPU machine: PYTHONPATH=src python3 tools/probe_ew_grid.py [out.txt]
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np
from profile_overhead import report

import lightning_core as lc
from lightning_core.backends.cuda import elementwise as ew
from lightning_core.backends.cuda.compile import get_function
from lightning_core.backends.cuda.launch import KernelCall
from lightning_core.bench.suites.timers import held_device_us, host_median_us


def main(path: str | None) -> None:
    import torch

    lines = []
    null = cp.cuda.get_current_stream()
    fn = get_function("elementwise.cu", "lc_binary<float, 0, true>",
                      name_expressions=ew._expressions("float"))
    for n in (65536, 1 << 20, 1 << 22, 1 << 24):
        a, b, c = (cp.ones(n, cp.float32) for _ in range(3))
        ta, tb = (torch.ones(n, device="cuda") for _ in range(2))
        pa, pb, pc = a.data.ptr, b.data.ptr, c.data.ptr
        capped = ew._plan(ew._BINARY["add"], np.dtype(np.float32), n, True, 3)
        variants = [("capped grid " + str(capped.grid[0]), capped)]
        for threads, per in ((256, 1), (128, 1), (256, 2), (512, 1)):
            blocks = -(-(n // 4) // (threads * per))
            variants.append((f"{blocks} blocks x {threads}",
                             KernelCall(fn.kernel, (blocks,), (threads,), 0, 3, (np.int64(n),))))
        for name, call in variants:
            dev = held_device_us(cp, lambda call=call: call.launch_raw(null.ptr, pa, pb, pc))
            host = host_median_us(lambda call=call: call.launch_raw(null.ptr, pa, pb, pc),
                                  null.synchronize, warmup=50, iters=400, budget_s=1.5)
            lines.append(f"n={n:<9d} {name:28s} device {dev:7.2f} us  call+sync {host:7.2f} us")
            print(lines[-1], flush=True)
        th_dev = held_device_us(cp, lambda: torch.add(ta, tb))
        th_host = host_median_us(lambda: ta + tb, torch.cuda.synchronize, warmup=50, iters=400,
                                 budget_s=1.5)
        lines.append(f"n={n:<9d} {'torch a + b':28s} device {th_dev:7.2f} us  call+sync "
                     f"{th_host:7.2f} us")
        lc_host = host_median_us(lambda: lc.vector_add(a, b), null.synchronize, warmup=50,
                                 iters=400, budget_s=1.5)
        lines.append(f"n={n:<9d} {'lc.vector_add':28s} device {'':>7s}     call+sync "
                     f"{lc_host:7.2f} us")
        print("\n".join(lines[-2:]), flush=True)
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
