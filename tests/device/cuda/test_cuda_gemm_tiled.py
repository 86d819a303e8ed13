"""The small-GEMM kernels (``backends/cuda/gemm.py``) against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, cuda_only, poisoned, rand

import lightning_core as lc
from lightning_core.backends.cuda import gemm
from lightning_core.runtime.backend import implementations

pytestmark = [pytest.mark.cuda, cuda_only]


@pytest.fixture
def cp():
    import cupy

    return cupy


def _tiled():
    (impl,) = [i for i in implementations("cuda", "matmul") if i.variant == "tiled"]
    return impl


# Tile edges (32 x 16), K slices per warp (one chunk, several chunks with prefetch or a second
# cp.async buffer, K below the warp count), 1s, primes and an empty K; the shapes with K and N
# multiples of 4 take lc_gemm_tiled4 when aligned.
SHAPES = [(1, 1, 1), (31, 7, 17), (32, 32, 16), (33, 257, 15), (256, 256, 256), (100, 3, 100),
          (65, 1000, 47), (17, 3001, 9), (5, 0, 6), (512, 64, 512), (36, 1000, 20), (7, 4, 4),
          (64, 0, 8), (33, 68, 20), (1, 12, 4), (70, 4096, 12), (29, 96, 36)]


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_tiled_matches_the_float64_reference(cp, rng, m, k, n):
    a, b = rand(rng, m, k), rand(rng, k, n)
    out = poisoned((m, n), device="cuda")
    _tiled().fn(cp.asarray(a), cp.asarray(b), out=out, stream=cp.cuda.get_current_stream(),
                precision="fp32")
    assert_close(out, a.astype(np.float64) @ b, scale=max(1.0, k / 64))


@pytest.mark.parametrize("four", [False, True])
@pytest.mark.parametrize("m,k,n", [s for s in SHAPES if s[1] % 4 == 0 and s[2] % 4 == 0 and s[0]])
def test_each_kernel_matches_the_float64_reference(cp, rng, m, k, n, four):
    """Both kernels on the shapes both can run (four=False is the fallback for misaligned
    pointers at these shapes)."""
    a, b = rand(rng, m, k), rand(rng, k, n)
    out = poisoned((m, n), device="cuda")
    gemm.plan(m, k, n, four)(cp.cuda.get_current_stream(), cp.asarray(a), cp.asarray(b), out)
    assert_close(out, a.astype(np.float64) @ b, scale=max(1.0, k / 64))


def _offset(cp, host):
    """``host`` on the device 4 bytes past a 16-byte boundary."""
    flat = cp.empty(host.size + 1, np.float32)
    view = flat[1:].reshape(host.shape)
    view[...] = cp.asarray(host)
    return view


def test_alignment_picks_the_kernel(cp, rng):
    a, b = cp.asarray(rand(rng, 8, 12)), cp.asarray(rand(rng, 12, 16))
    out = cp.empty((8, 16), np.float32)
    assert gemm._four(12, 16, a, b, out)
    assert not gemm._four(12, 18, a, b, out)  # N not a multiple of 4
    assert not gemm._four(10, 16, a, b, out)  # K not a multiple of 4
    assert not gemm._four(12, 16, _offset(cp, cp.asnumpy(a)), b, out)
    assert not gemm._four(12, 16, a, b, _offset(cp, np.zeros((8, 16), np.float32)))


@pytest.mark.parametrize("which", ["a", "b", "out"])
def test_misaligned_pointers_take_the_scalar_kernel_and_stay_exact(cp, rng, which):
    """K and N multiples of 4, one pointer 4 bytes off: the fast lane and the registered
    implementation must both fall back to lc_gemm_tiled, not read across the boundary."""
    m, k, n = 45, 260, 36
    ah, bh = rand(rng, m, k), rand(rng, k, n)
    ref = ah.astype(np.float64) @ bh
    a = _offset(cp, ah) if which == "a" else cp.asarray(ah)
    b = _offset(cp, bh) if which == "b" else cp.asarray(bh)
    out = _offset(cp, np.full((m, n), np.nan, np.float32)) if which == "out" else None
    for _ in range(3):  # first call on the full road, then the fast lane
        if out is None:
            got = lc.matmul2d(a, b, "cuda")
        else:
            out[...] = np.nan
            got = out
            lc.matmul2d_into(a, b, out, "cuda")
        assert_close(got, ref, scale=4)
    if out is None:
        out = poisoned((m, n), device="cuda")
    else:
        out[...] = np.nan
    _tiled().fn(a, b, out=out, stream=cp.cuda.get_current_stream(), precision="fp32")
    assert_close(out, ref, scale=4)


def test_small_products_route_to_tiled_and_stay_exact(cp, rng):
    a, b = rand(rng, 256, 256), rand(rng, 256, 256)
    lc.runtime_trace_enable(True)
    lc.runtime_trace_clear()
    try:
        got = lc.matmul2d(cp.asarray(a), cp.asarray(b), "cuda")
        (ev,) = lc.runtime_trace_events()
    finally:
        lc.runtime_trace_enable(False)
    assert ev["impl"].endswith("tiled"), ev
    assert_close(got, a.astype(np.float64) @ b, scale=4)
    for _ in range(3):  # the fast lane, into a fresh result each time
        assert_close(lc.matmul2d(cp.asarray(a), cp.asarray(b), "cuda"),
                     a.astype(np.float64) @ b, scale=4)


def test_tensor_core_policies_stay_on_cublas(cp, rng):
    a, b = rand(rng, 64, 64), rand(rng, 64, 64)
    lc.runtime_trace_enable(True)
    lc.runtime_trace_clear()
    try:
        with lc.precision("tf32"):
            lc.matmul2d(cp.asarray(a), cp.asarray(b), "cuda")
        (ev,) = lc.runtime_trace_events()
    finally:
        lc.runtime_trace_enable(False)
    assert ev["impl"].endswith("cublas"), ev
