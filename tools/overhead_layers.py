"""Per-layer host cost of a device-resident lc call (pipelined, no sync; median of repeats).

Prints one line per layer: what a bare CuPy launch costs, what each piece of the lc fast lane
adds. Run on the GPU machine: PYTHONPATH=src python3 tools/overhead_layers.py [out.txt]
"""

from __future__ import annotations

import statistics
import sys
import time

import cupy as cp
import numpy as np
from profile_overhead import profile_text, report

import lightning_core as lc
from lightning_core.backends.cuda import elementwise as ew
from lightning_core.runtime import dispatch


def per_call(fn, n: int = 4000, reps: int = 7) -> float:
    return timed(fn, n, reps)[0]


def timed(fn, n: int = 4000, reps: int = 7) -> tuple[float, float]:
    """(host µs per call, device µs per call between events on the current stream)."""
    for _ in range(200):
        fn()
    cp.cuda.Device(0).synchronize()
    host, dev = [], []
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    for _ in range(reps):
        start.record()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t1 = time.perf_counter()
        stop.record()
        stop.synchronize()
        host.append((t1 - t0) / n * 1e6)
        dev.append(cp.cuda.get_elapsed_time(start, stop) * 1e3 / n)
    return statistics.median(host), statistics.median(dev)


def _gemm_rows() -> list[tuple[str, object]]:
    """Host cost of one small GEMM call through each road (16^3: the kernel is negligible)."""
    from cupy_backends.cuda.libs import cublas

    from lightning_core.backends.cuda import blas

    a, b, c = (cp.ones((16, 16), cp.float32) for _ in range(3))
    lc.matmul2d_into(a, b, c)
    direct = blas._direct()
    s = cp.cuda.get_current_stream()
    handle = direct.handle(s.ptr)
    one, zero = blas._SCALARS["f"]
    args = (0, 0, 16, 16, 16, one, b.data.ptr, 0, 16, a.data.ptr, 0, 16, zero, c.data.ptr, 0,
            16, cublas.CUBLAS_COMPUTE_32F, -1)
    rows = [("cublasGemmEx via ctypes 16^3", lambda: direct.gemm(handle, *args)),
            ("cublasGemmEx via CuPy binding 16^3", lambda: cublas.gemmEx(handle, *args)),
            ("cupy.matmul 16^3 out=", lambda: cp.matmul(a, b, out=c)),
            ("lc.matmul2d_into 16^3", lambda: lc.matmul2d_into(a, b, c))]
    try:
        import torch

        ta, tb, tc = (torch.ones((16, 16), device="cuda") for _ in range(3))
        rows.append(("torch.mm 16^3 out=", lambda: torch.mm(ta, tb, out=tc)))
    except ImportError:
        pass
    return rows


def _graph_rows() -> list[tuple[str, object]]:
    """Host cost of the integrated conv -> attention graph call, layer by layer (seq 48)."""
    from lightning_core.sessions import integrated

    x = cp.ones((1, 3, 8, 8), cp.float32)
    w = cp.ones((16, 3, 3, 3), cp.float32)
    bias = cp.ones(16, cp.float32)

    def full():
        return lc.lightning_conv_attention_torchstrong_nchw(x, w, bias, 48, 48, 1, 1, 1, 1,
                                                            "auto", execution_mode="graph")

    full()
    sess = next(iter(integrated._CACHE.values()))
    key = next(iter(sess._variants))
    ex = sess._ex
    graph = ex._graphs[(key, 1)]
    sync = ex.stream.synchronize
    return [
        ("conv_attn graph: full call + sync", full),
        ("conv_attn graph: sess(x, w, b) + sync", lambda: sess(x, w, bias)),
        ("conv_attn graph: replay + sync", lambda: (ex.replay(key, 1), sync())),
        ("conv_attn graph: graph.launch + sync", lambda: (graph.launch(stream=ex.stream),
                                                          sync())),
        ("stream sync alone", sync),
    ]


def main(path: str | None) -> None:
    a, b, c = (cp.ones(1024, cp.float32) for _ in range(3))
    q = cp.ones((96, 48), cp.float32)
    for _ in range(3):
        lc.vector_add_into(a, b, c)
    call = ew._plan(ew._BINARY["add"], np.dtype(np.float32), 1024, True, 3)
    fn, grid, block, n64 = call.kernel, call.grid, call.block, np.int64(1024)
    s = cp.cuda.get_current_stream()
    pa, pb, pc = (np.uint64(x.data.ptr) for x in (a, b, c))
    ia, ib, ic = (x.data.ptr for x in (a, b, c))
    key = dispatch.lane_key("vector_add_into", "auto", ("add",), (a, b), c)
    lane = dispatch._lanes[key]
    m = cp.ones((256, 256), cp.float32)
    x = cp.ones((1, 3, 16, 16), cp.float32)
    w = cp.ones((16, 3, 3, 3), cp.float32)
    bias = cp.ones(16, cp.float32)
    rows = [
        ("bare RawKernel launch, ndarray args", lambda: fn(grid, block, (a, b, c, n64), stream=s)),
        ("bare launch, np.uint64 pointer args", lambda: fn(grid, block, (pa, pb, pc, n64), stream=s)),
        ("bare launch, int pointer args", lambda: fn(grid, block, (ia, ib, ic, n64), stream=s)),
        ("bare launch, default stream kw", lambda: fn(grid, block, (a, b, c, n64))),
        ("KernelCall (direct cuLaunchKernel)", lambda: call(s, a, b, c)),
        ("cupy.add(a, b, out=c)", lambda: cp.add(a, b, out=c)),
        ("cupy.empty(1024)", lambda: cp.empty(1024, cp.float32)),
        ("cupy.ndarray((1024,), dtype)", lambda: cp.ndarray((1024,), np.dtype(np.float32))),
        ("get_current_stream()", cp.cuda.get_current_stream),
        ("lane_key", lambda: dispatch.lane_key("vector_add_into", "auto", ("add",), (a, b), c)),
        ("lane_call (incl. launch)", lambda: dispatch.lane_call("vector_add_into", "auto",
                                                                ("add",), (a, b), c)),
        ("lane.run (incl. launch)", lambda: lane.run((a, b), c)),
        ("ew.binary (incl. launch)", lambda: ew.binary(a, b, out=c, stream=s, precision="fp32", kind="add")),
        ("lc.vector_add_into", lambda: lc.vector_add_into(a, b, c)),
        ("lc.vector_add", lambda: lc.vector_add(a, b)),
        ("lc.attention2d 96x48", lambda: lc.attention2d(q, q, q, False)),
        ("lc.matmul2d 256^3", lambda: lc.matmul2d(m, m)),
        ("lc.conv2d_nchw 1x3x16x16 -> 16", lambda: lc.lightning_conv_relu_nchw(x, w, bias, 1, 1, 1, 1)),
    ]
    rows += _gemm_rows()
    rows += _graph_rows()
    lines = []
    for name, f in rows:
        host, dev = timed(f)
        lines.append(f"{name:40s} host {host:7.2f} us   device {dev:7.2f} us")
    by_name = dict(rows)
    for name in ("lc.matmul2d 256^3", "lc.conv2d_nchw 1x3x16x16 -> 16", "lc.attention2d 96x48"):
        lines.append(profile_text(name, by_name[name], 2000, 12))
    report("\n".join(lines), path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
