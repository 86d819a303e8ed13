"""Turning user inputs into arrays a backend can run on, and checking ``_into`` buffers.

Rules (SPEC §2): float32 is the fast path; float64 is computed in float64; float16 (and
bfloat16 where the array library has it) run on CUDA only; integer and bool inputs are cast to
float32; complex, object, string and other dtypes are errors. Mixed float inputs are promoted
(float64 wins). Non-contiguous inputs are copied once, and the copy is noted in the trace.

Device arrays (anything with ``__cuda_array_interface__`` or a CUDA ``__dlpack__``) are not
touched here: a backend registered with ``register_adopter`` turns them into its native array.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import AliasingError, DTypeError, OutBufferError
from .backend import backend_names, get_backend

__all__ = [
    "Operand",
    "as_operands",
    "check_out",
    "register_adopter",
    "to_numpy",
    "is_device_array",
    "array_module",
    "adopt",
    "c_contiguous",
]

_CAST_TO_F32 = "biu"

# Callables that turn a foreign device array into a backend-native one, or return None.
_ADOPTERS: list[Callable[[Any], Any]] = []


# Array types a backend runs on natively (CuPy's ndarray): used as they are, no adoption.
_NATIVE: set[type] = set()


def register_adopter(fn: Callable[[Any], Any], native: type | None = None) -> None:
    """Let a backend claim foreign array objects (CuPy, torch CUDA tensors, DLPack).

    ``native`` is the backend's own array type, which then takes the fast path.
    """
    _ADOPTERS.append(fn)
    if native is not None:
        _NATIVE.add(native)


_PINNED_CHECK: list[Callable[[np.ndarray], bool]] = []


def register_pinned_check(fn: Callable[[np.ndarray], bool]) -> None:
    """Let a device backend say whether a NumPy array's memory is page-locked."""
    _PINNED_CHECK[:] = [fn]


# Below this size pinned or not changes a transfer by under ~35 us, which does not flip the
# seed cases' routing, and asking the driver costs ~3-5 us an array the first time (the CUDA
# backend remembers answers per owning array): smaller arrays count as pageable.
PINNED_MIN_BYTES = 512 << 10


def pinned_flags(arrays: Any) -> tuple[bool, ...] | None:
    """Per array, whether it is a page-locked NumPy array of at least ``PINNED_MIN_BYTES``;
    None while no device backend can tell. Routing of host data (``device="auto"``) depends
    on it: pinned memory moves about four times faster than pageable memory."""
    if not _PINNED_CHECK:
        return None
    for a in arrays:
        if type(a) is np.ndarray and a.nbytes >= PINNED_MIN_BYTES:
            break
    else:  # the common small call: nothing to ask
        return (False,) * len(arrays)
    check = _PINNED_CHECK[0]
    return tuple(type(a) is np.ndarray and a.nbytes >= PINNED_MIN_BYTES and check(a)
                 for a in arrays)


def is_device_array(x: Any) -> bool:
    """True for arrays that live in device memory (not NumPy)."""
    t = type(x)
    if t is np.ndarray:
        return False
    return t in _NATIVE or hasattr(x, "__cuda_array_interface__")


def array_module(x: Any) -> Any:
    """NumPy for host arrays, else the module of the array's type (CuPy for CuPy arrays)."""
    if type(x) is np.ndarray:
        return np
    mod = sys.modules.get(type(x).__module__.split(".")[0])
    return mod if mod is not None and hasattr(mod, "asarray") else np


class Operand:
    """A normalized input: the array, whether it was copied, and where it lives."""

    __slots__ = ("array", "copied", "on_device")

    def __init__(self, array: Any, copied: bool, on_device: bool) -> None:
        self.array = array
        self.copied = copied
        self.on_device = on_device


def _claim(x: Any) -> Any:
    for adopter in _ADOPTERS:
        native = adopter(x)
        if native is not None:
            return native
    return None


def adopt(op: str, name: str, x: Any) -> Any:
    """The native array behind ``x``: lc.Tensor storage, a backend's device array, or NumPy."""
    storage = getattr(x, "_lc_storage", None)  # lc.Tensor
    if storage is not None:
        return storage
    if hasattr(x, "__cuda_array_interface__") or _is_cuda_dlpack(x):
        native = _claim(x)
        if native is None and "cuda" in backend_names():
            get_backend("cuda")  # building the backend registers its adopter
            native = _claim(x)
        if native is not None:
            return native
        raise DTypeError(f"[{op}] {name} is a device array but no CUDA backend is available to "
                         "use it (install the 'cuda' extra: CuPy)")
    try:
        return np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is a bad input
        raise DTypeError(f"[{op}] {name} cannot be converted to an array "
                         f"({type(x).__name__}): {exc}") from None


def _is_cuda_dlpack(x: Any) -> bool:
    dev = getattr(x, "__dlpack_device__", None)
    if dev is None:
        return False
    try:
        kind, _ = dev()
    except Exception:  # noqa: BLE001
        return False
    return int(kind) in (2, 3, 13)  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged


def _dtype_name(dtype: Any) -> str:
    return getattr(dtype, "name", str(dtype))


_F16, _F32, _F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
_BY_CHAR = {"e": _F16, "f": _F32, "d": _F64}  # dtype.char is a cheap C attribute


def _classify(op: str, name: str, dtype: Any) -> str:
    """'e'/'f'/'d' for float16/32/64, 'b' for bfloat16, 'c' for cast-to-float32; else raise."""
    kind = dtype.kind
    if kind == "f":
        char = dtype.char
        if char in _BY_CHAR:
            return char
    elif kind in _CAST_TO_F32:
        return "c"  # documented: integer and bool inputs become float32
    elif _dtype_name(dtype) == "bfloat16":
        return "b"
    dname = _dtype_name(dtype)
    if kind == "f":
        raise DTypeError(f"[{op}] {name} has unsupported dtype {dname}; use float32 or float64")
    raise DTypeError(f"[{op}] {name} has unsupported dtype {dname} (complex, object, string "
                     "and other non-real dtypes are not supported)")


def c_contiguous(arr: Any) -> bool:
    """Whether ``arr`` is C-contiguous (CuPy's cached flag: building ``.flags`` costs µs)."""
    if type(arr) is np.ndarray:
        return arr.flags.c_contiguous
    flag = getattr(arr, "_c_contiguous", None)
    return bool(flag) if flag is not None else arr.flags.c_contiguous


def as_operands(op: str, names: tuple[str, ...],
                values: tuple[Any, ...]) -> tuple[tuple[Operand, ...], np.dtype]:
    """Normalize inputs and find their common compute dtype.

    Returns the operands (cast to the common dtype, C-contiguous) and that dtype. Mixed float
    inputs promote (float64 wins; float16 with float32 gives float32).
    """
    raw = []
    for name, value in zip(names, values, strict=True):
        t = type(value)
        raw.append(value if t is np.ndarray or t in _NATIVE else adopt(op, name, value))
    first = raw[0].dtype
    if first.char in _BY_CHAR and all(a.dtype == first for a in raw):
        dtype = _BY_CHAR[first.char]  # the common case: every input already the same float
    else:
        dtype = _common(op, names, raw)
    out = []
    for arr in raw:
        on_device = type(arr) is not np.ndarray
        copied = False
        if arr.dtype != dtype:
            arr = arr.astype(dtype)
            copied = True
        if not c_contiguous(arr):
            arr = arr.copy(order="C") if on_device else np.ascontiguousarray(arr)
            copied = True
        out.append(Operand(arr, copied, on_device))
    return tuple(out), dtype


def _common(op: str, names: tuple[str, ...], raw: list[Any]) -> np.dtype:
    """The compute dtype of mixed inputs (raises for unsupported ones)."""
    classes = {_classify(op, name, arr.dtype) for name, arr in zip(names, raw, strict=True)}
    if classes <= {"f", "c"}:
        return _F32
    if "d" in classes:
        return _F64
    if classes == {"e"}:
        return _F16
    if classes == {"b"}:
        return raw[0].dtype
    return _F32


def to_numpy(x: Any) -> np.ndarray:
    """A host NumPy view or copy of any supported array."""
    if type(x) is np.ndarray:
        return x
    getter = getattr(x, "get", None)  # CuPy
    if callable(getter) and hasattr(x, "__cuda_array_interface__"):
        return getter()
    return np.asarray(x)


def _extent(arr: Any) -> tuple[int, int]:
    """[start, end) byte addresses of an array's data."""
    if type(arr) is np.ndarray:
        start = arr.__array_interface__["data"][0]
    elif type(arr) in _NATIVE:
        start = arr.data.ptr
    else:
        start = arr.__cuda_array_interface__["data"][0]
    return start, start + arr.nbytes


def check_out(op: str, out: Any, shape: tuple[int, ...], dtype: np.dtype,
              inputs: tuple[Operand, ...], *, flat_ok: bool = False,
              alias_ok: bool = False) -> Any:
    """Validate an ``_into`` buffer and return the native array to write into.

    ``flat_ok`` accepts a 1-D buffer of the right size (the seed's flat ``m*n`` outputs).
    ``alias_ok`` allows ``out`` to be exactly one of the inputs (elementwise ops); any other
    overlap with an input raises ``AliasingError``.
    """
    arr = out
    native = type(arr) is np.ndarray or type(arr) in _NATIVE
    if not native and (hasattr(arr, "_lc_storage") or hasattr(arr, "__cuda_array_interface__")):
        arr = adopt(op, "out", arr)
        native = True
    if not native:
        raise OutBufferError(f"[{op}] out must be a NumPy array, a device array or an "
                             f"lc.Tensor; got {type(out).__name__}")
    if not hasattr(arr, "dtype") or arr.dtype != dtype:
        raise OutBufferError(f"[{op}] out has dtype {_dtype_name(getattr(arr, 'dtype', None))}"
                             f", the result is {_dtype_name(dtype)}")
    size = 1
    for d in shape:
        size *= d
    shape_ok = tuple(arr.shape) == tuple(shape) or (flat_ok and arr.ndim == 1
                                                    and arr.size == size)
    if not shape_ok:
        expected = f"{tuple(shape)}" + (f" or flat ({size},)" if flat_ok else "")
        raise OutBufferError(f"[{op}] out has shape {tuple(arr.shape)}, expected {expected}")
    if not c_contiguous(arr):
        raise OutBufferError(f"[{op}] out must be C-contiguous")
    if type(arr) is np.ndarray and not arr.flags.writeable:
        raise OutBufferError(f"[{op}] out is read-only")
    if size:
        host = type(arr) is np.ndarray
        o_lo = o_hi = None
        for operand in inputs:
            src = operand.array
            if operand.copied or src.nbytes == 0 or type(src) is not type(arr):
                continue
            if host and not np.may_share_memory(arr, src):  # a cheap bounds check first
                continue
            if o_lo is None:
                o_lo, o_hi = _extent(arr)
            i_lo, i_hi = _extent(src)
            if o_lo < i_hi and i_lo < o_hi:
                exact = (o_lo == i_lo and o_hi == i_hi)
                if not (alias_ok and exact):
                    raise AliasingError(f"[{op}] out overlaps an input; pass a separate buffer"
                                        + ("" if not exact else
                                           " (this op cannot run in place)"))
    return arr
