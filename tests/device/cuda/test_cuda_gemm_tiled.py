"""The tiled small-GEMM kernel (``backends/cuda/gemm.py``) against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, cuda_only, poisoned, rand

import lightning_core as lc
from lightning_core.runtime.backend import implementations

pytestmark = [pytest.mark.cuda, cuda_only]


@pytest.fixture
def cp():
    import cupy

    return cupy


def _tiled():
    (impl,) = [i for i in implementations("cuda", "matmul") if i.variant == "tiled"]
    return impl


# Tile edges (32 x 16), K slices per warp (one chunk, several chunks with prefetch, K below
# the warp count), 1s, primes and an empty K.
SHAPES = [(1, 1, 1), (31, 7, 17), (32, 32, 16), (33, 257, 15), (256, 256, 256), (100, 3, 100),
          (65, 1000, 47), (17, 3001, 9), (5, 0, 6), (512, 64, 512)]


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_tiled_matches_the_float64_reference(cp, rng, m, k, n):
    a, b = rand(rng, m, k), rand(rng, k, n)
    out = poisoned((m, n), device="cuda")
    _tiled().fn(cp.asarray(a), cp.asarray(b), out=out, stream=cp.cuda.get_current_stream(),
                precision="fp32")
    assert_close(out, a.astype(np.float64) @ b, scale=max(1.0, k / 64))


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
