"""The Lightning Core error family.

Every error derives from ``LCError`` and from the built-in exception a Python user would
expect (``ValueError`` for bad values, ``TypeError`` for bad types, ``RuntimeError`` for
failures while running). Messages start with ``[op]`` naming the operation, and are raised
before any work starts.

| class                     | also a         | raised when                                          |
|---------------------------|----------------|------------------------------------------------------|
| ``ShapeError``            | ValueError     | wrong rank, mismatched or impossible shapes           |
| ``DTypeError``            | TypeError      | complex/object/string inputs, dtype not on the device |
| ``OutBufferError``        | ValueError     | ``_into`` buffer of wrong shape/dtype/layout, read-only|
| ``AliasingError``         | ValueError     | ``_into`` buffer overlapping an input it must not      |
| ``DeviceError``           | ValueError     | unknown device string                                  |
| ``DeviceUnavailableError``| RuntimeError   | device missing and ``LC_STRICT_DEVICE=1``              |
| ``PolicyError``           | ValueError     | invalid I/O, sync or precision policy                  |
| ``BackendError``          | RuntimeError   | a backend failed while running                         |
| ``DeviceOutOfMemoryError``| MemoryError    | the device ran out of memory                           |
| ``CompileError``          | RuntimeError   | a kernel failed to compile (carries the log)           |
| ``NotSupportedError``     | NotImplementedError | no implementation of the op on that backend       |
| ``SessionMismatchError``  | ValueError     | a session called with other shapes/dtypes/devices      |
| ``ConfigError``           | ValueError     | an environment knob holds an unparsable value          |
"""

from __future__ import annotations

__all__ = [
    "LCError",
    "InvalidArgumentError",
    "ShapeError",
    "DTypeError",
    "OutBufferError",
    "AliasingError",
    "DeviceError",
    "DeviceUnavailableError",
    "PolicyError",
    "BackendError",
    "DeviceOutOfMemoryError",
    "CompileError",
    "NotSupportedError",
    "SessionMismatchError",
    "ConfigError",
]


class LCError(Exception):
    """Base class of every Lightning Core error."""


class InvalidArgumentError(LCError, ValueError):
    """An argument has an invalid value."""


class ShapeError(InvalidArgumentError):
    """Wrong rank, mismatched shapes, or a shape the op cannot produce."""


class DTypeError(LCError, TypeError):
    """An input's dtype is not supported (complex, object, string, or not on this device)."""


class OutBufferError(InvalidArgumentError):
    """An ``_into`` output buffer has the wrong shape, dtype or layout, or is read-only."""


class AliasingError(OutBufferError):
    """An ``_into`` output buffer overlaps an input in a way the op cannot handle."""


class DeviceError(InvalidArgumentError):
    """An unknown device string."""


class DeviceUnavailableError(LCError, RuntimeError):
    """A requested device is unavailable and strict device mode forbids a fallback."""


class PolicyError(InvalidArgumentError):
    """An invalid I/O, sync or precision policy."""


class BackendError(LCError, RuntimeError):
    """A backend failed while running an op."""


class DeviceOutOfMemoryError(BackendError, MemoryError):
    """The device ran out of memory; the process stays usable."""


class CompileError(BackendError):
    """A kernel failed to compile. ``path``, ``options`` and ``log`` say where and why."""

    def __init__(self, message: str, *, path: str = "", options: tuple[str, ...] = (),
                 log: str = "") -> None:
        super().__init__(message if not log else f"{message}\n{log}")
        self.path = path
        self.options = tuple(options)
        self.log = log


class NotSupportedError(LCError, NotImplementedError):
    """The op has no implementation on the selected backend."""


class SessionMismatchError(InvalidArgumentError):
    """A session was called with inputs of another shape, dtype or device."""


class ConfigError(InvalidArgumentError):
    """An environment knob holds a value that cannot be parsed."""
