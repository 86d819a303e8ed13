"""General capture API: record any chain of lc operators on device-resident data, replay it.

    sess = lc.capture(fn, *example_inputs)   # warm-up (compile, tune), then capture
    outs = sess(*inputs)                      # replay: copy inputs in, one graph launch

Phases are explicit and timed (``warmup_ms``, ``capture_ms``). The captured function must take
and return arrays (a single array or a tuple/list of arrays) and use only lc operators and
array-library calls that neither allocate host memory nor synchronize. On CUDA the whole chain
is one CUDA graph; on the CPU a replay is a plain call. Calling with another shape or dtype
raises ``SessionMismatchError``: a capture is never redone silently. Outputs are owned by the
session and overwritten by the next replay (copy them to keep them).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, SessionMismatchError
from ..runtime.arrays import _NATIVE, as_operands, c_contiguous, is_device_array
from ..runtime.device import resolve
from ..trace.events import TraceEvent
from ..trace.recorder import TRACE
from .core import shape_of

__all__ = ["capture", "CapturedFunction"]

_KEY = "captured"


class CapturedFunction:
    """A function captured on example inputs; call it to replay.

    ``inputs="copy"`` (default): each call copies its inputs into session-owned buffers that
    the graph reads. ``inputs="address"``: the graph reads device inputs where they are, one
    captured variant per distinct set of input addresses (at most ``max_variants``, least
    recently used dropped first); host inputs are still copied in. Use it when the same device
    arrays (weights, persistent activations) are passed again and again.
    """

    def __init__(self, fn: Callable[..., Any], *examples: Any, device: str = "auto",
                 inputs: str = "copy", max_variants: int = 8) -> None:
        if not callable(fn):
            raise InvalidArgumentError(f"[capture] fn must be callable, got {type(fn).__name__}")
        if not examples:
            raise InvalidArgumentError("[capture] give at least one example input")
        if inputs not in ("copy", "address"):
            raise InvalidArgumentError(f"[capture] inputs must be 'copy' or 'address', got "
                                       f"{inputs!r}")
        names = tuple(f"input{i}" for i in range(len(examples)))
        operands, _ = as_operands("capture", names, examples)
        on_device = any(o.on_device for o in operands)
        route = resolve("capture", "cuda" if on_device and device == "auto" else device)
        self.device = route.selected
        self.mode = inputs
        self.max_variants = max(1, int(max_variants))
        self._ex = route.backend.session_executor()
        self._fn = fn
        self._specs = tuple((tuple(o.array.shape), o.array.dtype) for o in operands)
        self._static = tuple(self._ex.alloc(shape, dt) for shape, dt in self._specs)
        self._variants: OrderedDict[Any, dict[str, Any]] = OrderedDict()
        self.warmup_ms = self.capture_ms = 0.0
        self._last: dict[str, Any] = {}
        # Address mode on a device: calls whose inputs are all arrays of this type take the
        # short path (``_address_key``).
        self._native = getattr(getattr(self._ex, "xp", None), "ndarray", None) \
            if inputs == "address" and self._ex.device != "cpu" else None
        self._run(tuple(o.array for o in operands), sync=True)

    def _args(self, values: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
        """(variant key, arrays the step reads) for one call's inputs."""
        args, key = [], []
        for i, (value, buf) in enumerate(zip(values, self._static, strict=True)):
            if self.mode == "address" and (type(value) in _NATIVE or is_device_array(value)):
                args.append(value)
                data = getattr(value, "data", None)  # CuPy: a MemoryPointer, cheap to read
                key.append(data.ptr if hasattr(data, "ptr")
                           else value.__cuda_array_interface__["data"][0])
                continue
            if value is not buf:
                self._ex.upload("capture", f"input{i}", value, buf)
            args.append(buf)
            key.append(None)
        return (tuple(key) if self.mode == "address" else _KEY), tuple(args)

    def _variant(self, key: Any, args: tuple[Any, ...]) -> dict[str, Any]:
        holder = self._variants.get(key)
        if holder is not None:
            self._variants.move_to_end(key)
            return holder
        holder = {}
        fn = self._fn

        def step() -> None:
            holder["out"] = fn(*args)

        t0 = time.perf_counter_ns()
        self._ex.bind(key, step)  # warm-up run: compiles kernels, fills caches
        t1 = time.perf_counter_ns()
        self._ex.replay(key, 1)  # the first replay captures the graph (CUDA)
        self._ex.sync()
        t2 = time.perf_counter_ns()
        self.warmup_ms, self.capture_ms = (t1 - t0) / 1e6, (t2 - t1) / 1e6
        holder["fresh"] = True
        self._variants[key] = holder
        while len(self._variants) > self.max_variants:
            old, _ = self._variants.popitem(last=False)
            self._ex.drop(old)
        if TRACE.enabled:
            TRACE.record(TraceEvent(type="graph_capture", timestamp_ns=t1, duration_ns=t2 - t1,
                                    op="capture", selected_device=self.device,
                                    notes=self._notes()))
        return holder

    def _notes(self) -> tuple[str, ...]:
        err = getattr(self._ex, "capture_error", None)
        return (f"capture_error={err}",) if err else ()

    @property
    def variant_count(self) -> int:
        """Captured input variants held (bounded by ``max_variants``)."""
        return len(self._variants)

    @property
    def capture_error(self) -> str | None:
        """Why the chain could not be captured as a graph (replays are then eager), or None."""
        return getattr(self._ex, "capture_error", None)

    @property
    def outputs(self) -> Any:
        """The outputs of the last replay (owned by the session)."""
        return self._last.get("out")

    def report(self) -> dict[str, Any]:
        return {"device": self.device, "graphs": bool(self._ex.graphs), "mode": self.mode,
                "variant_count": self.variant_count, "max_variants": self.max_variants,
                "warmup_ms": self.warmup_ms, "capture_ms": self.capture_ms,
                "capture_error": self.capture_error,
                "inputs": [{"shape": list(s), "dtype": np.dtype(d).name}
                           for s, d in self._specs]}

    def _check(self, values: tuple[Any, ...]) -> None:
        if len(values) != len(self._specs):
            raise SessionMismatchError(f"[capture] expected {len(self._specs)} inputs, got "
                                       f"{len(values)}")
        host_session = self._ex.device == "cpu"
        for i, (value, (shape, dtype)) in enumerate(zip(values, self._specs, strict=True)):
            t = type(value)
            if t is np.ndarray or (t in _NATIVE and not host_session):
                # The common case, decided from attributes alone (no flags object built).
                if value.shape == shape and value.dtype == dtype and (
                        t is np.ndarray or c_contiguous(value)):
                    continue
            got = shape_of(value)
            got_dtype = getattr(value, "dtype", None)
            if got_dtype is None:
                got_dtype = np.asarray(value).dtype
            if got != shape or str(got_dtype).replace("torch.", "") != np.dtype(dtype).name:
                raise SessionMismatchError(
                    f"[capture] input{i} is {got} {got_dtype}, the capture was made for "
                    f"{shape} {np.dtype(dtype).name}")
            if host_session and is_device_array(value):
                raise SessionMismatchError(f"[capture] input{i} is a device array but the "
                                           "capture runs on the cpu")
            if is_device_array(value) and not c_contiguous(value):
                raise SessionMismatchError(f"[capture] input{i} must be C-contiguous")

    def _address_key(self, values: tuple[Any, ...]) -> tuple[int, ...] | None:
        """The variant key (input addresses) when every input is a device array of the
        captured shape, dtype and layout, read in place; None sends the call the long way."""
        native = self._native
        if native is None or len(values) != len(self._specs):
            return None
        key = []
        for value, (shape, dtype) in zip(values, self._specs):  # noqa: B905 - length checked
            if (type(value) is not native or value.shape != shape or value.dtype != dtype
                    or not value._c_contiguous):
                return None
            key.append(value.data.ptr)
        return tuple(key)

    def _run(self, values: tuple[Any, ...], sync: bool) -> Any:
        key, args = self._args(values)
        return self._replay(key, args, sync)

    def _replay(self, key: Any, args: tuple[Any, ...], sync: bool) -> Any:
        t0 = time.perf_counter_ns() if TRACE.enabled else 0
        holder = self._variants.get(key) if self.mode == "address" else None
        if holder is not None and "fresh" not in holder and self._ex.launch_on_caller(key):
            # Device inputs read in place, the graph queued on the caller's own stream: it is
            # ordered with the caller's writes before and its work after, no events needed.
            self._variants.move_to_end(key)
            if sync:
                self._ex.sync_caller()
        else:
            if self.mode == "address":
                # Device inputs are read where they are: wait for the caller's queued writes.
                self._ex.follow_caller()
            holder = self._variant(key, args)
            if not holder.pop("fresh", False):  # a fresh capture already ran on these inputs
                self._ex.replay(key, 1)
            if sync:
                self._ex.sync()
            else:
                self._ex.hand_to_caller()
        if TRACE.enabled:
            TRACE.record(TraceEvent(type="graph_replay", timestamp_ns=t0,
                                    duration_ns=time.perf_counter_ns() - t0, op="capture",
                                    selected_device=self.device, synchronized=sync,
                                    notes=self._notes()))
        self._last = holder
        return holder["out"]

    def __call__(self, *inputs: Any, sync: bool = True) -> Any:
        """Copy (or address) ``inputs``, replay, return the outputs."""
        key = self._address_key(inputs)
        if key is not None:
            return self._replay(key, inputs, sync)
        self._check(inputs)
        return self._run(inputs, sync)


def capture(fn: Callable[..., Any], *example_inputs: Any, device: str = "auto",
            inputs: str = "copy", max_variants: int = 8) -> CapturedFunction:
    """Warm up ``fn`` on ``example_inputs`` and capture it for replay."""
    return CapturedFunction(fn, *example_inputs, device=device, inputs=inputs,
                            max_variants=max_variants)
