"""One elementwise launch shape (threads a block, 16-byte packs a thread) under Nsight Compute.

  ncu --cache-control none --clock-control none -k regex:lc_binary \\
      --metrics gpu__time_duration.sum python3 tools/probe_ew_shape.py THREADS PACKS N [REPS]
launches ``vector_add`` of N float32 elements REPS times (default 4) with the kernels built for
that shape (the module's constants patched, as probes do). Run on the GPU machine.
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np

from lightning_core.backends.cuda import elementwise as ew


def main(threads: int, packs: int, n: int, reps: int) -> None:
    ew._MAP_THREADS, ew._MAP_PACKS = threads, packs
    ew._plans.clear()
    a, b = (cp.asarray(np.random.default_rng(i).standard_normal(n).astype(np.float32))
            for i in range(2))
    out = cp.empty_like(a)
    stream = cp.cuda.get_current_stream()
    for _ in range(reps):
        ew.binary(a, b, out=out, stream=stream, precision="fp32", kind="add")
    stream.synchronize()
    assert cp.allclose(out, a + b)


if __name__ == "__main__":
    main(*(int(x) for x in sys.argv[1:4]), int(sys.argv[4]) if len(sys.argv) > 4 else 4)
