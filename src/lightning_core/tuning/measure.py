"""Running, checking and timing one implementation on random inputs, on the host or on CUDA.

``HostRunner`` calls CPU implementations on NumPy arrays and times them with the host clock;
``CudaRunner`` uploads the inputs once, calls CUDA implementations on the backend's stream and
times them with CUDA events recorded on that stream (device time, not launch overhead). Both
take the median of several runs after warm-up, within a time budget so that a slow candidate
cannot stall the call that triggered the search.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..runtime.backend import Backend, Impl
from ..runtime.dispatch import Call
from .keys import OpSpec

__all__ = ["HostRunner", "CudaRunner", "runner_for", "random_inputs", "tolerance", "mismatch"]

# Relative tolerance (against |ref| + rms(ref)) per dtype, loosened by the precision asked for.
# Loose enough for any correct summation order, tight enough that a wrong result, which is
# off by about the size of the values themselves, never passes.
_DTYPE_RTOL = {"float64": 1e-9, "float32": 1e-4, "float16": 2e-2}
_PRECISION_RTOL = {"fp32": 0.0, "tf32": 1e-2, "fp16": 2e-2, "bf16": 5e-2}


def tolerance(dtype_name: str, precision: str) -> float:
    """The relative tolerance a candidate's output must meet."""
    return max(_DTYPE_RTOL.get(dtype_name, 5e-2), _PRECISION_RTOL.get(precision, 5e-2))


def mismatch(got: np.ndarray, ref: np.ndarray, rtol: float) -> str | None:
    """None when ``got`` matches the float64 reference, else why it does not."""
    got64 = np.asarray(got, dtype=np.float64).reshape(ref.shape)
    finite = np.isfinite(ref)
    if not np.all(np.isfinite(got64[finite])):
        return "non-finite output where the reference is finite"
    if not finite.any():
        return None
    rms = float(np.sqrt(np.mean(np.square(ref[finite]))))
    err = np.abs(got64[finite] - ref[finite])
    allowed = rtol * (np.abs(ref[finite]) + rms) + np.finfo(np.float64).tiny
    if np.any(err > allowed):
        return f"mismatch: max error {float(err.max()):.3g} (relative tolerance {rtol:g})"
    return None


def random_inputs(spec: OpSpec, call: Call, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Host inputs of ``call``'s shapes and dtype (standard normal unless the spec says)."""
    if spec.inputs is not None:
        return spec.inputs(rng, call)
    return tuple(rng.standard_normal(o.array.shape).astype(call.dtype) for o in call.inputs)


def _median_us(run: Callable[[], float], *, warmup: int, runs: int, budget_s: float) -> float:
    """Median of ``runs`` timings of ``run`` (which returns µs), fewer (at least 3) when the
    budget runs out first."""
    for _ in range(warmup):
        run()
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < runs and (len(samples) < 3 or time.perf_counter() < deadline):
        samples.append(run())
    return float(np.median(samples))


class HostRunner:
    """CPU implementations on NumPy arrays, host clock."""

    timer = "host_clock"

    def prepare(self, host: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        return host

    def output(self, call: Call) -> np.ndarray:
        return np.full(call.out_shape, np.nan, dtype=call.dtype)

    def invoke(self, impl: Impl, inputs: tuple[Any, ...], out: Any, call: Call) -> None:
        impl.fn(*inputs, out=out, **call.params)

    def fetch(self, out: Any) -> np.ndarray:
        return out

    def time_us(self, impl: Impl, inputs: tuple[Any, ...], out: Any, call: Call, *,
                warmup: int, runs: int, budget_s: float) -> float:
        return self._timed(impl, lambda: (inputs, out), call, warmup=warmup, runs=runs,
                           budget_s=budget_s)

    def time_rotating_us(self, impl: Impl, next_set: Callable[[], tuple[tuple[Any, ...], Any]],
                         call: Call, *, warmup: int, runs: int, budget_s: float) -> float:
        """``time_us`` where each run takes its (inputs, out) from ``next_set()``: cycling
        through enough of them, the data comes from memory, not from the caches the previous
        runs filled."""
        return self._timed(impl, next_set, call, warmup=warmup, runs=runs, budget_s=budget_s)

    @staticmethod
    def _timed(impl: Impl, next_set: Callable[[], tuple[tuple[Any, ...], Any]], call: Call, *,
               warmup: int, runs: int, budget_s: float) -> float:
        def run() -> float:
            inputs, out = next_set()
            t0 = time.perf_counter_ns()
            impl.fn(*inputs, out=out, **call.params)
            return (time.perf_counter_ns() - t0) / 1e3

        return _median_us(run, warmup=warmup, runs=runs, budget_s=budget_s)


class CudaRunner:
    """CUDA implementations on CuPy arrays on the backend's stream, CUDA events."""

    timer = "cuda_events"

    def __init__(self, backend: Backend) -> None:
        import cupy  # noqa: PLC0415 - only on a machine with the CUDA backend

        self._cp = cupy
        self.stream = backend.stream  # type: ignore[attr-defined]
        self._events = (cupy.cuda.Event(), cupy.cuda.Event())

    def prepare(self, host: tuple[np.ndarray, ...]) -> tuple[Any, ...]:
        with self.stream:
            dev = tuple(self._cp.asarray(x) for x in host)
        self.stream.synchronize()
        return dev

    def output(self, call: Call) -> Any:
        with self.stream:
            return self._cp.full(call.out_shape, np.nan, dtype=call.dtype)

    def invoke(self, impl: Impl, inputs: tuple[Any, ...], out: Any, call: Call) -> None:
        impl.fn(*inputs, out=out, stream=self.stream, precision=call.precision, **call.params)
        self.stream.synchronize()

    def fetch(self, out: Any) -> np.ndarray:
        host = out.get(stream=self.stream)
        self.stream.synchronize()
        return host

    def time_us(self, impl: Impl, inputs: tuple[Any, ...], out: Any, call: Call, *,
                warmup: int, runs: int, budget_s: float) -> float:
        start, end = self._events
        stream, fn, params, prec = self.stream, impl.fn, call.params, call.precision

        def run() -> float:
            start.record(stream)
            fn(*inputs, out=out, stream=stream, precision=prec, **params)
            end.record(stream)
            end.synchronize()
            return self._cp.cuda.get_elapsed_time(start, end) * 1e3

        return _median_us(run, warmup=warmup, runs=runs, budget_s=budget_s)


def runner_for(backend: Backend) -> HostRunner | CudaRunner:
    """The runner that calls ``backend``'s implementations with their calling convention."""
    return CudaRunner(backend) if backend.name == "cuda" else HostRunner()
