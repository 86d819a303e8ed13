"""Resident sessions, capture and the integrated conv → attention path vs float64 references."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, poisoned, rand, run_in_threads

import lightning_core as lc
from lightning_core.ops.attention import attention_reference
from lightning_core.ops.conv import conv2d_reference
from lightning_core.ops.matmul import matmul_reference


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 13, 5), (64, 33, 97)])
def test_matmul_session_phases(device, rng, m, k, n):
    a, b = rand(rng, m, k), rand(rng, k, n)
    sess = lc.MatMulResidentSession(m, k, n, device)
    out = poisoned((m, n))
    sess.start_into(a, b, out)
    assert np.isnan(out).all(), "start_into must not download"
    sess.finish_into(a, b, out)
    assert_close(out, matmul_reference(a, b), scale=np.sqrt(k))
    a2, b2 = rand(rng, m, k), rand(rng, k, n)
    sess.update(a=a2)
    sess.update(b=b2)
    out = poisoned((m, n))
    sess.run_batch_sync_into(a2, b2, out, 37)
    assert_close(out, matmul_reference(a2, b2), scale=np.sqrt(k))
    sess.run_batch_sync_no_download_into(a2, b2, out, 3)
    sess.run_batch_sync_cached_no_download(200)
    flat = poisoned(m * n)
    sess.finish_into(a2, b2, flat)
    assert_close(flat.reshape(m, n), matmul_reference(a2, b2), scale=np.sqrt(k))


def test_matmul_session_aliases_and_factory(device, rng):
    a, b = rand(rng, 6, 4), rand(rng, 4, 3)
    sess = lc.matmul2d_resident_session(a, b, device)
    assert isinstance(sess, lc.MatMulMetalResidentSession)
    out = poisoned((6, 3))
    sess.sync_into(a, b, out)
    sess.finish_into(a, b, out)
    assert_close(out, matmul_reference(a, b))


def test_session_mismatch_raises(device, rng):
    sess = lc.MatMulResidentSession(4, 5, 6, device)
    a, b, out = rand(rng, 4, 5), rand(rng, 5, 6), poisoned((4, 6))
    with pytest.raises(lc.SessionMismatchError, match=r"^\[MatMulResidentSession\]"):
        sess.start_into(rand(rng, 5, 5), b, out)
    with pytest.raises(lc.SessionMismatchError):
        sess.finish_into(a, b, poisoned((4, 7)))
    with pytest.raises(lc.SessionMismatchError):
        sess.start_into(a.astype(np.float64), b, out)
    with pytest.raises(lc.SessionMismatchError):
        sess.run_batch_sync_cached_no_download(0)


@pytest.mark.parametrize("kind,fn", [("sub", np.subtract), ("add", np.add),
                                     ("mul", np.multiply), ("div", np.divide)])
def test_matrix_elemwise_session(device, rng, kind, fn):
    rows, cols = 17, 31
    a, b = rand(rng, rows * cols), rand(rng, rows * cols) + 3.0
    sess = lc.MatrixElemwiseResidentSession(rows, cols, device)
    out = poisoned(rows * cols)
    getattr(sess, f"{kind}_start_into")(a, b, out)
    getattr(sess, f"{kind}_run_into")(a, b, out)
    getattr(sess, f"{kind}_finish_into")(a, b, out)
    assert_close(out, fn(a.astype(np.float64), b))


def test_vector_add_session(device, rng):
    a, b = rand(rng, 1001), rand(rng, 1001)
    sess = lc.VectorAddResidentSession(1001, device)
    out = poisoned(1001)
    sess.start_into(a, b, out)
    sess.finish_into(a, b, out)
    assert_close(out, a.astype(np.float64) + b)


@pytest.mark.parametrize("relu", [True, False])
def test_conv_session(device, rng, relu):
    x, w, bias = rand(rng, 2, 3, 9, 11), rand(rng, 5, 3, 3, 2), rand(rng, 5)
    sess = lc.Conv2dResidentSession(2, 3, 9, 11, 5, 3, 2, 2, 1, 1, 0, relu, device)
    ref = conv2d_reference(x, w, bias, 2, 1, 1, 0, relu=relu)
    out = poisoned(ref.shape)
    sess.start_into(x, w, bias, out)
    sess.finish_into(x, w, bias, out)
    assert_close(out, ref, scale=3)
    out = poisoned(ref.shape)
    sess.run_batch_sync_into(x, w, bias, out, 9)
    assert_close(out, ref, scale=3)
    sess.start_into(x, w, None, out)
    sess.finish_into(x, w, None, out)
    assert_close(out, conv2d_reference(x, w, None, 2, 1, 1, 0, relu=relu), scale=3)


@pytest.mark.parametrize("seq,d,causal", [(1, 1, False), (8, 16, True), (97, 48, False)])
def test_attention_session_forward_and_policy(device, rng, seq, d, causal):
    q, k, v = rand(rng, seq, d), rand(rng, seq, d), rand(rng, seq, d)
    sess = lc.AttentionSession(seq, d, causal, device)
    out = poisoned((seq, d))
    sess.forward_into(q, k, v, out)
    assert_close(out, attention_reference(q, k, v, causal))
    pol = lc.AttentionIoPolicy()
    pol.output_scale, pol.output_bias, pol.output_relu = 2.0, -0.1, True
    pol.upload_k = False  # k stays resident from the previous call
    out = poisoned((seq, d))
    sess.forward_with_policy_into(q, rand(rng, seq, d), v, out, pol)
    assert_close(out, attention_reference(q, k, v, causal, post=(2.0, -0.1, True)))
    assert_close(sess.forward(q, k, v), attention_reference(q, k, v, causal))


def test_attention_train_step_matches_reference(device, rng):
    seq, d, lr = 12, 8, 0.5
    q, k, v, t = (rand(rng, seq, d) for _ in range(4))
    sess = lc.AttentionSession(seq, d, False, device)
    out, v_new, loss = sess.train_step(q, k, v, t, lr)
    q64, k64, v64, t64 = (x.astype(np.float64) for x in (q, k, v, t))
    s = q64 @ k64.T / np.sqrt(d)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    o = p @ v64
    ref_loss = ((o - t64) ** 2).mean()
    ref_v = v64 - lr * p.T @ (2 * (o - t64) / o.size)
    assert_close(out, o)
    assert_close(v_new, ref_v)
    assert loss == pytest.approx(ref_loss, rel=1e-4)
    out2, _, loss2 = sess.train_step(q, k, v, t, lr)  # v uploaded again: same step
    assert loss2 == pytest.approx(ref_loss, rel=1e-4)


def test_capture_chain(device, rng):
    a, b, c = rand(rng, 9, 7), rand(rng, 7, 5), rand(rng, 9, 5)

    def chain(x, y, z):
        return lc.relu(lc.matrix_add(lc.matmul2d(x, y), z, 9, 5).reshape(9, 5))

    inputs = (a, b, c)
    if device == "cuda":
        import cupy

        inputs = tuple(cupy.asarray(t) for t in inputs)
    sess = lc.capture(chain, *inputs)
    ref = np.maximum(matmul_reference(a, b) + c, 0)
    assert_close(sess(*inputs), ref, scale=3)
    a2 = rand(rng, 9, 7)
    new = (a2, b, c) if device == "cpu" else (cupy.asarray(a2), inputs[1], inputs[2])
    assert_close(sess(*new), np.maximum(matmul_reference(a2, b) + c, 0), scale=3)
    assert sess.variant_count == 1
    with pytest.raises(lc.SessionMismatchError):
        sess(a[:3], b, c)


@pytest.mark.parametrize("seq,d", [(48, 48), (192, 8), (96, 48)])
@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_conv_attention_integrated(device, rng, seq, d, mode):
    x, w, bias = rand(rng, 1, 3, 8, 8), rand(rng, 16, 3, 3, 3), rand(rng, 16)
    ref = lc.conv_attention_reference(x, w, bias, seq, d, 1, 1, 1, 1)
    got = lc.lightning_conv_attention_torchstrong_nchw(x, w, bias, seq, d, 1, 1, 1, 1, device,
                                                       execution_mode=mode)
    assert_close(got, ref, scale=4)
    out = poisoned(seq * d)
    lc.lightning_conv_attention_torchstrong_nchw_into(x, w, bias, out, seq, d, 1, 1, 1, 1,
                                                      device, execution_mode=mode)
    assert_close(out, ref, scale=4)


def test_conv_attention_ab_report(device, rng):
    x, w, bias = rand(rng, 1, 3, 8, 8), rand(rng, 16, 3, 3, 3), rand(rng, 16)
    rep = lc.lightning_conv_attention_torchstrong_nchw_ab_report(x, w, bias, 48, 48, 1, 1, 1, 1,
                                                                 device, 1, 3)
    for key in ("allclose", "max_abs_diff", "mean_abs_diff", "max_rel_diff", "eager_ms",
                "graph_ms", "graph_over_eager", "winner"):
        assert key in rep
    assert rep["allclose"]
    lc.clear_integrated_attention_session_cache()


def test_sessions_in_threads(device):
    def work(seed: int) -> None:
        local = np.random.default_rng(seed)
        a, b = rand(local, 33, 17), rand(local, 17, 29)
        sess = lc.MatMulResidentSession(33, 17, 29, device)
        out = poisoned((33, 29))
        sess.start_into(a, b, out)
        for _ in range(5):
            sess.run_batch_sync_into(a, b, out, 7)
            assert_close(out, matmul_reference(a, b), scale=5)

    errors = run_in_threads(work, 4)
    assert not errors, errors


def _dims(rng, *bounds):
    return tuple(int(rng.integers(lo, hi + 1)) for lo, hi in bounds)


def test_every_session_after_update_and_many_replays(device, rng):
    """Each session kind, random shapes: parity with the float64 reference after ``update()``
    (or new uploads) and after many replays; a call with changed shapes raises."""
    m, k, n = _dims(rng, (1, 40), (1, 40), (1, 40))
    a, b = rand(rng, m, k), rand(rng, k, n)
    mm = lc.MatMulResidentSession(m, k, n, device)
    out = poisoned((m, n))
    mm.start_into(a, b, out)
    a2, b2 = rand(rng, m, k), rand(rng, k, n)
    mm.update(a=a2, b=b2)
    mm.run_batch_sync_cached_no_download(300)
    out = poisoned((m, n))
    mm.finish_into(a2, b2, out)
    assert_close(out, matmul_reference(a2, b2), scale=np.sqrt(k))
    with pytest.raises(lc.SessionMismatchError):
        mm.finish_into(rand(rng, m + 1, k), b2, poisoned((m + 1, n)))

    rows, cols = _dims(rng, (1, 50), (1, 50))
    ew = lc.MatrixElemwiseResidentSession(rows, cols, device)
    for _ in range(3):
        x, y = rand(rng, rows * cols), rand(rng, rows * cols) + 3.0
        out = poisoned(rows * cols)
        ew.mul_start_into(x, y, out)
        for _ in range(50):
            ew.mul_run_into(x, y, out)
        ew.div_finish_into(x, y, out)
        assert_close(out, x.astype(np.float64) / y, scale=2)
    with pytest.raises(lc.SessionMismatchError):
        ew.sub_start_into(rand(rng, rows * cols + 1), y, poisoned(rows * cols + 1))

    size = int(rng.integers(1, 3000))
    va = lc.VectorAddResidentSession(size, device)
    for _ in range(3):
        x, y = rand(rng, size), rand(rng, size)
        out = poisoned(size)
        va.start_into(x, y, out)
        for _ in range(40):
            va.run_into(x, y, out)
        va.finish_into(x, y, out)
        assert_close(out, x.astype(np.float64) + y)
    with pytest.raises(lc.SessionMismatchError):
        va.start_into(rand(rng, size + 2), rand(rng, size + 2), poisoned(size + 2))

    nb, c, h, w, oc = _dims(rng, (1, 3), (1, 4), (3, 13), (3, 13), (1, 6))
    cs = lc.Conv2dResidentSession(nb, c, h, w, oc, 3, 3, 1, 1, 1, 1, True, device)
    x, wt, bias = rand(rng, nb, c, h, w), rand(rng, oc, c, 3, 3), rand(rng, oc)
    out = poisoned((nb, oc, h, w))
    cs.start_into(x, wt, bias, out)
    x2, w2, b2 = rand(rng, nb, c, h, w), rand(rng, oc, c, 3, 3), rand(rng, oc)
    cs.update(x=x2, w=w2, bias=b2)
    out = poisoned((nb, oc, h, w))
    cs.run_batch_sync_into(x2, w2, b2, out, 120)
    assert_close(out, conv2d_reference(x2, w2, b2, 1, 1, 1, 1, relu=True), scale=3)
    with pytest.raises(lc.SessionMismatchError):
        cs.finish_into(rand(rng, nb, c, h + 1, w), w2, b2, poisoned((nb, oc, h + 1, w)))

    seq, d = _dims(rng, (1, 70), (1, 64))
    at = lc.AttentionSession(seq, d, False, device)
    for _ in range(3):
        q, kk, v = rand(rng, seq, d), rand(rng, seq, d), rand(rng, seq, d)
        out = poisoned((seq, d))
        for _ in range(30):
            at.forward_into(q, kk, v, out)
        assert_close(out, attention_reference(q, kk, v, False))
    with pytest.raises(lc.SessionMismatchError):
        at.forward_into(rand(rng, seq + 1, d), kk, v, poisoned((seq + 1, d)))
