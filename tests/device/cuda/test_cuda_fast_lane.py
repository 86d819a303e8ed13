"""The fast lane on CUDA: each op's prepared launcher, repeated calls, alignment, aliasing.

A lane is keyed by shapes and dtypes, not by pointers, so the second call of a signature may
come with arrays at other addresses, another alignment or on another stream: every case here
runs the same signature at least twice and checks every element against float64 NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, cuda_only, rand

import lightning_core as lc
from lightning_core.errors import AliasingError
from lightning_core.ops.activations import gelu_reference, relu_reference
from lightning_core.ops.attention import attention_reference
from lightning_core.ops.conv import conv2d_reference
from lightning_core.ops.linear import linear_reference
from lightning_core.runtime import dispatch

pytestmark = [pytest.mark.cuda]


@pytest.fixture
def cp():
    import cupy

    return cupy


def _dev(cp, host):
    return cp.asarray(host)


def _nan_like(cp, shape, dtype=np.float32):
    return cp.full(shape, np.nan, dtype=dtype)


@cuda_only
@pytest.mark.parametrize("traced_run", [False, True])
def test_every_laned_op_is_correct_on_repeat(cp, rng, traced_run):
    """Each op three times with fresh inputs (the first builds the lane), traced or not."""
    dispatch.clear_decisions()
    lc.runtime_trace_enable(traced_run)
    try:
        for _ in range(3):
            a, b = rand(rng, 37, 29), rand(rng, 37, 29)
            assert_close(lc.vector_add(_dev(cp, a), _dev(cp, b)), a.astype(np.float64) + b)
            flat = lc.matrix_sub(_dev(cp, a.ravel()), _dev(cp, b.ravel()), 37, 29)
            assert flat.shape == (37 * 29,)
            assert_close(flat, (a.astype(np.float64) - b).ravel())
            x = rand(rng, 5, 333)
            assert_close(lc.relu(_dev(cp, x)), relu_reference(x))
            assert_close(lc.gelu(_dev(cp, x), "tanh"), gelu_reference(x, "tanh"))
            m, k, n = rand(rng, 33, 17), rand(rng, 17, 45), rand(rng, 45)
            got = lc.matmul(_dev(cp, m.ravel()), _dev(cp, k.ravel()), 33, 17, 45)
            assert_close(got, (m.astype(np.float64) @ k).ravel(), scale=4)
            assert_close(lc.linear(_dev(cp, m), _dev(cp, k), _dev(cp, n), "relu"),
                         linear_reference(m, k, n, "relu"), scale=4)
            q, kk, v = (rand(rng, 19, 24) for _ in range(3))
            assert_close(lc.attention2d(_dev(cp, q), _dev(cp, kk), _dev(cp, v), True),
                         attention_reference(q, kk, v, True))
            big = [rand(rng, 600, 64) for _ in range(3)]
            assert_close(lc.attention2d(*(_dev(cp, t) for t in big)),
                         attention_reference(*big, False))
            xi, w, bias = rand(rng, 2, 3, 13, 11), rand(rng, 5, 3, 3, 3), rand(rng, 5)
            assert_close(lc.lightning_conv_relu_nchw(_dev(cp, xi), _dev(cp, w), _dev(cp, bias),
                                                     2, 1, 1, 0),
                         conv2d_reference(xi, w, bias, 2, 1, 1, 0, True), scale=2)
    finally:
        lc.runtime_trace_enable(False)
        lc.runtime_trace_clear()


@cuda_only
def test_lane_is_taken_and_traced(cp, rng, lane_trace):
    a, b = (cp.asarray(rand(rng, 1000)) for _ in range(2))
    lc.vector_add(a, b)
    lc.vector_add(a, b)
    assert lane_trace() == [[], ["fast_lane"]]
    event = lc.runtime_trace_events()[-1]
    assert event["impl"] == "cuda.binary.vec" and event["shapes"] == [[1000], [1000], [1000]]


@cuda_only
def test_misaligned_views_on_a_known_signature(cp, rng):
    """Same shapes and dtypes, pointers off by 4 bytes: the scalar variant must run."""
    host = rand(rng, 2, 4101)
    base = cp.asarray(host)
    aligned = (base[0, :4100], base[1, :4100])
    shifted = (base[0, 1:], base[1, 1:])
    out = _nan_like(cp, 4100)
    for pair, ref in ((aligned, host[0, :4100].astype(np.float64) + host[1, :4100]),
                      (shifted, host[0, 1:].astype(np.float64) + host[1, 1:]),
                      (aligned, host[0, :4100].astype(np.float64) + host[1, :4100])):
        out.fill(np.nan)
        assert lc.vector_add_into(*pair, out) is out
        assert_close(out, ref)
    for view, ref in ((base[0, :4100], host[0, :4100]), (base[0, 1:], host[0, 1:])):
        assert_close(lc.relu(view), relu_reference(ref))
    qh = rand(rng, 3, 48 * 32 + 1)
    qd = cp.asarray(qh)
    views = [qd[i, 1:].reshape(48, 32) for i in range(3)]
    hosts = [qh[i, 1:].reshape(48, 32) for i in range(3)]
    fresh = [cp.asarray(h) for h in hosts]
    for args in (fresh, views, fresh):
        assert_close(lc.attention2d(*args), attention_reference(*hosts, False))


@cuda_only
def test_lane_follows_the_callers_stream(cp, rng):
    a_h, b_h = rand(rng, 1 << 16), rand(rng, 1 << 16)
    a, b = cp.asarray(a_h), cp.asarray(b_h)
    lc.vector_add(a, b)
    q = [cp.asarray(rand(rng, 700, 64)) for _ in range(3)]
    lc.attention2d(*q)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        got = lc.vector_add(a, b)
        att = lc.attention2d(*q)
    stream.synchronize()
    assert_close(got, a_h.astype(np.float64) + b_h)
    assert_close(att, attention_reference(*(t.get() for t in q), False))


@cuda_only
def test_into_overlap_takes_the_full_road(cp, rng, lane_trace):
    host = rand(rng, 2000)
    buf = cp.asarray(host)
    a, b = buf[:1000], buf[1000:]
    out = cp.empty(1000, cp.float32)
    lc.vector_add_into(a, b, out)
    lc.vector_add_into(a, b, out)
    # The exact alias (out is a) is allowed and exact; a partial overlap is refused.
    lc.vector_add_into(a, b, a)
    assert_close(a, host[:1000].astype(np.float64) + host[1000:])
    with pytest.raises(AliasingError, match=r"^\[vector_add_into\]"):
        lc.vector_add_into(buf[:1000], buf[1000:], buf[500:1500])
    assert lane_trace()[:2] == [[], ["fast_lane"]]
    assert all("fast_lane" not in n for n in lane_trace()[2:])


@cuda_only
def test_new_output_each_call(cp, rng):
    a, b = (cp.asarray(rand(rng, 64)) for _ in range(2))
    first = lc.vector_add(a, b)
    second = lc.vector_add(a, b)
    assert first.data.ptr != second.data.ptr
    assert_close(first, second.get())


@cuda_only
def test_recycled_results_are_never_ones_still_held(cp, rng):
    """Results the caller dropped are reused (same stream), held ones never are, and every
    result is correct whichever buffer it landed in."""
    a, b = (cp.asarray(rand(rng, 300)) for _ in range(2))
    ref = a.get().astype(np.float64) + b.get()
    dispatch.clear_decisions()
    lc.vector_add(a, b)  # the full road, which builds the lane (and its recycler)
    key = dispatch.lane_key("vector_add", "auto", ("add",), (a, b))
    lane = dispatch._lanes[key]
    kept = [lc.vector_add(a, b) for _ in range(5)]
    assert len({r.data.ptr for r in kept}) == 5
    assert [id(x) for x in lane.run.recycler._arrays] == [id(kept[0]), id(kept[1])]
    del kept[0]  # the caller drops a result the recycler holds
    again = lc.vector_add(a, b)
    assert again.data.ptr not in {r.data.ptr for r in kept}  # never one still held
    # Whether the dropped one comes back is the recycler's own test (test_kernel_call.py):
    # here it did in plain runs, but not under compute-sanitizer (unexplained, see the notes).
    assert dispatch._lanes.get(key) is lane
    view = again[10:]
    del again
    fresh = lc.vector_add(a, b)  # the view pins its base, kept[0] is held: never reused
    assert fresh.data.ptr not in {view.data.ptr - 40, *(r.data.ptr for r in kept)}
    for r in (*kept, fresh):
        assert_close(r, ref)
    assert_close(view, ref[10:])
