"""Every CUDA kernel key vs the float64 reference and vs the CPU backend.

Calls go straight down the dispatch road (``runtime.dispatch.Call``), so these tests pin the
backend contract of docs/dev/kernel_contracts.md independently of the op modules. Each key runs
with NumPy inputs (result: pinned NumPy) and with CuPy inputs that are unaligned views into a
larger buffer (the scalar kernel path) writing into a NaN-poisoned, unaligned CuPy ``out``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_close, cuda_only, rand
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_core.runtime.arrays import Operand
from lightning_core.runtime.backend import implementations
from lightning_core.runtime.dispatch import Call, execute

pytestmark = [pytest.mark.cuda, cuda_only]

SIZES = st.sampled_from([1, 2, 3, 5, 7, 8, 13, 31, 64, 97, 1000, 4099])
DIMS = st.sampled_from([1, 2, 3, 5, 7, 13, 16, 31, 64, 97, 128])
COLS = st.sampled_from([1, 3, 8, 31, 32, 33, 257, 1024, 1025, 2500, 9001])
DTYPES = st.sampled_from([np.float32, np.float64, np.float16])
_ERF = np.frompyfunc(math.erf, 1, 1)


def _cp():
    import cupy

    return cupy


def call(kernel, arrays, out_shape, dtype, params=None, *, device="cuda", out=None,
         precision="fp32"):
    """Run one kernel key on ``device`` through the dispatcher."""
    ops = tuple(Operand(a, False, type(a) is not np.ndarray) for a in arrays)
    c = Call(f"test_{kernel}", kernel, ops, tuple(out_shape), np.dtype(dtype),
             dict(params or {}), out, precision=precision)
    return execute(c, device)


def unaligned(host, offset=1):
    """A device copy of ``host`` that starts ``offset`` elements into a larger buffer."""
    cp = _cp()
    buf = cp.empty(host.size + offset, host.dtype)
    buf[offset:] = cp.asarray(host.reshape(-1))
    return buf[offset:].reshape(host.shape)


def poisoned_unaligned(shape, dtype, offset=1):
    cp = _cp()
    buf = cp.full(math.prod(shape) + offset, np.nan, dtype)
    return buf[offset:].reshape(shape)


def check_key(kernel, host_inputs, out_shape, dtype, params, ref, *, precision="fp32",
              scale=1.0):
    """NumPy in/out, CPU parity, and unaligned CuPy in with a poisoned CuPy out."""
    got = call(kernel, host_inputs, out_shape, dtype, params, precision=precision)
    assert type(got) is np.ndarray and got.dtype == dtype and got.shape == tuple(out_shape)
    assert_close(got, ref, dtype, precision, scale)
    cpu_ok = np.dtype(dtype).name in {n for i in implementations("cpu", kernel) for n in i.dtypes}
    if cpu_ok and precision == "fp32":
        assert_close(got, call(kernel, host_inputs, out_shape, dtype, params, device="cpu"),
                     dtype, precision, scale * 2)
    dev_inputs = [unaligned(a) for a in host_inputs]
    out = poisoned_unaligned(out_shape, dtype)
    res = call(kernel, dev_inputs, out_shape, dtype, params, out=out, precision=precision)
    assert res is out
    assert_close(out.get(), ref, dtype, precision, scale)


def ref_of(x):
    return np.asarray(x, dtype=np.float64)


@settings(max_examples=30, deadline=None)
@given(n=SIZES, dtype=DTYPES, kind=st.sampled_from(["add", "sub", "mul", "div"]),
       rank3=st.booleans())
def test_binary(n, dtype, kind, rank3):
    rng = np.random.default_rng(n)
    shape = (2, n, 3) if rank3 else (n,)
    a, b = rand(rng, *shape, dtype=dtype), rand(rng, *shape, dtype=dtype)
    if kind == "div":
        b = (np.abs(b) + 0.5).astype(dtype)
    fa, fb = ref_of(a), ref_of(b)
    ref = {"add": fa + fb, "sub": fa - fb, "mul": fa * fb, "div": fa / fb}[kind]
    check_key("binary", [a, b], shape, dtype, {"kind": kind}, ref)


def gelu_ref(x, approximate):
    x = ref_of(x)
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + _ERF(x / math.sqrt(2)).astype(np.float64))


@settings(max_examples=30, deadline=None)
@given(n=SIZES, dtype=DTYPES, which=st.sampled_from(["relu", "tanh", "none"]))
def test_activations(n, dtype, which):
    x = rand(np.random.default_rng(n), n, dtype=dtype, scale=3.0)
    if which == "relu":
        check_key("relu", [x], (n,), dtype, {}, np.maximum(ref_of(x), 0))
    else:
        check_key("gelu", [x], (n,), dtype, {"approximate": which}, gelu_ref(x, which))


def test_relu_keeps_nan_and_runs_in_place():
    cp = _cp()
    x = cp.asarray(np.array([-1.0, np.nan, 2.0, -0.0, np.inf, -np.inf, 3.0, 4.0, 5.0],
                            np.float32))
    call("relu", [x], x.shape, np.float32, out=x)
    np.testing.assert_array_equal(x.get(), [0, np.nan, 2, 0, np.inf, 0, 3, 4, 5])


def softmax_ref(x):
    x = ref_of(x)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@settings(max_examples=25, deadline=None)
@given(rows=st.sampled_from([1, 2, 5, 33]), cols=COLS, dtype=DTYPES)
def test_softmax(rows, cols, dtype):
    x = rand(np.random.default_rng(rows * cols), rows, cols, dtype=dtype, scale=4.0)
    check_key("softmax", [x], (rows, cols), dtype, {}, softmax_ref(x))


def test_softmax_rows_with_minus_inf():
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]], np.float32)
    got = call("softmax", [x], x.shape, np.float32)
    np.testing.assert_allclose(got[0], softmax_ref(x[:1])[0], rtol=1e-6)
    assert np.isnan(got[1]).all()  # NumPy gives NaN for an all -inf row too


def layer_norm_ref(x, w, b, eps):
    x = ref_of(x)
    mean = x.mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)
    if w is not None:
        y = y * ref_of(w)
    if b is not None:
        y = y + ref_of(b)
    return y


@settings(max_examples=25, deadline=None)
@given(rows=st.sampled_from([1, 3, 17]), cols=COLS, dtype=DTYPES, has_w=st.booleans(),
       has_b=st.booleans())
def test_layer_norm(rows, cols, dtype, has_w, has_b):
    rng = np.random.default_rng(rows * cols + has_w * 2 + has_b)
    x = (rand(rng, rows, cols, dtype=dtype, scale=2.0) + 3).astype(dtype)  # mean far from 0
    w = rand(rng, cols, dtype=dtype) if has_w else None
    b = rand(rng, cols, dtype=dtype) if has_b else None
    inputs = [x] + [a for a in (w, b) if a is not None]
    params = {"eps": 1e-5, "has_weight": has_w, "has_bias": has_b}
    check_key("layer_norm", inputs, (rows, cols), dtype, params, layer_norm_ref(x, w, b, 1e-5),
              scale=4.0)


@settings(max_examples=25, deadline=None)
@given(vocab=st.sampled_from([1, 7, 50]), d=st.sampled_from([1, 2, 3, 4, 7, 8, 64, 100]),
       ids_shape=st.sampled_from([(), (1,), (5,), (3, 4)]), dtype=DTYPES)
def test_embedding(vocab, d, ids_shape, dtype):
    rng = np.random.default_rng(vocab * d)
    table = rand(rng, vocab, d, dtype=dtype)
    ids = rng.integers(0, vocab, size=ids_shape, dtype=np.int64)
    ref = ref_of(table)[ids]
    check_key("embedding", [ids, table], ids_shape + (d,), dtype, {}, ref)


@settings(max_examples=30, deadline=None)
@given(m=DIMS, k=DIMS, n=DIMS, dtype=DTYPES)
def test_matmul(m, k, n, dtype):
    rng = np.random.default_rng(m * 10007 + k * 101 + n)
    a, b = rand(rng, m, k, dtype=dtype), rand(rng, k, n, dtype=dtype)
    check_key("matmul", [a, b], (m, n), dtype, {}, ref_of(a) @ ref_of(b), scale=math.sqrt(k))


@pytest.mark.parametrize("precision", ["tf32", "bf16", "fp16"])
def test_matmul_reduced_precisions_within_tolerance(precision):
    rng = np.random.default_rng(7)
    a, b = rand(rng, 67, 129), rand(rng, 129, 31)
    check_key("matmul", [a, b], (67, 31), np.float32, {}, ref_of(a) @ ref_of(b),
              precision=precision, scale=math.sqrt(129))


def test_matmul_fp32_is_true_fp32():
    # 1 + 2**-20 survives fp32 but TF32 (10-bit mantissa) rounds it to 1.
    k = 8
    a = np.full((4, k), 1 + 2.0**-20, np.float32)
    got = call("matmul", [a, np.ones((k, 5), np.float32)], (4, 5), np.float32)
    np.testing.assert_array_equal(got, np.float32(k * (1 + 2.0**-20)))


def test_matmul_k_zero_gives_zeros():
    got = call("matmul", [np.ones((3, 0), np.float32), np.ones((0, 4), np.float32)], (3, 4),
               np.float32)
    np.testing.assert_array_equal(got, np.zeros((3, 4), np.float32))


ACTS = {None: lambda y: y, "relu": lambda y: np.maximum(y, 0),
        "gelu_tanh": lambda y: gelu_ref(y, "tanh"), "gelu_erf": lambda y: gelu_ref(y, "none")}


@settings(max_examples=30, deadline=None)
@given(m=DIMS, k=DIMS, n=DIMS, dtype=DTYPES, act=st.sampled_from(list(ACTS)),
       has_bias=st.booleans())
def test_linear(m, k, n, dtype, act, has_bias):
    rng = np.random.default_rng(m * 31 + k * 7 + n)
    x, w = rand(rng, m, k, dtype=dtype), rand(rng, k, n, dtype=dtype)
    bias = rand(rng, n, dtype=dtype) if has_bias else None
    y = ref_of(x) @ ref_of(w) + (ref_of(bias) if has_bias else 0)
    inputs = [x, w] + ([bias] if has_bias else [])
    check_key("linear", inputs, (m, n), dtype, {"activation": act}, ACTS[act](y),
              scale=math.sqrt(k))
