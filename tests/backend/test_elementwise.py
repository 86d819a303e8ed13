"""Binary elementwise ops, relu and gelu vs their float64 references on every device."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_close, lc_to_numpy, poisoned, rand
from hypothesis import given, settings
from hypothesis import strategies as st

import lightning_core as lc
from lightning_core.backends.cpu.nn import erf
from lightning_core.ops.activations import gelu_reference, relu_reference
from lightning_core.ops.elementwise import binary_reference

sizes = st.sampled_from([1, 2, 3, 5, 7, 13])
shapes = st.lists(sizes, min_size=1, max_size=4).map(tuple)
dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**32 - 1)
KINDS = ("sub", "add", "mul", "div")
MATRIX = {"sub": lc.matrix_sub, "add": lc.matrix_add, "mul": lc.matrix_mul,
          "div": lc.matrix_div}
MATRIX_INTO = {"sub": lc.matrix_sub_into, "add": lc.matrix_add_into,
               "mul": lc.matrix_mul_into, "div": lc.matrix_div_into}
MATRIX_POLICY = {"sub": lc.matrix_sub_with_policy, "add": lc.matrix_add_with_policy,
                 "mul": lc.matrix_mul_with_policy, "div": lc.matrix_div_with_policy}


def on(device: str, array: np.ndarray):
    """The array on ``device`` (CuPy on cuda), for in-place tests."""
    if device.startswith("cuda"):
        import cupy

        return cupy.asarray(array)
    return array


@settings(max_examples=30, deadline=None)
@given(shape=shapes, dtype=dtypes, seed=seeds)
def test_vector_add_any_rank(device, shape, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = rand(rng, *shape, dtype=dtype), rand(rng, *shape, dtype=dtype)
    got = lc.vector_add(a, b, device)
    assert lc_to_numpy(got).dtype == dtype
    assert_close(got, binary_reference(a, b, "add"), dtype)
    out = poisoned(shape, dtype, device)
    assert lc.vector_add_into(a, b, out, device) is out
    assert_close(out, binary_reference(a, b, "add"), dtype)


@settings(max_examples=30, deadline=None)
@given(rows=sizes, cols=st.sampled_from([1, 4, 11, 31, 97]), kind=st.sampled_from(KINDS),
       dtype=dtypes, seed=seeds)
def test_matrix_ops_flat_and_2d(device, rows, cols, kind, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = rand(rng, rows * cols, dtype=dtype), rand(rng, rows * cols, dtype=dtype)
    ref = binary_reference(a, b, kind)
    got = MATRIX[kind](a, b, rows, cols, device)
    assert got.shape == (rows * cols,)
    assert_close(got, ref, dtype)
    assert_close(MATRIX[kind](a.reshape(rows, cols), b.reshape(rows, cols), rows, cols,
                              device), ref, dtype)
    for out_shape in ((rows * cols,), (rows, cols)):
        out = poisoned(out_shape, dtype, device)
        assert MATRIX_INTO[kind](a, b, out, rows, cols, device) is out
        assert_close(lc_to_numpy(out).reshape(-1), ref, dtype)
    policy = lc.MatrixElementwiseIoPolicy()
    assert_close(MATRIX_POLICY[kind](a, b, rows, cols, device, policy), ref, dtype)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("which", ["a", "b"])
def test_elementwise_in_place(device, rng, kind, which):
    rows, cols = 7, 13
    a, b = rand(rng, rows, cols), rand(rng, rows, cols)
    ref = binary_reference(a, b, kind)
    da, db = on(device, a.copy()), on(device, b.copy())
    out = da if which == "a" else db
    assert MATRIX_INTO[kind](da, db, out, rows, cols, device) is out
    assert_close(out, ref)
    va, vb = on(device, a.copy()), on(device, b.copy())
    if kind == "add":
        lc.vector_add_into(va, vb, va, device)
        assert_close(va, ref)


def test_vector_add_list_and_policy(device, rng):
    a, b = rand(rng, 37), rand(rng, 37)
    ref = binary_reference(a, b, "add")
    got = lc.vector_add(a.tolist(), b.tolist(), device)
    assert isinstance(got, list) and len(got) == 37
    assert_close(np.array(got), ref)
    flat = lc.matrix_sub(a.tolist(), b.tolist(), 1, 37, device)
    assert isinstance(flat, list)
    assert_close(np.array(flat), binary_reference(a, b, "sub"))
    assert_close(lc.vector_add_with_policy(a, b, device, lc.VectorAddIoPolicy()), ref)
    assert_close(lc.vector_add_with_policy(a, b, device), ref)


def test_division_is_ieee_and_nan_inf_propagate(device):
    a = np.array([1.0, -1.0, 0.0, np.nan, np.inf, 2.0, np.inf], np.float32)
    b = np.array([0.0, 0.0, 0.0, 1.0, 2.0, np.inf, np.inf], np.float32)
    got = lc_to_numpy(lc.matrix_div(a, b, 1, 7, device))
    ref = binary_reference(a, b, "div")
    np.testing.assert_array_equal(got, ref.astype(np.float32))
    for kind in ("sub", "add", "mul"):
        got = lc_to_numpy(MATRIX[kind](a, b, 7, 1, device))
        np.testing.assert_array_equal(got, binary_reference(a, b, kind).astype(np.float32))


def test_dtype_rules(device):
    ints = np.arange(6, dtype=np.int32)
    assert lc_to_numpy(lc.vector_add(ints, ints, device)).dtype == np.float32
    flags = np.array([True, False, True])
    np.testing.assert_array_equal(lc_to_numpy(lc.vector_add(flags, flags, device)),
                                  [2.0, 0.0, 2.0])
    mixed = lc.vector_add(np.ones(4, np.float32), np.ones(4, np.float64), device)
    assert lc_to_numpy(mixed).dtype == np.float64
    assert lc_to_numpy(lc.relu(np.arange(-3, 3), device)).dtype == np.float32
    assert lc_to_numpy(lc.gelu(np.ones(3), "none", device)).dtype == np.float64


def test_zero_size_elementwise(device):
    empty = np.zeros((0, 3), np.float32)
    assert lc_to_numpy(lc.vector_add(empty, empty, device)).shape == (0, 3)
    assert lc_to_numpy(lc.matrix_mul(empty, empty, 0, 3, device)).shape == (0,)
    assert lc_to_numpy(lc.gelu(empty, "none", device)).shape == (0, 3)


@settings(max_examples=30, deadline=None)
@given(shape=shapes, dtype=dtypes, approximate=st.sampled_from(["tanh", "none"]), seed=seeds)
def test_activations_any_rank(device, shape, dtype, approximate, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, *shape, dtype=dtype, scale=3.0)
    assert_close(lc.relu(x, device), relu_reference(x), dtype)
    got = lc.gelu(x, approximate, device)
    assert lc_to_numpy(got).dtype == dtype
    assert_close(got, gelu_reference(x, approximate), dtype)
    out = poisoned(shape, dtype, device)
    assert lc.relu_into(x, out, device) is out
    assert_close(out, relu_reference(x), dtype)
    out = poisoned(shape, dtype, device)
    assert lc.gelu_into(x, out, approximate, device) is out
    assert_close(out, gelu_reference(x, approximate), dtype)


@pytest.mark.parametrize("approximate", ["tanh", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_in_place_tails_and_specials(device, approximate, dtype):
    x = np.concatenate([np.linspace(-40, 40, 4001), [0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30,
                                                     np.inf, -np.inf, np.nan]]).astype(dtype)
    ref = gelu_reference(x, approximate)
    buf = on(device, x.copy())
    assert lc.gelu_into(buf, buf, approximate, device) is buf
    assert_close(buf, ref, dtype)
    buf = on(device, x.copy())
    lc.relu_into(buf, buf, device)
    assert_close(buf, relu_reference(x), dtype)


def test_default_gelu_is_tanh(device, rng):
    x = rand(rng, 257)
    assert_close(lc.gelu(x, device=device), gelu_reference(x, "tanh"))
    assert not np.allclose(gelu_reference(x, "tanh"), gelu_reference(x, "none"), rtol=0,
                           atol=1e-6)


def test_erf_matches_math_erf_everywhere():
    rng = np.random.default_rng(7)
    x = np.concatenate([
        np.linspace(-7.0, 7.0, 140_001),
        rng.standard_normal(20_000) * 3.0,
        np.nextafter(2.0, [0.0, 4.0]), np.nextafter(-2.0, [0.0, -4.0]),
        [0.0, 5e-324, 1e-300, 1e-8, 0.5, 1.0, 2.0, 2.5, 3.0, 5.9, 6.0, 10.0, 27.0, 1e10, 1e200],
    ])
    x = np.concatenate([x, -x])
    ref = np.array([math.erf(v) for v in x])
    got = erf(x)
    assert np.max(np.abs(got - ref)) < 1e-12
    small = np.abs(x) < 1e-3  # near 0 erf ~ 2x/sqrt(pi): check relative accuracy there too
    np.testing.assert_allclose(got[small], ref[small], rtol=1e-13, atol=0)
    specials = erf(np.array([np.inf, -np.inf, np.nan, -0.0]))
    np.testing.assert_array_equal(specials[:3], [1.0, -1.0, np.nan])
    assert math.copysign(1.0, specials[3]) == -1.0


def test_erfc_fit_keeps_relative_accuracy_for_float32_gelu():
    from lightning_core.backends.cpu.nn import _erfc_fit

    z = np.concatenate([np.linspace(0.0, 9.0, 90_001), [1e-30, 0.5, 2.0, 4.7366, 26.0]])
    ref = np.array([math.erfc(v) for v in z])
    got = _erfc_fit(z.copy())
    assert np.max(np.abs(got - ref) / ref) < 1.2e-7
    assert _erfc_fit(np.array([np.inf]))[0] == 0.0
    # float32 GELU (the fit) against the float64 path (the exact erf): the float32 tolerance
    # relative to the value, on both sides of zero and far into the tails
    x = np.concatenate([np.linspace(-9.0, 9.0, 36_001), [-30.0, 30.0]]).astype(np.float32)
    got32 = lc_to_numpy(lc.gelu(x, "none", "cpu")).astype(np.float64)
    exact = 0.5 * x.astype(np.float64) * np.array(
        [math.erfc(-v / math.sqrt(2.0)) for v in x.astype(np.float64)])
    np.testing.assert_allclose(got32, exact, rtol=3e-7, atol=1e-37)


def test_relu_block_path_matches_maximum_on_every_layout():
    from lightning_core.backends.cpu.elementwise import _ZERO_BLOCK, relu_into

    rng = np.random.default_rng(11)
    for dtype in (np.float16, np.float32, np.float64):
        x = rng.standard_normal(2 * _ZERO_BLOCK + 37).astype(dtype)  # several blocks + a tail
        x[::101] = np.nan
        x[5], x[6] = np.inf, -np.inf
        out = np.full_like(x, 7)
        relu_into(x, out)
        np.testing.assert_array_equal(out, np.maximum(x, 0))
        y = x.copy()
        relu_into(y, y)  # in place
        np.testing.assert_array_equal(y, np.maximum(x, 0))
    strided = rng.standard_normal((64, 64)).astype(np.float32)[:, ::2]  # the fallback path
    out = np.empty(strided.shape, np.float32)
    relu_into(strided, out)
    np.testing.assert_array_equal(out, np.maximum(strided, 0))


# Sizes around the CUDA kernels' chunks (128 threads x 2 packs of 16 bytes) and past one wave
# of blocks (the grid-stride loop's later chunks), with a scalar tail after the packs.
@pytest.mark.parametrize("n", [2048 - 8, 2048 + 4, 7 * 2048 + 3, 2 * 2112 * 2048 + 13])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_elementwise_chunks_tails_and_waves(device, rng, n, dtype):
    if dtype == np.float16 and device == "cpu":
        pytest.skip("float16 runs on cuda only (the CPU refuses it: test_dtype_rules)")
    a, b = rand(rng, n, dtype=dtype), rand(rng, n, dtype=dtype)
    da, db = on(device, a), on(device, b)
    assert_close(lc.vector_add(da, db, device), binary_reference(a, b, "add"), dtype)
    assert_close(lc.relu(da, device), relu_reference(a), dtype)
    view_a, view_b = on(device, a)[1:], on(device, b)[1:]  # 16-byte packs impossible: scalar
    assert_close(lc.matrix_mul(view_a, view_b, 1, n - 1, device),
                 binary_reference(a[1:], b[1:], "mul"), dtype)
    # Before the call (on the CPU, da is a itself); rounded to the dtype, so a float16
    # quotient past 65504 is the inf the kernel gives.
    with np.errstate(over="ignore"):
        quotient = binary_reference(a, b, "div").astype(dtype).astype(np.float64)
    assert lc.matrix_div_into(da, db, da, 1, n, device) is da  # in place, every chunk
    assert_close(da, quotient, dtype)
