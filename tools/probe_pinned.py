"""Where a one-shot call on pinned host arrays spends its time (matrix_sub 1024^2, 2048x1024).

Prints: device-event durations of each step of the call composed by hand (H2D of both inputs,
the kernel, the D2H into pinned memory) and the host stamps between them; the lc call's median
under ``device="cuda"`` and ``"auto"``; the composed steps' median with preallocated and with
fresh buffers; the route the lc call took (trace); and whether this machine has a C compiler
and Python headers. Run on the GPU machine: PYTHONPATH=src python3 tools/probe_pinned.py [out]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import sysconfig
import time

import cupy as cp
import numpy as np
from profile_overhead import profile_text, report

import lightning_core as lc
from lightning_core.backends.cuda.memory import pinned_empty
from lightning_core.bench.suites.timers import host_median_us
from lightning_core.runtime.backend import get_backend

_H2D, _D2H = 1, 2


def _toolchain() -> list[str]:
    inc = sysconfig.get_paths()["include"]
    return [f"cc={shutil.which('cc')} gcc={shutil.which('gcc')} clang={shutil.which('clang')}",
            f"python include {inc}: Python.h {os.path.exists(os.path.join(inc, 'Python.h'))}",
            f"python {sys.version.split()[0]} at {sys.executable}"]


def main(path: str | None) -> None:
    lines = _toolchain()
    io = get_backend("cuda").io
    stream = io._stream
    memcpy = cp.cuda.runtime.memcpyAsync
    rng = np.random.default_rng(0)
    for rows, cols in ((1024, 1024), (2048, 1024)):
        n = rows * cols
        pa, pb, pout = pinned_empty(n), pinned_empty(n), pinned_empty(n)
        pa[...] = rng.standard_normal(n)
        pb[...] = rng.standard_normal(n)
        da, db = cp.empty(n, cp.float32), cp.empty(n, cp.float32)
        nbytes = n * 4
        ev = [cp.cuda.Event() for _ in range(4)]

        def composed(fresh: bool, stamps: list[int] | None = None) -> None:
            xa, xb = (cp.empty(n, cp.float32), cp.empty(n, cp.float32)) if fresh else (da, db)
            out = pinned_empty(n) if fresh else pout
            t = [time.perf_counter_ns()]
            with stream:
                ev[0].record(stream)
                memcpy(xa.data.ptr, pa.ctypes.data, nbytes, _H2D, stream.ptr)
                memcpy(xb.data.ptr, pb.ctypes.data, nbytes, _H2D, stream.ptr)
                ev[1].record(stream)
                t.append(time.perf_counter_ns())
                dev = lc.matrix_sub(xa, xb, rows, cols, "cuda")
                ev[2].record(stream)
                t.append(time.perf_counter_ns())
                memcpy(out.ctypes.data, dev.data.ptr, nbytes, _D2H, stream.ptr)
                ev[3].record(stream)
                t.append(time.perf_counter_ns())
                stream.synchronize()
            t.append(time.perf_counter_ns())
            if stamps is not None:
                stamps.extend(t)

        for _ in range(20):
            composed(False)
        gpu = {"h2d": [], "kernel": [], "d2h": []}
        host = {"issue h2d": [], "issue kernel": [], "issue d2h": [], "wait": [], "total": []}
        for _ in range(60):
            st: list[int] = []
            composed(False, st)
            for name, (i, j) in (("h2d", (0, 1)), ("kernel", (1, 2)), ("d2h", (2, 3))):
                gpu[name].append(cp.cuda.get_elapsed_time(ev[i], ev[j]) * 1e3)
            for name, (i, j) in (("issue h2d", (0, 1)), ("issue kernel", (1, 2)),
                                 ("issue d2h", (2, 3)), ("wait", (3, 4)), ("total", (0, 4))):
                host[name].append((st[j] - st[i]) / 1e3)
        tag = f"matrix_sub {rows}x{cols} pinned"
        for name, vals in gpu.items():
            med = statistics.median(vals)
            bw = (2 * nbytes if name == "h2d" else nbytes) / med / 1e3
            lines.append(f"{tag}: device {name:7s} {med:8.1f} us"
                         + (f"  ({bw:.1f} GB/s)" if name != "kernel" else ""))
        for name, vals in host.items():
            lines.append(f"{tag}: host {name:13s} {statistics.median(vals):8.1f} us")
        rows_t = [
            ("lc.matrix_sub cuda", lambda: lc.matrix_sub(pa, pb, rows, cols, "cuda")),
            ("lc.matrix_sub auto", lambda: lc.matrix_sub(pa, pb, rows, cols)),
            ("composed, preallocated", lambda: composed(False)),
            ("composed, fresh buffers", lambda: composed(True)),
            ("lc.matrix_sub cuda (again)", lambda: lc.matrix_sub(pa, pb, rows, cols, "cuda")),
        ]
        for name, fn in rows_t:
            lines.append(f"{tag}: {name:28s} {host_median_us(fn, iters=200):8.1f} us")
        lc.runtime_trace_clear()
        lc.runtime_trace_enable(True)
        lc.matrix_sub(pa, pb, rows, cols)
        lc.matrix_sub(pa, pb, rows, cols, "cuda")
        lc.runtime_trace_enable(False)
        keep = ("requested_device", "selected_device", "impl", "impl_reason", "duration_ns",
                "bytes_uploaded", "bytes_downloaded", "notes")
        lines.extend(f"{tag}: trace {({k: e.get(k) for k in keep})}"
                     for e in lc.runtime_trace_events())
        lines.append(profile_text(f"{tag} lc cuda", lambda: lc.matrix_sub(pa, pb, rows, cols,
                                                                           "cuda"), 60, 14))
        print("\n".join(lines[-12:]), flush=True)
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
