"""Timers the suites add to the harness: pipelined calls, L2-flushed CUDA-event timing, and
device time of queued launches held behind a spin kernel (``held_device_us``).

``pipelined`` times ``batch`` back-to-back calls followed by one sync and reports the cost per
call (how a loop that never waits performs). The event timers bracket one call with CUDA
events after writing a buffer larger than the L2 cache, so each timed kernel reads its inputs
from HBM, as it would inside a real model, instead of from a warm L2 (50 MB on an H100/H200,
enough to hold every input of most seed cases).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..harness import Sample, _sample, measure

__all__ = ["host_times", "host_times_interleaved", "host_median_us", "pipelined",
           "pipeline_batch", "cupy_event_timer", "torch_event_timer", "flush_bytes",
           "held_device_us"]

# The L2 flush buffer is at least this big even when the device reports a smaller L2.
_MIN_FLUSH_BYTES = 64 << 20


def pipelined(fn: Callable[[], Any], sync: Callable[[], Any], *, batch: int,
              **timing: Any) -> Sample:
    """Per-call time of ``batch`` calls of ``fn`` then one ``sync`` (raw samples per call)."""
    batch = max(1, int(batch))

    def burst() -> None:
        for _ in range(batch):
            fn()

    whole = measure(burst, sync=sync, **timing)
    return Sample.from_ns([round(v / batch) for v in whole.raw_ns])


def pipeline_batch(per_call_ns: float, *, target_ns: float = 2e6, cap: int = 64) -> int:
    """How many calls one pipelined sample should hold: about 2 ms of work, at most ``cap``."""
    if per_call_ns <= 0:
        return cap
    return max(1, min(cap, int(target_ns // per_call_ns)))


def flush_bytes(l2_bytes: int) -> int:
    """Size of the buffer written between timed calls: twice the L2, at least 64 MiB."""
    return max(2 * int(l2_bytes), _MIN_FLUSH_BYTES)


def _counted(timing: dict[str, Any]) -> dict[str, Any]:
    # The flush and the host wait dwarf a small kernel, so a minimum of timed device work
    # would take thousands of samples: event timers stop at ``iters`` samples instead.
    return {**timing, "min_time_s": 0.0}


def cupy_event_timer(fn: Callable[[], Any], **timing: Any) -> Sample:
    """Device time of ``fn`` on CuPy's current stream, by CUDA events, L2 flushed before each.

    Lightning Core orders its own stream after the caller's current stream and the caller's
    stream after its result, so events on the current stream bracket the whole call.
    """
    import cupy  # noqa: PLC0415 - only on the GPU

    dev = cupy.cuda.Device()
    scratch = cupy.empty(flush_bytes(dev.attributes["L2CacheSize"]), dtype=cupy.uint8)
    stream = cupy.cuda.get_current_stream()
    begin, end = cupy.cuda.Event(), cupy.cuda.Event()

    def run_once() -> int:
        scratch.fill(0)
        begin.record(stream)
        fn()
        end.record(stream)
        end.synchronize()
        return int(round(cupy.cuda.get_elapsed_time(begin, end) * 1e6))

    return _sample(run_once, clock=time.perf_counter_ns, **_counted(timing))


def torch_event_timer(torch: Any, fn: Callable[[], Any], **timing: Any) -> Sample:
    """Device time of ``fn`` on torch's current stream, by CUDA events, L2 flushed before each."""
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    l2 = int(getattr(props, "L2_cache_size", 0))
    scratch = torch.empty(flush_bytes(l2), dtype=torch.uint8, device="cuda")
    begin = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def run_once() -> int:
        scratch.zero_()
        begin.record()
        fn()
        end.record()
        end.synchronize()
        return int(round(begin.elapsed_time(end) * 1e6))

    return _sample(run_once, clock=time.perf_counter_ns, **_counted(timing))


def host_times(fn: Callable[[], Any], sync: Callable[[], Any] = lambda: None, *,
               warmup: int = 20, iters: int = 150, budget_s: float = 0.6) -> list[float]:
    """Per-call µs of ``fn(); sync()`` by the host clock: ``warmup`` untimed calls, then up to
    ``iters`` timed ones within ``budget_s`` (at least 15)."""
    for _ in range(warmup):
        fn()
        sync()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < iters and (time.perf_counter() - start < budget_s or len(samples) < 15):
        t0 = time.perf_counter_ns()
        fn()
        sync()
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    return samples


def host_times_interleaved(fns: dict[str, Callable[[], Any]], *, warmup: int = 20,
                           rounds: int = 8, per_round: int = 10, round_warmup: int = 2,
                           budget_s: float = 1.2) -> dict[str, list[float]]:
    """Per-call µs of each of ``fns`` by the host clock, taken in alternating rounds of
    ``per_round`` calls so that none of them is always measured first or last (CPU clocks, thread
    pools and caches warm and cool between phases); each turn starts with ``round_warmup``
    untimed calls (the switch from another side's work is not charged to this one); stops early
    after the budget, with at least two rounds."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    for r in range(rounds):
        if r >= 2 and time.perf_counter() - start > budget_s:
            break
        order = list(fns.items())
        if r % 2:
            order.reverse()
        for name, fn in order:
            for _ in range(round_warmup):
                fn()
            for _ in range(per_round):
                t0 = time.perf_counter_ns()
                fn()
                samples[name].append((time.perf_counter_ns() - t0) / 1e3)
    return samples


def host_median_us(fn: Callable[[], Any], sync: Callable[[], Any] = lambda: None,
                   **kwargs: Any) -> float:
    """Median of ``host_times``."""
    return statistics.median(host_times(fn, sync, **kwargs))


_SPIN_SOURCE = r"""
extern "C" __global__ void lc_spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) { }
}"""
_spin_kernel: list[Any] = []


def held_device_us(cp: Any, fn: Callable[[], Any], n: int = 20, reps: int = 9) -> float:
    """Median device µs per call of ``fn``, launch gaps excluded.

    A one-thread spin kernel (about 1 ms) holds the current stream while the host queues ``n``
    calls, so the events around them bracket back-to-back device work only: the kernel time a
    graph replay can approach, which events around one host call cannot show.
    """
    if not _spin_kernel:
        _spin_kernel.append(cp.RawKernel(_SPIN_SOURCE, "lc_spin"))
    spin = _spin_kernel[0]
    for _ in range(3):
        fn()
    cp.cuda.get_current_stream().synchronize()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    out = []
    for _ in range(reps):
        spin((1,), (1,), (np.int64(2_000_000),))  # about 1 ms at 2 GHz
        start.record()
        for _ in range(n):
            fn()
        stop.record()
        stop.synchronize()
        out.append(cp.cuda.get_elapsed_time(start, stop) * 1e3 / n)
    return statistics.median(out)
