"""The resident-session engine shared by every session: build, warm up, capture, replay.

A ``ResidentOp`` owns device buffers for one operator's inputs and output, picks the
implementation once, records the launch as a step on the backend's session executor (CUDA:
captured as graphs; CPU: plain calls) and replays it. Inputs are checked on every call:
another shape, dtype or device raises ``SessionMismatchError``; nothing re-captures silently.

Ownership: the session owns its output buffer. Every replay overwrites it; ``finish``/
``download`` copy it to the caller, and a caller who wants to keep a device result across
replays must copy ``output`` first.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..errors import SessionMismatchError
from ..runtime.arrays import Operand, is_device_array
from ..runtime.device import resolve
from ..runtime.dispatch import Call, choose_impl
from ..runtime.policy import check_precision
from ..trace.events import TraceEvent
from ..trace.recorder import TRACE

__all__ = ["ResidentOp", "SessionFront", "session_executor"]


def session_executor(op: str, device: Any) -> tuple[Any, Any]:
    """(route, executor) for a new session on ``device``."""
    route = resolve(op, device)
    return route, route.backend.session_executor()


def shape_of(x: Any) -> tuple[int, ...]:
    """``x``'s shape as a tuple of ints; ``x.shape`` itself when it is one (NumPy, CuPy):
    ``np.shape`` on a CuPy array goes through ``__array_function__`` (~1 us a call)."""
    shape = getattr(x, "shape", None)
    if type(shape) is tuple:  # NumPy and CuPy: already a tuple of ints
        return shape
    return tuple(int(d) for d in (np.shape(x) if shape is None else shape))


def _size(shape: tuple[int, ...]) -> int:
    size = 1
    for d in shape:
        size *= d
    return size


def _dtype_name(dtype: Any) -> str:
    """A dtype's name, for NumPy, CuPy and torch dtypes alike ("torch.float32" -> "float32")."""
    return str(dtype).replace("torch.", "")


class ResidentOp:
    """One operator kept resident: input buffers, an output buffer, a recorded step."""

    def __init__(self, op: str, kernel: str, inputs: dict[str, tuple[int, ...]],
                 out_shape: tuple[int, ...], *, dtype: Any = np.float32, device: Any = "auto",
                 precision: str = "fp32", params: dict[str, Any] | None = None,
                 executor: Any = None, route: Any = None, key: Any = None) -> None:
        self.op = op
        self.kernel = kernel
        self.dtype = np.dtype(dtype)
        self.precision = check_precision(op, precision)
        if executor is None:
            route, executor = session_executor(op, device)
        self.route = route
        self.ex = executor
        self.names = tuple(inputs)
        self.shapes = dict(inputs)
        self.out_shape = tuple(out_shape)
        self.bufs = tuple(self.ex.alloc(shape, self.dtype) for shape in inputs.values())
        self.output = self.ex.alloc(self.out_shape, self.dtype)
        self._variants: dict[Any, Any] = {}
        self.params = dict(params or {})
        self.impl = self._impl(self.params)
        self.bind(key, self.params)

    def _impl(self, params: dict[str, Any]) -> Any:
        """The implementation, chosen once, exactly as a one-shot call would choose it."""
        operands = tuple(Operand(b, False, self.ex.device != "cpu") for b in self.bufs)
        call = Call(self.op, self.kernel, operands, self.out_shape, self.dtype, dict(params),
                    precision=self.precision)
        impl, _ = choose_impl(self.route.backend, call)
        return impl

    def bind(self, key: Any, params: dict[str, Any]) -> None:
        """Record the step for ``key`` (a parameter variant) unless already recorded."""
        if self.ex.has(key):
            return
        impl, bufs, out, prec, ex = self.impl, self.bufs, self.output, self.precision, self.ex

        def step() -> None:
            ex.call_impl(impl, bufs, out, prec, params)

        self.ex.bind(key, step)

    @property
    def variant_count(self) -> int:
        """How many captured graphs (CUDA) or recorded steps (CPU) this session holds."""
        return self.ex.variant_count

    def check(self, name: str, value: Any, shape: tuple[int, ...], *, flat_ok: bool = True) -> None:
        """Raise ``SessionMismatchError`` unless ``value`` fits ``shape`` and the dtype."""
        got = shape_of(value)
        if got != shape and not (flat_ok and len(got) == 1 and got[0] == _size(shape)):
            raise SessionMismatchError(f"[{self.op}] {name} has shape {got}, the session was "
                                       f"built for {shape}")
        dtype = getattr(value, "dtype", None)
        if dtype is not None and dtype != self.dtype and _dtype_name(dtype) != self.dtype.name:
            raise SessionMismatchError(f"[{self.op}] {name} has dtype {dtype}, the session "
                                       f"was built for {self.dtype.name}")
        if self.ex.device == "cpu" and is_device_array(value):
            raise SessionMismatchError(f"[{self.op}] {name} is a device array but the session "
                                       "runs on the cpu")

    def check_inputs(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            self.check(name, value, self.shapes[name])

    def upload(self, values: dict[str, Any]) -> int:
        """Copy new contents into the resident input buffers (after checking them all)."""
        self.check_inputs(values)
        moved = 0
        for name, value in values.items():
            moved += self.ex.upload(self.op, name, value, self.bufs[self.names.index(name)])
        return moved

    def launch(self, repeat: int = 1, key: Any = None) -> None:
        """Replay the step ``repeat`` times (no host sync)."""
        if repeat < 1:
            raise SessionMismatchError(f"[{self.op}] repeat must be >= 1, got {repeat}")
        t0 = time.perf_counter_ns() if TRACE.enabled else 0
        self.ex.replay(key, repeat)
        if TRACE.enabled:
            self._trace("graph_replay" if self.ex.graphs else "op_dispatch", t0, repeat)

    def sync(self) -> None:
        self.ex.sync()

    def download(self, out: Any) -> int:
        """Wait for the step and copy the output into ``out``."""
        self.check("out", out, self.out_shape)
        if type(out) is np.ndarray and not out.flags.writeable:
            raise SessionMismatchError(f"[{self.op}] out is read-only")
        return self.ex.download(self.output, out)

    def _trace(self, kind: str, t0: int, repeat: int) -> None:
        TRACE.record(TraceEvent(
            type=kind, timestamp_ns=t0, duration_ns=time.perf_counter_ns() - t0,
            op=self.op, requested_device=self.route.requested,
            selected_device=self.route.selected, fallback=self.route.fallback,
            fallback_reason=self.route.reason if self.route.fallback else "",
            impl=self.impl.name, impl_reason="session",
            shapes=tuple(self.shapes.values()) + (self.out_shape,), dtype=self.dtype.name,
            precision=self.precision, notes=(f"repeat={repeat}",)))


class SessionFront:
    """What every seed session exposes over its ``ResidentOp`` (held as ``self._r``)."""

    _r: ResidentOp

    @property
    def device(self) -> str:
        """The device the session runs on."""
        return self._r.route.selected

    @property
    def output(self) -> Any:
        """The resident result buffer; every launch overwrites it (copy it to keep it)."""
        return self._r.output

    @property
    def graph_count(self) -> int:
        """Captured graphs (CUDA) or recorded steps (CPU) the session holds."""
        return self._r.variant_count
