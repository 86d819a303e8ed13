"""``KernelCall``: the prepared parameter block, the CuPy fallback, and direct launches.

The first tests need no GPU: they read the parameter block and drive the fallback with a fake
kernel. The GPU tests compare the direct ``cuLaunchKernel`` path with CuPy's own launch of the
same kernel on fresh inputs, under graph capture, and from several threads at once.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np
import pytest
from conftest import cuda_only, run_in_threads

from lightning_core.backends.cuda import launch as launch_mod
from lightning_core.backends.cuda.launch import NULL, KernelCall


class _FakeArray:
    def __init__(self, ptr: int) -> None:
        self.data = type("Mem", (), {"ptr": ptr})()


class _FakeKernel:
    """Records CuPy-style launches; has no ``ptr``, so KernelCall always falls back."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, grid, block, args, *, stream, shared_mem):
        self.calls.append((grid, block, args, stream, shared_mem))


def test_parameter_block_holds_each_scalar_in_its_slot():
    scalars = (np.int32(-7), np.int64(1 << 40), np.float32(1.5), np.float64(-2.25),
               np.uint64(0xDEADBEEF))
    call = KernelCall(_FakeKernel(), (3,), (128, 2), 64, 2, scalars)
    raw = call._store.view(np.uint8)
    assert len(call._store) == 7
    for i, value in enumerate(scalars, start=2):
        got = raw[8 * i:8 * i + value.itemsize].view(value.dtype)[0]
        assert got == value
    base = call._store.ctypes.data
    assert [int(p) for p in call._params] == [base + 8 * i for i in range(7)]
    assert call.grid == (3, 1, 1) and call.block == (128, 2, 1)


def test_unsupported_fixed_argument_is_refused():
    with pytest.raises(TypeError, match="KernelCall"):
        KernelCall(_FakeKernel(), (1,), (1,), 0, 1, (3,))


def test_fallback_passes_arrays_then_scalars_and_nulls(monkeypatch):
    monkeypatch.setattr(launch_mod, "_LAUNCH", None)
    kernel = _FakeKernel()
    call = KernelCall(kernel, (2, 2), (32,), 16, 3, (np.int32(5),))
    a, b = _FakeArray(256), _FakeArray(512)
    call("stream", a, NULL, b)
    (grid, block, args, stream, smem), = kernel.calls
    assert grid == (2, 2, 1) and block == (32, 1, 1) and smem == 16 and stream == "stream"
    assert args[0] is a and args[2] is b and args[3] == np.int32(5)
    assert args[1] == np.uint64(0) and isinstance(args[1], np.uint64)


def test_direct_launch_fills_the_block_and_calls_the_driver(monkeypatch):
    """The driver path with a stand-in for ``cuLaunchKernel`` that reads the parameter block
    it is handed: pointers first, then the scalars; the shared block normally, a private one
    while the lock is held; a wrong pointer count is refused."""
    seen = []

    def fake_driver(fn, gx, gy, gz, bx, by, bz, smem, stream_ptr, params, extra):
        addresses = (ctypes.c_uint64 * 3).from_address(params)
        values = [ctypes.c_uint64.from_address(a).value for a in addresses]
        seen.append(((fn, gx, gy, gz, bx, by, bz, smem, stream_ptr, extra), params, values))

    class Kernel:
        ptr = 77

    monkeypatch.setattr(launch_mod, "_LAUNCH", fake_driver)
    monkeypatch.setattr(launch_mod, "_NATIVE", None)  # the Python launch (the C one is real)
    call = KernelCall(Kernel, (3,), (64, 2), 8, 2, (np.int32(5),))
    call.launch_raw(9, 1000, 2000)
    call(type("Stream", (), {"ptr": 10})(), _FakeArray(3000), NULL)
    with call._lock:  # another caller holds the shared block: a private one is used
        call.launch_raw(11, 4000, 5000)
    with pytest.raises(ValueError):
        call.launch_raw(9, 1)
    (g1, p1, v1), (g2, p2, v2), (g3, p3, v3) = seen
    assert g1 == (77, 3, 1, 1, 64, 2, 1, 8, 9, 0) and v1 == [1000, 2000, 5]
    assert g2[8] == 10 and v2 == [3000, 0, 5] and p2 == p1
    assert g3[8] == 11 and v3 == [4000, 5000, 5] and p3 != p1


# -- on the GPU -----------------------------------------------------------------------------
_SRC = r"""
extern "C" __global__ void axpb(const float* x, float* out, long long n, float a, double b,
                                int flip) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = (flip ? -1.0f : 1.0f) * (a * x[i] + (float)b);
}
"""


@pytest.fixture
def cp():
    import cupy

    return cupy


def _axpb(cp, n):
    kernel = cp.RawKernel(_SRC, "axpb")
    scalars = (np.int64(n), np.float32(0.5), np.float64(-3.0), np.int32(1))
    return KernelCall(kernel, (-(-n // 128),), (128,), 0, 2, scalars)


def _expected(x):
    return -(0.5 * x.astype(np.float64) - 3.0)


@cuda_only
@pytest.mark.cuda
def test_direct_launch_matches_the_reference(cp, rng):
    assert launch_mod.direct_available(), "CuPy on the GPU machine exposes launchKernel"
    n = 1000 + int(rng.integers(1, 500))
    call = _axpb(cp, n)
    assert call._fn is not None
    stream = cp.cuda.Stream(non_blocking=True)
    for _ in range(3):  # fresh inputs and outputs at new addresses each time
        x = rng.standard_normal(n).astype(np.float32)
        dx, out = cp.asarray(x), cp.full(n, np.nan, np.float32)
        call(stream, dx, out)
        stream.synchronize()
        np.testing.assert_allclose(out.get(), _expected(x), rtol=1e-6, atol=1e-6)


@cuda_only
@pytest.mark.cuda
def test_raw_pointer_launch_and_private_block_fallback(cp, rng):
    """``launch_raw`` from integers, and the private parameter block used while another
    caller holds the shared one (forced here by holding the lock)."""
    n = 517
    call = _axpb(cp, n)
    assert call.launch_raw is not None
    stream = cp.cuda.Stream(non_blocking=True)
    for hold in (False, True):
        x = rng.standard_normal(n).astype(np.float32)
        dx, out = cp.asarray(x), cp.full(n, np.nan, np.float32)
        if hold:
            call._lock.acquire()
        try:
            call.launch_raw(stream.ptr, dx.data.ptr, out.data.ptr)
        finally:
            if hold:
                call._lock.release()
        stream.synchronize()
        np.testing.assert_allclose(out.get(), _expected(x), rtol=1e-6, atol=1e-6)


@cuda_only
@pytest.mark.cuda
def test_direct_launch_is_captured_in_a_graph(cp, rng):
    n = 777
    call = _axpb(cp, n)
    stream = cp.cuda.Stream(non_blocking=True)
    dx, out = cp.zeros(n, np.float32), cp.full(n, np.nan, np.float32)
    with stream:
        stream.begin_capture()
        call(stream, dx, out)
        graph = stream.end_capture()
    for _ in range(2):
        x = rng.standard_normal(n).astype(np.float32)
        dx.set(x, stream=stream)
        out.fill(np.nan)
        stream.synchronize()
        graph.launch(stream)
        stream.synchronize()
        np.testing.assert_allclose(out.get(), _expected(x), rtol=1e-6, atol=1e-6)


@cuda_only
@pytest.mark.cuda
def test_threads_sharing_one_call_each_get_their_own_result(cp, rng):
    """Eight threads launch the same KernelCall on their own arrays at once: the parameter
    block is never read half-written (the lock, or the fallback when it is taken)."""
    n = 4096
    call = _axpb(cp, n)
    xs = [rng.standard_normal(n).astype(np.float32) for _ in range(8)]
    outs: list = [None] * 8
    barrier = threading.Barrier(8, timeout=60)  # a thread that fails early frees the rest

    def work(i):
        stream = cp.cuda.Stream(non_blocking=True)
        dx = cp.asarray(xs[i])
        barrier.wait()
        for _ in range(200):
            out = cp.full(n, np.nan, np.float32)
            call(stream, dx, out)
        stream.synchronize()
        outs[i] = out.get()

    assert not run_in_threads(work, 8)
    for x, out in zip(xs, outs, strict=True):
        np.testing.assert_allclose(out, _expected(x), rtol=1e-6, atol=1e-6)


# -- the fast lane's result recycler (no GPU needed: NumPy arrays stand in) -------------------
def _recycler(shape=(8,), slots=2):
    from lightning_core.backends.cuda.memory import Recycler

    made = []

    def new(shape, dtype):
        made.append(np.empty(shape, dtype))
        return made[-1]

    return Recycler(new, shape, np.dtype(np.float32), slots), made


def test_recycler_reuses_only_dropped_results_on_their_stream():
    rec, made = _recycler()
    first = rec.take(1)
    first_id = id(first)
    second = rec.take(1)  # first is still held: a new one
    assert second is not first and len(made) == 2
    made.clear()  # the test's own list must not count as a caller's reference
    del first
    again = rec.take(1)
    assert id(again) == first_id  # dropped by the caller: handed out again
    assert rec.take(2) is not again and rec.take(2) is not second  # other stream: new arrays


def test_recycler_keeps_results_with_live_views():
    rec, made = _recycler()
    first = rec.take(0)
    view = first[2:]
    made.clear()
    del first
    assert rec.take(0).base is None and rec.take(0) is not view.base  # the view pins its base
    del view


def test_recycler_limits_slots_and_sizes():
    from lightning_core.backends.cuda import memory

    rec, made = _recycler(slots=1)
    a = rec.take(0)
    b = rec.take(0)  # slot taken by a, which is held: b is not kept
    made.clear()
    del b
    assert rec.take(0) is not a  # b was never kept, a is still held
    big, big_made = _recycler(shape=(memory._RECYCLE_MAX_BYTES // 4 + 1,))
    big_made.clear()
    del big_made[:]
    x = big.take(0)
    del x
    big.take(0)
    assert big._slots == 0 and not big._arrays  # too big to keep: each take makes a new one


def _budget_matches_what_is_kept():
    from lightning_core.backends.cuda import memory

    kept = sum(r._nbytes * len(r._arrays) for r in list(memory._recyclers))
    return memory._recycled_bytes[0] == kept


def test_recycler_lets_everything_go_on_out_of_memory():
    """A device out-of-memory while making a result releases what every recycler keeps (it may
    be what the device lacks) and tries once more; the budget count follows. (Other tests'
    recyclers may exist: the budget is checked against what all of them keep.)"""
    from lightning_core.backends.cuda import memory

    class Oom(Exception):
        pass

    other, _ = _recycler()
    kept = other.take(0)
    del kept  # dropped by the caller, still kept by ``other``
    assert len(other._arrays) == 1 and _budget_matches_what_is_kept()
    fail = [True]

    def new(shape, dtype):
        if fail and other._arrays:  # "the device is full" while other keeps its array
            fail.clear()
            raise Oom("out of memory")
        return np.empty(shape, dtype)

    rec = memory.Recycler(new, (8,), np.dtype(np.float32), oom=Oom)
    out = rec.take(0)
    assert out.shape == (8,) and not fail
    assert not other._arrays and len(rec._arrays) == 1  # released, then rec kept its new one
    assert _budget_matches_what_is_kept()

    def broken(shape, dtype):  # an error that is not the out-of-memory type is not swallowed
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        memory.Recycler(broken, (8,), np.dtype(np.float32), oom=Oom).take(0)
    rec = other = None
    import gc

    gc.collect()
    assert _budget_matches_what_is_kept()


@cuda_only
@pytest.mark.cuda
def test_recycler_on_cupy_arrays(cp):
    """The refcount rule on real CuPy arrays (the GPU machine's Python): a dropped result comes
    back, a held one or one with a live view does not."""
    from lightning_core.backends.cuda.memory import Recycler

    rec = Recycler(cp.ndarray, (64,), np.dtype(np.float32))
    one = rec.take(0)
    two = rec.take(0)
    assert one is not two
    one_id = id(one)
    del one
    back = rec.take(0)
    assert id(back) == one_id
    view = back[1:]
    del back
    assert id(rec.take(0)) != one_id  # the view holds its base
    del view, two


def test_recycler_budget_is_returned_when_it_dies():
    from lightning_core.backends.cuda import memory

    before = memory._recycled_bytes[0]
    rec, made = _recycler(shape=(1024,))
    held = [rec.take(0), rec.take(0)]
    assert memory._recycled_bytes[0] == before + 2 * 4096
    del rec, held, made
    import gc

    gc.collect()
    assert memory._recycled_bytes[0] == before
