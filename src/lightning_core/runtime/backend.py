"""The Backend protocol, the explicit backend registry and the implementation registry.

A backend is one small class (``Backend``) living in ``backends/<name>/``. It declares what it
can do (``Capabilities``) and moves data for a call; kernels register themselves with
``@register(backend, op, variant=...)``. Nothing is found by naming convention: a backend
module calls ``register_backend`` and its kernel modules call ``register``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import NotSupportedError

__all__ = [
    "Backend",
    "Capabilities",
    "Impl",
    "register",
    "register_backend",
    "get_backend",
    "backend_names",
    "implementations",
]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; optional features are declared, never assumed."""

    device: str
    built: bool
    available: bool
    compute_surface: bool
    memory_surface: bool
    sync_surface: bool
    profiling_surface: bool
    runtime_trace_surface: bool = True
    sync_policy_surface: bool = True
    memory_model: str = "host-managed-compat"
    graphs: bool = False
    tuning: bool = False
    dtypes: tuple[str, ...] = ("float32", "float64")
    precisions: tuple[str, ...] = ("fp32",)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The seed's capability keys plus ours."""
        return {
            "device": self.device,
            "built": self.built,
            "available": self.available,
            "compute_surface": self.compute_surface,
            "memory_surface": self.memory_surface,
            "sync_surface": self.sync_surface,
            "profiling_surface": self.profiling_surface,
            "runtime_trace_surface": self.runtime_trace_surface,
            "sync_policy_surface": self.sync_policy_surface,
            "memory_model": self.memory_model,
            "graphs": self.graphs,
            "tuning": self.tuning,
            "dtypes": list(self.dtypes),
            "precisions": list(self.precisions),
            **self.details,
        }


@dataclass(frozen=True)
class Impl:
    """One registered implementation of an op on a backend."""

    backend: str
    op: str
    variant: str
    fn: Callable[..., Any]
    dtypes: frozenset[str]
    precisions: frozenset[str]
    # Optional: ``prepare(in_shapes, out_shape, dtype, precision, **params)`` returns a launcher
    # ``(inputs, out, stream) -> None`` with everything but the arrays resolved once (the fast
    # lane's per-signature launch), or None to use ``fn`` itself.
    prepare: Callable[..., Any] | None = None
    # True when ``prepare``'s launchers read and write flat memory (elementwise kernels): the
    # fast lane then passes the caller's arrays as they are and makes results in their final
    # shape, with no reshapes.
    flat: bool = False
    # True for the op's declared default (``register(..., default=True)``).
    default: bool = False

    @property
    def name(self) -> str:
        return f"{self.backend}.{self.op}.{self.variant}"


class Backend:
    """Base class of every backend. Subclasses override what they support.

    ``run(impl, call)`` executes one prepared call (see ``runtime.dispatch.Call``): it moves the
    inputs where the impl needs them, runs it, and hands back ``(result, stats)``.
    """

    name: str = "abstract"
    memory_model: str = "host-managed-compat"
    driver_tags: dict[str, str] = {}

    def is_available(self) -> bool:
        raise NotImplementedError

    def capabilities(self) -> Capabilities:
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for all queued work on this backend (a no-op on the CPU)."""

    def owns(self, array: Any) -> bool:
        """True when ``array`` already lives in this backend's memory."""
        return False

    def run(self, impl: Impl, call: Any) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError

    def prepare_direct(self, impl: Impl, lane: Any) -> Callable[[tuple[Any, ...], Any], Any] | None:
        """The fast lane's launcher for one call signature (``runtime.dispatch.Lane``).

        Returns ``run(arrays, out)`` that launches ``impl`` on arrays already matching the lane
        (no checks, no data movement) and returns the result, or None when ``out`` overlaps an
        input. Returning None here means this backend keeps no lanes.
        """
        return None


_BACKENDS: dict[str, Callable[[], Backend]] = {}
_INSTANCES: dict[str, Backend] = {}
_IMPLS: dict[tuple[str, str], list[Impl]] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Make a backend known by name; ``factory`` builds it on first use."""
    _BACKENDS[name] = factory
    _INSTANCES.pop(name, None)


def backend_names() -> tuple[str, ...]:
    return tuple(_BACKENDS)


def get_backend(name: str) -> Backend:
    """The backend instance for ``name`` (built once)."""
    inst = _INSTANCES.get(name)
    if inst is None:
        factory = _BACKENDS.get(name)
        if factory is None:
            raise NotSupportedError(f"[runtime] backend {name!r} is not registered")
        inst = _INSTANCES[name] = factory()
    return inst


def register(backend: str, op: str, variant: str = "default", *,
             dtypes: Iterable[str] = ("float32", "float64"),
             precisions: Iterable[str] = ("fp32",),
             prepare: Callable[..., Any] | None = None, flat: bool = False,
             default: bool = False,
             ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``fn`` as the ``variant`` implementation of ``op`` on ``backend``.

    An op's default (the dispatcher's choice when nothing else decides) is the variant
    registered with ``default=True``, whatever the import order; without one, the first
    registered. ``prepare`` (optional) builds the fast lane's launcher for one signature (see
    ``Impl.prepare``); ``flat`` says those launchers work on flat memory (see ``Impl.flat``).
    """

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        impl = Impl(backend, op, variant, fn, frozenset(dtypes), frozenset(precisions),
                    prepare, flat, default)
        bucket = _IMPLS.setdefault((backend, op), [])
        bucket[:] = [i for i in bucket if i.variant != variant]
        bucket.append(impl)
        bucket.sort(key=lambda i: not i.default)  # stable: the rest keep registration order
        return fn

    return deco


def implementations(backend: str, op: str) -> list[Impl]:
    """Every registered implementation of ``op`` on ``backend`` (default first).

    A backend registers its implementations when it is built, so a registered backend not
    built yet is built here first: the answer never depends on which backend ran first (the
    CPU crossover asked about CPU kernels before any CPU call once, and wrongly heard "none").
    """
    if backend not in _INSTANCES and backend in _BACKENDS:
        get_backend(backend)
    return _IMPLS.get((backend, op), [])
