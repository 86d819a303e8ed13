"""The CPU conv's schedules (one GEMM on per-thread scratch, chunks of images, bands of rows)
against the float64 reference."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import assert_close, poisoned, rand, run_in_threads

import lightning_core as lc
from lightning_core.backends.cpu import conv as cpu_conv
from lightning_core.ops.conv import conv2d_reference

# (N, C, H, W, OC, KH, KW, stride_h, stride_w, pad_h, pad_w)
GEOMETRIES = [
    (3, 5, 9, 7, 4, 3, 3, 1, 1, 1, 1),
    (3, 5, 11, 13, 6, 5, 3, 2, 2, 2, 0),  # 5x3 kernel, stride 2, pad only in height
    (3, 5, 9, 10, 3, 5, 3, 1, 2, 2, 1),
    (3, 5, 7, 9, 4, 1, 1, 1, 1, 0, 0),  # 1x1, stride 1, no pad: x is the columns
    (3, 5, 7, 9, 4, 1, 1, 2, 2, 0, 0),
    (3, 5, 7, 9, 4, 1, 1, 1, 1, 2, 2),
    (1, 2, 5, 4, 3, 5, 3, 2, 1, 0, 0),  # the kernel as tall as the input
    (1, 3, 16, 16, 16, 3, 3, 1, 1, 1, 1),  # the tiny device="auto" cases
    (2, 3, 32, 32, 16, 3, 3, 1, 1, 1, 1),  # 1024 outputs a plane: columns with a padded pitch
]


def _out_shape(g):
    n, _, h, w, oc, kh, kw, sh, sw, ph, pw = g
    return n, oc, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def _problem(g, rng, dtype=np.float32):
    n, c, h, w, oc, kh, kw = g[:7]
    return rand(rng, n, c, h, w, dtype=dtype), rand(rng, oc, c, kh, kw, dtype=dtype), \
        rand(rng, oc, dtype=dtype)


def _run(x, wt, bias, g, relu, dtype=np.float32):
    """The backend function into a NaN-filled output, checked against the reference."""
    out = poisoned(_out_shape(g), dtype)
    args = (x, wt) if bias is None else (x, wt, bias)
    cpu_conv.conv2d_im2col(*args, out=out, stride_h=g[7], stride_w=g[8], pad_h=g[9],
                           pad_w=g[10], relu=relu)
    assert_close(out, conv2d_reference(x, wt, bias, *g[7:], relu), dtype,
                 scale=float(np.sqrt(wt[0].size)))
    return out


@pytest.fixture
def chunked_calls(monkeypatch):
    """The x shapes of the calls that took the chunked schedule (this thread's plans cleared
    first, so that no plan kept by another test answers)."""
    cpu_conv._scratch.plans.clear()
    calls = []
    real = cpu_conv._chunked

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(cpu_conv, "_chunked", spy)
    return calls


def _force_chunks(monkeypatch, cols_limit: int | None = None) -> None:
    monkeypatch.setattr(cpu_conv, "_PLAN_BYTES", 0)
    if cols_limit is not None:
        monkeypatch.setattr(cpu_conv, "_COLS_LIMIT", cols_limit)


def _is_one_by_one(g, bias) -> bool:
    return bias is None and g[5] == g[6] == g[7] == g[8] == 1 and not (g[9] or g[10])


@pytest.mark.parametrize("g", GEOMETRIES, ids=lambda g: "x".join(map(str, g)))
@pytest.mark.parametrize("schedule", ["one_gemm", "one_chunk", "chunks_of_two_images",
                                      "bands_of_one_row", "bands_of_three_rows"])
@pytest.mark.parametrize("bias,relu", [(True, True), (False, True), (True, False),
                                       (False, False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_schedules_match_reference(monkeypatch, chunked_calls, g, schedule, bias, relu, dtype):
    rng = np.random.default_rng(abs(hash((g, schedule, bias, relu))) % 2**32)
    x, wt, b = _problem(g, rng, dtype)
    b = b if bias else None
    oh, ow = _out_shape(g)[2:]
    rows = g[1] * g[5] * g[6] + bias
    if schedule != "one_gemm":
        _force_chunks(monkeypatch, {"one_chunk": None, "chunks_of_two_images": 2 * rows * oh * ow,
                                    "bands_of_one_row": 1,
                                    "bands_of_three_rows": 3 * rows * ow}[schedule])
    _run(x, wt, b, g, relu, dtype)
    chunked = schedule != "one_gemm" and not _is_one_by_one(g, b)
    assert chunked_calls == ([x.shape] if chunked else [])


def test_plan_bytes_boundary(monkeypatch, chunked_calls, rng):
    """A plan of exactly _PLAN_BYTES is built and kept; one byte less allowed takes chunks."""
    g = GEOMETRIES[0]
    x, wt, b = _problem(g, rng)
    oh, ow = _out_shape(g)[2:]
    size = cpu_conv._Plan.nbytes(x.shape, wt.shape, 4, oh, ow, g[9], g[10], True)
    monkeypatch.setattr(cpu_conv, "_PLAN_BYTES", size - 1)
    _run(x, wt, b, g, True)
    assert chunked_calls == [x.shape] and not cpu_conv._scratch.plans
    monkeypatch.setattr(cpu_conv, "_PLAN_BYTES", size)
    _run(x, wt, b, g, True)
    _run(x, wt, b, g, True)
    assert chunked_calls == [x.shape] and len(cpu_conv._scratch.plans) == 1


@pytest.mark.parametrize("g", [
    (8, 16, 16, 16, 32, 3, 3, 1, 1, 1, 1),  # a plan over 1 MiB: the batch in one chunk
    (11, 3, 64, 64, 4, 3, 3, 1, 1, 1, 1),  # 28 * 64 * 64 columns an image: chunks of 6 and 5
    (2, 32, 60, 64, 5, 3, 3, 1, 1, 1, 1),  # 289 * 60 * 64 columns an image > 2**20: 2 bands
], ids=["one_chunk", "images", "bands"])
def test_defaults_chunk_large_problems(chunked_calls, g, rng):
    x, wt, b = _problem(g, rng)
    _run(x, wt, b, g, True)
    assert chunked_calls == [x.shape]


@pytest.mark.parametrize("chunks", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_zero_input_channels_give_the_bias(monkeypatch, chunks, bias):
    if chunks:
        _force_chunks(monkeypatch, 1)
    g = (3, 0, 5, 4, 2, 3, 3, 1, 2, 1, 0)
    x, wt = np.ones((3, 0, 5, 4), np.float32), np.ones((2, 0, 3, 3), np.float32)
    _run(x, wt, np.array([1.5, -2.0], np.float32) if bias else None, g, False)


def test_scratch_reuse_sees_new_data_and_weights_changed_in_place(rng):
    g = GEOMETRIES[2]
    x, wt, b = _problem(g, rng)
    for _ in range(3):
        _run(x, wt, b, g, True)
        x[...] = rand(rng, *x.shape)
        wt *= -1.5  # in place: nothing may be cached off the caller's arrays
        b[0] += 1.0
    _run(x, wt, None, g, True)  # the same shapes without bias: another plan


def test_plans_are_bounded_and_large_ones_not_kept(monkeypatch, rng):
    cpu_conv._scratch.plans.clear()
    for i in range(cpu_conv._PLANS + 2):
        g = (1, 2, 6 + i, 5, 3, 3, 3, 1, 1, 1, 1)
        _run(*_problem(g, rng), g, True)
        assert len(cpu_conv._scratch.plans) == min(i + 1, cpu_conv._PLANS)
    g = GEOMETRIES[0]
    x, wt, b = _problem(g, rng)
    monkeypatch.setattr(cpu_conv, "_PLAN_BYTES", 0)
    before = dict(cpu_conv._scratch.plans)
    _run(x, wt, b, g, True)
    _run(x, wt, b, g, False)
    assert cpu_conv._scratch.plans == before


@pytest.mark.parametrize("g", [GEOMETRIES[0], GEOMETRIES[1], GEOMETRIES[2]],
                         ids=["pad1", "pad2x0", "pad2x1"])
def test_chunks_on_a_dirty_block(monkeypatch, g, rng):
    """Whatever the block held before (NaN here), the padded border reads as zeros."""
    _force_chunks(monkeypatch, 1)
    cpu_conv._scratch.block = np.full(1 << 16, 0xFF, np.uint8)  # NaN in any float view
    x, wt, b = _problem(g, rng)
    _run(x, wt, b, g, True)
    assert cpu_conv._scratch.block.nbytes == 1 << 16  # big enough: reused, not replaced


def test_block_grows_up_to_its_bound(monkeypatch, rng):
    g = GEOMETRIES[1]
    x, wt, b = _problem(g, rng)
    _force_chunks(monkeypatch)
    cpu_conv._scratch.block = np.empty(0, np.uint8)
    monkeypatch.setattr(cpu_conv, "_BLOCK_BYTES", 64)  # too small: the call's own buffers
    _run(x, wt, b, g, True)
    assert cpu_conv._scratch.block.nbytes == 0
    monkeypatch.setattr(cpu_conv, "_BLOCK_BYTES", 1 << 20)
    _run(x, wt, b, g, True)
    kept = cpu_conv._scratch.block
    assert 0 < kept.nbytes <= 1 << 20
    _run(x, wt, b, g, False)
    assert cpu_conv._scratch.block is kept


@pytest.mark.parametrize("chunks", [False, True])
def test_threads_share_no_scratch(monkeypatch, chunks):
    if chunks:
        _force_chunks(monkeypatch, 5000)
    g = GEOMETRIES[7]
    problems = [_problem(g, np.random.default_rng(i)) for i in range(8)]
    start = threading.Barrier(len(problems))

    def work(i: int) -> None:
        start.wait()
        for _ in range(20):
            _run(*problems[i], g, True)

    assert run_in_threads(work, len(problems)) == []


def test_columns_pitch_avoids_multiples_of_2_kib():
    for width, itemsize in ((1024, 4), (512, 4), (256, 8), (4096, 4)):
        assert cpu_conv._pitch(width, itemsize) * itemsize % 2048 != 0
    assert cpu_conv._pitch(1000, 4) == 1000 and cpu_conv._pitch(256, 4) == 256


@pytest.mark.parametrize("g", [GEOMETRIES[1], GEOMETRIES[8]], ids=["5x3s2", "probe"])
def test_through_the_api_on_cpu(g, rng):
    x, wt, b = _problem(g, rng)
    out = poisoned(_out_shape(g))
    assert lc.lightning_conv_relu_nchw_into(x, wt, b, out, *g[7:], "cpu") is out
    assert_close(out, conv2d_reference(x, wt, b, *g[7:], True), scale=float(np.sqrt(wt[0].size)))
