"""The timing harness every benchmark suite uses: warm-up, adaptive sampling, statistics.

Two timers share one sampling loop. ``measure`` reads the host clock around each call (with an
optional sync inside the timed region), which is what a user of one call feels.
``device_event_timer`` brackets each call with CUDA events and reports device time, which is
what a kernel costs. Both warm up, then sample until they have ``iters`` samples and
``min_time_s`` of timed work, and stop early at ``max_time_s`` so a slow case on a small CPU
machine still finishes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Sample", "NotMeasured", "Timing", "measure", "device_event_timer"]


@dataclass(frozen=True)
class Sample:
    """Timed samples of one case (nanoseconds) and their statistics."""

    raw_ns: tuple[int, ...]
    median_ns: float
    p10_ns: float
    p90_ns: float
    mean_ns: float
    cv: float  # sample standard deviation / mean; 0 for a single sample
    n: int

    @classmethod
    def from_ns(cls, raw_ns: Any) -> Sample:
        """Statistics of a non-empty sequence of durations in nanoseconds."""
        raw = tuple(int(v) for v in raw_ns)
        if not raw:
            raise ValueError("[bench] a Sample needs at least one timed call")
        arr = np.asarray(raw, dtype=np.float64)
        p10, median, p90 = np.percentile(arr, [10, 50, 90])
        mean = float(arr.mean())
        std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
        return cls(raw, float(median), float(p10), float(p90), mean,
                   std / mean if mean > 0 else 0.0, len(raw))

    @property
    def median_ms(self) -> float:
        return self.median_ns / 1e6

    def as_dict(self, *, raw: bool = True) -> dict[str, Any]:
        """The statistics (and, by default, every raw sample) as plain JSON-ready values."""
        stats: dict[str, Any] = {
            "unit": "ns", "n": self.n, "median_ns": self.median_ns, "p10_ns": self.p10_ns,
            "p90_ns": self.p90_ns, "mean_ns": self.mean_ns, "cv": self.cv,
        }
        if raw:
            stats["raw_ns"] = list(self.raw_ns)
        return stats


@dataclass(frozen=True)
class NotMeasured:
    """A timing that was not taken, and why (no GPU, torch missing, the op failed...)."""

    reason: str


Timing = Sample | NotMeasured


def _check_counts(warmup: int, iters: int, min_time_s: float, max_time_s: float) -> None:
    if warmup < 0 or iters < 1:
        raise ValueError(f"[bench] need warmup >= 0 and iters >= 1; got {warmup}, {iters}")
    if not (0 <= min_time_s and 0 < max_time_s and math.isfinite(max_time_s)):
        raise ValueError(f"[bench] need 0 <= min_time_s and a finite max_time_s > 0; got "
                         f"{min_time_s}, {max_time_s}")


def _sample(run_once: Callable[[], int], *, warmup: int, iters: int, min_time_s: float,
            max_time_s: float, clock: Callable[[], int]) -> Sample:
    """Warm up, then collect durations from ``run_once`` within the time budget."""
    _check_counts(warmup, iters, min_time_s, max_time_s)
    budget_ns = int(max_time_s * 1e9)
    # Warm-up may use half the budget: the first calls of a slow case (compile, tuning, page
    # faults) must not starve the timed loop of its samples.
    start = clock()
    for done in range(warmup):
        if done and clock() - start >= budget_ns // 2:
            break
        run_once()
    min_ns = int(min_time_s * 1e9)
    raw: list[int] = []
    timed = 0
    start = clock()
    while True:
        duration = run_once()
        raw.append(duration)
        timed += duration
        if len(raw) >= iters and timed >= min_ns:
            break
        if clock() - start >= budget_ns:
            break
    return Sample.from_ns(raw)


def measure(fn: Callable[[], Any], *, warmup: int, iters: int, min_time_s: float = 0.0,
            max_time_s: float = 1.0, sync: Callable[[], Any] | None = None,
            clock: Callable[[], int] = time.perf_counter_ns) -> Sample:
    """Time ``fn()`` (then ``sync()``, inside the timed region) on the host clock."""

    def run_once() -> int:
        t0 = clock()
        fn()
        if sync is not None:
            sync()
        return clock() - t0

    return _sample(run_once, warmup=warmup, iters=iters, min_time_s=min_time_s,
                   max_time_s=max_time_s, clock=clock)


def device_event_timer(fn: Callable[[], Any], *, warmup: int, iters: int,
                       min_time_s: float = 0.0, max_time_s: float = 1.0,
                       stream: Any = None) -> Sample:
    """Time ``fn()`` with CUDA events recorded on ``stream`` (default: CuPy's current one)."""
    import cupy  # noqa: PLC0415 - CuPy is optional; only this timer needs it

    stream = stream if stream is not None else cupy.cuda.get_current_stream()
    begin, end = cupy.cuda.Event(), cupy.cuda.Event()

    def run_once() -> int:
        begin.record(stream)
        fn()
        end.record(stream)
        end.synchronize()
        return int(round(cupy.cuda.get_elapsed_time(begin, end) * 1e6))

    return _sample(run_once, warmup=warmup, iters=iters, min_time_s=min_time_s,
                   max_time_s=max_time_s, clock=time.perf_counter_ns)
