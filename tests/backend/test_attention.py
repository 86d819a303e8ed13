"""attention family vs the float64 reference on every available device."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, lc_to_numpy, poisoned, rand
from hypothesis import given, settings
from hypothesis import strategies as st

import lightning_core as lc
from lightning_core.ops.attention import attention_reference

seqs = st.one_of(st.sampled_from([1, 2, 3, 5, 7, 13, 31, 64, 97, 127, 131, 199, 200]),
                 st.integers(1, 200))
dims = st.one_of(st.sampled_from([1, 2, 3, 7, 16, 17, 64, 79, 80]), st.integers(1, 80))


def _qkv(rng, seq, d, dtype=np.float32, scale=1.0):
    return tuple(rand(rng, seq, d, dtype=dtype, scale=scale) for _ in range(3))


@settings(max_examples=50, deadline=None)
@given(seq=seqs, d=dims, causal=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_attention2d_random_shapes(device, seq, d, causal, dtype):
    rng = np.random.default_rng(seq * 1009 + d * 7 + causal)
    q, k, v = _qkv(rng, seq, d, dtype)
    got = lc.attention2d(q, k, v, causal, device)
    assert got.dtype == dtype and got.shape == (seq, d)
    assert_close(got, attention_reference(q, k, v, causal), dtype)


@settings(max_examples=20, deadline=None)
@given(seq=seqs, d=dims, causal=st.booleans())
def test_attention2d_into_poisoned(device, seq, d, causal):
    rng = np.random.default_rng(seq * 31 + d)
    q, k, v = _qkv(rng, seq, d)
    out = poisoned((seq, d), device=device)
    assert lc.attention2d_into(q, k, v, out, causal, device) is out
    assert_close(out, attention_reference(q, k, v, causal))


@settings(max_examples=15, deadline=None)
@given(seq=seqs, d=dims, causal=st.booleans())
def test_flat_forms(device, seq, d, causal):
    rng = np.random.default_rng(seq * 17 + d * 3 + causal)
    q, k, v = (a.reshape(-1) for a in _qkv(rng, seq, d))
    ref = attention_reference(q.reshape(seq, d), k.reshape(seq, d), v.reshape(seq, d),
                              causal).reshape(-1)
    assert_close(lc.attention_forward(q, k, v, seq, d, causal, device), ref)
    assert_close(lc.lightning_attention(q, k, v, seq, d, causal, device), ref)
    flat_out = poisoned(seq * d, device=device)
    lc.lightning_attention_into(q, k, v, flat_out, seq, d, causal, device)
    assert_close(flat_out, ref)
    square_out = poisoned((seq, d), device=device)
    lc.lightning_attention_into(q, k, v, square_out, seq, d, causal, device)
    assert_close(square_out.reshape(-1), ref)


@pytest.mark.parametrize("scale,bias,relu", [(1.0, 0.0, False), (2.5, 0.0, False),
                                             (0.5, -0.25, False), (1.0, 0.0, True),
                                             (-1.5, 0.3, True)])
@pytest.mark.parametrize("causal", [False, True])
def test_policy_postprocess(device, rng, scale, bias, relu, causal):
    seq, d = 37, 11
    q, k, v = (a.reshape(-1) for a in _qkv(rng, seq, d))
    policy = lc.AttentionIoPolicy(output_scale=scale, output_bias=bias, output_relu=relu)
    got = lc.attention_forward_with_policy(q, k, v, seq, d, causal, device, policy)
    ref = attention_reference(q.reshape(seq, d), k.reshape(seq, d), v.reshape(seq, d), causal,
                              post=(scale, bias, relu))
    assert_close(got, ref.reshape(-1))
    if relu:
        assert (lc_to_numpy(got) >= 0).all()


def test_policy_defaults_to_plain_forward(device, rng):
    q, k, v = (a.reshape(-1) for a in _qkv(rng, 6, 4))
    ref = lc.attention_forward(q, k, v, 6, 4, True, device)
    assert_close(lc.attention_forward_with_policy(q, k, v, 6, 4, True, device), lc_to_numpy(ref))


@pytest.mark.parametrize("seq,d", [(1100, 3), (2049, 5)])
@pytest.mark.parametrize("causal", [False, True])
def test_long_sequences_span_several_row_blocks(device, seq, d, causal):
    rng = np.random.default_rng(seq + d)
    q, k, v = _qkv(rng, seq, d)
    assert_close(lc.attention2d(q, k, v, causal, device), attention_reference(q, k, v, causal))


def test_large_scores_do_not_overflow(device, rng):
    q, k, v = _qkv(rng, 50, 8, scale=60.0)
    got = lc.attention2d(q, k, v, False, device)
    assert np.isfinite(lc_to_numpy(got)).all()
    # Scores reach ~1e4 here, so float32 rounding of a score (|s| * 6e-8 per operation) moves
    # the softmax weights by ~1e-3 relative: the output error scales with max|v|, not 1.
    ref = attention_reference(q, k, v, False)
    np.testing.assert_allclose(lc_to_numpy(got), ref, rtol=0, atol=2e-3 * np.abs(v).max())


@pytest.mark.parametrize("seq", [9, 1100])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_v_reaches_exactly_the_rows_that_attend_to_it(device, rng, seq, bad):
    d, j, col = 4, seq // 2, 2
    q, k, v = _qkv(rng, seq, d)
    v[j, col] = bad
    full = lc_to_numpy(lc.attention2d(q, k, v, False, device))
    assert not np.isfinite(full[:, col]).any()
    assert np.isfinite(np.delete(full, col, axis=1)).all()
    causal = lc_to_numpy(lc.attention2d(q, k, v, True, device))
    assert not np.isfinite(causal[j:, col]).any()
    assert np.isfinite(causal[:j]).all()
    assert_close(causal, attention_reference(q, k, v, True))


def test_nan_in_k_or_q_poisons_the_rows_that_see_it(device, rng):
    seq, d = 10, 3
    q, k, v = _qkv(rng, seq, d)
    k[4, 0] = np.nan
    causal = lc_to_numpy(lc.attention2d(q, k, v, True, device))
    assert np.isnan(causal[4:]).all() and np.isfinite(causal[:4]).all()
    assert np.isnan(lc_to_numpy(lc.attention2d(q, k, v, False, device))).all()
    k[4, 0] = 1.0
    q[7, 1] = np.nan
    got = lc_to_numpy(lc.attention2d(q, k, v, True, device))
    assert np.isnan(got[7]).all() and np.isfinite(np.delete(got, 7, axis=0)).all()


def test_float64_is_computed_in_float64(device, rng):
    q, k, v = _qkv(rng, 33, 9, np.float64)
    got = lc.attention2d(q, k, v, True, device)
    assert got.dtype == np.float64
    np.testing.assert_allclose(lc_to_numpy(got), attention_reference(q, k, v, True),
                               rtol=1e-12, atol=1e-12)


def test_int_and_bool_inputs_become_float32(device):
    q = np.arange(12).reshape(4, 3) % 5
    k = np.ones((4, 3), dtype=bool)
    v = np.arange(12, dtype=np.int32).reshape(4, 3)
    got = lc.attention2d(q, k, v, False, device)
    assert got.dtype == np.float32
    assert_close(got, attention_reference(q, k.astype(np.float64), v, False))


def test_causal_accepts_0_and_1(device, rng):
    q, k, v = _qkv(rng, 5, 2)
    assert_close(lc.attention2d(q, k, v, 1, device), lc_to_numpy(lc.attention2d(q, k, v, True,
                                                                                device)))
    assert_close(lc.attention2d(q, k, v, 0, device), attention_reference(q, k, v, False))


def test_empty_sequence_gives_empty_result(device):
    empty = np.zeros((0, 4), np.float32)
    assert lc_to_numpy(lc.attention2d(empty, empty, empty, True, device)).shape == (0, 4)
    flat = np.zeros(0, np.float32)
    assert lc_to_numpy(lc.attention_forward(flat, flat, flat, 0, 4, False, device)).shape == (0,)


def test_non_contiguous_inputs_are_accepted(device, rng):
    big = rand(rng, 12, 10)
    q, k, v = big[::2, :5], big[1::2, ::2], big[:6, 5:].T.copy().T
    assert_close(lc.attention2d(q, k, v, True, device), attention_reference(q, k, v, True))
