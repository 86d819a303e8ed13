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
