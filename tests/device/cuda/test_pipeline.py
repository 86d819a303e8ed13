"""Overlapped (chunked) one-shot elementwise calls on page-locked host arrays, against float64
references; what qualifies and what does not."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, cuda_only, run_in_threads

import lightning_core as lc
from lightning_core import config
from lightning_core.backends.cuda.memory import is_pinned
from lightning_core.ops.activations import gelu_reference, relu_reference
from lightning_core.ops.elementwise import binary_reference

pytestmark = [pytest.mark.cuda, cuda_only]

SMALL_CHUNKS = 64 << 10  # bytes: awkward sizes below make many chunks and a short tail


def pinned(rng, n, dtype=np.float32, offset=0.0):
    arr = lc.pinned_empty(n, dtype)
    arr[...] = rng.standard_normal(n) + offset
    return arr


def poisoned_pinned(n, dtype=np.float32):
    arr = lc.pinned_empty(n, dtype)
    arr.fill(np.nan)
    return arr


def pipelined_notes(lane_trace):
    return [n for notes in lane_trace() for n in notes if n.startswith("pipelined_chunks=")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("kind", ["add", "sub", "mul", "div"])
def test_binary_ops_pipelined_match_reference(rng, lane_trace, dtype, kind):
    rows, cols = 301, 467  # 140567 values: not a multiple of the chunk alignment
    n = rows * cols
    a, b = pinned(rng, n, dtype), pinned(rng, n, dtype, offset=4.0 if kind == "div" else 0.0)
    with config.override(LC_PIPELINE_CHUNK_BYTES=SMALL_CHUNKS):
        got = getattr(lc, f"matrix_{kind}")(a, b, rows, cols, "cuda")
    assert isinstance(got, np.ndarray) and got.shape == (n,) and got.dtype == dtype
    assert is_pinned(got), "the result comes back in page-locked memory"
    assert_close(got, binary_reference(a, b, kind), dtype=dtype, scale=2)
    notes = pipelined_notes(lane_trace)
    assert notes and int(notes[-1].split("=")[1]) >= 2, lane_trace()


def test_vector_add_into_pinned_out_and_mixed_device_input(rng, lane_trace):
    import cupy

    n = 200_003
    a, b = pinned(rng, n), rng.standard_normal(n).astype(np.float32)
    out = poisoned_pinned(n)
    with config.override(LC_PIPELINE_CHUNK_BYTES=SMALL_CHUNKS):
        ret = lc.vector_add_into(a, cupy.asarray(b), out, "cuda")
    assert ret is out
    assert_close(out, a.astype(np.float64) + b)
    assert pipelined_notes(lane_trace)


@pytest.mark.parametrize("op", ["relu", "gelu"])
def test_unary_ops_pipelined(rng, lane_trace, op):
    x = pinned(rng, 150_001)
    with config.override(LC_PIPELINE_CHUNK_BYTES=SMALL_CHUNKS):
        got = getattr(lc, op)(x, device="cuda")
    ref = relu_reference(x) if op == "relu" else gelu_reference(x, "tanh")
    assert_close(got, ref, scale=2)
    assert pipelined_notes(lane_trace)


def test_what_does_not_pipeline(rng, lane_trace):
    n = 131_072
    pa, pb = pinned(rng, n), pinned(rng, n)
    plain = rng.standard_normal(n).astype(np.float32)
    with config.override(LC_PIPELINE_CHUNK_BYTES=SMALL_CHUNKS):
        cases = [
            lc.vector_add(pa, plain, "cuda"),  # a pageable input is staged instead
            lc.vector_add_into(pa, pb, np.full(n, np.nan, np.float32), "cuda"),  # pageable out
        ]
        assert not pipelined_notes(lane_trace)
        tiny = pinned(rng, 1000)
        cases.append(lc.vector_add(tiny, tiny, "cuda"))  # under two chunks
        assert not pipelined_notes(lane_trace)
    with config.override(LC_PIPELINE_CHUNK_BYTES=0):
        cases.append(lc.vector_add(pa, pb, "cuda"))  # switched off
    assert not pipelined_notes(lane_trace)
    assert_close(cases[0], pa.astype(np.float64) + plain)
    assert_close(cases[1], pa.astype(np.float64) + pb)
    assert_close(cases[2], tiny.astype(np.float64) * 2)
    assert_close(cases[3], pa.astype(np.float64) + pb)


def test_policy_with_reuse_takes_the_staged_road(rng, lane_trace):
    n = 140_000
    a, b = pinned(rng, n), pinned(rng, n)
    pol = lc.MatrixElementwiseIoPolicy()
    with config.override(LC_PIPELINE_CHUNK_BYTES=SMALL_CHUNKS):
        got = lc.matrix_sub_with_policy(a, b, 350, 400, "cuda", pol)
        assert pipelined_notes(lane_trace) == []  # an explicit policy remembers its uploads
    assert_close(got, a.astype(np.float64) - b)


def test_pipelined_calls_from_threads(lane_trace):
    def work(seed: int) -> None:
        local = np.random.default_rng(seed)
        n = 100_000 + 4099 * seed
        a, b = pinned(local, n), pinned(local, n)
        with config.override(LC_PIPELINE_CHUNK_BYTES=SMALL_CHUNKS):  # per thread (contextvar)
            for _ in range(5):
                got = lc.vector_add(a, b, "cuda")
                assert_close(got, a.astype(np.float64) + b)

    errors = run_in_threads(work, 4)
    assert not errors, errors
    assert len(pipelined_notes(lane_trace)) == 20
