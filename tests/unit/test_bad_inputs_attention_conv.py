"""Bad inputs to the attention and conv families: the documented error, named by op, no work."""

from __future__ import annotations

import numpy as np
import pytest

import lightning_core as lc

F32 = np.float32


def _qkv(seq=4, d=3, dtype=F32):
    return tuple(np.ones((seq, d), dtype) for _ in range(3))


def _expect(error, op, fn, *args, **kwargs):
    with pytest.raises(error) as info:
        fn(*args, **kwargs)
    assert str(info.value).startswith(f"[{op}]"), str(info.value)
    return str(info.value)


# ---- attention ---------------------------------------------------------------------------

ATTENTION_SHAPES = [
    ("rank 1", (np.ones(12, F32), np.ones(12, F32), np.ones(12, F32))),
    ("rank 3", (np.ones((2, 3, 4), F32),) * 3),
    ("k differs", (np.ones((4, 3), F32), np.ones((5, 3), F32), np.ones((4, 3), F32))),
    ("v differs", (np.ones((4, 3), F32), np.ones((4, 3), F32), np.ones((4, 2), F32))),
    ("head_dim 0", (np.ones((4, 0), F32),) * 3),
]


@pytest.mark.parametrize("what,qkv", ATTENTION_SHAPES, ids=[c[0] for c in ATTENTION_SHAPES])
def test_attention2d_bad_shapes(what, qkv):
    message = _expect(lc.ShapeError, "attention2d", lc.attention2d, *qkv, False, "cpu")
    if "differs" in what:
        assert "identical" in message


@pytest.mark.parametrize("fn,op", [(lc.attention_forward, "attention_forward"),
                                   (lc.lightning_attention, "lightning_attention"),
                                   (lc.attention_forward_with_policy,
                                    "attention_forward_with_policy")])
def test_flat_forms_check_sizes(fn, op):
    q, k, v = (np.ones(12, F32) for _ in range(3))
    _expect(lc.ShapeError, op, fn, q, k, np.ones(11, F32), 3, 4, False, "cpu")
    _expect(lc.ShapeError, op, fn, q, k, v, 12, 0, False, "cpu")
    _expect(lc.InvalidArgumentError, op, fn, q, k, v, -3, -4, False, "cpu")
    _expect(lc.InvalidArgumentError, op, fn, q, k, v, 3.0, 4, False, "cpu")


@pytest.mark.parametrize("causal", ["yes", 2, 0.5, None, [1]])
def test_causal_must_be_a_bool(causal):
    _expect(lc.InvalidArgumentError, "attention2d", lc.attention2d, *_qkv(), causal, "cpu")


def _bad_outs(seq=4, d=3):
    read_only = np.full((seq, d), np.nan, F32)
    read_only.flags.writeable = False
    return [
        ("wrong shape", np.full((seq, d + 1), np.nan, F32), lc.OutBufferError),
        ("flat", np.full(seq * d, np.nan, F32), lc.OutBufferError),
        ("wrong dtype", np.full((seq, d), np.nan, np.float64), lc.OutBufferError),
        ("not contiguous", np.full((seq, 2 * d), np.nan, F32)[:, ::2], lc.OutBufferError),
        ("read-only", read_only, lc.OutBufferError),
        ("not an array", [[0.0] * d] * seq, lc.OutBufferError),
    ]


@pytest.mark.parametrize("what,out,error", _bad_outs(), ids=[c[0] for c in _bad_outs()])
def test_attention2d_into_bad_out(what, out, error):
    _expect(error, "attention2d_into", lc.attention2d_into, *_qkv(), out, False, "cpu")


def test_attention_out_overlapping_an_input():
    q, k, v = _qkv()
    _expect(lc.AliasingError, "attention2d_into", lc.attention2d_into, q, k, v, v, True, "cpu")
    buf = np.ones(30, F32)
    q_view, out_view = buf[:12].reshape(4, 3), buf[6:18].reshape(4, 3)
    _expect(lc.AliasingError, "lightning_attention_into", lc.lightning_attention_into,
            q_view, k, v, out_view, 4, 3, False, "cpu")
    assert (buf == 1).all()


def test_attention_bad_dtypes_and_devices():
    q, k, v = _qkv()
    _expect(lc.DTypeError, "attention2d", lc.attention2d, q.astype(np.complex64), k, v)
    _expect(lc.DTypeError, "attention2d", lc.attention2d, q, np.full((4, 3), "a"), v)
    _expect(lc.DTypeError, "attention2d", lc.attention2d, q, k, v.astype(object))
    _expect(lc.DeviceError, "attention2d", lc.attention2d, q, k, v, False, "tpu")
    _expect(lc.DeviceError, "attention2d", lc.attention2d, q, k, v, False, 0)


def test_attention_bad_policy():
    q, k, v = (np.ones(12, F32) for _ in range(3))
    op, fn = "attention_forward_with_policy", lc.attention_forward_with_policy
    _expect(lc.PolicyError, op, fn, q, k, v, 4, 3, False, "cpu", lc.Conv2dIoPolicy())
    _expect(lc.PolicyError, op, fn, q, k, v, 4, 3, False, "cpu",
            lc.AttentionIoPolicy(output_scale="big"))


def test_attention_errors_leave_out_untouched():
    q, k, v = _qkv()
    out = np.full((4, 3), np.nan, F32)
    _expect(lc.InvalidArgumentError, "attention2d_into", lc.attention2d_into, q, k, v, out, 3)
    _expect(lc.DeviceError, "attention2d_into", lc.attention2d_into, q, k, v, out, False, "x")
    assert np.isnan(out).all()


# ---- conv ----------------------------------------------------------------------------------

X = np.ones((2, 3, 6, 6), F32)
W = np.ones((4, 3, 3, 3), F32)

CONV_SHAPES = [
    ("x rank 3", np.ones((3, 6, 6), F32), W, None, (1, 1, 0, 0)),
    ("w rank 2", X, np.ones((4, 27), F32), None, (1, 1, 0, 0)),
    ("channels differ", X, np.ones((4, 2, 3, 3), F32), None, (1, 1, 0, 0)),
    ("kernel too tall", X, np.ones((4, 3, 7, 3), F32), None, (1, 1, 0, 0)),
    ("kernel too wide with pad", X, np.ones((4, 3, 3, 11), F32), None, (1, 1, 2, 2)),
    ("kernel size 0", X, np.ones((4, 3, 0, 3), F32), None, (1, 1, 0, 0)),
    ("bias length", X, W, np.ones(5, F32), (1, 1, 0, 0)),
    ("bias rank", X, W, np.ones((4, 1), F32), (1, 1, 0, 0)),
]


@pytest.mark.parametrize("what,x,w,bias,geom", CONV_SHAPES, ids=[c[0] for c in CONV_SHAPES])
def test_conv_bad_shapes(what, x, w, bias, geom):
    message = _expect(lc.ShapeError, "conv2d_nchw", lc.conv2d_nchw, x, w, bias, *geom, "cpu")
    if what.startswith("kernel too"):
        assert "larger than the padded input" in message


@pytest.mark.parametrize("geom", [(0, 1, 0, 0), (1, -1, 0, 0), (1, 1, -1, 0), (1, 1, 0, -2),
                                  (1.5, 1, 0, 0), (True, 1, 0, 0), (1, 1, "0", 0)])
def test_conv_bad_geometry(geom):
    _expect(lc.InvalidArgumentError, "conv2d_nchw", lc.conv2d_nchw, X, W, None, *geom, "cpu")
    _expect(lc.InvalidArgumentError, "lightning_conv_relu_nchw", lc.lightning_conv_relu_nchw,
            X, W, None, *geom, "cpu")


def _bad_conv_outs():
    good = (2, 4, 4, 4)
    read_only = np.full(good, np.nan, F32)
    read_only.flags.writeable = False
    return [
        ("wrong shape", np.full((2, 4, 4, 5), np.nan, F32), lc.OutBufferError),
        ("flat", np.full(2 * 4 * 4 * 4, np.nan, F32), lc.OutBufferError),
        ("wrong dtype", np.full(good, np.nan, np.float64), lc.OutBufferError),
        ("not contiguous", np.full((2, 4, 4, 8), np.nan, F32)[..., ::2], lc.OutBufferError),
        ("read-only", read_only, lc.OutBufferError),
    ]


@pytest.mark.parametrize("what,out,error", _bad_conv_outs(), ids=[c[0] for c in _bad_conv_outs()])
def test_conv_into_bad_out(what, out, error):
    _expect(error, "conv2d_nchw_into", lc.conv2d_nchw_into, X, W, None, out, 1, 1, 0, 0, "cpu")
    _expect(error, "lightning_conv_relu_nchw_into", lc.lightning_conv_relu_nchw_into, X, W,
            None, out, 1, 1, 0, 0, "cpu")


def test_conv_out_overlapping_an_input():
    x = np.ones((1, 4, 5, 5), F32)
    w = np.ones((4, 4, 1, 1), F32)
    _expect(lc.AliasingError, "conv2d_nchw_into", lc.conv2d_nchw_into, x, w, None, x)
    bias = np.ones(4 * 25, F32)
    out = bias.reshape(1, 4, 5, 5)
    _expect(lc.AliasingError, "lightning_conv_relu_nchw_into", lc.lightning_conv_relu_nchw_into,
            x, w, bias[:4], out)
    assert (x == 1).all() and (bias == 1).all()


def test_conv_bad_dtypes_devices_flags_and_policy():
    _expect(lc.DTypeError, "conv2d_nchw", lc.conv2d_nchw, X.astype(np.complex128), W)
    _expect(lc.DTypeError, "conv2d_nchw", lc.conv2d_nchw, X, W, np.array(["a"] * 4))
    _expect(lc.DeviceError, "conv2d_nchw", lc.conv2d_nchw, X, W, None, 1, 1, 0, 0, "gpu")
    op, fn = "conv2d_nchw_with_policy", lc.conv2d_nchw_with_policy
    _expect(lc.InvalidArgumentError, op, fn, X, W, None, 1, 1, 0, 0, "cpu", None, "no")
    _expect(lc.PolicyError, op, fn, X, W, None, 1, 1, 0, 0, "cpu", lc.AttentionIoPolicy())


def test_conv_errors_leave_out_untouched():
    out = np.full((2, 4, 4, 4), np.nan, F32)
    _expect(lc.InvalidArgumentError, "conv2d_nchw_into", lc.conv2d_nchw_into, X, W, None, out,
            0, 1, 0, 0, "cpu")
    _expect(lc.ShapeError, "conv2d_nchw_into", lc.conv2d_nchw_into, X, W, np.ones(3, F32), out)
    _expect(lc.DeviceError, "conv2d_nchw_into", lc.conv2d_nchw_into, X, W, None, out, 1, 1, 0,
            0, "metal:0")
    assert np.isnan(out).all()
