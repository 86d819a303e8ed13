"""Where a pageable upload's time goes: the native copy pool's copies alone (plain and with
streaming stores), the piece loop with and without DMA, every copy then every DMA, the DMA
alone, and the whole ``upload_many`` at several thread counts.

Two 4 MB float32 sources (the one-shot matmul 1024^3 case), medians of host-clock samples.
Run on the GPU machine: PYTHONPATH=src python3 tools/probe_staging.py [out.txt]
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np
from profile_overhead import report

from lightning_core import config, native
from lightning_core.backends.cuda import memory
from lightning_core.bench.suites.timers import host_median_us
from lightning_core.runtime.backend import get_backend
from lightning_core.runtime.host_threads import chunks


def main(path: str | None) -> None:
    rng = np.random.default_rng(0)
    io = get_backend("cuda").io
    stream = io._stream
    srcs = [rng.standard_normal((1024, 1024)).astype(np.float32) for _ in range(2)]
    devs = [cp.empty((1024, 1024), np.float32) for _ in srcs]
    nbytes = srcs[0].nbytes
    blocks = [memory._Block(cp, nbytes) for _ in srcs]
    copy = native.load().host_copy
    memcpy = cp.cuda.runtime.memcpyAsync
    lines = []

    def row(name: str, fn) -> None:
        lines.append(f"{name:52s} {host_median_us(fn):9.1f} us")

    for nt in (False, True):
        for threads in (4, 8, 16):
            def copies(threads: int = threads, nt: bool = nt) -> None:
                for s, b in zip(srcs, blocks, strict=True):
                    copy(b.ptr, s.ctypes.data, nbytes, threads, nt)
            row(f"native copies 2 x 4 MB, {threads} thr{', streaming' if nt else ''}", copies)

    def pieces(piece: int, threads: int, dma: bool, nt: bool):
        def run() -> None:
            for s, b, d in zip(srcs, blocks, devs, strict=True):
                parts = max(1, nbytes // piece)
                for lo, hi in chunks(nbytes, parts=parts, min_chunk=1 << 16, align=4096):
                    copy(b.ptr + lo, s.ctypes.data + lo, hi - lo, threads, nt)
                    if dma:
                        memcpy(d.data.ptr + lo, b.ptr + lo, hi - lo, 1, stream.ptr)
            stream.synchronize()
        return run

    def serial(threads: int, nt: bool):
        def run() -> None:  # every copy first, then every DMA: nothing overlaps
            for s, b in zip(srcs, blocks, strict=True):
                copy(b.ptr, s.ctypes.data, nbytes, threads, nt)
            for b, d in zip(blocks, devs, strict=True):
                memcpy(d.data.ptr, b.ptr, nbytes, 1, stream.ptr)
            stream.synchronize()
        return run

    for nt in (False, True):
        tag = ", streaming" if nt else ""
        for piece in (1 << 20, 4 << 20):
            row(f"piece loop, copies only, {piece >> 10} KB{tag}", pieces(piece, 8, False, nt))
            row(f"piece loop + DMA, {piece >> 10} KB{tag}", pieces(piece, 8, True, nt))
        for threads in (8, 16):
            row(f"copy all, then DMA all, {threads} thr{tag}", serial(threads, nt))

    def dma_only() -> None:
        for b, d in zip(blocks, devs, strict=True):
            memcpy(d.data.ptr, b.ptr, nbytes, 1, stream.ptr)
        stream.synchronize()

    row("DMA only, 2 x 4 MB from pinned", dma_only)

    def upload() -> None:
        io.upload_many(list(zip(srcs, devs, strict=True)))
        stream.synchronize()

    row("upload_many (as shipped)", upload)
    for threads in (4, 16):
        def upload_with(threads: int = threads) -> None:
            with config.override(LC_HOST_THREADS=threads):
                upload()
        row(f"upload_many, LC_HOST_THREADS={threads}", upload_with)
    report("\n".join(lines), path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
