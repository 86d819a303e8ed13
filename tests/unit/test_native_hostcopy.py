"""The native parallel host copy (``native/hostcopy.c``): exact bytes at any size, offset and
thread count, with plain and with streaming stores, from several Python threads at once and in a forked child, and clear errors for
bad arguments before anything is touched. The CUDA staging that uses it is covered by the
one-shot tests under ``tests/device/cuda``.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import sysconfig
import threading
import time

import numpy as np
import pytest

from lightning_core import native


@pytest.fixture
def copy():
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip("no C compiler here: staging copies run on the Python host pool")
    module = native.load()
    assert module is not None, native.status()
    return module.host_copy


def _addr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("nbytes", [1, 255, 256, 4095, 65536, 131073, (1 << 20) + 3,
                                    (5 << 20) + 4097])
@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("streaming", [False, True])
def test_copies_every_byte_exactly(copy, rng, nbytes, threads, streaming):
    src = rng.integers(0, 256, nbytes + 16, dtype=np.uint8)
    dst = np.full(nbytes + 32, 0xAB, np.uint8)  # poisoned, with guard bytes both sides
    s_off, d_off = 3, 7  # unaligned on both sides (streaming stores align the destination)
    copy(_addr(dst) + d_off, _addr(src) + s_off, nbytes, threads, streaming)
    np.testing.assert_array_equal(dst[d_off:d_off + nbytes], src[s_off:s_off + nbytes])
    assert (dst[:d_off] == 0xAB).all() and (dst[d_off + nbytes:] == 0xAB).all()


def test_pieces_marked_not_last_then_last(copy, rng):
    """An upload's pieces: all but the final one say more follow (the workers keep spinning),
    the final one lets them sleep; every byte lands either way, also after they slept."""
    n = 4 << 20
    src = rng.integers(0, 256, n, dtype=np.uint8)
    dst = np.zeros(n, np.uint8)
    piece = 1 << 20
    for _ in range(3):
        dst[:] = 0
        for lo in range(0, n, piece):
            copy(_addr(dst) + lo, _addr(src) + lo, piece, 4, True, lo + piece == n)
        np.testing.assert_array_equal(dst, src)
        time.sleep(0.001)  # the workers are asleep now: the next copy wakes them


def test_zero_bytes_touch_nothing(copy):
    dst = np.zeros(8, np.uint8)
    copy(_addr(dst), _addr(np.ones(8, np.uint8)), 0, 4)
    assert not dst.any()


def test_bad_arguments_are_refused(copy):
    buf = np.zeros(1 << 16, np.uint8)
    other = np.zeros(1 << 16, np.uint8)
    with pytest.raises(ValueError, match="overlap"):
        copy(_addr(buf) + 8, _addr(buf), 1024, 2)
    with pytest.raises(ValueError, match="negative"):
        copy(_addr(buf), _addr(other), -1, 2)
    with pytest.raises(ValueError, match="null"):
        copy(0, _addr(other), 16, 2)
    with pytest.raises(TypeError):
        copy(_addr(buf), _addr(other), 16)
    with pytest.raises(TypeError):
        copy(_addr(buf), _addr(other), 16, 2, True, True, "extra")
    with pytest.raises((TypeError, OverflowError)):
        copy(_addr(buf), -5, 16, 2)
    assert not buf.any()


def test_many_python_threads_copy_at_once(copy, rng):
    n = (3 << 20) + 5
    srcs = [rng.integers(0, 256, n, dtype=np.uint8) for _ in range(6)]
    dsts = [np.zeros(n, np.uint8) for _ in srcs]
    errors = []

    def work(i: int) -> None:
        try:
            for _ in range(5):
                dsts[i][:] = 0
                copy(_addr(dsts[i]), _addr(srcs[i]), n, 4)
                if not np.array_equal(dsts[i], srcs[i]):
                    errors.append(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(srcs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a copy hung"
    assert errors == []


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin",
                    reason="fork is a POSIX call (and unsafe with threads on macOS)")
def test_a_forked_child_gets_its_own_pool(copy, rng):
    n = 2 << 20
    src = rng.integers(0, 256, n, dtype=np.uint8)
    dst = np.zeros(n, np.uint8)
    copy(_addr(dst), _addr(src), n, 4)  # the parent's pool has started its workers
    pid = os.fork()
    if pid == 0:  # the child: its copy must not wait for the parent's threads
        try:
            out = np.zeros(n, np.uint8)
            copy(_addr(out), _addr(src), n, 4)
            os._exit(0 if np.array_equal(out, src) else 1)
        except BaseException:  # noqa: BLE001 - any failure is the exit code
            os._exit(2)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's copy hung")
        time.sleep(0.01)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
