"""Host-side rates that decide the one-shot paths: threaded CPU elementwise and uploads.

For each size: NumPy's single-threaded add, lc's CPU add with 1/2/4/8 host threads; a staged
upload of ordinary NumPy memory with 1/2/4/8 threads, CuPy's direct pageable copy, torch's
``.cuda()``; and the whole one-shot GPU vector_add. Median µs of repeated calls. Run on the GPU
machine: PYTHONPATH=src python3 tools/probe_host.py [out.txt]
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np
from profile_overhead import report

import lightning_core as lc
from lightning_core import config
from lightning_core.bench.suites.timers import host_median_us
from lightning_core.runtime.backend import get_backend


def main(path: str | None) -> None:
    import torch

    lines = []
    rng = np.random.default_rng(0)
    io = get_backend("cuda").io
    stream = cp.cuda.get_current_stream()
    for n in (1 << 18, 1 << 20, 1 << 21, 1 << 22, 1 << 23):
        a = rng.standard_normal(n).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        dev = cp.empty(n, cp.float32)
        rows = [("numpy a + b", lambda: a + b)]
        for t in (1, 2, 4, 8):
            def cpu_add(t=t):
                with config.override(LC_HOST_THREADS=t):
                    return lc.vector_add(a, b, "cpu")
            rows.append((f"lc cpu add, {t} threads", cpu_add))
        for t in (1, 2, 4, 8):
            def staged(t=t):
                with config.override(LC_HOST_THREADS=t):
                    io.upload(a, dev)
                    io._stream.synchronize()
            rows.append((f"staged upload, {t} threads", staged))
        rows.append(("cupy pageable memcpy", lambda: (dev.set(a, stream=stream),
                                                      stream.synchronize())))
        rows.append(("torch from_numpy().cuda()", lambda: (torch.from_numpy(a).cuda(),
                                                           torch.cuda.synchronize())))
        rows.append(("lc one-shot vector_add cuda", lambda: lc.vector_add(a, b, "cuda")))
        rows.append(("torch one-shot a + b", lambda: (torch.from_numpy(a).cuda()
                                                      + torch.from_numpy(b).cuda()).cpu().numpy()))
        for name, fn in rows:
            lines.append(f"n={n:<8d} {4 * n / 1e6:6.1f} MB  {name:32s} {host_median_us(fn):9.1f} us")
            print(lines[-1], flush=True)
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
