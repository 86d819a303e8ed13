"""softmax, layer_norm, linear and embedding vs their float64 references on every device."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, cuda_only, lc_to_numpy, poisoned, rand
from hypothesis import given, settings
from hypothesis import strategies as st

import lightning_core as lc
from lightning_core.ops.embedding import embedding_reference
from lightning_core.ops.linear import linear_reference
from lightning_core.ops.norm import layer_norm_reference
from lightning_core.ops.softmax import softmax_reference

sizes = st.sampled_from([1, 2, 3, 5, 7, 13])
shapes = st.lists(sizes, min_size=1, max_size=4).map(tuple)
dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**32 - 1)
ACTIVATIONS = [None, "relu", "gelu", "gelu_tanh", "gelu_erf"]


@settings(max_examples=40, deadline=None)
@given(shape=shapes, data=st.data(), dtype=dtypes, seed=seeds)
def test_softmax_any_rank_any_axis(device, shape, data, dtype, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    rng = np.random.default_rng(seed)
    x = rand(rng, *shape, dtype=dtype, scale=4.0)
    ref = softmax_reference(x, axis)
    got = lc.softmax(x, axis, device)
    assert lc_to_numpy(got).dtype == dtype
    assert_close(got, ref, dtype)
    out = poisoned(shape, dtype, device)
    assert lc.softmax_into(x, out, axis, device) is out
    assert_close(out, ref, dtype)


@pytest.mark.parametrize("cols", [1, 2, 31, 97, 1000, 4099])
def test_softmax_long_rows_are_stable(device, rng, cols):
    x = rand(rng, 3, cols, scale=30.0) + 500.0  # exp(x) alone would overflow float32
    got = lc.softmax(x, device=device)
    assert_close(got, softmax_reference(x))
    np.testing.assert_allclose(lc_to_numpy(got).sum(axis=-1), 1.0, rtol=1e-5)


def test_softmax_specials(device):
    x = np.array([[1.0, np.nan, 2.0], [np.inf, 0.0, 1.0], [-np.inf, 0.0, 0.0],
                  [-np.inf, -np.inf, -np.inf]], np.float32)
    assert_close(lc.softmax(x, device=device), softmax_reference(x))
    assert lc_to_numpy(lc.softmax(np.zeros((2, 0), np.float32), device=device)).shape == (2, 0)
    assert lc_to_numpy(lc.softmax(np.zeros((0, 4, 3)), 1, device=device)).shape == (0, 4, 3)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, dtype=dtypes, affine=st.sampled_from(["none", "weight", "bias", "both"]),
       eps=st.sampled_from([1e-5, 1e-3, 0.0]), seed=seeds)
def test_layer_norm_any_rank(device, shape, dtype, affine, eps, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, *shape, dtype=dtype, scale=2.0) + 0.5
    if shape[-1] == 1 and eps == 0.0:
        eps = 1e-5  # a single value has zero variance: eps = 0 gives 0/0 (tested below)
    cols = shape[-1]
    w = rand(rng, cols, dtype=dtype) if affine in ("weight", "both") else None
    b = rand(rng, cols, dtype=dtype) if affine in ("bias", "both") else None
    ref = layer_norm_reference(x, w, b, eps)
    # A tiny variance amplifies float32 rounding of x - mean; scale the tolerance by 1/std.
    spread = float(np.min(np.std(x.astype(np.float64), axis=-1))) if x.size else 1.0
    scale = max(1.0, 1.0 / max(spread, 1e-3))
    got = lc.layer_norm(x, w, b, eps, device)
    assert lc_to_numpy(got).dtype == dtype
    assert_close(got, ref, dtype, scale=scale)
    out = poisoned(shape, dtype, device)
    assert lc.layer_norm_into(x, w, b, out, eps, device) is out
    assert_close(out, ref, dtype, scale=scale)


def test_layer_norm_large_offset_and_specials(device, rng):
    x = rand(rng, 4, 257, dtype=np.float64) + 1e3
    assert_close(lc.layer_norm(x, device=device), layer_norm_reference(x), np.float64)
    flat = np.full((2, 5), 3.0, np.float32)
    np.testing.assert_array_equal(lc_to_numpy(lc.layer_norm(flat, device=device)), 0.0)
    assert np.isnan(lc_to_numpy(lc.layer_norm(flat, eps=0.0, device=device))).all()
    bad = np.array([[1.0, np.nan, 2.0], [1.0, 2.0, np.inf], [1.0, 2.0, 3.0]], np.float32)
    got = lc_to_numpy(lc.layer_norm(bad, device=device))
    assert np.isnan(got[:2]).all() and np.isfinite(got[2]).all()
    assert lc_to_numpy(lc.layer_norm(np.zeros((0, 3)), device=device)).shape == (0, 3)


@settings(max_examples=40, deadline=None)
@given(lead=st.lists(sizes, min_size=0, max_size=2).map(tuple),
       k=st.sampled_from([1, 2, 7, 16, 31]), n=st.sampled_from([1, 3, 5, 17, 64]),
       with_bias=st.booleans(), activation=st.sampled_from(ACTIVATIONS), dtype=dtypes,
       seed=seeds)
def test_linear_random_shapes(device, lead, k, n, with_bias, activation, dtype, seed):
    rng = np.random.default_rng(seed)
    x, w = rand(rng, *lead, k, dtype=dtype), rand(rng, k, n, dtype=dtype)
    bias = rand(rng, n, dtype=dtype) if with_bias else None
    ref = linear_reference(x, w, bias, activation)
    got = lc.linear(x, w, bias, activation, device)
    assert lc_to_numpy(got).dtype == dtype and lc_to_numpy(got).shape == lead + (n,)
    assert_close(got, ref, dtype, scale=np.sqrt(k))
    out = poisoned(lead + (n,), dtype, device)
    assert lc.linear_into(x, w, bias, out, activation, device) is out
    assert_close(out, ref, dtype, scale=np.sqrt(k))


def test_linear_zero_inner_and_int_inputs(device):
    x, w, bias = np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32), np.arange(4) - 2.0
    got = lc.linear(x, w, bias.astype(np.float32), "relu", device)
    np.testing.assert_array_equal(lc_to_numpy(got), np.tile([0.0, 0.0, 0.0, 1.0], (3, 1)))
    ints = lc.linear(np.arange(6).reshape(2, 3), np.ones((3, 2), np.int64), device=device)
    assert lc_to_numpy(ints).dtype == np.float32
    np.testing.assert_array_equal(lc_to_numpy(ints), [[3.0, 3.0], [12.0, 12.0]])


@settings(max_examples=40, deadline=None)
@given(ids_shape=st.lists(sizes, min_size=0, max_size=3).map(tuple),
       vocab=st.sampled_from([1, 2, 7, 64]), d=st.sampled_from([1, 3, 16, 33]),
       id_dtype=st.sampled_from([np.int64, np.int32, np.uint8, np.uint64]), dtype=dtypes,
       seed=seeds)
def test_embedding_random_shapes(device, ids_shape, vocab, d, id_dtype, dtype, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=ids_shape).astype(id_dtype)
    table = rand(rng, vocab, d, dtype=dtype)
    ref = embedding_reference(ids, table)
    got = lc.embedding(ids, table, device)
    assert lc_to_numpy(got).dtype == dtype
    np.testing.assert_array_equal(lc_to_numpy(got), ref.astype(dtype))
    out = poisoned(ids_shape + (d,), dtype, device)
    assert lc.embedding_into(ids, table, out, device) is out
    np.testing.assert_array_equal(lc_to_numpy(out), ref.astype(dtype))


def test_embedding_lists_edges_and_strided_ids(device, rng):
    table = rand(rng, 10, 4)
    np.testing.assert_array_equal(lc_to_numpy(lc.embedding([[0, 9], [9, 0]], table, device)),
                                  table[[[0, 9], [9, 0]]])
    assert lc_to_numpy(lc.embedding([], table, device)).shape == (0, 4)
    ids = np.arange(10)[::-3]  # not contiguous
    np.testing.assert_array_equal(lc_to_numpy(lc.embedding(ids, table, device)), table[ids])
    got = lc.embedding(np.array([1, 2]), np.arange(12).reshape(3, 4), device)
    assert lc_to_numpy(got).dtype == np.float32


@cuda_only
def test_embedding_device_ids_stay_on_device():
    import cupy

    table = cupy.asarray(np.arange(20, dtype=np.float32).reshape(5, 4))
    ids = cupy.asarray(np.array([[4, 0], [2, 2]], np.int32))
    got = lc.embedding(ids, table, "cuda")
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(got.get(), table.get()[ids.get()])
    with pytest.raises(lc.InvalidArgumentError, match=r"^\[embedding\] id 5 "):
        lc.embedding(cupy.asarray([1, 5]), table, "cuda")
    with pytest.raises(lc.InvalidArgumentError, match=r"^\[embedding\] id -1 "):
        lc.embedding(cupy.asarray([-1, 2]), table, "cuda")


@cuda_only
@pytest.mark.parametrize("run_on", ["cuda", "cpu"])
def test_softmax_moved_axis_into_a_device_out(run_on):
    import cupy

    x = rand(np.random.default_rng(3), 4, 5, 6)
    for src in (x, cupy.asarray(x)):
        out = cupy.full(x.shape, cupy.nan, cupy.float32)
        assert lc.softmax_into(src, out, 1, run_on) is out
        assert_close(out, softmax_reference(x, 1))
