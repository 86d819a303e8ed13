"""conv2d family vs the float64 reference on every available device."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, lc_to_numpy, poisoned, rand
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import lightning_core as lc
from lightning_core.backends.cpu import conv as cpu_conv
from lightning_core.ops.conv import conv2d_reference


@st.composite
def conv_cases(draw):
    """A valid conv problem: shapes, stride, padding, bias or not, ReLU or not."""
    n, c, oc = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 7))
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    assume(h + 2 * ph >= kh and w + 2 * pw >= kw)
    return (n, c, h, w, oc, kh, kw), (sh, sw, ph, pw), draw(st.booleans()), draw(st.booleans())


def _problem(case, dtype=np.float32, seed=0):
    (n, c, h, w, oc, kh, kw), geom, has_bias, relu = case
    rng = np.random.default_rng(seed)
    x, wt = rand(rng, n, c, h, w, dtype=dtype), rand(rng, oc, c, kh, kw, dtype=dtype)
    bias = rand(rng, oc, dtype=dtype) if has_bias else None
    return x, wt, bias, geom, relu


def _out_shape(x, wt, geom):
    sh, sw, ph, pw = geom
    return (x.shape[0], wt.shape[0], (x.shape[2] + 2 * ph - wt.shape[2]) // sh + 1,
            (x.shape[3] + 2 * pw - wt.shape[3]) // sw + 1)


def _scale(wt):
    return float(np.sqrt(max(1, wt[0].size)))


@settings(max_examples=50, deadline=None)
@given(case=conv_cases(), dtype=st.sampled_from([np.float32, np.float64]))
def test_conv_random_shapes(device, case, dtype):
    x, wt, bias, geom, relu = _problem(case, dtype, seed=hash(case) % 2**32)
    fn = lc.lightning_conv_relu_nchw if relu else lc.conv2d_nchw
    got = fn(x, wt, bias, *geom, device)
    assert got.dtype == dtype
    assert_close(got, conv2d_reference(x, wt, bias, *geom, relu), dtype, scale=_scale(wt))


@settings(max_examples=20, deadline=None)
@given(case=conv_cases())
def test_conv_into_poisoned(device, case):
    x, wt, bias, geom, relu = _problem(case, seed=hash(case) % 2**32)
    out = poisoned(_out_shape(x, wt, geom), device=device)
    fn = lc.lightning_conv_relu_nchw_into if relu else lc.conv2d_nchw_into
    assert fn(x, wt, bias, out, *geom, device) is out
    assert_close(out, conv2d_reference(x, wt, bias, *geom, relu), scale=_scale(wt))


@settings(max_examples=15, deadline=None)
@given(case=conv_cases())
def test_conv_with_policy(device, case):
    x, wt, bias, geom, relu = _problem(case, seed=hash(case) % 2**32)
    got = lc.conv2d_nchw_with_policy(x, wt, bias, *geom, device, lc.Conv2dIoPolicy(), relu)
    assert_close(got, conv2d_reference(x, wt, bias, *geom, relu), scale=_scale(wt))


def test_keyword_defaults_and_hot_case(device, rng):
    x, wt, bias = rand(rng, 2, 16, 28, 28), rand(rng, 32, 16, 3, 3), rand(rng, 32)
    ref = conv2d_reference(x, wt, bias, 1, 1, 1, 1, relu=True)
    got = lc.lightning_conv_relu_nchw(x, wt, bias, pad_h=1, pad_w=1, device=device)
    assert_close(got, ref, scale=12.0)
    assert_close(lc.conv2d_nchw(x, wt, device=device), conv2d_reference(x, wt, None, 1, 1, 0, 0),
                 scale=12.0)
    assert_close(lc.conv2d_nchw_with_policy(x, wt, bias, 1, 1, 1, 1, device, apply_relu=True),
                 ref, scale=12.0)


def test_chunked_batches_match(monkeypatch, rng):
    monkeypatch.setattr(cpu_conv, "_COLS_LIMIT", 200)
    x, wt, bias = rand(rng, 5, 3, 9, 8), rand(rng, 4, 3, 3, 2), rand(rng, 4)
    out = poisoned((5, 4, 5, 7))
    lc.lightning_conv_relu_nchw_into(x, wt, bias, out, 2, 1, 1, 0, "cpu")
    assert_close(out, conv2d_reference(x, wt, bias, 2, 1, 1, 0, relu=True))


@pytest.mark.parametrize("shape_x,shape_w", [((0, 3, 5, 5), (2, 3, 3, 3)),
                                             ((2, 3, 5, 5), (0, 3, 3, 3))])
def test_empty_batch_or_channels_out_gives_empty_result(device, shape_x, shape_w):
    x, wt = np.ones(shape_x, np.float32), np.ones(shape_w, np.float32)
    got = lc_to_numpy(lc.conv2d_nchw(x, wt, None, 1, 1, 1, 1, device))
    assert got.shape == (shape_x[0], shape_w[0], 5, 5)


@pytest.mark.parametrize("with_bias", [False, True])
def test_zero_input_channels_give_the_bias(device, with_bias):
    x, wt = np.ones((2, 0, 4, 6), np.float32), np.ones((3, 0, 3, 3), np.float32)
    bias = np.array([1.5, -2.0, 0.25], np.float32) if with_bias else None
    out = poisoned((2, 3, 2, 2), device=device)
    lc.conv2d_nchw_into(x, wt, bias, out, 1, 2, 0, 0, device)
    assert_close(out, conv2d_reference(x, wt, bias, 1, 2, 0, 0))


def test_zero_height_input_with_padding(device):
    x, wt = np.ones((1, 2, 0, 3), np.float32), np.ones((1, 2, 1, 1), np.float32)
    got = lc.conv2d_nchw(x, wt, np.array([0.5], np.float32), 1, 1, 1, 0, device)
    assert_close(got, np.full((1, 1, 2, 3), 0.5))


def test_nonfinite_values_reach_exactly_the_covered_outputs(device, rng):
    x, wt = rand(rng, 1, 2, 9, 9), rand(rng, 3, 2, 3, 3)
    x[0, 1, 4, 4] = np.nan
    x[0, 0, 0, 8] = np.inf
    got = lc_to_numpy(lc.conv2d_nchw(x, wt, None, 2, 1, 1, 1, device))
    ref = conv2d_reference(x, wt, None, 2, 1, 1, 1)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref))
    assert np.isfinite(got).any() and not np.isfinite(got).all()
    assert_close(got, ref, scale=3.0)


def test_nan_in_weight_or_bias_reaches_its_output_channel(device, rng):
    x, wt, bias = rand(rng, 2, 2, 5, 5), rand(rng, 3, 2, 2, 2), rand(rng, 3)
    wt[1, 0, 1, 1] = np.nan
    bias[2] = np.nan
    got = lc_to_numpy(lc.lightning_conv_relu_nchw(x, wt, bias, 1, 1, 0, 0, device))
    assert np.isnan(got[:, 1:]).all() and not np.isnan(got[:, 0]).any()


def test_float64_is_computed_in_float64(device, rng):
    x = rand(rng, 2, 3, 11, 7, dtype=np.float64)
    wt, bias = rand(rng, 4, 3, 3, 5, dtype=np.float64), rand(rng, 4, dtype=np.float64)
    got = lc.conv2d_nchw(x, wt, bias, 1, 2, 2, 1, device)
    assert got.dtype == np.float64
    np.testing.assert_allclose(lc_to_numpy(got), conv2d_reference(x, wt, bias, 1, 2, 2, 1),
                               rtol=1e-12, atol=1e-12)


def test_int_inputs_become_float32(device):
    x = np.arange(2 * 2 * 4 * 4).reshape(2, 2, 4, 4) % 7
    wt = np.ones((3, 2, 2, 2), dtype=np.int16)
    bias = np.array([1, 0, -1])
    got = lc.conv2d_nchw(x, wt, bias, 1, 1, 0, 0, device)
    assert got.dtype == np.float32
    assert_close(got, conv2d_reference(x, wt, bias, 1, 1, 0, 0))


def test_mixed_float_inputs_promote_to_float64(device, rng):
    x, wt = rand(rng, 1, 2, 6, 6), rand(rng, 2, 2, 3, 3, dtype=np.float64)
    got = lc.conv2d_nchw(x, wt, None, 1, 1, 0, 0, device)
    assert got.dtype == np.float64
    assert_close(got, conv2d_reference(x, wt, None, 1, 1, 0, 0), np.float64)


def test_non_contiguous_inputs_are_accepted(device, rng):
    big = rand(rng, 2, 6, 10, 12)
    x, wt = big[:, ::2, :, ::2], rand(rng, 3, 3, 2, 4)[:, :, ::-1]
    assert_close(lc.conv2d_nchw(x, wt, None, 1, 1, 1, 1, device),
                 conv2d_reference(x, wt, None, 1, 1, 1, 1), scale=5.0)
