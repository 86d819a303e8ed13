"""The dispatch fast lane: a repeated, identical call skips the checks, nothing else does."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, poisoned, rand

import lightning_core as lc
from lightning_core import config
from lightning_core.ops.matmul import matmul_reference
from lightning_core.runtime import dispatch


def test_second_identical_call_takes_the_lane_and_is_correct(lane_trace, rng):
    a, b = rand(rng, 7, 5), rand(rng, 5, 3)
    first = lc.matmul2d(a, b, "cpu")
    a2 = rand(rng, 7, 5)
    second = lc.matmul2d(a2, b, "cpu")
    assert lane_trace() == [[], ["fast_lane"]]
    assert_close(first, matmul_reference(a, b))
    assert_close(second, matmul_reference(a2, b))
    event = lc.runtime_trace_events()[-1]
    assert event["op"] == "matmul2d" and event["shapes"] == [[7, 5], [5, 3], [7, 3]]


def test_flat_forms_keep_their_shapes_on_the_lane(lane_trace, rng):
    a, b = rand(rng, 12), rand(rng, 8)
    for _ in range(2):
        got = lc.matmul_np(a, b, 3, 4, 2, "cpu")
        assert got.shape == (6,)
        assert_close(got, matmul_reference(a.reshape(3, 4), b.reshape(4, 2)).reshape(-1))
    sub = lc.matrix_sub(a, a[::-1].copy(), 3, 4, "cpu")
    sub = lc.matrix_sub(a, a[::-1].copy(), 3, 4, "cpu")
    assert sub.shape == (12,)
    assert lane_trace()[-1] == ["fast_lane"]


def test_scalar_of_another_type_is_checked_again():
    a = np.ones(12, np.float32)
    lc.matrix_sub(a, a, 3, 4, "cpu")
    with pytest.raises(lc.InvalidArgumentError, match=r"^\[matrix_sub\]"):
        lc.matrix_sub(a, a, 3.0, 4, "cpu")
    with pytest.raises(lc.InvalidArgumentError):
        lc.linear(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32), None, ["relu"],
                  "cpu")


def test_no_lane_for_policy_copies_or_lists(lane_trace, rng):
    a, b = rand(rng, 4, 4), rand(rng, 4, 4)
    for _ in range(2):
        lc.matmul2d(a.astype(np.float64), b, "cpu")  # cast: a copy was made
        lc.matmul2d(np.asfortranarray(a), b, "cpu")  # non-contiguous: a copy was made
        lc.matmul_np_with_policy(a.ravel(), b.ravel(), 4, 4, 4, "cpu", lc.MatMulIoPolicy())
        lc.matmul(a.ravel().tolist(), b.ravel().tolist(), 4, 4, 4, "cpu")
    assert all("fast_lane" not in notes for notes in lane_trace())


def test_into_takes_the_lane_and_writes_every_element(lane_trace, rng):
    a, b = rand(rng, 5, 6), rand(rng, 6, 7)
    for flat in (False, True):
        for _ in range(2):
            out = poisoned(35 if flat else (5, 7))
            assert lc.matmul2d_into(a, b, out, "cpu") is out
            assert_close(out.reshape(5, 7), matmul_reference(a, b))
    assert lane_trace() == [[], ["fast_lane"], [], ["fast_lane"]]


def test_into_overlapping_an_input_takes_the_full_road(lane_trace, rng):
    x = rand(rng, 64)
    y = rand(rng, 64)
    out = np.empty(64, np.float32)
    lc.vector_add_into(x, y, out, "cpu")
    lc.vector_add_into(x, y, out, "cpu")
    expected = x.astype(np.float64) + y
    lc.vector_add_into(x, y, x, "cpu")  # in place: allowed, checked on the full road
    assert_close(x, expected)
    with pytest.raises(lc.AliasingError):
        lc.matmul2d_into(a := rand(rng, 8, 8), a, a, "cpu")
    assert lane_trace()[:3] == [[], ["fast_lane"], []]


def test_config_change_invalidates_lanes(lane_trace, rng):
    a = rand(rng, 3, 3)
    lc.matmul2d(a, a, "cpu")
    lc.matmul2d(a, a, "cpu")
    with config.override(LC_TUNE=0):
        lc.matmul2d(a, a, "cpu")
    assert lane_trace() == [[], ["fast_lane"], []]


def test_bad_input_on_a_known_signature_still_raises():
    a = np.ones((4, 4), np.float32)
    lc.attention2d(a, a, a, False, "cpu")
    with pytest.raises(lc.InvalidArgumentError, match=r"^\[attention2d\]"):
        lc.attention2d(a, a, a, 2, "cpu")
    with pytest.raises(lc.DeviceError):
        lc.attention2d(a, a, a, False, "tpu")


def test_auto_keys_tell_pinned_host_arrays_apart(monkeypatch):
    """device="auto" routes host data by its transfer speed, so a pinned array must not find
    the lane (or cached decision) a pageable one of the same shape made, nor the reverse."""
    from lightning_core.runtime import arrays

    n = arrays.PINNED_MIN_BYTES // 4
    a, b = np.ones(n, np.float32), np.ones(n, np.float32)
    asked = []

    def check(x):
        asked.append(x.nbytes)
        return x is a

    monkeypatch.setattr(arrays, "_PINNED_CHECK", [check])
    small = np.ones(4, np.float32)  # below the threshold: never asked, always pageable
    assert dispatch.lane_key("vector_add", "auto", ("add",), (small, small))[-1] is None
    assert arrays.pinned_flags((small, small)) == (False, False)
    assert asked == []
    ab = dispatch.lane_key("vector_add", "auto", ("add",), (a, b))
    ba = dispatch.lane_key("vector_add", "auto", ("add",), (b, a))
    assert ab != ba and ab[-1] == (True, False) and ba[-1] == (False, True)
    assert dispatch.lane_key("vector_add", "cpu", ("add",), (a, b))[-1] is None
    monkeypatch.setattr(arrays, "_PINNED_CHECK", [])
    assert dispatch.lane_key("vector_add", "auto", ("add",), (a, b))[-1] is None


def test_auto_call_asks_whether_an_array_is_pinned_once(monkeypatch):
    """A device="auto" host call asks the driver once per array: the lane key's answer is the
    decision key's and the crossover's (kept on the call); a copied input counts as pageable."""
    from lightning_core.backends.cpu import CpuBackend
    from lightning_core.runtime import arrays

    n = arrays.PINNED_MIN_BYTES // 4
    a, b = np.ones(n, np.float32), np.full(n, 2.0, np.float32)
    asked = []

    def check(x):
        asked.append(x.nbytes)
        return True  # every array big enough counts as pinned

    seen = []
    real_run = CpuBackend.run

    def spy(self, impl, call):
        seen.append(call.pinned)
        return real_run(self, impl, call)

    monkeypatch.setattr(arrays, "_PINNED_CHECK", [check])
    monkeypatch.setattr(CpuBackend, "run", spy)
    dispatch.clear_decisions()
    assert np.array_equal(lc.vector_add(a, b), a + b)
    assert len(asked) == 2 and seen == [(True, True)]
    asked.clear()
    ints = np.ones(n, np.int32)  # converted to float32: a copy, which is pageable
    assert np.array_equal(lc.vector_add(ints, b), ints + b)
    assert len(asked) == 2 and seen[-1] == (False, True)


def test_softmax_host_calls_take_the_lane_with_their_shape(lane_trace, rng):
    """A repeated host softmax over the last axis takes the lane and keeps x's rank; a moved
    axis (a copy) never does; `_into` fills every element on the lane."""
    from lightning_core.ops.softmax import softmax_reference

    for _ in range(2):
        x = rand(rng, 3, 5, 7)
        got = lc.softmax(x, -1, "cpu")
        assert got.shape == (3, 5, 7)
        assert_close(got, softmax_reference(x, -1))
    for _ in range(2):
        x = rand(rng, 3, 5, 7)
        assert_close(lc.softmax(x, 1, "cpu"), softmax_reference(x, 1))
    for _ in range(2):
        x, out = rand(rng, 6, 9), poisoned((6, 9))
        assert lc.softmax_into(x, out, -1, "cpu") is out
        assert_close(out, softmax_reference(x, -1))
    assert lane_trace() == [[], ["fast_lane"], ["input_copied"], ["input_copied"], [],
                            ["fast_lane"]]


def test_layer_norm_lane_is_keyed_by_eps_and_the_given_parameters(lane_trace, rng):
    from lightning_core.ops.norm import layer_norm_reference

    x, w, b = rand(rng, 4, 3, 10), rand(rng, 10), rand(rng, 10)
    calls = [(w, b, 1e-5), (w, b, 1e-5), (w, b, 0.5), (None, b, 0.5), (w, None, 0.5),
             (None, None, 0.5), (None, None, 0.5)]
    for weight, bias, eps in calls:
        got = lc.layer_norm(x, weight, bias, eps, "cpu")
        assert got.shape == x.shape
        assert_close(got, layer_norm_reference(x, weight, bias, eps))
    assert lane_trace() == [[], ["fast_lane"], [], [], [], [], ["fast_lane"]]
    with pytest.raises(lc.InvalidArgumentError, match=r"^\[layer_norm\]"):
        lc.layer_norm(x, w, b, -1.0, "cpu")  # a bad eps is never a known lane
    out = poisoned(x.shape)
    for _ in range(2):
        assert lc.layer_norm_into(x, w, b, out, 1e-5, "cpu") is out
        assert_close(out, layer_norm_reference(x, w, b, 1e-5))
