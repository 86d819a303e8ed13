"""Tensor types with owned storage, and metadata views with bounds-checked contracts.

A ``Tensor`` owns one flat, zero-initialised buffer: a NumPy array on the CPU, a CuPy array on
CUDA (CuPy is imported only when a CUDA tensor is made). ``_lc_storage`` is that buffer shaped as
the tensor, which is how every op accepts Tensors; CUDA tensors stay device-resident and ops
given them return device results. A ``TensorView`` is shape / strides / offset metadata over a
tensor's storage; it aliases that storage and is always on the tensor's device.

Contract: a shape has at least one dimension and every dimension is > 0; strides (in elements)
are >= 1; a view's furthest element lies inside its tensor's storage. Data enters and leaves
by copy (``from_numpy``, ``to_numpy``): a tensor never aliases caller memory.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from ..errors import DeviceError, DeviceOutOfMemoryError, DTypeError, ShapeError
from .arrays import to_numpy as _host
from .device import resolve

__all__ = ["Tensor", "Tensor64", "TensorView", "Tensor64View"]


def _shape(op: str, shape: Any) -> tuple[int, ...]:
    """A validated shape: at least one dimension, every dimension an integer > 0."""
    out = _dims(op, shape)
    if not out or any(d <= 0 for d in out):
        raise ShapeError(f"[{op}] shape must have at least one dimension and every dimension "
                         f"> 0; got {list(out)}")
    return out


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("bool is not a size")
    return operator.index(value)


def _dims(op: str, shape: Any, what: str = "shape") -> tuple[int, ...]:
    """An integer or a sequence of integers as a tuple (no range checks)."""
    try:
        return (_int(shape),)
    except TypeError:
        pass
    try:
        return tuple(_int(d) for d in shape)
    except TypeError:
        raise ShapeError(f"[{op}] {what} must be a sequence of integers; got {shape!r}") from None


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return tuple(reversed(strides))


def _cupy() -> Any:
    """CuPy, once the CUDA backend reports a usable GPU (checked by ``resolve``)."""
    import cupy  # noqa: PLC0415 - imported only for CUDA tensors

    return cupy


def _allocate(op: str, kind: str, index: int, n: int, dtype: np.dtype) -> Any:
    try:
        if kind != "cuda":
            return np.zeros(n, dtype)
        cp = _cupy()
        with cp.cuda.Device(index):
            return cp.zeros(n, dtype)
    except MemoryError:
        raise DeviceOutOfMemoryError(f"[{op}] cannot allocate {n * dtype.itemsize} bytes on "
                                     f"{kind}:{index}") from None
    except ValueError as exc:
        raise ShapeError(f"[{op}] {n} elements cannot be allocated: {exc}") from None


def _upload(kind: str, index: int, host: np.ndarray) -> Any:
    """A new flat buffer on ``kind`` holding a copy of ``host``."""
    if kind != "cuda":
        return np.array(host, order="C").reshape(-1)
    cp = _cupy()
    with cp.cuda.Device(index):
        return cp.array(host, order="C").reshape(-1)


def _host_values(op: str, values: Any, dtype: np.dtype) -> np.ndarray:
    """``values`` as a host array of ``dtype`` (ints and bools are cast; others refused)."""
    try:
        host = _host(getattr(values, "_lc_storage", values))
    except (TypeError, ValueError) as exc:
        raise DTypeError(f"[{op}] values cannot be read as an array: {exc}") from None
    if host.dtype.kind not in "fiub":
        raise DTypeError(f"[{op}] values have unsupported dtype {host.dtype} (use real numbers)")
    return host.astype(dtype, copy=False)


class _Array:
    """Metadata and host/device interop shared by tensors and views."""

    _dtype = np.dtype(np.float32)
    __slots__ = ("_shape", "_strides", "_lc_storage")

    def shape(self) -> list[int]:
        return list(self._shape)

    def strides(self) -> list[int]:
        """Strides in elements."""
        return list(self._strides)

    def rank(self) -> int:
        return len(self._shape)

    def numel(self) -> int:
        return math.prod(self._shape)

    def is_contiguous(self) -> bool:
        want = _contiguous(self._shape)
        return all(s == w or d == 1 for d, s, w in zip(self._shape, self._strides, want,
                                                       strict=True))

    def layout(self) -> str:
        """``"contiguous"`` or ``"strided"``."""
        return "contiguous" if self.is_contiguous() else "strided"

    def dtype(self) -> str:
        return self._dtype.name

    def device(self) -> str:
        raise NotImplementedError  # each subclass knows where its storage lives

    def to_numpy(self) -> np.ndarray:
        """A host copy of the data."""
        return np.array(_host(self._lc_storage), order="C")

    def to_list(self) -> list[Any]:
        """The data as a nested list."""
        return self.to_numpy().tolist()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """NumPy interop for host data; device data must be copied with ``to_numpy()``."""
        storage = self._lc_storage
        name = type(self).__name__
        if type(storage) is not np.ndarray:
            raise DeviceError(f"[{name}] a {self.device()} tensor cannot become a NumPy array "
                              "implicitly; call to_numpy()")
        convert = dtype is not None and np.dtype(dtype) != storage.dtype
        if convert and copy is False:
            raise ValueError(f"[{name}] cannot convert to {dtype} without a copy")
        return np.array(storage, dtype=dtype, copy=True) if copy or convert else storage

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        storage = self._lc_storage
        if type(storage) is np.ndarray:
            # AttributeError keeps hasattr(cpu_tensor, "__cuda_array_interface__") False.
            raise AttributeError("a cpu tensor has no __cuda_array_interface__")
        return storage.__cuda_array_interface__


class TensorView(_Array):
    """Shape / strides / offset (in elements) over a float32 tensor's storage; an alias."""

    __slots__ = ("_base", "_offset")

    def __init__(self, tensor: Tensor, shape: Any, strides: Any = None,
                 offset_elements: int = 0) -> None:
        name = type(self).__name__
        if not isinstance(tensor, Tensor) or tensor._dtype != self._dtype:
            raise DTypeError(f"[{name}] needs a {self._dtype.name} lc tensor; got "
                             f"{type(tensor).__name__}")
        self._base = tensor
        self._shape = _shape(name, shape)
        if strides is None:
            strides = _contiguous(self._shape)
        self._strides = _dims(name, strides, "strides")
        try:
            self._offset = _int(offset_elements)
        except TypeError:
            raise ShapeError(f"[{name}] offset_elements must be an integer; got "
                             f"{offset_elements!r}") from None
        self.validate_contract()
        flat = tensor._flat
        item = flat.dtype.itemsize
        tricks = np.lib.stride_tricks if type(flat) is np.ndarray else _cupy().lib.stride_tricks
        self._lc_storage = tricks.as_strided(flat[self._offset:], self._shape,
                                             tuple(s * item for s in self._strides))

    def device(self) -> str:
        return self._base.device()

    def offset_elements(self) -> int:
        return self._offset

    def validate_contract_for_storage(self, storage_numel: int) -> bool:
        """Check shape, strides and offset against a storage of ``storage_numel`` elements."""
        name = type(self).__name__
        if len(self._strides) != len(self._shape):
            raise ShapeError(f"[{name}] {len(self._strides)} strides for a rank-"
                             f"{len(self._shape)} shape")
        if any(s < 1 for s in self._strides):
            raise ShapeError(f"[{name}] strides must be >= 1; got {list(self._strides)}")
        if self._offset < 0:
            raise ShapeError(f"[{name}] offset_elements must be >= 0; got {self._offset}")
        last = self._offset + sum((d - 1) * s for d, s in zip(self._shape, self._strides,
                                                                 strict=True))
        if last >= storage_numel:
            raise ShapeError(f"[{name}] view reaches element {last} but the storage holds "
                             f"{storage_numel} (shape {list(self._shape)}, strides "
                             f"{list(self._strides)}, offset {self._offset})")
        return True

    def validate_contract(self) -> bool:
        """Check the view against its tensor's storage; raise ``ShapeError`` if out of bounds."""
        return self.validate_contract_for_storage(self._base.storage_numel())

    def contract(self) -> dict[str, Any]:
        return {"shape": self.shape(), "strides": self.strides(), "rank": self.rank(),
                "numel": self.numel(), "storage_numel": self._base.storage_numel(),
                "is_contiguous": self.is_contiguous(), "layout": self.layout(),
                "dtype": self.dtype(), "device": self.device(),
                "offset_elements": self._offset}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(shape={self.shape()}, strides={self.strides()}, "
                f"offset={self._offset}, device={self.device()!r})")


class Tensor64View(TensorView):
    """A ``TensorView`` over a float64 tensor."""

    _dtype = np.dtype(np.float64)
    __slots__ = ()


class Tensor(_Array):
    """A float32 tensor with owned, zero-initialised, contiguous storage on one device."""

    _view = TensorView
    __slots__ = ("_flat", "_kind", "_index")

    def __init__(self, shape: Any, device: str = "cpu") -> None:
        name = type(self).__name__
        dims = _shape(name, shape)
        route = resolve(name, device)
        flat = _allocate(name, route.selected, route.index, math.prod(dims), self._dtype)
        self._adopt(flat, dims, route.selected, route.index)

    def _adopt(self, flat: Any, shape: tuple[int, ...], kind: str, index: int) -> None:
        self._flat, self._kind, self._index = flat, kind, index
        self._set_shape(shape)

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        self._shape, self._strides = shape, _contiguous(shape)
        self._lc_storage = self._flat.reshape(shape)

    @classmethod
    def _build(cls, op: str, host: np.ndarray, shape: tuple[int, ...], device: str) -> Tensor:
        route = resolve(op, device)
        obj = cls.__new__(cls)
        obj._adopt(_upload(route.selected, route.index, host), shape, route.selected,
                   route.index)
        return obj

    @classmethod
    def zeros(cls, shape: Any, device: str = "cpu") -> Tensor:
        return cls(shape, device)

    @classmethod
    def from_numpy(cls, arr: Any, device: str = "cpu") -> Tensor:
        """A new tensor holding a copy of ``arr`` (any real dtype; cast to the tensor's)."""
        op = f"{cls.__name__}.from_numpy"
        host = _host_values(op, arr, cls._dtype)
        return cls._build(op, host, _shape(op, host.shape), device)

    @classmethod
    def from_numpy_array(cls, values: Any, shape: Any, device: str = "cpu") -> Tensor:
        """A new tensor of ``shape`` filled from ``values`` (any shape with as many elements)."""
        op = f"{cls.__name__}.from_numpy_array"
        dims = _shape(op, shape)
        host = _host_values(op, values, cls._dtype)
        if host.size != math.prod(dims):
            raise ShapeError(f"[{op}] {host.size} values do not fill shape {list(dims)}")
        return cls._build(op, host.reshape(dims), dims, device)

    @classmethod
    def from_list(cls, values: Any, device: str = "cpu") -> Tensor:
        """A new tensor from a (nested) list of numbers."""
        op = f"{cls.__name__}.from_list"
        try:
            arr = np.array(values)
        except ValueError as exc:
            raise ShapeError(f"[{op}] values are not a rectangular list: {exc}") from None
        host = _host_values(op, arr, cls._dtype)
        return cls._build(op, host, _shape(op, host.shape), device)

    def storage_numel(self) -> int:
        return int(self._flat.size)

    def device(self) -> str:
        return f"{self._kind}:{self._index}" if self._index else self._kind

    def validate_contract(self) -> bool:
        """Check shape, strides and storage size; raise ``ShapeError`` when broken."""
        name = type(self).__name__
        _shape(name, self._shape)
        if self._strides != _contiguous(self._shape) or self.numel() != self.storage_numel():
            raise ShapeError(f"[{name}] shape {self.shape()} / strides {self.strides()} do not "
                             f"describe the {self.storage_numel()}-element storage")
        return True

    def validate_view_contract(self, view: TensorView) -> bool:
        """Check that ``view`` aliases this tensor, on its device, within its storage."""
        name = type(self).__name__
        if not isinstance(view, TensorView):
            raise DTypeError(f"[{name}] expected a TensorView; got {type(view).__name__}")
        if view.device() != self.device():
            raise DeviceError(f"[{name}] view is on {view.device()}, the tensor on "
                              f"{self.device()}; views never cross devices")
        if view._base._flat is not self._flat:
            raise ShapeError(f"[{name}] view does not alias this tensor's storage")
        return view.validate_contract_for_storage(self.storage_numel())

    def contract(self) -> dict[str, Any]:
        return {"shape": self.shape(), "strides": self.strides(), "rank": self.rank(),
                "numel": self.numel(), "storage_numel": self.storage_numel(),
                "is_contiguous": self.is_contiguous(), "layout": self.layout(),
                "dtype": self.dtype(), "device": self.device()}

    def reshape(self, shape: Any) -> None:
        """Change the shape in place (same number of elements; one dimension may be -1)."""
        op = f"{type(self).__name__}.reshape"
        dims = list(_dims(op, shape))
        if dims.count(-1) == 1:
            rest = math.prod(d for d in dims if d != -1) or 1
            dims[dims.index(-1)] = self.numel() // rest if self.numel() % rest == 0 else 0
        new = _shape(op, dims)
        if math.prod(new) != self.numel():
            raise ShapeError(f"[{op}] cannot reshape {self.numel()} elements to "
                             f"{list(_dims(op, shape))}")
        self._set_shape(new)

    def view(self, shape: Any) -> TensorView:
        """A contiguous view of the whole storage with another shape."""
        op = f"{type(self).__name__}.view"
        dims = _shape(op, shape)
        if math.prod(dims) != self.numel():
            raise ShapeError(f"[{op}] a view of shape {list(dims)} needs {math.prod(dims)} "
                             f"elements; the tensor has {self.numel()}")
        return self._view(self, dims)

    def slice(self, axis: int, start: int, end: int) -> TensorView:
        """A strided view of ``[start, end)`` along ``axis``."""
        op = f"{type(self).__name__}.slice"
        rank = len(self._shape)
        try:
            axis, start, end = _int(axis), _int(start), _int(end)
        except TypeError:
            raise ShapeError(f"[{op}] axis, start and end must be integers") from None
        if not -rank <= axis < rank:
            raise ShapeError(f"[{op}] axis {axis} is out of range for rank {rank}")
        axis %= rank
        if not 0 <= start < end <= self._shape[axis]:
            raise ShapeError(f"[{op}] need 0 <= start < end <= {self._shape[axis]} on axis "
                             f"{axis}; got start={start}, end={end}")
        dims = list(self._shape)
        dims[axis] = end - start
        return self._view(self, dims, self._strides, start * self._strides[axis])

    def to(self, device: str) -> Tensor:
        """A copy of this tensor on ``device`` (a new tensor even on the same device)."""
        route = resolve(f"{type(self).__name__}.to", device)
        obj = type(self).__new__(type(self))
        if route.selected == "cuda":
            cp = _cupy()
            with cp.cuda.Device(route.index):
                flat = cp.array(self._flat, copy=True)
        else:
            flat = np.array(_host(self._flat), copy=True)
        obj._adopt(flat, self._shape, route.selected, route.index)
        return obj

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape()}, device={self.device()!r})"


class Tensor64(Tensor):
    """A float64 tensor (same API as ``Tensor``)."""

    _dtype = np.dtype(np.float64)
    _view = Tensor64View
    __slots__ = ()
