"""matmul family vs the float64 reference on every available device."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, poisoned, rand
from hypothesis import given, settings
from hypothesis import strategies as st

import lightning_core as lc
from lightning_core.ops.matmul import matmul_reference

dims = st.sampled_from([1, 2, 3, 5, 7, 13, 16, 31, 64, 97, 128])


@settings(max_examples=25, deadline=None)
@given(m=dims, k=dims, n=dims, dtype=st.sampled_from([np.float32, np.float64]))
def test_matmul2d_random_shapes(device, m, k, n, dtype):
    rng = np.random.default_rng(m * 10007 + k * 101 + n)
    a, b = rand(rng, m, k, dtype=dtype), rand(rng, k, n, dtype=dtype)
    got = lc.matmul2d(a, b, device)
    assert got.dtype == dtype
    assert_close(got, matmul_reference(a, b), dtype, scale=np.sqrt(k))


@settings(max_examples=15, deadline=None)
@given(m=dims, k=dims, n=dims)
def test_matmul2d_into_poisoned(device, m, k, n):
    rng = np.random.default_rng(m * 7 + k * 11 + n)
    a, b = rand(rng, m, k), rand(rng, k, n)
    out = poisoned((m, n), device=device)
    lc.matmul2d_into(a, b, out, device)
    assert_close(out, matmul_reference(a, b), scale=np.sqrt(k))


def test_flat_forms(device, rng):
    m, k, n = 5, 3, 7
    a, b = rand(rng, m * k), rand(rng, k * n)
    ref = matmul_reference(a.reshape(m, k), b.reshape(k, n)).reshape(-1)
    assert_close(lc.matmul_np(a, b, m, k, n, device), ref)
    out = poisoned(m * n, device=device)
    lc.matmul_np_into(a, b, out, m, k, n, device)
    assert_close(out, ref)
    as_list = lc.matmul(a.tolist(), b.tolist(), m, k, n, device)
    assert isinstance(as_list, list) and len(as_list) == m * n
    assert_close(np.array(as_list), ref)
    pol = lc.MatMulIoPolicy()
    assert_close(lc.matmul_np_with_policy(a, b, m, k, n, device, pol), ref)
    out2 = poisoned((m, n), device=device)
    lc.matmul_np_into_with_policy(a, b, out2, m, k, n, device, pol)
    assert_close(out2.reshape(-1), ref)


@pytest.mark.parametrize("m,k,n", [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0)])
def test_zero_size_follows_numpy(m, k, n):
    a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
    got = lc.matmul2d(a, b, "cpu")
    np.testing.assert_array_equal(got, a @ b)


def test_int_and_bool_inputs_become_float32():
    a = np.arange(6).reshape(2, 3)
    b = np.ones((3, 2), dtype=bool)
    got = lc.matmul2d(a, b, "cpu")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, (a @ b.astype(np.int64)).astype(np.float32))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_and_inf_propagate():
    a = np.array([[np.nan, 1.0], [np.inf, 2.0]], np.float32)
    b = np.eye(2, dtype=np.float32)
    got = lc.matmul2d(a, b, "cpu")
    ref = a.astype(np.float64) @ b
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
