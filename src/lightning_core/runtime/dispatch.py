"""The one road every operator call takes.

validate (in ``ops/``) → resolve the device (fallback + reason) → pick the implementation
(explicit policy > tuned choice > crossover rule > default) → the backend moves data per the
I/O plan and launches → sync/download per plan → record one trace event.

Decisions for a signature already seen (op, device, dtype, shapes, precision, residency) are
cached, so the steady-state cost of this road is a few dictionary lookups.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import config
from ..config import generation
from ..errors import DTypeError, NotSupportedError
from ..trace.events import TraceEvent
from ..trace.recorder import TRACE
from .arrays import _NATIVE, PINNED_MIN_BYTES, Operand, c_contiguous, pinned_flags
from .backend import Backend, Impl, get_backend, implementations
from .device import Route, resolve
from .policy import ONE_SHOT, IoPlan

__all__ = ["Call", "execute", "host_pinned_flags", "choose_impl", "set_selector", "set_crossover",
           "clear_decisions", "lane_key", "lane_call", "LaneMiss", "Lane"]


@dataclass(slots=True)
class Call:
    """One validated operator call, ready for a backend."""

    op: str  # public name, e.g. "matmul2d"
    kernel: str  # implementation family, e.g. "matmul"
    inputs: tuple[Operand, ...]
    out_shape: tuple[int, ...]
    dtype: np.dtype
    params: dict[str, Any] = field(default_factory=dict)
    out: Any = None  # validated caller buffer (native array) or None
    io: IoPlan = ONE_SHOT
    precision: str = "fp32"
    variant: str | None = None  # explicit implementation request (policy)
    # ``host_pinned_flags`` of this call, asked of the driver once (see there).
    pinned: tuple[bool, ...] | None = None

    @property
    def resident(self) -> bool:
        """True when every input already lives on a device."""
        return bool(self.inputs) and all(o.on_device for o in self.inputs)


# Hooks installed by tuning/ (kept as hooks so runtime never imports tuning).
Selector = Callable[[Backend, list[Impl], Call], tuple[Impl, str] | None]
Crossover = Callable[[Route, Call], bool]
_selector: Selector | None = None
_crossover: Crossover | None = None
_decisions: dict[tuple[Any, ...], tuple[Backend, Impl, str, Route]] = {}


def set_selector(fn: Selector | None) -> None:
    """Install the tuned-choice hook (``tuning`` calls this)."""
    global _selector
    _selector = fn
    clear_decisions()


def set_crossover(fn: Crossover | None) -> None:
    """Install the CPU-crossover hook (``tuning`` calls this)."""
    global _crossover
    _crossover = fn
    clear_decisions()


_seen_generation = [generation()]


def _check_generation() -> None:
    """Drop cached decisions when knob values may have changed (config reload or override)."""
    global lane_call
    current = generation()
    if current != _seen_generation[0]:
        _seen_generation[0] = current
        clear_decisions()
        lane_call = _choose_lane_call  # LC_NATIVE_LANE may have changed


def clear_decisions() -> None:
    """Forget cached routing decisions (after a tuning reset or a config change)."""
    _decisions.clear()
    _lanes.clear()
    _lane_epoch[0] += 1
    if _native_tables:  # its kept runs hold their recyclers' results: let them go now
        _native_tables[0].forget()


def choose_impl(backend: Backend, call: Call) -> tuple[Impl, str]:
    """The implementation ``call`` runs with on ``backend``, and why (sessions use this too)."""
    return _pick(backend, call)


def _pick(backend: Backend, call: Call) -> tuple[Impl, str]:
    impls = implementations(backend.name, call.kernel)
    if not impls:
        raise NotSupportedError(f"[{call.op}] no implementation of {call.kernel!r} on "
                                f"{backend.name}")
    dname = call.dtype.name
    usable = [i for i in impls if dname in i.dtypes]
    if not usable:
        where = sorted({b for b in ("cpu", "cuda", "metal")
                        if any(dname in i.dtypes for i in implementations(b, call.kernel))})
        hint = f"; {dname} runs on {', '.join(where)}" if where else ""
        raise DTypeError(f"[{call.op}] dtype {dname} is not supported on {backend.name}{hint}")
    if call.variant is not None:
        for impl in usable:
            if impl.variant == call.variant:
                return impl, "policy"
        raise NotSupportedError(f"[{call.op}] implementation {call.variant!r} does not exist "
                                f"on {backend.name}; known: "
                                f"{', '.join(i.variant for i in usable)}")
    exact = [i for i in usable if call.precision in i.precisions] or usable
    if _selector is not None and len(exact) > 1:
        chosen = _selector(backend, exact, call)
        if chosen is not None:
            return chosen
    return exact[0], "default"


def _route(call: Call, device: object) -> Route:
    route = resolve(call.op, device)
    if route.requested == "auto" and _crossover is not None and not call.resident:
        if _crossover(route, call):
            cpu = get_backend("cpu")
            return Route("auto", "cpu", cpu, 0, False, "crossover")
    return route


def host_pinned_flags(call: Call, lane: tuple[Any, ...] | None = None) -> tuple[bool, ...]:
    """Per input, then ``out`` when there is one: a page-locked NumPy array big enough for
    it to matter (``pinned_flags``); all False while no device backend can tell.

    A first answer costs a driver query of a few microseconds (the CUDA backend remembers it
    per owning array while that lives), so a call asks once: the answer is kept on the call
    (the decision key, the crossover and the backend read it), and a ``device="auto"`` lane
    key already holds it for the caller's arrays (``lane_key``'s last field), which are the
    call's inputs except where an input was copied (a fresh, pageable array).
    """
    if call.pinned is None:
        known = lane[-1] if lane is not None else None
        if known is not None:
            n = len(call.inputs)
            call.pinned = tuple(f and not o.copied for f, o in zip(known, call.inputs,
                                                                  strict=False)) + known[n:]
        else:
            arrays = [o.array for o in call.inputs]
            if call.out is not None:
                arrays.append(call.out)
            call.pinned = pinned_flags(arrays) or (False,) * len(arrays)
    return call.pinned


def execute(call: Call, device: object, *, lane: tuple[Any, ...] | None = None,
            final: tuple[int, ...] | None = None) -> Any:
    """Run ``call`` on ``device`` and return its result (or the caller's ``out``).

    ``lane`` is the op's ``lane_key`` for this call (None: no fast lane); when the call moved no
    data, its validated, routed decision is kept under that key so the next identical call can
    skip straight to the launch (``final``: the shape the op returns the result in).
    """
    t0 = time.perf_counter_ns() if TRACE.enabled else 0
    if type(device) is not str:
        resolve(call.op, device)  # raises DeviceError with the valid names
    _check_generation()
    inputs = call.inputs
    key = (call.op, call.kernel, device, call.dtype, call.precision, call.variant,
           call.out_shape, tuple([o.array.shape for o in inputs]),
           tuple([o.on_device for o in inputs]), call.io,
           # "auto" routes host data by its transfer speed: pinned or not is part of the key.
           host_pinned_flags(call, lane) if device == "auto" else None)
    hit = _decisions.get(key)
    if hit is None:
        route = _route(call, device)
        backend = route.backend
        impl, why = _pick(backend, call)
        if route.reason == "crossover":
            why = "crossover"
        _decisions[key] = (backend, impl, why, route)
    else:
        backend, impl, why, route = hit
    result, stats = backend.run(impl, call)
    if TRACE.enabled:
        _record(call, route, impl, why, stats, t0)
    if lane is not None and call.io is ONE_SHOT:
        _keep_lane(lane, call, backend, impl, why, route, final,
                   stats.get("precision", call.precision))
    return result


def _record(call: Call, route: Route, impl: Impl, why: str, stats: dict[str, Any],
            t0: int) -> None:
    notes = list(stats.get("notes", ()))
    if any(o.copied for o in call.inputs):
        notes.append("input_copied")
    used_precision = stats.get("precision", call.precision)
    TRACE.record(TraceEvent(
        type="op_dispatch",
        timestamp_ns=t0,
        duration_ns=time.perf_counter_ns() - t0,
        size_bytes=int(sum(o.array.nbytes for o in call.inputs)),
        op=call.op,
        requested_device=route.requested,
        selected_device=route.selected,
        fallback=route.fallback,
        fallback_reason=route.reason if route.fallback else "",
        impl=impl.name,
        impl_reason=why,
        shapes=tuple(tuple(o.array.shape) for o in call.inputs) + (tuple(call.out_shape),),
        dtype=call.dtype.name,
        precision=used_precision,
        bytes_uploaded=int(stats.get("bytes_uploaded", 0)),
        bytes_downloaded=int(stats.get("bytes_downloaded", 0)),
        synchronized=bool(stats.get("synchronized", False)),
        notes=tuple(notes),
    ))


class Lane:
    """A call signature already validated, routed and decided, that moves no data.

    ``run(arrays, out)`` is the backend's prepared launcher (``Backend.prepare_direct``): it
    takes the caller's arrays as they are (they match the lane's key) and returns the result,
    or None when ``out`` overlaps an input (that call takes the full road for its aliasing
    rules).
    """

    __slots__ = ("backend", "impl", "why", "route", "shapes", "raw_shapes", "raw_nbytes",
                 "out_shape",
                 "raw_out_shape", "dtype", "params", "precision", "final", "op",
                 "used_precision", "run")

    def __init__(self, call: Call, backend: Backend, impl: Impl, why: str, route: Route,
                 final: tuple[int, ...] | None, key: tuple[Any, ...], used_precision: str) -> None:
        self.backend, self.impl, self.why, self.route = backend, impl, why, route
        self.shapes = tuple(o.array.shape for o in call.inputs)
        sigs, out_sig = _key_signatures(key, len(self.shapes))
        self.raw_shapes = tuple(sig[1] for sig in sigs)
        self.raw_nbytes = tuple(int(np.prod(sig[1])) * sig[2].itemsize for sig in sigs)
        self.raw_out_shape = out_sig[1] if out_sig is not None else None
        self.out_shape, self.dtype, self.params = call.out_shape, call.dtype, call.params
        self.precision, self.final, self.op = call.precision, final, call.op
        self.used_precision = used_precision
        self.run: Callable[[tuple[Any, ...], Any], Any] | None = None

    def reshapes(self) -> tuple[tuple[int, ...] | None, ...] | None:
        """Per input, the shape the impl wants when it differs from the caller's (else None);
        None overall when no input needs a reshape."""
        wanted = tuple(None if raw == s else s
                       for raw, s in zip(self.raw_shapes, self.shapes, strict=True))
        return wanted if any(w is not None for w in wanted) else None


_lanes: dict[tuple[Any, ...], Lane] = {}
_LANE_LIMIT = 4096
_FAST_TYPES: set[type] = set()  # native device array types with a cached ``_c_contiguous``
# Moves whenever a lane is stored or all are cleared: the native table keeps the runs of its
# last hits and drops them when this changes.
_lane_epoch = [0]
_native_tables: list[Any] = []  # the native Table once made (one per process)


def _signature(x: Any) -> tuple[Any, ...] | None:
    t = type(x)
    if t is np.ndarray:
        flags = x.flags
        return (t, x.shape, x.dtype, flags.c_contiguous, flags.writeable)
    if t in _FAST_TYPES:
        return (t, x.shape, x.dtype, x._c_contiguous, x.data.device_id)
    if t in _NATIVE:
        if hasattr(x, "_c_contiguous"):
            _FAST_TYPES.add(t)
        return (t, x.shape, x.dtype, c_contiguous(x), x.data.device_id)
    return None


def lane_key(op: str, device: object, scalars: tuple[Any, ...], arrays: tuple[Any, ...],
             out: Any = None) -> tuple[Any, ...] | None:
    """The fast-lane key of a call: everything its validation and routing depend on.

    ``scalars`` is a flat tuple of the call's non-array arguments; their types are part of the
    key (3.0 must not find the lane of 3). None when an input or ``out`` is not a plain NumPy
    or backend-native array (lists, torch tensors, lc.Tensor take the full road). The key is
    one flat tuple: op, device, scalars and their types, whether there is an ``out``, five
    fields per array (``out`` last), then the pinned flags of ``device="auto"`` host arrays (None
    when none is big enough to ask about).
    Flat tuples are built and hashed faster than nested ones, and an op's array count is fixed.
    """
    if type(device) is not str:
        return None
    if generation() != _seen_generation[0]:
        _check_generation()
    key = [op, device, scalars, *map(type, scalars), out is not None]
    big_host = False
    every = arrays if out is None else (*arrays, out)
    for x in every:
        if type(x) in _FAST_TYPES:  # ``_signature``'s first case, inlined (the hot path)
            key += (type(x), x.shape, x.dtype, x._c_contiguous, x.data.device_id)
            continue
        sig = _signature(x)
        if sig is None:
            return None
        big_host = big_host or x.nbytes >= PINNED_MIN_BYTES
        key += sig
    # "auto" routes host data by its transfer speed: pinned or not is part of the key (None
    # when no host array is big enough to be asked about: ``pinned_flags`` says all False).
    key.append(pinned_flags(every) if big_host and device == "auto" else None)
    return tuple(key)


def _key_signatures(key: tuple[Any, ...], n_arrays: int) -> tuple[list[tuple[Any, ...]],
                                                                  tuple[Any, ...] | None]:
    """The caller's array signatures ``(type, shape, dtype, contiguous, device)`` in a lane
    key, and ``out``'s (None without one)."""
    at = 4 + len(key[2])
    sigs = [key[at + 5 * i:at + 5 * i + 5] for i in range(n_arrays)]
    out_at = at + 5 * n_arrays
    return sigs, (key[out_at:out_at + 5] if key[at - 1] else None)


class LaneMiss:
    """``lane_call``'s answer when the call must take the full road: ``key`` is its lane key
    (None when it cannot have a lane), for ``execute(..., lane=key)``."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[Any, ...] | None) -> None:
        self.key = key


def _lane_call_py(op: str, device: object, scalars: tuple[Any, ...], arrays: tuple[Any, ...],
                  out: Any) -> Any:
    """``lane_call`` in Python: the call's lane result, or a ``LaneMiss`` (no lane for the key,
    or one whose ``out`` overlaps an input: that call takes the full road for its aliasing
    rules)."""
    key = lane_key(op, device, scalars, arrays, out)
    try:
        lane = None if key is None else _lanes.get(key)
    except TypeError:  # unhashable arguments never have a lane
        lane = None
    if lane is None:
        return LaneMiss(key)
    result = _run_traced(lane, arrays, out) if TRACE.enabled else lane.run(arrays, out)
    return LaneMiss(key) if result is None else result


def _native_table() -> Any:
    """The native lane's ``Table`` over this module's lanes, or None (off or not built)."""
    from .. import native  # noqa: PLC0415 - builds the module on first use

    module = native.load()
    if module is None:
        return None
    if not _native_tables:
        _native_tables.append(_make_table(module))
    return _native_tables[0]


def _make_table(module: Any) -> Any:
    return module.Table(lanes=_lanes, fast_types=_FAST_TYPES, trace=TRACE,
                        generation=config._generation, seen=_seen_generation,
                        check_generation=_check_generation, fallback=_lane_call_py, miss=LaneMiss,
                        pinned_flags=pinned_flags, pinned_min=PINNED_MIN_BYTES,
                        host_type=np.ndarray, epoch=_lane_epoch)


def _choose_lane_call(op: str, device: object, scalars: tuple[Any, ...],
                      arrays: tuple[Any, ...], out: Any) -> Any:
    """``lane_call``'s first call (and the first after a knob change): the native table when
    it loads, else the Python lane."""
    global lane_call
    table = _native_table()
    lane_call = _lane_call_py if table is None else table
    return lane_call(op, device, scalars, arrays, out)


# ``lane_call(op, device, scalars, arrays, out)``: the call's lane result, or a ``LaneMiss``
# (the caller then takes the full road with the miss's key). The native
# ``Table`` builds the same key and runs the same lane as ``_lane_call_py``, in C; ops call it
# as ``dispatch.lane_call`` so the choice made here is seen everywhere.
lane_call: Callable[..., Any] = _choose_lane_call


def _keep_lane(key: tuple[Any, ...], call: Call, backend: Backend, impl: Impl, why: str,
               route: Route, final: tuple[int, ...] | None, used_precision: str) -> None:
    inputs = call.inputs
    prepare = getattr(backend, "prepare_direct", None)
    if any(o.copied for o in inputs) or prepare is None:
        return
    host = backend.name == "cpu"
    if not all((not o.on_device) if host else o.on_device for o in inputs):
        return
    if call.out is not None and (type(call.out) is np.ndarray) != host:
        return  # an out on the other side of the bus means a copy: not a lane
    if len(_lanes) >= _LANE_LIMIT:
        _lanes.clear()
    try:
        hash(key)
    except TypeError:
        return
    lane = Lane(call, backend, impl, why, route, final, key, used_precision)
    lane.run = prepare(impl, lane)
    if lane.run is not None:
        _lanes[key] = lane
        _lane_epoch[0] += 1


def _run_traced(lane: Lane, arrays: tuple[Any, ...], out: Any) -> Any:
    """A lane call with its trace event (the event a full-road call records, noted fast_lane)."""
    t0 = time.perf_counter_ns()
    result = lane.run(arrays, out)
    if result is None:
        return None
    route = lane.route
    TRACE.record(TraceEvent(
        type="op_dispatch", timestamp_ns=t0, duration_ns=time.perf_counter_ns() - t0,
        size_bytes=int(sum(a.nbytes for a in arrays)), op=lane.op,
        requested_device=route.requested, selected_device=route.selected,
        fallback=route.fallback, fallback_reason=route.reason if route.fallback else "",
        impl=lane.impl.name, impl_reason=lane.why,
        shapes=tuple(lane.shapes) + (tuple(lane.out_shape),),
        dtype=lane.dtype.name, precision=lane.used_precision,
        synchronized=lane.backend.name == "cpu", notes=("fast_lane",)))
    return result
