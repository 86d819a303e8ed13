"""Direct kernel launches for the fast lane: one ``cuLaunchKernel`` on a prepared parameter block.

CuPy's ``RawKernel.__call__`` inspects and packs every argument on every call (about 0.3 to
0.8 µs per scalar). A prepared launcher knows its scalars up front, so ``KernelCall`` writes
them once into a parameter block (one 8-byte slot per argument, little-endian, so a 4-byte
scalar sits in the low half of its slot) and a call only stores the array pointers and calls
the driver through CuPy's binding. Graph capture sees an ordinary launch on the stream.

The block is shared by all calls of one launcher; a lock keeps two threads from writing it
while the driver reads it (the binding releases the GIL), and a caller that finds it taken
launches from a private copy. Without the binding, calls go through ``RawKernel``.

When the native lane is built (``lightning_core.native``), ``launch_raw`` and ``launch`` are
its ``Launch`` object instead: the same launch from C, with the parameter block on the C
stack of each call (no lock, no ctypes, no binding in between).
"""

from __future__ import annotations

import ctypes
import functools
import threading
from typing import Any

import numpy as np

__all__ = ["KernelCall", "NULL", "aligned", "direct_available", "function_ptr", "native_launch"]

_SCALAR_TYPES = (np.int32, np.int64, np.uint64, np.float32, np.float64)


class _Null:
    """Stands in for an absent optional array argument: a null device pointer."""

    class data:  # noqa: N801 - mirrors ``cupy.ndarray.data.ptr``
        ptr = 0


NULL = _Null()


_UNSET = object()
_LAUNCH: Any = _UNSET  # CuPy's cuLaunchKernel binding, looked up on first use (or None)
_NATIVE: Any = _UNSET  # the native lane module when it loaded and found the driver (or None)


def _driver_launch() -> Any:
    """The binding, imported on first use: importing this module never imports CuPy."""
    global _LAUNCH
    if _LAUNCH is _UNSET:
        try:
            from cupy.cuda import driver  # noqa: PLC0415

            _LAUNCH = getattr(driver, "launchKernel", None)
        except Exception:  # noqa: BLE001 - no CuPy: nothing launches anyway
            _LAUNCH = None
    return _LAUNCH


def native_launch() -> Any:
    """The native lane's module when it is built and found ``cuLaunchKernel``, else None
    (looked up once; ``LC_NATIVE_LANE=0`` at that point keeps the Python launch)."""
    global _NATIVE
    if _NATIVE is _UNSET:
        from ... import native  # noqa: PLC0415

        module = native.load()
        _NATIVE = module if module is not None and module.driver() else None
    return _NATIVE


def aligned(*arrays: Any) -> bool:
    """Whether every array's data starts on a 16-byte boundary (the kernels' 16-byte load and
    store variants need it; the native lane tests the same on its pointers)."""
    mask = 0
    for a in arrays:
        mask |= a.data.ptr
    return not mask & 15


_STREAM_FN_SIGNATURE = b"intptr_t (void)"


@functools.cache
def stream_ptr_capsule() -> Any:
    """CuPy's C function for the current stream's pointer as a capsule the native lane calls
    (``cupy_backends.cuda.stream``'s exported ``get_current_stream_ptr``: the pointer CuPy's
    ``get_current_stream()`` reports, without making a Python object), or None when this CuPy
    does not export it with the signature the lane calls it by. Looked up once per process.

    One difference: with per-thread default streams (``CUPY_CUDA_PER_THREAD_DEFAULT_STREAM=1``)
    and the null stream current, it answers the per-thread stream's handle (2) where
    ``get_current_stream().ptr`` is 0. Both name the stream CuPy's own kernels launch on; the
    lane only keys its recycled results and resolved launches by the number it got."""
    try:
        from cupy_backends.cuda import stream  # noqa: PLC0415

        capsule = stream.__pyx_capi__["get_current_stream_ptr"]
        get_name = ctypes.pythonapi.PyCapsule_GetName
        get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        return capsule if get_name(capsule) == _STREAM_FN_SIGNATURE else None
    except Exception:  # noqa: BLE001 - any CuPy without it: the lane asks current() instead
        return None


def direct_available() -> bool:
    """True when calls go straight to ``cuLaunchKernel`` (CuPy exposes the driver binding)."""
    return _driver_launch() is not None


def function_ptr(kernel: Any) -> int | None:
    """The ``CUfunction`` of a ``cupy.RawKernel`` or ``cupy.cuda.Function``, or None."""
    inner = getattr(kernel, "kernel", kernel)  # RawKernel -> Function for the current device
    ptr = getattr(inner, "ptr", None)
    return int(ptr) if ptr else None


class KernelCall:
    """One kernel, one geometry, fixed scalars, launched with ``n_ptrs`` pointer arguments.

    ``launch_raw(stream_ptr, *pointers)`` is the hot path (integers, e.g. pointers the caller
    has already read for an alignment test); ``launch(stream, *arrays)`` (or calling the
    object) reads each array's ``data.ptr`` first (``NULL`` stands for an absent optional
    pointer). ``scalars`` follow the pointer arguments in kernel order; each is a NumPy scalar
    (int32, int64, uint64, float32 or float64) or a CuPy array (passed by pointer, fixed for
    the call's life, e.g. scratch buffers).
    """

    __slots__ = ("kernel", "grid", "block", "smem", "n_ptrs", "scalars", "launch",
                 "launch_raw", "_fn", "_store", "_slots", "_params", "_lock", "__weakref__")

    def __init__(self, kernel: Any, grid: tuple[int, ...], block: tuple[int, ...], smem: int,
                 n_ptrs: int, scalars: tuple[Any, ...] = ()) -> None:
        self.kernel, self.smem, self.n_ptrs = kernel, int(smem), n_ptrs
        self.grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
        self.block = tuple(int(b) for b in block) + (1,) * (3 - len(block))
        self.scalars = scalars
        count = n_ptrs + len(scalars)
        self._store = store = np.zeros(max(1, count), np.uint64)
        raw = store.view(np.uint8)
        for i, value in enumerate(scalars, start=n_ptrs):
            if isinstance(value, _SCALAR_TYPES):
                data = np.frombuffer(value.tobytes(), np.uint8)
            elif hasattr(value, "data") and hasattr(value.data, "ptr"):
                data = np.frombuffer(np.uint64(value.data.ptr).tobytes(), np.uint8)
            else:
                raise TypeError(f"KernelCall: unsupported fixed argument {type(value).__name__}")
            raw[8 * i:8 * i + data.size] = data
        self._slots = (ctypes.c_uint64 * len(store)).from_buffer(store)
        base = store.ctypes.data
        self._params = np.array([base + 8 * i for i in range(len(store))], np.uint64)
        self._lock = threading.Lock()
        self._fn = function_ptr(kernel) if _driver_launch() is not None else None
        native = native_launch() if self._fn is not None else None
        if native is not None:
            self.launch_raw = native.Launch(self._fn, self.grid, self.block, self.smem, n_ptrs,
                                            store.tobytes())
            self.launch = self.launch_raw.arrays
        elif self._fn is not None:
            self.launch_raw = self._direct()
            self.launch = self._by_array
        else:  # no driver binding: CuPy's own launch
            self.launch_raw = self._cupy_launch_raw
            self.launch = self._cupy_launch

    def __call__(self, stream: Any, *arrays: Any) -> None:
        self.launch(stream, *arrays)

    def _by_array(self, stream: Any, *arrays: Any) -> None:
        self.launch_raw(stream.ptr, *[a.data.ptr for a in arrays])

    def _direct(self) -> Any:
        """The launch closure: the shared parameter block under its lock, or a private block
        while another thread holds it (the binding releases the GIL while the driver reads)."""
        launch, slots, n, private = _driver_launch(), self._slots, self.n_ptrs, self._private
        fn, smem, params = self._fn, self.smem, int(self._params.ctypes.data)
        (gx, gy, gz), (bx, by, bz) = self.grid, self.block
        take, give = self._lock.acquire, self._lock.release

        def launch_raw(stream_ptr: int, *ptrs: int) -> None:
            if not take(False):
                private(stream_ptr, ptrs)
                return
            try:
                slots[:n] = ptrs  # ValueError on a wrong pointer count
                launch(fn, gx, gy, gz, bx, by, bz, smem, stream_ptr, params, 0)
            finally:
                give()

        return launch_raw

    def _private(self, stream_ptr: int, ptrs: tuple[int, ...]) -> None:
        """A launch on a parameter block of its own."""
        store = self._store.copy()
        store[:self.n_ptrs] = ptrs
        base = store.ctypes.data
        params = np.array([base + 8 * i for i in range(len(store))], np.uint64)
        (gx, gy, gz), (bx, by, bz) = self.grid, self.block
        _driver_launch()(self._fn, gx, gy, gz, bx, by, bz, self.smem, stream_ptr,
                         params.ctypes.data, 0)

    def _cupy_launch(self, stream: Any, *arrays: Any) -> None:
        args = tuple(np.uint64(0) if a is NULL else a for a in arrays)
        self.kernel(self.grid, self.block, (*args, *self.scalars), stream=stream,
                    shared_mem=self.smem)

    def _cupy_launch_raw(self, stream_ptr: int, *ptrs: int) -> None:
        import cupy  # noqa: PLC0415 - only without the driver binding

        self.kernel(self.grid, self.block, (*(np.uint64(p) for p in ptrs), *self.scalars),
                    stream=cupy.cuda.ExternalStream(stream_ptr), shared_mem=self.smem)
