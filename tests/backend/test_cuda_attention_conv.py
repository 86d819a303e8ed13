"""CUDA attention and conv2d kernels: every registered variant vs the float64 reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_close, cuda_only, lc_to_numpy, poisoned, rand
from hypothesis import given, settings
from hypothesis import strategies as st

import lightning_core as lc
from lightning_core.errors import ShapeError
from lightning_core.ops.attention import attention_reference
from lightning_core.ops.conv import conv2d_reference
from lightning_core.runtime.backend import get_backend, implementations

pytestmark = cuda_only

SEQS = [1, 2, 3, 5, 8, 12, 13, 31, 48, 96, 127, 129, 192]
HEAD_DIMS = [1, 8, 12, 48, 64, 80, 128, 256]
POSTS = [None, (1.5, -0.25, False), (0.5, 0.1, True)]
HEADLINE = [(8, 16), (8, 32), (12, 12), (48, 48), (96, 48), (192, 48), (192, 8)]


def _cp():
    import cupy

    return cupy


def _stream():
    return get_backend("cuda").stream


def _launch(fn, *args, **kwargs):
    """Run an implementation on the backend's stream after the test's own uploads (queued on
    CuPy's default stream, which the backend's non-blocking stream does not wait for)."""
    _cp().cuda.Device().synchronize()
    used = fn(*args, stream=_stream(), **kwargs)
    _stream().synchronize()
    return used


def _variants(op: str, dtype) -> list:
    impls = [i for i in implementations("cuda", op) if np.dtype(dtype).name in i.dtypes]
    assert impls, f"no CUDA implementation of {op} for {np.dtype(dtype).name}"
    return impls


def _attention_case(rng, seq, d, dtype, *, scale=1.0):
    return tuple(rand(rng, seq, d, dtype=dtype, scale=scale) for _ in range(3))


def _check_attention_variants(q, k, v, causal, post, dtype, tol_scale=1.0):
    cp = _cp()
    seq, d = q.shape
    ref = attention_reference(q, k, v, causal, 1.0 / math.sqrt(d), post)
    qd, kd, vd = (cp.asarray(a) for a in (q, k, v))
    for impl in _variants("attention", dtype):
        out = poisoned((seq, d), dtype=dtype, device="cuda")
        _launch(impl.fn, qd, kd, vd, out=out, precision="fp32", causal=causal,
                scale=1.0 / math.sqrt(d), post=post)
        try:
            assert_close(out, ref, dtype, scale=tol_scale)
        except AssertionError as exc:
            raise AssertionError(f"{impl.name} seq={seq} d={d} causal={causal} post={post} "
                                 f"dtype={np.dtype(dtype).name}: {exc}") from None


@settings(max_examples=40, deadline=None)
@given(seq=st.sampled_from(SEQS), d=st.sampled_from(HEAD_DIMS), causal=st.booleans(),
       post=st.sampled_from(POSTS),
       dtype=st.sampled_from([np.float32, np.float64, np.float16]))
def test_attention_every_variant_random_shapes(seq, d, causal, post, dtype):
    rng = np.random.default_rng(seq * 1009 + d * 7 + causal)
    q, k, v = _attention_case(rng, seq, d, dtype)
    _check_attention_variants(q, k, v, causal, post, dtype)


@pytest.mark.parametrize("seq,d", [(1000, 64), (4097, 64), (1000, 80), (600, 256), (1536, 128)])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_long_sequences_split_kv(seq, d, causal):
    rng = np.random.default_rng(seq + d + causal)
    q, k, v = _attention_case(rng, seq, d, np.float32)
    _check_attention_variants(q, k, v, causal, (1.25, 0.5, True), np.float32, tol_scale=2.0)


@pytest.mark.parametrize("seq,d", [(1, 1), (31, 3), (32, 32), (33, 33), (64, 100), (95, 128),
                                   (160, 64), (255, 47), (256, 16), (256, 64)])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_rows_kernel_edges(seq, d, causal):
    """Lane/warp edges of the rows kernel (keys per lane, dims per lane), and shapes beyond its
    shared memory that must fall back to the flash grid."""
    rng = np.random.default_rng(seq * 31 + d + causal)
    for dtype in (np.float32, np.float64):
        q, k, v = _attention_case(rng, seq, d, dtype)
        _check_attention_variants(q, k, v, causal, (0.75, -0.25, True), dtype)


@pytest.mark.parametrize("y_shape,seq,d", [((1, 16, 8, 8), 48, 48), ((1, 16, 8, 8), 192, 48),
                                           ((1, 16, 8, 8), 192, 8), ((1, 16, 8, 8), 96, 48),
                                           ((2, 3, 5, 7), 7, 5), ((4000,), 20, 30),
                                           ((1, 16, 8, 8), 300, 64), ((1, 3, 5, 7), 12, 8),
                                           ((4000,), 20, 32), ((1, 2, 6, 6), 40, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_attention_packed_reads_qkv_in_place(y_shape, seq, d, dtype):
    from lightning_core.ops.attention import attention_packed
    from lightning_core.sessions.integrated import _pack_qkv

    cp = _cp()
    rng = np.random.default_rng(seq * d)
    y = rng.standard_normal(y_shape).astype(dtype)
    q, k, v = _pack_qkv(y.astype(np.float64), seq, d)
    ref = attention_reference(q, k, v, False)
    yd = cp.asarray(y)
    for _ in range(2):  # the second call runs on the fast lane
        got = attention_packed(yd, seq, d, "cuda")
        assert isinstance(got, cp.ndarray) and got.shape == (seq, d)
        assert_close(got, ref, dtype)
    if dtype != np.float16:  # the CPU backend computes float32 and float64 only
        assert_close(attention_packed(y, seq, d, "cpu"), ref, dtype)


@pytest.mark.parametrize("offset", [0, 1, 4, 6])
def test_attention_packed_from_views_at_any_alignment(offset):
    """The packed rows kernel stages 16 bytes per load only from a 16-byte aligned buffer (the
    period and d multiples of 4): views that start 4, 16 or 24 bytes into an allocation give
    the same result, on the full road and on the fast lane."""
    from lightning_core.ops.attention import attention_packed
    from lightning_core.sessions.integrated import _pack_qkv

    cp = _cp()
    rng = np.random.default_rng(offset)
    base = rng.standard_normal(1024 + 8).astype(np.float32)
    for seq, d in ((192, 48), (60, 16)):
        y = base[offset:offset + 1024]
        q, k, v = _pack_qkv(y.astype(np.float64), seq, d)
        ref = attention_reference(q, k, v, False)
        yd = cp.asarray(base)[offset:offset + 1024]
        for _ in range(2):
            assert_close(attention_packed(yd, seq, d, "cuda"), ref, np.float32)


@pytest.mark.parametrize("seq", [700, 2048])
def test_attention_long_float64_and_float16(seq):
    rng = np.random.default_rng(seq)
    for dtype in (np.float64, np.float16):
        q, k, v = _attention_case(rng, seq, 64, dtype)
        _check_attention_variants(q, k, v, True, None, dtype)


@pytest.mark.parametrize("seq,d", HEADLINE)
def test_attention_headline_cases_are_one_kernel(seq, d):
    from lightning_core.backends.cuda.attention import choose_variant

    assert choose_variant(seq, d, "float32") in ("rows", "fused_small", "flash_tc",
                                                 "flash_splitkv")
    rng = np.random.default_rng(seq * d)
    q, k, v = _attention_case(rng, seq, d, np.float32)
    for causal in (False, True):
        out = poisoned((seq, d), device="cuda")
        lc.attention2d_into(q, k, v, out, causal, "cuda")
        assert_close(out, attention_reference(q, k, v, causal))


@pytest.mark.parametrize("seq,d", [(64, 64), (100, 33), (1000, 64), (777, 16), (2051, 64),
                                   (17, 8), (130, 64)])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_tensor_core_build_keeps_float32_accuracy(seq, d, causal):
    """flash_tc runs its tensor-core build here (not a fallback) and its split products keep
    float32 accuracy: within a small factor of the SIMT kernel's error, far below plain TF32's
    (~1e-3 on these logits). Causal: the 8-key steps across the diagonal run guarded."""
    from lightning_core.backends.cuda import attention as att

    _, lim = att._device()
    assert att._tc_config(seq, d, "float32", causal, lim) is not None
    rng = np.random.default_rng(seq * 3 + d + causal)
    q, k, v = _attention_case(rng, seq, d, np.float32, scale=2.0)
    ref = attention_reference(q, k, v, causal)
    cp = _cp()
    errs = {}
    for impl in _variants("attention", np.float32):
        if impl.variant in ("flash_tc", "flash_splitkv"):
            out = poisoned((seq, d), device="cuda")
            _launch(impl.fn, *(cp.asarray(a) for a in (q, k, v)), out=out, precision="fp32",
                    causal=causal, scale=1.0 / math.sqrt(d), post=None)
            errs[impl.variant] = float(np.abs(cp.asnumpy(out) - ref).max())
    assert errs["flash_tc"] <= max(20 * errs["flash_splitkv"], 2e-6), errs
    assert errs["flash_tc"] < 1e-4, errs


def test_attention_auto_takes_the_tensor_core_build_where_measured_faster():
    from lightning_core.backends.cuda.attention import TC_AUTO_MIN_SEQ, choose_variant

    assert choose_variant(4096, 64, "float32") == "flash_tc"
    assert choose_variant(TC_AUTO_MIN_SEQ[64], 40, "float32") == "flash_tc"
    assert choose_variant(TC_AUTO_MIN_SEQ[64] - 1, 64, "float32") == "flash_splitkv"
    assert choose_variant(4096, 64, "float32", causal=True) == "flash_tc"
    assert choose_variant(TC_AUTO_MIN_SEQ[64] - 1, 64, "float32", causal=True) == "flash_splitkv"
    assert choose_variant(4096, 64, "float16") == "flash_splitkv"
    assert choose_variant(4096, 80, "float32") == "flash_splitkv"
    from lightning_core import config

    with config.override(LC_ATTENTION_SPLIT_TF32=False):
        assert choose_variant(4096, 64, "float32") == "flash_splitkv"
        rng = np.random.default_rng(9)
        q, k, v = _attention_case(rng, 2048, 64, np.float32)
        out = poisoned((2048, 64), device="cuda")
        lc.attention2d_into(q, k, v, out, False, "cuda")
        simt = float(np.abs(lc_to_numpy(out) - attention_reference(q, k, v, False)).max())
        # A tuned or requested flash_tc is switched off too: it runs the SIMT kernel.
        cp = _cp()
        outs = []
        for impl in _variants("attention", np.float32):
            if impl.variant in ("flash_tc", "flash_splitkv"):
                outs.append(poisoned((2048, 64), device="cuda"))
                _launch(impl.fn, *(cp.asarray(a) for a in (q, k, v)), out=outs[-1],
                        precision="fp32", causal=False, scale=1.0 / 8.0, post=None)
        assert cp.array_equal(outs[0], outs[1])
    out = poisoned((2048, 64), device="cuda")
    lc.attention2d_into(q, k, v, out, False, "cuda")
    split = float(np.abs(lc_to_numpy(out) - attention_reference(q, k, v, False)).max())
    assert split != simt and split <= max(20 * simt, 2e-6)  # the knob reached the launch


def test_attention_large_head_dim_composite_path():
    rng = np.random.default_rng(5)
    q, k, v = _attention_case(rng, 70, 300, np.float32)
    v[-1, 3] = np.inf
    _check_attention_variants(q[:-1], k[:-1], v[:-1], True, None, np.float32)
    got = lc_to_numpy(lc.attention2d(q, k, v, True, "cuda"))
    assert np.isfinite(got[:-1]).all()
    assert_close(got[:-1], attention_reference(q, k, v, True)[:-1])


@pytest.mark.parametrize("seq,d", [(5, 8), (100, 48), (1000, 64), (129, 32)])
def test_attention_causal_masked_nan_and_inf_stay_out(seq, d):
    rng = np.random.default_rng(seq)
    q, k, v = _attention_case(rng, seq, d, np.float32)
    k[-1, 0] = np.nan
    v[-1, :] = np.inf
    v[seq // 2, 1] = np.nan
    ref = attention_reference(q, k, v, True)
    cp = _cp()
    for impl in _variants("attention", np.float32):
        out = poisoned((seq, d), device="cuda")
        _launch(impl.fn, *(cp.asarray(a) for a in (q, k, v)), out=out, precision="fp32",
                causal=True, scale=1.0 / math.sqrt(d), post=None)
        got = cp.asnumpy(out)
        visible = seq // 2  # rows before the first NaN/Inf key see only finite values
        assert np.isfinite(got[:visible]).all(), impl.name
        assert_close(got[:visible], ref[:visible])


@pytest.mark.parametrize("seq,d", [(40, 64), (130, 32), (1000, 64), (2051, 64)])
def test_attention_causal_rows_never_see_later_nonfinite_values(seq, d):
    """Every key from a point that is no multiple of 8 on holds Inf values and a NaN key:
    every row before that point matches the reference exactly as if they were absent (the
    tensor-core build's steps across the diagonal must not multiply them by zero)."""
    rng = np.random.default_rng(seq + d)
    q, k, v = _attention_case(rng, seq, d, np.float32)
    cut = seq // 2 + 3
    v[cut:] = np.inf
    k[cut:, 0] = np.nan
    ref = attention_reference(q[:cut], k[:cut], v[:cut], True)
    cp = _cp()
    for impl in _variants("attention", np.float32):
        out = poisoned((seq, d), device="cuda")
        _launch(impl.fn, *(cp.asarray(a) for a in (q, k, v)), out=out, precision="fp32",
                causal=True, scale=1.0 / math.sqrt(d), post=None)
        got = cp.asnumpy(out)[:cut]
        assert np.isfinite(got).all(), impl.name
        assert_close(got, ref)


def test_attention_unaligned_flat_inputs_and_policy_post():
    cp = _cp()
    seq, d = 37, 12
    rng = np.random.default_rng(11)
    host = rand(rng, 3 * seq * d + 1)
    buf = cp.asarray(host)[1:]  # 4-byte offset: the kernels must take their scalar path
    q, k, v = (buf[i * seq * d:(i + 1) * seq * d] for i in range(3))
    policy = lc.AttentionIoPolicy(output_scale=2.0, output_bias=-0.5, output_relu=True)
    got = lc.attention_forward_with_policy(q, k, v, seq, d, False, "cuda", policy)
    ref = attention_reference(*(host[1:][i * seq * d:(i + 1) * seq * d].reshape(seq, d)
                                for i in range(3)), False, post=(2.0, -0.5, True))
    assert_close(cp.asnumpy(got).reshape(seq, d), ref)


def _conv_case(rng, n, c, h, w, oc, kh, kw, dtype, with_bias):
    x = rand(rng, n, c, h, w, dtype=dtype)
    wt = rand(rng, oc, c, kh, kw, dtype=dtype)
    bias = rand(rng, oc, dtype=dtype) if with_bias else None
    return x, wt, bias


def _check_conv_variants(x, wt, bias, sh, sw, ph, pw, relu, dtype, precision="fp32"):
    cp = _cp()
    ref = conv2d_reference(x, wt, bias, sh, sw, ph, pw, relu)
    inputs = [cp.asarray(x), cp.asarray(wt)] + ([cp.asarray(bias)] if bias is not None else [])
    terms = max(1, wt.shape[1] * wt.shape[2] * wt.shape[3])
    for impl in _variants("conv2d", dtype):
        out = poisoned(ref.shape, dtype=dtype, device="cuda")
        used = _launch(impl.fn, *inputs, out=out, precision=precision, stride_h=sh,
                       stride_w=sw, pad_h=ph, pad_w=pw, relu=relu)
        assert used in ("fp32", "tf32")
        tol = "tf32" if used == "tf32" else "fp32"
        try:
            assert_close(out, ref, dtype, tol, scale=np.sqrt(terms))
        except AssertionError as exc:
            raise AssertionError(f"{impl.name} x={x.shape} w={wt.shape} s=({sh},{sw}) "
                                 f"p=({ph},{pw}) relu={relu}: {exc}") from None


@settings(max_examples=40, deadline=None)
@given(n=st.sampled_from([1, 2, 3]), c=st.sampled_from([1, 2, 3, 5, 16]),
       h=st.integers(1, 23), w=st.integers(1, 23), oc=st.sampled_from([1, 3, 4, 7, 16, 17]),
       kh=st.integers(1, 7), kw=st.integers(1, 7), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 3), pw=st.integers(0, 3), with_bias=st.booleans(),
       relu=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_conv_every_variant_random_geometry(n, c, h, w, oc, kh, kw, sh, sw, ph, pw, with_bias,
                                            relu, dtype):
    kh, kw = min(kh, h + 2 * ph), min(kw, w + 2 * pw)
    rng = np.random.default_rng(n * 31 + c * 7 + h + w * 3 + kh * 11 + kw)
    x, wt, bias = _conv_case(rng, n, c, h, w, oc, kh, kw, dtype, with_bias)
    _check_conv_variants(x, wt, bias, sh, sw, ph, pw, relu, dtype)


SEED_CONV = [(1, 3, 16, 16, 16), (1, 3, 24, 24, 16), (2, 3, 16, 16, 16), (1, 3, 28, 28, 16),
             (1, 3, 32, 32, 16), (2, 3, 32, 32, 16), (16, 3, 64, 64, 16), (16, 16, 32, 32, 32),
             (1, 3, 8, 8, 16)]


@pytest.mark.parametrize("n,c,h,w,oc", SEED_CONV)
def test_conv_seed_hot_cases_public_api(n, c, h, w, oc):
    rng = np.random.default_rng(n + c + h + oc)
    x, wt, bias = _conv_case(rng, n, c, h, w, oc, 3, 3, np.float32, True)
    got = lc.lightning_conv_relu_nchw(x, wt, bias, 1, 1, 1, 1, "cuda")
    ref = conv2d_reference(x, wt, bias, 1, 1, 1, 1, relu=True)
    assert_close(got, ref, scale=np.sqrt(9 * c))
    out = poisoned(ref.shape, device="cuda")
    lc.conv2d_nchw_into(x, wt, None, out, 1, 1, 1, 1, "cuda")
    assert_close(out, conv2d_reference(x, wt, None, 1, 1, 1, 1), scale=np.sqrt(9 * c))


def test_conv_large_problem_and_tf32_request():
    from lightning_core.backends.cuda.conv import DIRECT_MAX_MACS, DIRECT_MAX_TAPS

    rng = np.random.default_rng(3)
    x, wt, bias = _conv_case(rng, 5, 144, 20, 19, 64, 3, 3, np.float32, True)
    assert 5 * 64 * 20 * 19 * 144 * 9 > DIRECT_MAX_MACS and 144 * 9 > DIRECT_MAX_TAPS
    _check_conv_variants(x, wt, bias, 1, 1, 1, 1, True, np.float32)
    _check_conv_variants(x, wt, bias, 2, 1, 0, 2, False, np.float32, precision="tf32")


def test_conv_ignores_a_process_wide_cupy_tf32_setting():
    cp = _cp()
    linalg = cp._core._routines_linalg
    saved = linalg.get_compute_type(np.float32)
    linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32)
    try:
        rng = np.random.default_rng(4)
        x, wt, bias = _conv_case(rng, 2, 64, 24, 24, 32, 3, 3, np.float32, False)
        _check_conv_variants(x, wt, bias, 1, 1, 1, 1, False, np.float32)
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32
    finally:
        linalg.set_compute_type(np.float32, saved)


def test_conv_zero_input_channels_gives_bias():
    rng = np.random.default_rng(6)
    x = np.zeros((2, 0, 5, 6), np.float32)
    wt = np.zeros((4, 0, 3, 3), np.float32)
    bias = rand(rng, 4)
    _check_conv_variants(x, wt, bias, 1, 1, 1, 1, True, np.float32)


def test_bad_inputs_raise_before_any_work_on_cuda():
    q = np.zeros((4, 8), np.float32)
    with pytest.raises(ShapeError, match=r"^\[attention2d\]"):
        lc.attention2d(q, np.zeros((5, 8), np.float32), q, False, "cuda")
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(ShapeError, match=r"^\[conv2d_nchw\]"):
        lc.conv2d_nchw(x, np.zeros((4, 2, 3, 3), np.float32), None, 1, 1, 1, 1, "cuda")
