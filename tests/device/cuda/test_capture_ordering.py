"""A captured chain is ordered with the caller's stream on both ends.

Inputs read in place (``inputs="address"``) may still be being written on the caller's
stream, and outputs handed back without a host sync (``sync=False``) are read there next. A
spin kernel holds the caller's stream long enough that a missing wait would read stale data.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, cuda_only, rand

import lightning_core as lc

pytestmark = [pytest.mark.cuda, cuda_only]

_SPIN = r"""
extern "C" __global__ void spin(long long cycles) {
    long long t0 = clock64();
    while (clock64() - t0 < cycles) {}
}
"""


@pytest.fixture
def cp():
    import cupy

    return cupy


def _hold(cp, stream, ms: float = 20.0) -> None:
    """Queue a kernel on ``stream`` that busy-waits about ``ms`` milliseconds."""
    rate_khz = cp.cuda.runtime.getDeviceProperties(0)["clockRate"]
    cp.RawKernel(_SPIN, "spin")((1,), (1,), (np.int64(rate_khz * ms),), stream=stream)


def test_address_mode_waits_for_inputs_written_on_the_callers_stream(cp, rng):
    a0 = rand(rng, 33, 17)
    x = cp.asarray(a0)
    sess = lc.capture(lambda t: lc.relu(t), x, inputs="address")
    assert_close(sess(x), np.maximum(a0, 0))
    user = cp.cuda.Stream(non_blocking=True)
    a1 = rand(rng, 33, 17)
    staged = cp.asarray(a1)
    with user:
        _hold(cp, user)
        x[...] = staged  # lands only after the spin
        got = sess(x)
    assert_close(got, np.maximum(a1, 0))


def test_unsynced_outputs_are_ordered_before_the_callers_next_work(cp, rng):
    a0 = rand(rng, 40, 24)
    x = cp.asarray(a0)
    sess = lc.capture(lambda t: lc.relu(t), x)
    sess(x)
    a1 = rand(rng, 40, 24)
    x2 = cp.asarray(a1)
    user = cp.cuda.Stream(non_blocking=True)
    with user:
        sess._ex.run_eager(lambda: _hold(cp, sess._ex.stream))  # the replay starts late
        out = sess(x2, sync=False)
        copy = out.copy()  # queued on the caller's stream: must see the replay's result
    user.synchronize()
    assert_close(copy, np.maximum(a1, 0))


def test_address_replays_on_several_caller_streams_and_new_variants(cp, rng):
    """Replays queued on the caller's own streams stay ordered with everything the session
    queues on its stream later (a new variant's capture, an evicted variant's memory)."""
    hosts = [rand(rng, 29, 11) for _ in range(4)]
    xs = [cp.asarray(h) for h in hosts]
    sess = lc.capture(lambda t: lc.relu(t), xs[0], inputs="address", max_variants=2)
    streams = [cp.cuda.Stream(non_blocking=True) for _ in range(2)]
    for round_ in range(3):
        for i, x in enumerate(xs):  # 4 address sets through 2 variants: evictions each round
            stream = streams[(i + round_) % 2]
            with stream:
                _hold(cp, stream, 2.0)
                got = sess(x, sync=False).copy()  # read on the caller's stream, no host sync
            stream.synchronize()
            assert_close(got, np.maximum(hosts[i], 0))
    assert sess.variant_count <= 2
    # Same variant twice in a row on one held stream: the second replay is the graph launch
    # on the caller's stream, after the spin and the rewrite of the input.
    with streams[0]:
        sess(xs[0])
        _hold(cp, streams[0])
        xs[0][...] = cp.asarray(hosts[1])
        got = sess(xs[0])
    assert_close(got, np.maximum(hosts[1], 0))
