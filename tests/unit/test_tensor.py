"""Tensor types: storage, contracts, views and slices, copies, interop, pinned host memory."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import CUDA, assert_close, cuda_only, rand
from hypothesis import given, settings
from hypothesis import strategies as st

import lightning_core as lc
from lightning_core.ops.matmul import matmul_reference
from lightning_core.runtime.device import FallbackWarning

CONTRACT_KEYS = {"shape", "strides", "rank", "numel", "storage_numel", "is_contiguous",
                 "layout", "dtype", "device"}
shapes = st.lists(st.sampled_from([1, 2, 3, 5, 7]), min_size=1, max_size=4)


def _filled(cls, shape, rng, device="cpu"):
    data = rand(rng, *shape, dtype=np.float64)
    return cls.from_numpy(data, device), data


@pytest.mark.parametrize("cls,dtype", [(lc.Tensor, np.float32), (lc.Tensor64, np.float64)])
def test_new_tensor_is_zero_and_contiguous(cls, dtype):
    t = cls([2, 3, 4])
    assert (t.shape(), t.strides(), t.rank(), t.numel()) == ([2, 3, 4], [12, 4, 1], 3, 24)
    assert t.storage_numel() == 24 and t.is_contiguous() and t.layout() == "contiguous"
    assert t.dtype() == np.dtype(dtype).name and t.device() == "cpu"
    host = t.to_numpy()
    assert host.dtype == dtype and not host.any()
    assert t.validate_contract() is True
    assert set(t.contract()) == CONTRACT_KEYS
    assert cls.zeros(5).shape() == [5]


@pytest.mark.parametrize("bad", [[], [0], [2, -1], [2.5], [True], "ab", None, 0])
def test_bad_shapes(bad):
    with pytest.raises(lc.ShapeError) as err:
        lc.Tensor(bad)
    assert str(err.value).startswith("[Tensor]")


def test_unknown_device():
    with pytest.raises(lc.DeviceError) as err:
        lc.Tensor([2], device="tpu")
    assert str(err.value).startswith("[Tensor]")


@settings(max_examples=20, deadline=None)
@given(shape=shapes)
def test_from_numpy_copies_both_ways(shape):
    rng = np.random.default_rng(len(shape) * 31 + sum(shape))
    src = rand(rng, *shape)
    original = src.copy()
    t = lc.Tensor.from_numpy(src)
    src += 1.0
    out = t.to_numpy()
    np.testing.assert_array_equal(out, original)
    out[...] = 7.0
    np.testing.assert_array_equal(t.to_numpy(), original)
    assert t.shape() == list(shape) and t.to_list() == original.tolist()


def test_constructors_cast_and_check():
    assert lc.Tensor.from_numpy(np.arange(6).reshape(2, 3)).to_numpy().dtype == np.float32
    t = lc.Tensor64.from_numpy_array(np.arange(6), [3, 2])
    assert t.dtype() == "float64" and t.to_list() == [[0, 1], [2, 3], [4, 5]]
    assert lc.Tensor.from_list([[1, 2], [3, 4]]).shape() == [2, 2]
    with pytest.raises(lc.ShapeError, match=r"^\[Tensor.from_numpy_array\]"):
        lc.Tensor.from_numpy_array(np.arange(5), [2, 3])
    with pytest.raises(lc.ShapeError, match=r"^\[Tensor.from_list\]"):
        lc.Tensor.from_list([[1, 2], [3]])
    with pytest.raises(lc.DTypeError, match=r"^\[Tensor.from_list\]"):
        lc.Tensor.from_list(["a", "b"])
    with pytest.raises(lc.DTypeError, match=r"^\[Tensor.from_numpy\]"):
        lc.Tensor.from_numpy(np.ones(3, np.complex64))
    for empty in (np.ones((2, 0), np.float32), np.float32(3.0)):
        with pytest.raises(lc.ShapeError, match=r"^\[Tensor.from_numpy\]"):
            lc.Tensor.from_numpy(empty)


def test_reshape_in_place(rng):
    t, data = _filled(lc.Tensor, (4, 6), rng)
    t.reshape([3, -1])
    assert t.shape() == [3, 8] and t.strides() == [8, 1]
    np.testing.assert_array_equal(t.to_numpy(), data.reshape(3, 8).astype(np.float32))
    for bad in ([5, 5], [-1, -1], [0, 24], [-1, 5]):
        with pytest.raises(lc.ShapeError) as err:
            t.reshape(bad)
        assert str(err.value).startswith("[Tensor.reshape]")
    assert t.shape() == [3, 8]


def test_view_aliases_storage(rng):
    t, _ = _filled(lc.Tensor, (2, 6), rng)
    v = t.view([3, 4])
    assert isinstance(v, lc.TensorView) and v.is_contiguous() and v.offset_elements() == 0
    np.asarray(v)[1, 2] = 42.0
    assert t.to_numpy()[1, 0] == 42.0
    assert t.validate_view_contract(v) is True
    with pytest.raises(lc.ShapeError, match=r"^\[Tensor.view\]"):
        t.view([5, 5])
    assert isinstance(lc.Tensor64([4]).view([2, 2]), lc.Tensor64View)


@settings(max_examples=30, deadline=None)
@given(shape=shapes, data=st.data())
def test_slice_matches_numpy(shape, data):
    rng = np.random.default_rng(sum(shape) * 7 + len(shape))
    t, host = _filled(lc.Tensor64, shape, rng)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    start = data.draw(st.integers(0, shape[axis] - 1))
    end = data.draw(st.integers(start + 1, shape[axis]))
    v = t.slice(axis, start, end)
    index = [slice(None)] * len(shape)
    index[axis] = slice(start, end)
    np.testing.assert_array_equal(v.to_numpy(), host[tuple(index)])
    assert v.validate_contract() and t.validate_view_contract(v)
    contract = v.contract()
    assert set(contract) == CONTRACT_KEYS | {"offset_elements"}
    assert contract["offset_elements"] == start * t.strides()[axis]
    assert contract["storage_numel"] == t.storage_numel()
    assert v.layout() == ("contiguous" if v.is_contiguous() else "strided")


def test_slice_layout_and_bad_slices():
    t = lc.Tensor([4, 5])
    assert t.slice(0, 1, 3).layout() == "contiguous"
    assert t.slice(1, 1, 3).layout() == "strided"
    for args in ((2, 0, 1), (-3, 0, 1), (0, 2, 2), (0, 3, 1), (1, 0, 6), (0, -1, 2),
                 (0, 0.5, 2)):
        with pytest.raises(lc.ShapeError) as err:
            t.slice(*args)
        assert str(err.value).startswith("[Tensor.slice]")


def test_explicit_views_are_bounds_checked():
    t = lc.Tensor([3, 4])
    v = lc.TensorView(t, [2, 2], [4, 2], offset_elements=5)
    assert v.strides() == [4, 2] and v.layout() == "strided"
    assert v.validate_contract_for_storage(12) is True  # furthest element: 5 + 4 + 2 = 11
    with pytest.raises(lc.ShapeError, match="reaches element 11"):
        v.validate_contract_for_storage(11)
    bad = [([2, 2], [4, 2], 6), ([3, 4], None, 1), ([2, 2], [4], 0), ([2, 2], [0, 1], 0),
           ([2, 2], [4, 1], -1), ([2, 0], None, 0), ([2], ["x"], 0)]
    for shape, strides, offset in bad:
        with pytest.raises(lc.ShapeError) as err:
            lc.TensorView(t, shape, strides, offset)
        assert str(err.value).startswith("[TensorView]")
    with pytest.raises(lc.DTypeError, match=r"^\[TensorView\]"):
        lc.TensorView(lc.Tensor64([4]), [4])
    with pytest.raises(lc.DTypeError, match=r"^\[Tensor64View\]"):
        lc.Tensor64View(np.zeros(4), [4])


def test_view_contract_of_another_tensor():
    a, b = lc.Tensor([4]), lc.Tensor([4])
    with pytest.raises(lc.ShapeError, match=r"^\[Tensor\] view does not alias"):
        a.validate_view_contract(b.view([2, 2]))
    with pytest.raises(lc.DTypeError, match=r"^\[Tensor\]"):
        a.validate_view_contract(b)


def test_numpy_interop_and_no_cuda_interface(rng):
    t, data = _filled(lc.Tensor, (3, 2), rng)
    arr = np.asarray(t)
    assert np.shares_memory(arr, t._lc_storage) and arr.dtype == np.float32
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    copied = np.array(t, copy=True)
    copied[...] = 0
    assert t.to_numpy().any()
    assert not hasattr(t, "__cuda_array_interface__")
    assert not hasattr(t.view([6]), "__cuda_array_interface__")


def test_to_copies_and_falls_back(rng):
    t, data = _filled(lc.Tensor, (2, 3), rng)
    c = t.to("cpu")
    np.asarray(c)[...] = 0
    np.testing.assert_array_equal(t.to_numpy(), data.astype(np.float32))
    if not lc.metal_available():
        with pytest.warns(FallbackWarning):
            m = lc.Tensor([2], device="metal")
        assert m.device() == lc.backend_name()


def test_ops_accept_tensors_and_views(rng):
    a, ad = _filled(lc.Tensor, (5, 7), rng)
    b, bd = _filled(lc.Tensor, (7, 3), rng)
    ref = matmul_reference(ad.astype(np.float32), bd.astype(np.float32))
    assert_close(lc.matmul2d(a, b, "cpu"), ref, scale=3.0)
    out = lc.Tensor([5, 3])
    np.asarray(out)[...] = np.nan
    assert lc.matmul2d_into(a, b, out, "cpu") is out
    assert_close(out.to_numpy(), ref, scale=3.0)
    wide, wd = _filled(lc.Tensor, (5, 9), rng)
    got = lc.matmul2d(wide.slice(1, 2, 9), b, "cpu")
    assert_close(got, matmul_reference(wd[:, 2:9].astype(np.float32), bd.astype(np.float32)),
                 scale=3.0)


def test_pinned_helpers():
    p = lc.pinned_empty((3, 4))
    assert isinstance(p, np.ndarray) and p.shape == (3, 4) and p.dtype == np.float32
    assert lc.pinned_empty(5, np.float64).shape == (5,)
    assert lc.pinned_empty((0, 2)).size == 0
    like = lc.pinned_like(np.ones((2, 5), np.float64))
    assert like.shape == (2, 5) and like.dtype == np.float64
    assert lc.pinned_like(lc.Tensor([4, 2])).shape == (4, 2)
    assert lc.pinned_like([[1.0, 2.0]]).shape == (1, 2)
    for bad in ((-1, 2), ("a",), 2.5):
        with pytest.raises(lc.ShapeError, match=r"^\[pinned_empty\]"):
            lc.pinned_empty(bad)


def test_to_device_on_host(rng):
    t, data = _filled(lc.Tensor, (3, 3), rng)
    host = lc.to_device(t, "cpu")
    assert type(host) is np.ndarray
    np.testing.assert_array_equal(host, data.astype(np.float32))
    assert type(lc.to_device([1.0, 2.0], "cpu")) is np.ndarray
    with pytest.raises(lc.DeviceError, match=r"^\[to_device\]"):
        lc.to_device(host, "gpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        moved = lc.to_device(host, "auto")
    assert (type(moved) is np.ndarray) is (not CUDA)


@cuda_only
def test_cuda_tensor_is_device_resident(rng):
    import cupy

    t, data = _filled(lc.Tensor, (4, 5), rng, device="cuda")
    assert t.device() == "cuda" and isinstance(t._lc_storage, cupy.ndarray)
    assert "data" in t.__cuda_array_interface__
    np.testing.assert_array_equal(t.to_numpy(), data.astype(np.float32))
    with pytest.raises(lc.DeviceError, match=r"^\[Tensor\]"):
        np.asarray(t)
    back = t.to("cpu")
    assert back.device() == "cpu"
    np.testing.assert_array_equal(back.to_numpy(), data.astype(np.float32))
    b = lc.Tensor.from_numpy(rand(rng, 5, 2), "cuda")
    got = lc.matmul2d(t, b, "cuda")
    assert isinstance(got, cupy.ndarray)
    v = t.slice(1, 1, 4)
    np.testing.assert_array_equal(v.to_numpy(), data[:, 1:4].astype(np.float32))
    with pytest.raises(lc.DeviceError, match="never cross devices"):
        lc.Tensor([4, 5]).validate_view_contract(v)
    assert isinstance(lc.to_device(data, "cuda"), cupy.ndarray)
    pinned = lc.pinned_empty((2, 3))
    assert pinned.shape == (2, 3) and pinned.dtype == np.float32
