"""Bad inputs to the elementwise and NN op families: the documented error, named by op, no work."""

from __future__ import annotations

import numpy as np
import pytest

import lightning_core as lc

F32 = np.float32


def _expect(error, op, fn, *args, **kwargs):
    with pytest.raises(error) as info:
        fn(*args, **kwargs)
    assert str(info.value).startswith(f"[{op}]"), str(info.value)
    return str(info.value)


def _nan(*shape, dtype=F32):
    return np.full(shape, np.nan, dtype)


def _untouched(out):
    assert np.isnan(out).all(), "an op wrote into out before raising"


# ---- shapes and sizes ---------------------------------------------------------------------

def test_vector_add_shapes_must_match():
    msg = _expect(lc.ShapeError, "vector_add", lc.vector_add, np.ones(4, F32), np.ones(5, F32),
                  "cpu")
    assert "4" in msg and "5" in msg
    _expect(lc.ShapeError, "vector_add", lc.vector_add, np.ones((2, 3)), np.ones((3, 2)), "cpu")
    _expect(lc.ShapeError, "vector_add", lc.vector_add, np.ones((1, 3)), np.ones(3), "cpu")


@pytest.mark.parametrize("name", ["sub", "add", "mul", "div"])
def test_matrix_ops_check_flat_sizes(name):
    fn, into, op = getattr(lc, f"matrix_{name}"), getattr(lc, f"matrix_{name}_into"), \
        f"matrix_{name}"
    a = np.ones(12, F32)
    _expect(lc.ShapeError, op, fn, a, np.ones(11, F32), 3, 4, "cpu")
    _expect(lc.ShapeError, op, fn, a, a, 5, 4, "cpu")
    _expect(lc.InvalidArgumentError, op, fn, a, a, -3, -4, "cpu")
    _expect(lc.InvalidArgumentError, op, fn, a, a, 3.0, 4, "cpu")
    _expect(lc.InvalidArgumentError, op, fn, a, a, True, 12, "cpu")
    out = _nan(13)
    _expect(lc.OutBufferError, f"{op}_into", into, a, a, out, 3, 4, "cpu")
    _untouched(out)


def test_softmax_axis_and_rank():
    x = np.ones((2, 3), F32)
    for axis in (2, -3, 10):
        _expect(lc.ShapeError, "softmax", lc.softmax, x, axis, "cpu")
    for axis in (1.0, "1", None, True):
        _expect(lc.InvalidArgumentError, "softmax", lc.softmax, x, axis, "cpu")
    _expect(lc.ShapeError, "softmax", lc.softmax, np.float32(1.0), -1, "cpu")
    out = _nan(2, 3)
    _expect(lc.ShapeError, "softmax_into", lc.softmax_into, x, out, 5, "cpu")
    _untouched(out)


def test_layer_norm_shapes_and_eps():
    x = np.ones((4, 5), F32)
    msg = _expect(lc.ShapeError, "layer_norm", lc.layer_norm, x, np.ones(4, F32), None, 1e-5,
                  "cpu")
    assert "(5,)" in msg
    _expect(lc.ShapeError, "layer_norm", lc.layer_norm, x, None, np.ones(6, F32), 1e-5, "cpu")
    _expect(lc.ShapeError, "layer_norm", lc.layer_norm, x, np.ones((1, 5), F32))
    _expect(lc.ShapeError, "layer_norm", lc.layer_norm, np.ones((3, 0), F32))
    _expect(lc.ShapeError, "layer_norm", lc.layer_norm, np.float32(2.0))
    for eps in (-1e-5, float("nan"), float("inf"), True, "1e-5", None):
        _expect(lc.InvalidArgumentError, "layer_norm", lc.layer_norm, x, None, None, eps, "cpu")
    out = _nan(4, 5)
    _expect(lc.InvalidArgumentError, "layer_norm_into", lc.layer_norm_into, x, None, None, out,
            -1.0, "cpu")
    _untouched(out)


def test_linear_shapes():
    x, w = np.ones((4, 3), F32), np.ones((3, 2), F32)
    msg = _expect(lc.ShapeError, "linear", lc.linear, x, np.ones((4, 2), F32))
    assert "4x3" in msg
    _expect(lc.ShapeError, "linear", lc.linear, x, np.ones(3, F32))
    _expect(lc.ShapeError, "linear", lc.linear, x, np.ones((3, 2, 1), F32))
    _expect(lc.ShapeError, "linear", lc.linear, x, w, np.ones(3, F32))
    _expect(lc.ShapeError, "linear", lc.linear, x, w, np.ones((1, 2), F32))
    _expect(lc.ShapeError, "linear", lc.linear, np.float32(1.0), w)


# ---- dtypes, devices, names ---------------------------------------------------------------

BAD_DTYPES = [np.ones(4, np.complex64), np.array([1.0, 2.0, 3.0, 4.0], dtype=object),
              np.array(["a", "b", "c", "d"])]
UNARY = [("vector_add", lambda x: lc.vector_add(x, np.ones(4, F32), "cpu")),
         ("matrix_div", lambda x: lc.matrix_div(np.ones(4, F32), x, 2, 2, "cpu")),
         ("relu", lambda x: lc.relu(x, "cpu")),
         ("gelu", lambda x: lc.gelu(x, "none", "cpu")),
         ("softmax", lambda x: lc.softmax(x, -1, "cpu")),
         ("layer_norm", lambda x: lc.layer_norm(x, device="cpu")),
         ("layer_norm", lambda x: lc.layer_norm(np.ones(4, F32), x, device="cpu")),
         ("linear", lambda x: lc.linear(x, np.ones((4, 2), F32), device="cpu")),
         ("linear", lambda x: lc.linear(np.ones(2, F32), np.ones((2, 4), F32), x, device="cpu")),
         ("embedding", lambda x: lc.embedding([0, 1], x.reshape(2, 2), "cpu"))]


@pytest.mark.parametrize("bad", BAD_DTYPES, ids=["complex", "object", "string"])
@pytest.mark.parametrize("op,call", UNARY, ids=[f"{u[0]}{i}" for i, u in enumerate(UNARY)])
def test_non_real_dtypes(op, call, bad):
    _expect(lc.DTypeError, op, call, bad)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "", 0, None])
def test_unknown_device(device):
    x = np.ones((2, 3), F32)
    _expect(lc.DeviceError, "vector_add", lc.vector_add, x, x, device)
    _expect(lc.DeviceError, "matrix_sub", lc.matrix_sub, x, x, 2, 3, device)
    _expect(lc.DeviceError, "relu", lc.relu, x, device)
    _expect(lc.DeviceError, "gelu", lc.gelu, x, "tanh", device)
    _expect(lc.DeviceError, "softmax", lc.softmax, x, -1, device)
    _expect(lc.DeviceError, "layer_norm", lc.layer_norm, x, None, None, 1e-5, device)
    _expect(lc.DeviceError, "linear", lc.linear, x, np.ones((3, 2), F32), None, None, device)
    _expect(lc.DeviceError, "embedding", lc.embedding, [1], x, device)


@pytest.mark.parametrize("approximate", ["erf", "TANH", "", None, True, 0])
def test_bad_gelu_approximate(approximate):
    x = np.ones(3, F32)
    msg = _expect(lc.InvalidArgumentError, "gelu", lc.gelu, x, approximate, "cpu")
    assert "'tanh'" in msg and "'none'" in msg
    out = _nan(3)
    _expect(lc.InvalidArgumentError, "gelu_into", lc.gelu_into, x, out, approximate, "cpu")
    _untouched(out)


@pytest.mark.parametrize("activation", ["sigmoid", "RELU", "", 1, True, ["relu"]])
def test_bad_linear_activation(activation):
    x, w = np.ones((2, 3), F32), np.ones((3, 4), F32)
    msg = _expect(lc.InvalidArgumentError, "linear", lc.linear, x, w, None, activation, "cpu")
    assert "gelu_erf" in msg
    out = _nan(2, 4)
    _expect(lc.InvalidArgumentError, "linear_into", lc.linear_into, x, w, None, out, activation,
            "cpu")
    _untouched(out)


@pytest.mark.parametrize("policy", [lc.MatMulIoPolicy(), {"upload_a": True}, "default"])
def test_wrong_policy_type(policy):
    a = np.ones(6, F32)
    _expect(lc.PolicyError, "vector_add_with_policy", lc.vector_add_with_policy, a, a, "cpu",
            policy)
    _expect(lc.PolicyError, "matrix_sub_with_policy", lc.matrix_sub_with_policy, a, a, 2, 3,
            "cpu", policy)


# ---- embedding ids ------------------------------------------------------------------------

@pytest.mark.parametrize("ids,bad", [([0, 10], 10), ([3, 11, 2], 11), ([-1, 2], -1),
                                     ([[0, 1], [-7, 99]], -7), (np.array([2**40]), 2**40),
                                     (np.array([2**63 + 5], np.uint64), 2**63 + 5)])
def test_embedding_ids_out_of_range(ids, bad):
    table = np.ones((10, 3), F32)
    msg = _expect(lc.InvalidArgumentError, "embedding", lc.embedding, ids, table, "cpu")
    assert f"id {bad} " in msg and "[0, 10)" in msg
    out = _nan(*np.shape(ids), 3)
    _expect(lc.InvalidArgumentError, "embedding_into", lc.embedding_into, ids, table, out,
            "cpu")
    _untouched(out)


@pytest.mark.parametrize("ids", [np.array([0.0, 1.0]), np.array([True, False]), [0.0, 1.5],
                                 np.array([1, 2], np.float32), np.array(["1", "2"])])
def test_embedding_ids_must_be_integers(ids):
    _expect(lc.DTypeError, "embedding", lc.embedding, ids, np.ones((3, 2), F32), "cpu")


def test_embedding_table_shape_and_empty_vocab():
    _expect(lc.ShapeError, "embedding", lc.embedding, [0], np.ones(4, F32), "cpu")
    _expect(lc.ShapeError, "embedding", lc.embedding, [0], np.ones((2, 2, 2), F32), "cpu")
    _expect(lc.InvalidArgumentError, "embedding", lc.embedding, [0], np.ones((0, 4), F32),
            "cpu")


# ---- out buffers ----------------------------------------------------------------------------

def _calls_into():
    """(op, call(out), out shape) for every _into form, inputs [4, 6] float32."""
    x, y = np.ones((4, 6), F32), np.ones((4, 6), F32)
    w, ids, table = np.ones((6, 6), F32), np.zeros((4, 6), np.int64), np.ones((3, 2), F32)
    return [
        ("vector_add_into", lambda o: lc.vector_add_into(x, y, o, "cpu"), (4, 6)),
        ("matrix_mul_into", lambda o: lc.matrix_mul_into(x, y, o, 4, 6, "cpu"), (4, 6)),
        ("relu_into", lambda o: lc.relu_into(x, o, "cpu"), (4, 6)),
        ("gelu_into", lambda o: lc.gelu_into(x, o, "none", "cpu"), (4, 6)),
        ("softmax_into", lambda o: lc.softmax_into(x, o, 0, "cpu"), (4, 6)),
        ("layer_norm_into", lambda o: lc.layer_norm_into(x, None, None, o, 1e-5, "cpu"), (4, 6)),
        ("linear_into", lambda o: lc.linear_into(x, w, None, o, "relu", "cpu"), (4, 6)),
        ("embedding_into", lambda o: lc.embedding_into(ids, table, o, "cpu"), (4, 6, 2)),
    ]


CALLS = _calls_into()


@pytest.mark.parametrize("op,call,shape", CALLS, ids=[c[0] for c in CALLS])
def test_bad_out_buffers(op, call, shape):
    _expect(lc.OutBufferError, op, call, _nan(*shape[:-1], shape[-1] + 1))
    wrong_dtype = _nan(*shape, dtype=np.float64)
    _expect(lc.OutBufferError, op, call, wrong_dtype)
    _untouched(wrong_dtype)
    read_only = _nan(*shape)
    read_only.flags.writeable = False
    _expect(lc.OutBufferError, op, call, read_only)
    _untouched(read_only)
    strided = _nan(*shape[:-1], 2 * shape[-1])[..., ::2]
    _expect(lc.OutBufferError, op, call, strided)
    _untouched(strided)
    _expect(lc.OutBufferError, op, call, np.full(shape, np.nan).tolist())
    _expect(lc.OutBufferError, op, call, "out")


def test_partial_overlap_is_an_aliasing_error():
    buf = np.ones(25, F32)
    a, out = buf[:24], buf[1:]
    _expect(lc.AliasingError, "vector_add_into", lc.vector_add_into, a, np.ones(24, F32), out,
            "cpu")
    _expect(lc.AliasingError, "matrix_sub_into", lc.matrix_sub_into, np.ones(24, F32), a, out,
            4, 6, "cpu")
    _expect(lc.AliasingError, "relu_into", lc.relu_into, a, out, "cpu")
    _expect(lc.AliasingError, "gelu_into", lc.gelu_into, a, out, "tanh", "cpu")
    np.testing.assert_array_equal(buf, 1.0)


def test_exact_alias_only_for_elementwise():
    x = np.ones((4, 6), F32)
    for op, fn, args in [
        ("softmax_into", lc.softmax_into, (x, x, -1, "cpu")),
        ("layer_norm_into", lc.layer_norm_into, (x, None, None, x, 1e-5, "cpu")),
        ("linear_into", lc.linear_into, (x, np.ones((6, 6), F32), None, x, None, "cpu")),
        ("linear_into", lc.linear_into, (np.ones((4, 4), F32), x, None, x, None, "cpu")),
        ("embedding_into", lc.embedding_into, (np.zeros(4, np.int64), x, x, "cpu")),
    ]:
        _expect(lc.AliasingError, op, fn, *args)
    np.testing.assert_array_equal(x, 1.0)
