"""The CUDA kernels' graph-safe scratch (``stream_scratch``), driven with a stand-in for CuPy.

A captured graph keeps the scratch addresses it saw, so buffers are never dropped; launches
on one stream share the smallest power-of-two buffer that fits; streams, roles and dtypes
never share. Conv's im2col path and attention's split-KV partials both draw from it.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from lightning_core.backends.cuda import memory


class _Stream:
    def __init__(self, ptr: int) -> None:
        self.ptr = ptr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def fake_cupy(monkeypatch):
    made = []

    def make(fill):
        def new(n, dtype):
            made.append(np.full(n, fill, dtype))
            return made[-1]
        return new

    # empty() poisons with 7 so a test can tell it from zeros().
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(empty=make(7), zeros=make(0)))
    monkeypatch.setattr(memory, "_scratch_sets", {})
    return made


def test_scratch_shares_by_size_class_and_never_drops(fake_cupy):
    f32, s1, s2 = np.dtype(np.float32), _Stream(11), _Stream(22)
    scratch = memory.stream_scratch
    a = scratch("conv.cols", f32, s1, 1000)
    assert a.size == 1024 and len(fake_cupy) == 1
    assert scratch("conv.cols", f32, s1, 600) is a  # fits: shared
    big = scratch("conv.cols", f32, s1, 3000)
    assert big.size == 4096 and big is not a
    assert scratch("conv.cols", f32, s1, 1000) is a  # the smallest that fits, still held
    assert scratch("conv.cols", f32, s2, 10) is not a  # another stream: its own
    assert scratch("conv.tmp", f32, s1, 10) is not a  # another role: its own
    assert scratch("conv.cols", np.float64, s1, 10).dtype == np.float64
    assert len(memory._scratch_sets) == 5 and len(fake_cupy) == 5
    assert scratch("conv.cols", f32, s1, 0).size >= 1


def test_zeroed_scratch_starts_at_zero(fake_cupy):
    counters = memory.stream_scratch("attention.counters", np.int32, _Stream(5), 33,
                                     zeroed=True)
    assert counters.dtype == np.int32 and counters.size == 64 and not counters.any()
    assert (memory.stream_scratch("attention.acc", np.float32, _Stream(5), 3) == 7).all()
