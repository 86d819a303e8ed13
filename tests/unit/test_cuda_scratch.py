"""The CUDA conv lowered path's scratch registry, driven with a stand-in for CuPy (no GPU).

A captured graph keeps the scratch addresses it saw, so buffers are never dropped; shapes on
one stream share the smallest power-of-two buffer that fits, streams and roles never share.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from lightning_core.backends.cuda import conv


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

    def empty(n, dtype):
        made.append(np.empty(n, dtype))
        return made[-1]

    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(empty=empty))
    monkeypatch.setattr(conv, "_scratch_sets", {})
    return made


def test_scratch_shares_by_size_class_and_never_drops(fake_cupy):
    f32, s1, s2 = np.dtype(np.float32), _Stream(11), _Stream(22)
    a = conv._scratch("cols", f32, s1, 1000)
    assert a.size == 1024 and len(fake_cupy) == 1
    assert conv._scratch("cols", f32, s1, 600) is a  # fits: shared
    big = conv._scratch("cols", f32, s1, 3000)
    assert big.size == 4096 and big is not a
    assert conv._scratch("cols", f32, s1, 1000) is a  # the smallest that fits, still held
    assert conv._scratch("cols", f32, s2, 10) is not a  # another stream: its own
    assert conv._scratch("tmp", f32, s1, 10) is not a  # another role: its own
    assert conv._scratch("cols", np.dtype(np.float64), s1, 10).dtype == np.float64
    assert len(conv._scratch_sets) == 5 and len(fake_cupy) == 5
    assert conv._scratch("cols", f32, s1, 0).size >= 1
