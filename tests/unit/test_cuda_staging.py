"""The CUDA backend's staged uploads (``HostIo.upload_many``), driven with a stand-in for CuPy.

The stand-in's "device" is host memory and its asynchronous copy runs at once, so every byte
that would travel is checked: one batch per call, chunks queued in order, pinned sources sent
directly, staging blocks reused, a failing copy re-raised; with the native copy pool and with
the Python one.
"""

from __future__ import annotations

import ctypes
import types

import numpy as np
import pytest

from lightning_core import config
from lightning_core.backends.cuda import memory


class _Mem(bytearray):
    """Pinned memory stand-in: a buffer with a ``ptr``."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.ptr = ctypes.addressof((ctypes.c_char * size).from_buffer(self))


class _Event:
    done = True

    def record(self, stream=None):
        pass


class _Dev:
    """A 'device' array: host memory with ``.data.ptr``."""

    def __init__(self, n: int) -> None:
        self.host = np.full(n, 0xAB, np.uint8)
        self.data = types.SimpleNamespace(ptr=self.host.ctypes.data)


@pytest.fixture(params=["native", "python"])
def pool(request, monkeypatch):
    """Which copy pool stages: the native module's (when it builds here) or the Python one."""
    if request.param == "python":
        monkeypatch.setattr(memory, "_host_copy", lambda: None)
    elif memory._host_copy() is None:
        pytest.skip("the native module is not built here: the Python pool stages")
    return request.param


@pytest.fixture
def io(monkeypatch, pool):
    copies = []

    def memcpy(dst, src, n, kind, stream):
        copies.append((dst, n))
        ctypes.memmove(dst, src, n)

    cuda = types.SimpleNamespace(alloc_pinned_memory=_Mem, Event=lambda **kw: _Event(),
                                 runtime=types.SimpleNamespace(memcpyAsync=memcpy))
    fake = types.SimpleNamespace(cuda=cuda)
    pinned = set()
    monkeypatch.setattr(memory, "_is_memory_pinned", [lambda ptr: ptr in pinned])
    monkeypatch.setattr(memory, "_pinned_memo", {})
    host_io = memory.HostIo(fake, types.SimpleNamespace(ptr=5))
    host_io.copies, host_io.pinned = copies, pinned
    return host_io


def _src(rng, nbytes):
    return rng.integers(0, 255, nbytes, dtype=np.uint8)


@pytest.mark.parametrize("sizes,threads", [((3 << 20, 5 << 20), 4), ((20 << 20,), 8),
                                           ((100, 2 << 20, 0), 4), ((7 << 20,), 1)])
def test_every_byte_arrives_and_chunks_go_in_order(io, rng, sizes, threads):
    srcs = [_src(rng, n) for n in sizes]
    devs = [_Dev(n) for n in sizes]
    with config.override(LC_HOST_THREADS=threads):
        assert io.upload_many(list(zip(srcs, devs, strict=True))) == sum(sizes)
    for src, dev in zip(srcs, devs, strict=True):
        np.testing.assert_array_equal(dev.host, src)
    # DMA order: source by source, chunk by chunk (each chunk queued once it is staged).
    starts = [d.data.ptr for d in devs if d.host.size]
    order = [next(i for i, s in enumerate(starts) if s <= dst < s + (1 << 40)) for dst, _ in
             io.copies]
    assert order == sorted(order)
    assert sum(n for _, n in io.copies) == sum(sizes)


def test_batch_picks_the_thread_count_by_total_bytes():
    with config.override(LC_HOST_THREADS=8):
        assert memory.HostIo._workers(512 << 10) == 1
        assert memory.HostIo._workers(8 << 20) == 2
        assert memory.HostIo._workers(32 << 20) == 4
    with config.override(LC_HOST_THREADS=1):
        assert memory.HostIo._workers(32 << 20) == 1


def test_pinned_sources_skip_staging(io, rng):
    a, b = _src(rng, 3 << 20), _src(rng, 3 << 20)
    io.pinned.add(a.ctypes.data)
    da, db = _Dev(a.size), _Dev(b.size)
    io.upload_many([(a, da), (b, db)])
    np.testing.assert_array_equal(da.host, a)
    np.testing.assert_array_equal(db.host, b)
    assert (da.data.ptr, a.size) in io.copies  # one direct copy from the pinned source
    assert io.staged_bytes() == 4 << 20  # only b was staged (one block, kept for reuse)


def test_call_flags_answer_for_the_driver_where_they_can(io, rng, monkeypatch):
    """A call's pinned flags (host_pinned_flags: True, or False for arrays of at least
    PINNED_MIN_BYTES, which were asked) stand for the driver's answer; a False flag on a
    smaller array was never asked, so the driver is."""
    asked = []
    monkeypatch.setattr(memory, "_is_memory_pinned", [lambda ptr: asked.append(ptr) or True])
    monkeypatch.setattr(memory, "_pinned_memo", {})
    big, small = _src(rng, memory.PINNED_MIN_BYTES), _src(rng, 1000)
    assert memory.pinned_by_flag(big, True) and not asked
    assert not memory.pinned_by_flag(big, False) and not asked
    assert memory.pinned_by_flag(small, False) and asked == [small.ctypes.data]
    assert memory.pinned_by_flag(big, None) and asked[-1] == big.ctypes.data
    # upload_many takes the flags: a big source flagged pinned goes straight to DMA unasked.
    asked.clear()
    dev = _Dev(big.size)
    io.upload_many([(big, dev)], [True])
    np.testing.assert_array_equal(dev.host, big)
    assert not asked and io.staged_bytes() == 0 and (dev.data.ptr, big.size) in io.copies


def test_the_driver_is_asked_once_per_owning_array(monkeypatch, rng):
    """is_pinned asks the driver once per array that owns the memory, while that array lives:
    its views get the same answer unasked; a new owner (even at a reused address) is asked."""
    asked = []
    pinned = set()
    monkeypatch.setattr(memory, "_is_memory_pinned",
                        [lambda ptr: asked.append(ptr) or ptr in pinned])
    monkeypatch.setattr(memory, "_pinned_memo", {})
    a = _src(rng, 4096)
    pinned.add(a.ctypes.data)
    assert memory.is_pinned(a) and memory.is_pinned(a) and len(asked) == 1
    view = a[1024:].reshape(4, -1)[:, :8]
    assert memory.is_pinned(view) and len(asked) == 1  # the owner's answer
    b = _src(rng, 4096)
    assert not memory.is_pinned(b) and not memory.is_pinned(b[5:]) and len(asked) == 2
    assert not memory.is_pinned(a[:0]) and len(asked) == 2  # empty: never asked
    del a, view, b
    for _ in range(3):  # new owners, maybe at reused ids and addresses: asked again
        c = _src(rng, 4096)
        memory.is_pinned(c)
        del c
    assert len(asked) == 5


def test_staging_blocks_are_reused(io, rng):
    a = _src(rng, 6 << 20)
    for _ in range(3):
        io.upload_many([(a, _Dev(a.size))])
    assert io.staged_bytes() == 8 << 20


@pytest.mark.parametrize("pool", ["python"], indirect=True)  # native: memcpy, nothing to fail
def test_a_failing_copy_is_raised_after_the_batch(io, rng, monkeypatch):
    a = _src(rng, 8 << 20)
    real = np.copyto
    calls = []

    def flaky(dst, src, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("copy failed")
        return real(dst, src, *args, **kwargs)

    monkeypatch.setattr(memory.np, "copyto", flaky)
    with config.override(LC_HOST_THREADS=4), pytest.raises(MemoryError, match="copy failed"):
        io.upload_many([(a, _Dev(a.size))])


def test_pipeline_chunk_count_follows_the_knob():
    """How many overlapped chunks a pinned elementwise one-shot runs in (CPU-side rule shared
    by the backend and the crossover model): whole chunks of LC_PIPELINE_CHUNK_BYTES, at least
    two, at most sixteen; 0 turns it off."""
    from lightning_core.backends.cuda.pipeline import chunk_count

    mib = 1 << 20
    assert config.get("LC_PIPELINE_CHUNK_BYTES") == mib
    assert [chunk_count(b) for b in (0, mib, 2 * mib - 1, 2 * mib, 4 * mib, 5 * mib + 7)] == \
        [0, 0, 0, 2, 4, 5]
    assert chunk_count(1 << 30) == 16
    with config.override(LC_PIPELINE_CHUNK_BYTES=0):
        assert chunk_count(64 * mib) == 0
    with config.override(LC_PIPELINE_CHUNK_BYTES=256 << 10):
        assert chunk_count(mib) == 4


def test_recycler_lists_keep_their_identity():
    """The native lane holds the recycler's two lists (``kept``, ``kept_streams``): they are
    filled and emptied in place, never replaced, and stay index for index."""
    rec = memory.Recycler(np.empty, (4,), np.dtype(np.float32))
    kept, streams = rec.kept, rec.kept_streams
    held = [rec.take(7), rec.take(7)]
    assert rec.kept is kept and rec.kept_streams is streams
    assert all(a is b for a, b in zip(kept, held, strict=True)) and streams == [7, 7]
    del held
    assert rec.take(7) is kept[0]  # dropped by the caller: handed out again
    assert rec.take(9) is not kept[0]  # another stream: a new one (no room left to keep it)
    rec.release()
    assert rec.kept is kept and rec.kept_streams is streams and kept == [] == streams
    rec.take(3)
    assert len(kept) == len(streams) == 1 and streams == [3]


def test_recycler_lists_stay_in_step_under_threads():
    """Takes on several threads while another releases again and again (as an out-of-memory
    on one thread does): the two lists always end the same length, each stream paired with
    its own array, and a take never fails."""
    import sys
    import threading
    import time

    rec = memory.Recycler(np.empty, (4,), np.dtype(np.float32), slots=4)
    errors = []
    stop = threading.Event()

    def taker(stream):
        try:
            while not stop.is_set():
                arr = rec.take(stream)
                arr[0] = stream
                del arr
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=taker, args=(s,)) for s in (1, 2, 3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            rec.release()
        stop.set()
        for t in threads:
            t.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(rec.kept) == len(rec.kept_streams)
    for arr, stream in zip(rec.kept, rec.kept_streams, strict=True):
        assert arr[0] == stream  # the array was made (and last used) on its own stream
