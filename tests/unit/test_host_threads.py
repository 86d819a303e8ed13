"""The shared host pool and the chunked CPU elementwise path it runs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_in_threads

import lightning_core as lc
from lightning_core import config
from lightning_core.backends.cpu import elementwise as cpu_ew
from lightning_core.runtime import host_threads as ht


@pytest.mark.parametrize("n,parts,min_chunk,align", [
    (0, 4, 1, 1), (1, 4, 1, 1), (10, 3, 1, 1), (1000, 4, 100, 16), (1 << 20, 8, 4096, 4096),
    (12345, 4, 7, 8)])
def test_chunks_cover_the_range_once(n, parts, min_chunk, align):
    ranges = ht.chunks(n, parts=parts, min_chunk=min_chunk, align=align)
    covered = np.zeros(n, np.int64)
    for lo, hi in ranges:
        assert lo < hi and lo % align == 0
        covered[lo:hi] += 1
    assert np.all(covered == 1)
    if n:
        assert len(ranges) <= max(parts, 1) + 1
        assert all(hi - lo >= min(min_chunk, n - lo) for lo, hi in ranges)


def test_run_parallel_runs_every_index_and_reraises():
    ranges = [(0, 1), (1, 2), (2, 3)]
    seen = []
    ht.run_parallel(lambda i: seen.append(ranges[i]), len(ranges))
    assert sorted(seen) == [(0, 1), (1, 2), (2, 3)]

    def boom(i):
        lo, hi = ranges[i]
        if lo == 1:
            raise ValueError("chunk 1 failed")
        seen.append(lo)

    with pytest.raises(ValueError, match="chunk 1 failed"):
        ht.run_parallel(boom, len(ranges))


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_run_parallel_hands_results_over_in_order(workers):
    """``then`` sees every index in order, each after its ``fn`` finished, whatever the
    finishing order of the workers."""
    import time

    finished, handed = set(), []

    def work(i):
        time.sleep(0.002 * ((7 - i) % 4))  # later indices often finish first
        finished.add(i)

    def then(i):
        assert i in finished
        handed.append(i)

    ht.run_parallel(work, 8, workers=workers, then=then)
    assert handed == list(range(8))


def test_pool_follows_the_knob():
    with config.override(LC_HOST_THREADS=3):
        assert ht.host_threads() == 3
        assert ht.host_pool()._max_workers == 3
    with config.override(LC_HOST_THREADS=2):
        assert ht.host_pool()._max_workers == 2


def test_threads_with_different_pool_sizes_run_at_once(rng):
    """Each thread's knob scope picks its own pool; none is shut down under another."""
    n = cpu_ew.PARALLEL_MIN_BYTES // 4 * 3
    a, b = _big(rng, n), _big(rng, n)
    ref = a.astype(np.float64) + b

    def work(i: int) -> None:
        for _ in range(5):
            with config.override(LC_HOST_THREADS=2 + i % 3):
                out = np.empty_like(a)
                assert cpu_ew.chunked(cpu_ew._IEEE["add"], out, a, b)
                np.testing.assert_allclose(out, ref, rtol=1e-6)

    assert run_in_threads(work, 6) == []


def _big(rng, n):
    return rng.standard_normal(n).astype(np.float32)


@pytest.mark.parametrize("kind", ["add", "sub", "mul", "div"])
def test_chunked_binary_matches_reference(rng, kind):
    n = cpu_ew.PARALLEL_MIN_BYTES // 4 * 3 + 13  # several chunks and a ragged tail
    a, b = _big(rng, n), _big(rng, n)
    out = np.full(n, np.nan, np.float32)
    with config.override(LC_HOST_THREADS=4):
        assert cpu_ew.chunked(cpu_ew._IEEE[kind], out, a, b)
    ref = lc.binary_reference(a, b, kind)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_chunked_binary_writes_into_an_input(rng):
    n = cpu_ew.PARALLEL_MIN_BYTES // 4 * 2 + 5
    a, b = _big(rng, n), _big(rng, n)
    ref = a.astype(np.float64) + b
    with config.override(LC_HOST_THREADS=4):
        got = lc.vector_add_into(a, b, a, "cpu")
    assert got is a
    np.testing.assert_allclose(a, ref, rtol=1e-6)


def test_partial_overlap_and_strided_operands_take_the_single_call(rng):
    n = cpu_ew.PARALLEL_MIN_BYTES // 4 * 2
    buf = _big(rng, n + 64)
    a, out = buf[:n], buf[64:]
    b = _big(rng, n)
    assert not cpu_ew._chunkable(out, a, b)
    strided = _big(rng, 2 * n)[::2]
    assert not cpu_ew._chunkable(np.empty(n, np.float32), strided, b)
    ref = a.astype(np.float64) + b
    with config.override(LC_HOST_THREADS=4):
        cpu_ew.binary_numpy(a, b, out=out, kind="add")  # NumPy buffers the overlap
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_ieee_results_without_warnings_on_worker_threads(rng):
    n = cpu_ew.PARALLEL_MIN_BYTES // 4 * 2
    a = _big(rng, n)
    b = np.zeros(n, np.float32)
    out = np.empty(n, np.float32)
    with config.override(LC_HOST_THREADS=4), np.errstate(all="raise"):
        assert cpu_ew.chunked(cpu_ew._IEEE["div"], out, a, b)
    assert np.all(np.isinf(out[a != 0]))


@pytest.mark.parametrize("op,approx", [("relu", None), ("gelu", "tanh"), ("gelu", "none")])
def test_chunked_unary_ops_match_the_single_call(rng, op, approx):
    n = cpu_ew.PARALLEL_MIN_BYTES // 4 * 2 + 7
    x = _big(rng, n) * 4
    x[::97] = np.nan
    args = () if op == "relu" else (approx,)
    with config.override(LC_HOST_THREADS=1):
        single = getattr(lc, op)(x, *args, "cpu")
    with config.override(LC_HOST_THREADS=4):
        many = getattr(lc, op)(x, *args, "cpu")
        inplace = x.copy()
        got = getattr(lc, f"{op}_into")(inplace, inplace, *args, "cpu")
    # Same arithmetic, chunk by chunk: bit-identical, NaN where the input was NaN.
    np.testing.assert_array_equal(many, single)
    assert got is inplace
    np.testing.assert_array_equal(inplace, single)
