"""Physical floors: the least time a case could take on this machine, and where the limits come
from.

A case's floor is ``max(FLOPs / peak, bytes / bandwidth)`` for the work itself (the kernel
floor), plus the cost of one launch and sync from Python for a call that waits (the resident
floor), plus the host transfers for a NumPy-in, NumPy-out call (the one-shot floor). The
ceilings are measured in the same run (``--ceilings measure``, the default) or taken from the
H200 table of shared PERF.md (``--ceilings perf-md``); every row says which. The memory term
assumes traffic to DRAM/HBM: the L2-flushed device timings are bounded by it, while calls whose
data stays in a cache (a resident loop over an array smaller than the GPU's L2, small arrays on
the CPU) can run below it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["Ceilings", "Work", "Floor", "ceilings", "PERF_MD_H200"]


@dataclass(frozen=True)
class Ceilings:
    """Peak rates of one machine (bytes/s, FLOP/s) and the launch + sync floor (s)."""

    source: str
    device: str
    mem_bw: float  # device memory, read + write bytes per second
    fp32_flops: float  # true fp32 (no TF32)
    launch_sync_s: float  # one tiny call plus a sync, from Python
    h2d_bw: float = float("inf")  # pageable host -> device (inf: no transfer on the cpu)
    d2h_bw: float = float("inf")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: a rate that does not apply (no host transfers on the cpu) is None."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


# PERF.md, "Ceilings of that machine": one H200, measured 2026-11-29.
PERF_MD_H200 = Ceilings(source="PERF.md (H200, 2026-11-29)", device="cuda", mem_bw=4214e9,
                        fp32_flops=51e12, launch_sync_s=10.2e-6, h2d_bw=16.2e9,
                        d2h_bw=13.5e9)


@dataclass(frozen=True)
class Work:
    """What a case must do at least: FLOPs, device bytes, host bytes in and out."""

    flops: float
    device_bytes: float
    host_in_bytes: float
    host_out_bytes: float


@dataclass(frozen=True)
class Floor:
    """The three floors of one case (ms) and which limit binds the kernel floor."""

    kernel_ms: float
    resident_ms: float
    oneshot_ms: float
    bound: str

    @classmethod
    def of(cls, work: Work, ceil: Ceilings) -> Floor:
        compute = work.flops / ceil.fp32_flops
        memory = work.device_bytes / ceil.mem_bw
        kernel = max(compute, memory)
        resident = kernel + ceil.launch_sync_s
        transfers = work.host_in_bytes / ceil.h2d_bw + work.host_out_bytes / ceil.d2h_bw
        if ceil.launch_sync_s > kernel:
            bound = "launch"
        else:
            bound = "compute" if compute >= memory else "memory"
        return cls(kernel * 1e3, resident * 1e3, (resident + transfers) * 1e3, bound)


# A ceiling is the best rate observed: the fastest of a few repetitions, not their median.
def _best_s(fn: Callable[[], Any], reps: int, sync: Callable[[], Any] = lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        fn()
        sync()
        times.append((time.perf_counter_ns() - t0) / 1e9)
    return min(times)


def _measure_cpu() -> Ceilings:
    n = 8 << 20  # 32 MiB of float32 per array: well past any CPU cache
    src, dst = np.ones(n, np.float32), np.empty(n, np.float32)
    copy_s = _best_s(lambda: np.copyto(dst, src), 5)
    a = np.ones((1024, 1024), np.float32)
    gemm_s = _best_s(lambda: a @ a, 5)
    x, y = np.ones(1, np.float32), np.ones(1, np.float32)
    tiny_s = _best_s(lambda: np.add(x, y), 200)
    return Ceilings(source="measured in this run", device="cpu", mem_bw=2 * src.nbytes / copy_s,
                    fp32_flops=2 * 1024**3 / gemm_s, launch_sync_s=tiny_s)


def _measure_cuda() -> Ceilings:
    """HBM copy, pageable transfers, SGEMM 8192³ and a tiny op + sync, on GPU 0."""
    import cupy  # noqa: PLC0415 - only on the GPU

    sync = cupy.cuda.get_current_stream().synchronize
    big = cupy.ones(64 << 20, cupy.float32)  # 256 MiB, five times an H200's L2
    out = cupy.empty_like(big)
    copy_s = _event_best(cupy, lambda: cupy.copyto(out, big), 10)
    host = np.ones(16 << 20, np.float32)  # 64 MiB of ordinary (pageable) host memory
    h2d_s = _best_s(lambda: cupy.asarray(host), 5, sync)
    dev = cupy.asarray(host)
    d2h_s = _best_s(lambda: cupy.asnumpy(dev), 5, sync)
    # CuPy runs cuBLAS SGEMM in true fp32 unless CUPY_TF32=1 is set.
    a = cupy.ones((8192, 8192), cupy.float32)
    gemm_s = _event_best(cupy, lambda: a @ a, 3)
    x = cupy.ones(1, cupy.float32)
    tiny_s = _best_s(lambda: cupy.add(x, 1, out=x), 200, sync)
    return Ceilings(source="measured in this run", device="cuda",
                    mem_bw=2 * 256 * 2**20 / copy_s, fp32_flops=2 * 8192**3 / gemm_s,
                    launch_sync_s=tiny_s, h2d_bw=host.nbytes / h2d_s, d2h_bw=host.nbytes / d2h_s)


def _event_best(cupy: Any, fn: Callable[[], Any], reps: int) -> float:
    fn()
    begin, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(reps):
        begin.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(begin, end) / 1e3)
    return min(times)


_CACHE: dict[tuple[str, str], Ceilings] = {}


def ceilings(device: str, source: str = "measure") -> Ceilings:
    """The ceilings for ``device``: measured once per process, or PERF.md's H200 table."""
    if source == "perf-md":
        return PERF_MD_H200
    key = (device, source)
    if key not in _CACHE:
        _CACHE[key] = _measure_cuda() if device == "cuda" else _measure_cpu()
    return _CACHE[key]
