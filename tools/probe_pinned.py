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


def duplex_and_timeline(path: str | None) -> None:
    """Is the link full duplex here (8 MB up and 8 MB down at once, on two streams), and the
    device timeline of the pipelined call (timing events on both streams, per chunk), and the
    lc call's median for several chunk sizes."""
    from lightning_core import config

    lines = []
    nbytes = 8 << 20
    up_src, down_dst = pinned_empty(nbytes // 4), pinned_empty(nbytes // 4)
    d_up, d_down = cp.empty(nbytes // 4, cp.float32), cp.zeros(nbytes // 4, cp.float32)
    s1, s2 = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
    memcpy = cp.cuda.runtime.memcpyAsync
    e = [cp.cuda.Event() for _ in range(6)]
    for mode in ("up alone", "down alone", "both at once"):
        vals = []
        for _ in range(30):
            e[0].record(s1)
            s2.wait_event(e[0])
            if mode != "down alone":
                memcpy(d_up.data.ptr, up_src.ctypes.data, nbytes, _H2D, s1.ptr)
            if mode != "up alone":
                memcpy(down_dst.ctypes.data, d_down.data.ptr, nbytes, _D2H, s2.ptr)
            e[1].record(s1)
            e[2].record(s2)
            s1.wait_event(e[2])
            e[3].record(s1)
            e[3].synchronize()
            vals.append(cp.cuda.get_elapsed_time(e[0], e[3]) * 1e3)
        lines.append(f"duplex 8 MB {mode:14s} {statistics.median(vals):8.1f} us")
    rng = np.random.default_rng(1)
    n = 1024 * 1024
    pa, pb = pinned_empty(n), pinned_empty(n)
    pa[...], pb[...] = rng.standard_normal(n), rng.standard_normal(n)
    for chunk in (0, 256 << 10, 512 << 10, 1 << 20, 2 << 20):
        with config.override(LC_PIPELINE_CHUNK_BYTES=chunk):
            t = host_median_us(lambda: lc.matrix_sub(pa, pb, 1024, 1024, "cuda"), iters=200)
        lines.append(f"lc.matrix_sub 1024^2 pinned, chunk {chunk >> 10:5d} KiB  {t:8.1f} us")
    # Device timeline of one pipelined call, built by hand like backends/cuda/pipeline.py.
    from lightning_core.backends.cuda.elementwise import binary

    main_s, side = s1, s2
    da, db, dout = (cp.empty(n, cp.float32) for _ in range(3))
    res = pinned_empty(n)
    for chunks, first in ((4, False), (4, True), (8, True)):
        step = n // chunks
        evs = [cp.cuda.Event() for _ in range(3 * chunks + 1)]

        def up(i: int) -> None:
            lo, hi = i * step, (i + 1) * step
            memcpy(da.data.ptr + 4 * lo, pa.ctypes.data + 4 * lo, 4 * (hi - lo), _H2D,
                   main_s.ptr)
            memcpy(db.data.ptr + 4 * lo, pb.ctypes.data + 4 * lo, 4 * (hi - lo), _H2D,
                   main_s.ptr)
            evs[1 + 3 * i].record(main_s)

        def down(i: int) -> None:
            lo, hi = i * step, (i + 1) * step
            side.wait_event(evs[1 + 3 * i])
            binary(da[lo:hi], db[lo:hi], out=dout[lo:hi], stream=side, precision="fp32",
                   kind="sub")
            evs[2 + 3 * i].record(side)
            memcpy(res.ctypes.data + 4 * lo, dout.data.ptr + 4 * lo, 4 * (hi - lo), _D2H,
                   side.ptr)
            evs[3 + 3 * i].record(side)

        for _ in range(6):
            t_host = [time.perf_counter_ns()]
            evs[0].record(main_s)
            if first:
                for i in range(chunks):
                    up(i)
            for i in range(chunks):
                if not first:
                    up(i)
                down(i)
                t_host.append(time.perf_counter_ns())
            side.synchronize()
            t_host.append(time.perf_counter_ns())
        rel = [cp.cuda.get_elapsed_time(evs[0], ev) * 1e3 for ev in evs[1:]]
        order = "uploads first" if first else "interleaved"
        lines.append(f"timeline {chunks} chunks, {order} (us from start; up done / kernel "
                     "done / down done per chunk):")
        for i in range(chunks):
            lines.append(f"  chunk {i}: {rel[3 * i]:7.1f} {rel[3 * i + 1]:7.1f} "
                         f"{rel[3 * i + 2]:7.1f}   host issued by "
                         f"{(t_host[i + 1] - t_host[0]) / 1e3:7.1f}")
        lines.append(f"  host total {(t_host[-1] - t_host[0]) / 1e3:7.1f} us")
    report("\n".join(lines), path)


if __name__ == "__main__":
    out_path = sys.argv[1] if len(sys.argv) > 1 else None
    if len(sys.argv) > 2 and sys.argv[2] == "duplex":
        duplex_and_timeline(out_path)
    else:
        main(out_path)
