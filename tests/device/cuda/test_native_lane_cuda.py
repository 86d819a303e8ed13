"""The native lane on the GPU: C launches and C lane runs give the float64 reference's
answers, at any alignment, into given outputs, on other streams, and fail cleanly.

Each case runs with the native lane and with the Python lane (``python`` mode: the Python
``lane_call``, ``KernelCall``'s Python launch and no ``PtrRun``), so both stay correct.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, cuda_only, rand

import lightning_core as lc
from lightning_core import native
from lightning_core.backends.cuda import elementwise as ew
from lightning_core.backends.cuda import launch as launch_mod
from lightning_core.ops.activations import gelu_reference, relu_reference
from lightning_core.ops.norm import layer_norm_reference
from lightning_core.ops.softmax import softmax_reference
from lightning_core.runtime import dispatch

pytestmark = [pytest.mark.cuda, cuda_only]


@pytest.fixture
def cp():
    import cupy

    return cupy


@pytest.fixture(params=["native", "python"])
def mode(request, monkeypatch):
    dispatch.clear_decisions()
    ew._plans.clear()
    if request.param == "python":
        monkeypatch.setattr(dispatch, "lane_call", dispatch._lane_call_py)
        monkeypatch.setattr(launch_mod, "_NATIVE", None)
    else:
        assert native.load() is not None, native.status()
        assert launch_mod.native_launch() is not None, "libcuda.so.1 has cuLaunchKernel"
    yield request.param
    dispatch.clear_decisions()
    ew._plans.clear()


def _lane_of(op_prefix):
    lanes = [lane for key, lane in dispatch._lanes.items() if key[0] == op_prefix]
    assert lanes, f"no lane for {op_prefix}"
    return lanes[-1]


def test_elementwise_lane_runs_in_c_at_every_alignment(cp, rng, mode):
    n = 4099  # not a multiple of 4: the vector kernel's tail runs too
    for offset in (0, 1, 2, 0, 3):  # views at 4-byte offsets use the scalar launch
        a, b = rand(rng, n + 4), rand(rng, n + 4)
        da, db = cp.asarray(a)[offset:offset + n], cp.asarray(b)[offset:offset + n]
        got = lc.vector_add(da, db)
        assert_close(got, a[offset:offset + n].astype(np.float64) + b[offset:offset + n])
        out = cp.full(n, np.nan, np.float32)
        assert lc.matrix_mul_into(da, db, out, 1, n) is out
        assert_close(out, a[offset:offset + n].astype(np.float64) * b[offset:offset + n])
    run = _lane_of("vector_add").run
    is_c = type(run).__name__ == "PtrRun"
    assert is_c == (mode == "native")
    assert run.recycler is not None


def test_unary_lanes_and_in_place_aliasing(cp, rng, mode):
    for _ in range(3):
        x = rand(rng, 7, 131)
        assert_close(lc.relu(cp.asarray(x)), relu_reference(x))
        assert_close(lc.gelu(cp.asarray(x), "none"), gelu_reference(x, "none"))
        a, b = rand(rng, 999), rand(rng, 999)
        da, db = cp.asarray(a), cp.asarray(b)
        assert lc.matrix_sub_into(da, db, da, 27, 37) is da  # out is an input: exact
        assert_close(da, a.astype(np.float64) - b)
        shifted = cp.asarray(np.concatenate([a, a]))
        with pytest.raises(lc.AliasingError):  # a partial overlap takes the full road's check
            lc.vector_add_into(shifted[:999], db, shifted[1:1000])


# Under compute-sanitizer the Python lane's case finds no dropped result to reuse (runs 42-51,
# 61-62): the sanitizer's host backtraces keep the Python frames of each CUDA call alive, and
# with them the results those frames hold (run 62: passes with --show-backtrace no or device,
# fails with host). The sanitizer runs skip it.
@pytest.mark.frame_refs
def test_results_are_recycled_only_when_dropped(cp, rng, mode, monkeypatch):
    from lightning_core.backends.cuda import memory

    held = memory._recycled_bytes[0]  # earlier tests' recyclers may hold the shared budget
    monkeypatch.setattr(memory, "_RECYCLE_BUDGET", held + (1 << 20))
    a, b = cp.asarray(rand(rng, 2048)), cp.asarray(rand(rng, 2048))
    kept = [lc.vector_add(a, b) for _ in range(4)]
    assert len({int(k.data.ptr) for k in kept}) == 4  # held results are never handed out again
    # Checked on the device: a host copy of a kept result may leave CuPy holding the array
    # until its copy's event is seen complete (slow under compute-sanitizer), and a held array
    # is rightly never handed out again.
    ref = a.astype(np.float64) + b
    assert max(float(cp.max(cp.abs(k - ref))) for k in kept) <= 1e-6 * float(cp.max(cp.abs(ref)))
    del kept
    recycler = _lane_of("vector_add").run.recycler
    slots = {int(x.data.ptr) for x in recycler.kept}
    assert len(slots) == 2, f"budget held before: {held} bytes"
    for _ in range(3):  # dropped results come back from the recycler, not from new memory
        assert int(lc.vector_add(a, b).data.ptr) in slots, _holders(recycler)


def _holders(recycler) -> str:
    """Who else holds each kept array (the message of a missed reuse)."""
    import gc
    import sys

    def name(r) -> str:
        if hasattr(r, "f_code"):
            return f"frame {r.f_code.co_name}:{r.f_lineno}"
        if type(r).__name__ == "traceback":
            return f"traceback of {r.tb_frame.f_code.co_name}"
        if isinstance(r, BaseException):
            return f"{type(r).__name__}: {str(r)[:200]}"
        return type(r).__name__

    lines = []
    for arr, stream in zip(recycler.kept, recycler.kept_streams, strict=False):
        refs = [r for r in gc.get_referrers(arr) if r is not recycler.kept]
        # One hop further for frames: a traceback (an exception kept alive) or a handler.
        outer = [f"{name(r)} <- {[name(q) for q in gc.get_referrers(r)][:6]}"
                 for r in refs if hasattr(r, "f_code")]
        lines.append(f"refcount {sys.getrefcount(arr)}, stream {stream:#x}, held by "
                     f"{[name(r) for r in refs]}; {outer}")
    return "; ".join(lines) + f"; exc_info {sys.exc_info()[0]}; gc {gc.get_count()}"


def test_lane_on_another_stream_is_ordered_there(cp, rng, mode):
    a, b = rand(rng, 1 << 16), rand(rng, 1 << 16)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        for _ in range(3):
            da, db = cp.asarray(a), cp.asarray(b)
            got = lc.matrix_div(da, db, 256, 256)
        stream.synchronize()
    assert_close(got, a.astype(np.float64) / b)


def test_device_softmax_and_layer_norm_lanes(cp, rng, mode):
    for _ in range(3):
        x, w, bias = rand(rng, 6, 77), rand(rng, 77), rand(rng, 77)
        assert_close(lc.softmax(cp.asarray(x), -1), softmax_reference(x, -1))
        got = lc.layer_norm(cp.asarray(x), cp.asarray(w), cp.asarray(bias), 1e-5)
        assert_close(got, layer_norm_reference(x, w, bias, 1e-5), scale=4)
        out = cp.full((6, 77), np.nan, np.float32)
        assert lc.softmax_into(cp.asarray(x), out, -1) is out
        assert_close(out, softmax_reference(x, -1))
    assert any(key[0] == "softmax" for key in dispatch._lanes)


@pytest.mark.api_errors
def test_a_failed_launch_raises_and_the_process_goes_on(cp, mode):
    if mode == "python":
        pytest.skip("the Python launch's errors are CuPy's (tested with KernelCall)")
    kernel = cp.RawKernel('extern "C" __global__ void k(float* x) { x[0] = 1.0f; }', "k")
    x = cp.zeros(1, np.float32)
    call = launch_mod.KernelCall(kernel, (1,), (4096,), 0, 1)  # more threads than a block has
    with pytest.raises(native.load().LaunchError, match="CUDA_ERROR_INVALID_VALUE"):
        call(cp.cuda.get_current_stream(), x)
    good = launch_mod.KernelCall(kernel, (1,), (1,), 0, 1)
    good(cp.cuda.get_current_stream(), x)
    assert float(x.get()[0]) == 1.0


def test_attention_and_gemm_lanes_run_in_c(cp, rng, mode):
    """attention2d (every alignment; a head dim past the kernels takes the composite fallback)
    and the tiled GEMM, repeated with fresh inputs."""
    from lightning_core.ops.attention import attention_reference
    from lightning_core.ops.matmul import matmul_reference

    for seq, d in ((8, 16), (37, 20), (9, 300)):
        for offset in (0, 1, 0):
            hosts = [rand(rng, seq * d + 4) for _ in range(3)]
            q, k, v = (cp.asarray(h)[offset:offset + seq * d].reshape(seq, d) for h in hosts)
            ref = attention_reference(*(h[offset:offset + seq * d].reshape(seq, d)
                                        for h in hosts), False)
            assert_close(lc.attention2d(q, k, v, False), ref, scale=4)
        run = _lane_of("attention2d").run
        assert (type(run).__name__ == "PtrRun") == (mode == "native")
    for _ in range(3):
        a, b = rand(rng, 256, 256), rand(rng, 256, 256)
        assert_close(lc.matmul2d(cp.asarray(a), cp.asarray(b)), matmul_reference(a, b),
                     scale=16)


def test_stream_capsule_reports_cupys_current_stream(cp):
    """The C function the native lane reads the current stream with agrees with CuPy's
    ``get_current_stream().ptr``: the null stream, inside ``with stream``, nested, and on
    another thread."""
    import ctypes
    import threading

    from lightning_core.backends.cuda.launch import stream_ptr_capsule

    capsule = stream_ptr_capsule()
    if capsule is None:
        pytest.skip("this CuPy does not export get_current_stream_ptr: the lane asks current()")
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    # PYFUNCTYPE: called with the GIL held, as the lane calls it (CuPy's function reads
    # Python thread state; a CFUNCTYPE call would release the GIL first).
    fn = ctypes.PYFUNCTYPE(ctypes.c_ssize_t)(get(capsule, b"intptr_t (void)"))

    def agrees() -> None:
        assert fn() == cp.cuda.get_current_stream().ptr

    agrees()
    s1, s2 = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream()
    with s1:
        agrees()
        assert fn() == s1.ptr
        with s2:
            assert fn() == s2.ptr
        agrees()
    agrees()
    seen = []
    with s1:
        worker = threading.Thread(
            target=lambda: seen.append(fn() == cp.cuda.get_current_stream().ptr))
        worker.start()
        worker.join()
    assert seen == [True]
