"""The seed's runtime API: backend queries, capability contracts, sync policy and the trace.

Capability contracts are plain dicts with the seed's keys. ``runtime_backend_interfaces`` splits
a backend into the seed's four layers (compute, memory, sync, profiler), each with the driver
tag the backend declares. A device kind with no backend here (``"metal"`` on Linux) reports
``built=False, available=False`` instead of failing. The host/device memory helpers
(``pinned_empty``, ``pinned_like``, ``to_device``) close the module.
"""

from __future__ import annotations

import operator
import os
import time
from typing import Any

import numpy as np

from .. import config
from ..errors import InvalidArgumentError, PolicyError, ShapeError
from ..trace.chrome import write_chrome_trace
from ..trace.events import TraceEvent
from ..trace.recorder import TRACE
from ..trace.timeline import build_timeline
from .arrays import to_numpy
from .backend import Backend, Capabilities, backend_names, get_backend
from .device import best_device, parse_device, resolve

__all__ = [
    "backend_name",
    "metal_available",
    "cuda_available",
    "memory_model_name",
    "runtime_backend_capabilities",
    "runtime_active_backend_capabilities",
    "runtime_backend_interfaces",
    "runtime_active_backend_interfaces",
    "runtime_sync_policy_set",
    "runtime_sync_policy_get",
    "runtime_sync_apply",
    "runtime_sync_apply_default",
    "synchronize",
    "runtime_trace_enable",
    "runtime_trace_enabled",
    "runtime_trace_clear",
    "runtime_trace_capacity",
    "runtime_trace_set_capacity",
    "runtime_trace_events",
    "runtime_trace_timeline",
    "runtime_trace_export_chrome",
    "pinned_empty",
    "pinned_like",
    "to_device",
]

SYNC_MODES = ("auto", "always", "never")

# Driver tags of device kinds that have no backend in this process (the seed's names).
_UNBUILT_TAGS = {
    "metal": {"compute": "metal.compute.dispatch", "memory": "metal.host_managed_memory",
              "sync": "metal.command_sync", "profiler": "runtime.trace.ring"},
}
_UNBUILT_MODEL = {"metal": "host-managed-compat", "cuda": "native-device"}


def _backend_or_none(kind: str) -> Backend | None:
    return get_backend(kind) if kind in backend_names() else None


def _is_available(kind: str) -> bool:
    backend = _backend_or_none(kind)
    return backend is not None and backend.is_available()


def backend_name() -> str:
    """The backend ``device="auto"`` runs on: ``"cuda"``, ``"metal"`` or ``"cpu"``."""
    return best_device()


def metal_available() -> bool:
    """True when a usable Metal (MLX) backend is present."""
    return _is_available("metal")


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one NVIDIA GPU."""
    return _is_available("cuda")


def memory_model_name() -> str:
    """``"native-device"`` on CUDA, ``"host-managed-compat"`` on the CPU and Metal."""
    return get_backend(best_device()).memory_model


def _kind(op: str, device: object) -> str:
    kind, _ = parse_device(op, device)
    return best_device() if kind == "auto" else kind


def _capabilities(kind: str) -> Capabilities:
    backend = _backend_or_none(kind)
    if backend is not None:
        return backend.capabilities()
    return Capabilities(device=kind, built=False, available=False, compute_surface=False,
                        memory_surface=False, sync_surface=False, profiling_surface=False,
                        memory_model=_UNBUILT_MODEL.get(kind, "host-managed-compat"))


def runtime_backend_capabilities(device: str) -> dict[str, Any]:
    """The capability contract of one device (``"cpu"``, ``"cuda"``, ``"metal"``, ``"auto"``)."""
    return _capabilities(_kind("runtime_backend_capabilities", device)).as_dict()


def runtime_active_backend_capabilities() -> dict[str, Any]:
    """The capability contract of the active backend (``backend_name()``)."""
    return _capabilities(best_device()).as_dict()


def _interfaces(kind: str) -> dict[str, Any]:
    caps = _capabilities(kind)
    backend = _backend_or_none(kind)
    tags = backend.driver_tags if backend is not None else _UNBUILT_TAGS.get(kind, {})
    on = caps.available
    return {
        "device": kind,
        "capabilities": caps.as_dict(),
        "compute": {"available": on and caps.compute_surface,
                    "op_dispatch_trace_surface": caps.runtime_trace_surface,
                    "driver_tag": tags.get("compute", "")},
        "memory": {"available": on and caps.memory_surface,
                   "allocator_surface": caps.memory_surface,
                   "memcpy_surface": caps.memory_surface,
                   "memory_model": caps.memory_model,
                   "driver_tag": tags.get("memory", "")},
        "sync": {"available": on and caps.sync_surface,
                 "sync_policy_surface": caps.sync_policy_surface,
                 "trace_sync_boundary_surface": caps.runtime_trace_surface,
                 "driver_tag": tags.get("sync", "")},
        "profiler": {"available": on and caps.profiling_surface,
                     "runtime_trace_surface": caps.runtime_trace_surface,
                     "op_dispatch_trace_surface": caps.runtime_trace_surface,
                     "trace_capacity": TRACE.capacity,
                     "driver_tag": tags.get("profiler", "")},
    }


def runtime_backend_interfaces(device: str) -> dict[str, Any]:
    """The four-layer interface contract (compute / memory / sync / profiler) of a device."""
    return _interfaces(_kind("runtime_backend_interfaces", device))


def runtime_active_backend_interfaces() -> dict[str, Any]:
    """The four-layer interface contract of the active backend."""
    return _interfaces(best_device())


# The process-wide sync policy; mode None means "LC_SYNC_MODE".
_sync_mode: str | None = None
_sync_boundary = False


def _check_sync(op: str, mode: object, trace_sync_boundary: object) -> str:
    if mode not in SYNC_MODES:
        raise PolicyError(f"[{op}] mode must be one of {', '.join(SYNC_MODES)}; got {mode!r}")
    if not isinstance(trace_sync_boundary, bool):
        raise PolicyError(f"[{op}] trace_sync_boundary must be True or False; got "
                          f"{trace_sync_boundary!r}")
    return mode  # type: ignore[return-value]


def runtime_sync_policy_set(mode: str = "auto", trace_sync_boundary: bool = False) -> None:
    """Set the process-wide default sync policy (modes ``auto``, ``always``, ``never``)."""
    global _sync_mode, _sync_boundary
    _sync_mode = _check_sync("runtime_sync_policy_set", mode, trace_sync_boundary)
    _sync_boundary = trace_sync_boundary


def runtime_sync_policy_get() -> dict[str, Any]:
    """The default sync policy: ``{mode, trace_sync_boundary}``."""
    mode = _sync_mode if _sync_mode is not None else config.get("LC_SYNC_MODE")
    return {"mode": mode, "trace_sync_boundary": _sync_boundary}


def _record(kind: str, t0: int, **fields: Any) -> None:
    TRACE.record(TraceEvent(type=kind, timestamp_ns=t0,
                            duration_ns=time.perf_counter_ns() - t0, **fields))


def runtime_sync_apply(mode: str = "auto", trace_sync_boundary: bool = False) -> None:
    """Synchronize the active backend now under ``mode`` (``never`` skips the wait)."""
    _check_sync("runtime_sync_apply", mode, trace_sync_boundary)
    t0 = time.perf_counter_ns()
    kind = best_device()
    synced = mode != "never"
    if synced:
        get_backend(kind).synchronize()
    if TRACE.enabled:
        notes = (f"mode={mode}", f"trace_sync_boundary={trace_sync_boundary}")
        _record("apply_sync_policy", t0, status="ok" if synced else "skipped",
                selected_device=kind, synchronized=synced, notes=notes)
        if synced and trace_sync_boundary:
            _record("device_synchronize", t0, selected_device=kind, synchronized=True,
                    notes=("sync_boundary",))


def runtime_sync_apply_default() -> None:
    """Synchronize under the process-wide default sync policy."""
    policy = runtime_sync_policy_get()
    runtime_sync_apply(policy["mode"], policy["trace_sync_boundary"])


def synchronize(device: str | None = None) -> None:
    """Wait until all queued work on ``device``'s backend (default: the active one) is done."""
    t0 = time.perf_counter_ns()
    route = resolve("synchronize", "auto" if device is None else device)
    route.backend.synchronize()
    if TRACE.enabled:
        _record("device_synchronize", t0, requested_device=route.requested,
                selected_device=route.selected, fallback=route.fallback,
                fallback_reason=route.reason if route.fallback else "", synchronized=True)


def runtime_trace_enable(enabled: bool = True) -> None:
    """Turn trace capture on or off."""
    TRACE.enabled = bool(enabled)


def runtime_trace_enabled() -> bool:
    """True while trace capture is on."""
    return TRACE.enabled


def runtime_trace_clear() -> None:
    """Drop every recorded event."""
    TRACE.clear()


def runtime_trace_capacity() -> int:
    """How many events the ring keeps before overwriting the oldest (default 4096)."""
    return TRACE.capacity


def runtime_trace_set_capacity(n: int) -> None:
    """Resize the ring to ``n`` events, keeping the newest ones."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidArgumentError(f"[runtime_trace_set_capacity] n must be an integer >= 1; "
                                   f"got {n!r}")
    TRACE.set_capacity(n)


def runtime_trace_events() -> list[dict[str, Any]]:
    """Every recorded event as a dict, oldest first, with its ring ``index``."""
    return [{"index": i, **ev.as_dict()} for i, ev in enumerate(TRACE.events())]


def runtime_trace_timeline(event_sort_by: str = "timestamp_ns", event_descending: bool = False,
                           group_by: str = "type", group_sort_by: str = "total_delta_next_ns",
                           group_descending: bool = True,
                           hotspot_top_k: int = 8) -> dict[str, Any]:
    """Sorted events, groups and hotspots of the trace (see ``trace/timeline.py``)."""
    return build_timeline(TRACE.events(), event_sort_by=event_sort_by,
                          event_descending=event_descending, group_by=group_by,
                          group_sort_by=group_sort_by, group_descending=group_descending,
                          hotspot_top_k=hotspot_top_k, dropped=TRACE.dropped)


def runtime_trace_export_chrome(path: str | os.PathLike[str]) -> str:
    """Write the trace as Chrome/Perfetto trace JSON to ``path``; return the path."""
    return write_chrome_trace(path, TRACE.events())


def pinned_empty(shape: Any, dtype: Any = np.float32) -> np.ndarray:
    """An uninitialised host array in page-locked memory when CUDA is available.

    Without a usable GPU (or with a CUDA backend that cannot pin) this is a plain ``np.empty``:
    pinning only speeds up transfers to and from a GPU.
    """
    try:
        dims = ((operator.index(shape),) if not hasattr(shape, "__len__")
                else tuple(operator.index(d) for d in shape))
    except TypeError:
        raise ShapeError(f"[pinned_empty] shape must be integers; got {shape!r}") from None
    if any(d < 0 for d in dims):
        raise ShapeError(f"[pinned_empty] dimensions must be >= 0; got {list(dims)}")
    dt = np.dtype(dtype)
    if cuda_available():
        make = getattr(get_backend("cuda"), "pinned_empty", None)
        if make is not None:
            return make(dims, dt)
    return np.empty(dims, dt)


def pinned_like(a: Any) -> np.ndarray:
    """An uninitialised pinned host array with ``a``'s shape and dtype (like ``np.empty_like``)."""
    arr = getattr(a, "_lc_storage", a)
    if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
        arr = np.asarray(arr)
    return pinned_empty(tuple(arr.shape), arr.dtype)


def to_device(x: Any, device: str = "auto") -> Any:
    """``x`` on ``device``: a CuPy array on CUDA (no copy if already there), else NumPy."""
    route = resolve("to_device", device)
    arr = getattr(x, "_lc_storage", x)
    if route.selected == "cuda":
        import cupy  # noqa: PLC0415 - only once the CUDA backend has found a GPU

        with cupy.cuda.Device(route.index):
            return cupy.asarray(arr)
    return to_numpy(arr)
