"""Device strings and their resolution to a backend, with the fallback rule of SPEC §2.

``"auto"`` picks the best available accelerator (cuda, then metal), else the CPU. A device
that is requested but unavailable falls back to ``"auto"``'s choice, warns once per process
and is reported with ``fallback=True, reason="device_unavailable"``; ``LC_STRICT_DEVICE=1``
turns that into ``DeviceUnavailableError``.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass

from .. import config
from ..errors import DeviceError, DeviceUnavailableError
from .backend import Backend, backend_names, get_backend

__all__ = ["Route", "resolve", "parse_device", "FallbackWarning", "VALID_DEVICES", "best_device"]

VALID_DEVICES = ("auto", "cpu", "cuda", "cuda:N", "metal")
_PREFERENCE = ("cuda", "metal", "cpu")


class FallbackWarning(UserWarning):
    """A requested device was unavailable and the call ran elsewhere."""


@dataclass(frozen=True)
class Route:
    """Where a call runs: the backend, and how that choice was made."""

    requested: str
    selected: str
    backend: Backend
    index: int
    fallback: bool
    reason: str  # "" when no fallback, else a reason code such as "device_unavailable"


def parse_device(op: str, device: object) -> tuple[str, int]:
    """Split a device string into (kind, index); raise ``DeviceError`` for anything else."""
    if not isinstance(device, str):
        raise DeviceError(f"[{op}] device must be a string, one of {', '.join(VALID_DEVICES)}; "
                          f"got {type(device).__name__}")
    text = device.strip().lower()
    if text in ("auto", "cpu", "cuda", "metal"):
        return text, 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return "cuda", int(text[5:])
    raise DeviceError(f"[{op}] unknown device {device!r}; valid devices are "
                      f"{', '.join(VALID_DEVICES)}")


def _available(kind: str) -> bool:
    if kind not in backend_names():
        return False
    return get_backend(kind).is_available()


def best_device() -> str:
    """The device ``"auto"`` resolves to on this machine."""
    for kind in _PREFERENCE:
        if _available(kind):
            return kind
    return "cpu"


_routes: dict[tuple[str, bool], Route] = {}
_warned: set[str] = set()


def resolve(op: str, device: object) -> Route:
    """Resolve a device request to a ``Route`` (cached per device string)."""
    strict = bool(config.get("LC_STRICT_DEVICE"))
    key = (device, strict) if isinstance(device, str) else None
    if key is not None:
        route = _routes.get(key)
        if route is not None:
            if route.fallback:
                _warn_once(route)
            return route
    kind, index = parse_device(op, device)
    if kind == "auto":
        chosen = best_device()
        route = Route("auto", chosen, get_backend(chosen), 0, False, "")
    elif _available(kind) and _index_ok(kind, index):
        route = Route(str(device), kind, get_backend(kind), index, False, "")
    else:
        if strict:
            raise DeviceUnavailableError(
                f"[{op}] device {device!r} is not available on this machine and "
                f"LC_STRICT_DEVICE=1 forbids falling back (available: {best_device()})")
        chosen = best_device()
        route = Route(str(device), chosen, get_backend(chosen), 0, True, "device_unavailable")
        _warn_once(route)
    _routes[key] = route
    return route


def _index_ok(kind: str, index: int) -> bool:
    if kind != "cuda" or index == 0:
        return True
    count = getattr(get_backend("cuda"), "device_count", lambda: 1)()
    return index < count


def _warn_once(route: Route) -> None:
    if route.requested in _warned:
        return
    _warned.add(route.requested)
    warnings.warn(
        f"[lightning_core] device {route.requested!r} is unavailable here; running on "
        f"{route.selected!r} instead (reason: {route.reason}). Set LC_STRICT_DEVICE=1 to make "
        "this an error.", FallbackWarning, stacklevel=_user_stacklevel())


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside this package."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def reset_routes() -> None:
    """Forget cached routes and warnings (tests, and after ``config.reload()``)."""
    _routes.clear()
    _warned.clear()
