"""The CUDA backend's infrastructure: data movement, I/O policy, adopters, errors, pools."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_close, cuda_only, rand

import lightning_core as lc
from lightning_core.errors import BackendError, DeviceOutOfMemoryError
from lightning_core.runtime.arrays import Operand
from lightning_core.runtime.backend import Impl, get_backend
from lightning_core.runtime.dispatch import Call, execute
from lightning_core.runtime.policy import ONE_SHOT, IoPlan
from lightning_core.trace.recorder import TRACE


def gpu(fn):
    """Mark a test as needing the GPU (skipped with the reason elsewhere)."""
    return pytest.mark.cuda(cuda_only(fn))


def test_importing_lightning_core_does_not_import_cupy():
    code = "import sys, lightning_core; assert 'cupy' not in sys.modules, 'cupy imported'"
    env_path = ":".join(p for p in sys.path if p)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def backend():
    return get_backend("cuda")


@pytest.fixture
def cp():
    import cupy

    return cupy


@pytest.fixture
def trace():
    was = TRACE.enabled
    TRACE.enabled = True
    TRACE.clear()
    yield lambda: TRACE.events()[-1]
    TRACE.enabled = was


def binary_call(a, b, *, out=None, io=ONE_SHOT, op="test_binary", kind="add"):
    ops = tuple(Operand(x, False, type(x) is not np.ndarray) for x in (a, b))
    shape = tuple(a.shape)
    return execute(Call(op, "binary", ops, shape, np.dtype(a.dtype), {"kind": kind}, out, io),
                   "cuda")


@gpu
def test_capabilities_are_read_off_the_device(backend):
    caps = backend.capabilities().as_dict()
    assert caps["available"] and caps["memory_model"] == "native-device"
    assert caps["sm_count"] > 0 and caps["l2_cache_bytes"] > 0 and caps["name"]
    assert caps["shared_mem_per_block_optin"] >= 48 * 1024
    assert caps["driver_version"] > 0 and caps["runtime_version"] > 0
    assert backend.device_count() >= 1 and backend.stream.is_non_blocking


@gpu
def test_numpy_in_gives_pinned_numpy_out(backend, rng):
    from lightning_core.backends.cuda.memory import is_pinned

    a, b = rand(rng, 33, 17), rand(rng, 17, 9)
    got = lc.matmul2d(a, b, "cuda")
    assert type(got) is np.ndarray and is_pinned(got)
    assert_close(got, a.astype(np.float64) @ b, scale=5)


@gpu
def test_numpy_out_pageable_and_pinned(backend, rng):
    a, b = rand(rng, 20, 30), rand(rng, 30, 40)
    ref = a.astype(np.float64) @ b
    for out in (np.full((20, 40), np.nan, np.float32), backend.pinned_empty((20, 40))):
        out[...] = np.nan
        assert lc.matmul2d_into(a, b, out, "cuda") is out
        assert_close(out, ref, scale=6)


@gpu
def test_cupy_in_cupy_out(cp, rng):
    a, b = rand(rng, 8, 5), rand(rng, 5, 3)
    got = lc.matmul2d(cp.asarray(a), cp.asarray(b), "cuda")
    assert isinstance(got, cp.ndarray)
    assert_close(got.get(), a.astype(np.float64) @ b, scale=3)
    out = cp.full((8, 3), cp.nan, cp.float32)
    lc.matmul2d_into(a, b, out, "cuda")  # host inputs, device out
    assert_close(out.get(), a.astype(np.float64) @ b, scale=3)


@gpu
def test_large_pageable_arrays_use_parallel_staging(backend, rng):
    a, b = rand(rng, 1031, 1031), rand(rng, 1031, 1031)  # ~4 MiB each: several chunks
    before = backend.io.staged_bytes()
    for kind, ref in (("add", a + b), ("sub", a - b), ("add", a + b), ("sub", a - b)):
        np.testing.assert_array_equal(binary_call(a, b, kind=kind), ref)
    out = np.full_like(a, np.nan)
    binary_call(a, b, out=out, kind="mul")
    np.testing.assert_array_equal(out, a * b)
    # Blocks are reused, never pinned per call: at most one 8 MiB block per array in flight.
    assert backend.io.staged_bytes() - before <= 3 * (8 << 20)


@gpu
def test_pinned_inputs_skip_staging(backend, rng, trace):
    a, b = backend.pinned_empty((257, 3)), backend.pinned_empty((257, 3))
    a[...], b[...] = rand(rng, 257, 3), rand(rng, 257, 3)
    held = backend.io.staged_bytes()
    np.testing.assert_array_equal(binary_call(a, b), a + b)
    assert backend.io.staged_bytes() == held
    assert trace().bytes_uploaded == a.nbytes + b.nbytes


@gpu
def test_pinned_empty(backend):
    from lightning_core.backends.cuda.memory import is_pinned

    x = backend.pinned_empty((3, 4), np.float64)
    assert x.shape == (3, 4) and x.dtype == np.float64 and x.flags.writeable and is_pinned(x)
    assert backend.pinned_empty((0, 5)).shape == (0, 5)
    assert not is_pinned(np.ones(16))


@gpu
def test_policy_reuses_resident_upload(rng, trace):
    m, k, n = 6, 5, 4
    a, b = rand(rng, m * k), rand(rng, k * n)
    ref = (a.reshape(m, k).astype(np.float64) @ b.reshape(k, n)).reshape(-1)
    assert_close(lc.matmul_np_with_policy(a, b, m, k, n, "cuda", lc.MatMulIoPolicy()), ref)
    got = lc.matmul_np_with_policy(a, b, m, k, n, "cuda", lc.MatMulIoPolicy(upload_a=False))
    assert_close(got, ref)
    ev = trace()
    assert ev.bytes_uploaded == b.nbytes and "upload_forced_no_resident_copy" not in ev.notes


@gpu
def test_policy_upload_skipped_without_resident_copy_still_uploads(rng, trace):
    a, b = rand(rng, 12), rand(rng, 12)
    pol = lc.MatMulIoPolicy(upload_a=False, upload_b=False)
    got = lc.matmul_np_with_policy(a, b, 3, 4, 3, "cuda", pol)
    assert_close(got, (a.reshape(3, 4).astype(np.float64) @ b.reshape(4, 3)).reshape(-1))
    assert "upload_forced_no_resident_copy" in trace().notes


@gpu
def test_policy_download_skipped_returns_device_array(backend, cp, rng, trace):
    a, b = rand(rng, 9), rand(rng, 9)
    pol = lc.MatMulIoPolicy(download_out=False, synchronize=False)
    got = lc.matmul_np_with_policy(a, b, 3, 3, 3, "cuda", pol)
    ev = trace()
    assert isinstance(got, cp.ndarray) and "download_skipped" in ev.notes
    assert not ev.synchronized and ev.bytes_downloaded == 0
    backend.synchronize()
    assert_close(got.get(), (a.reshape(3, 3).astype(np.float64) @ b.reshape(3, 3)).reshape(-1))


@gpu
def test_policy_download_forces_sync(rng, trace):
    a, b = rand(rng, 4), rand(rng, 4)
    got = lc.matmul_np_with_policy(a, b, 2, 2, 2, "cuda", lc.MatMulIoPolicy(synchronize=False))
    ev = trace()
    assert type(got) is np.ndarray and ev.synchronized
    assert "sync_forced_by_download" in ev.notes and ev.bytes_downloaded == got.nbytes


@gpu
def test_resident_call_waits_for_callers_stream(cp):
    x = cp.ones((2048, 2048), cp.float32)
    for _ in range(4):
        x = x @ x / 2048  # queued on the caller's (null) stream, still running below
    y = cp.zeros_like(x)
    got = binary_call(x, y)
    np.testing.assert_allclose(got.get(), 1.0, rtol=1e-5)


@gpu
def test_async_resident_result_is_ordered_before_callers_work(backend, cp):
    a = cp.full((4096, 1024), 2.0, cp.float32)
    got = binary_call(a, a, io=IoPlan(synchronize=False), kind="mul")
    total = float(got.sum())  # runs on the caller's stream after our non-blocking one
    assert total == 4.0 * a.size


@gpu
def test_torch_cuda_tensors_are_zero_copy(backend, cp):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    t = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    adopted = backend._adopt(t)
    assert isinstance(adopted, cp.ndarray) and adopted.data.ptr == t.data_ptr()
    got = lc.matmul2d(t, t.T.contiguous(), "cuda")
    assert isinstance(got, cp.ndarray)
    ref = t.double().cpu().numpy()
    assert_close(got.get(), ref @ ref.T, scale=100)


@gpu
def test_cuda_array_interface_and_dlpack_objects(backend, cp):
    base = cp.arange(6, dtype=cp.float32).reshape(2, 3)

    class Cai:
        __cuda_array_interface__ = base.__cuda_array_interface__

    class Dl:
        def __dlpack__(self, **kw):
            return base.__dlpack__(**kw)

        def __dlpack_device__(self):
            return base.__dlpack_device__()

    for obj in (Cai(), Dl()):
        adopted = backend._adopt(obj)
        assert adopted.data.ptr == base.data.ptr
    got = lc.matmul2d(Cai(), base.T.copy(), "cuda")
    assert_close(got.get(), base.get().astype(np.float64) @ base.get().T, scale=10)


@gpu
@pytest.mark.api_errors
def test_out_of_memory_is_clear_and_recoverable(cp, rng):
    x = cp.ones(4, cp.float32)
    huge = (1 << 45,)  # 128 TiB of float32
    ops = (Operand(x, False, True), Operand(x, False, True))
    with pytest.raises(DeviceOutOfMemoryError, match=r"^\[test_oom\].*bytes"):
        execute(Call("test_oom", "binary", ops, huge, np.dtype(np.float32), {"kind": "add"}),
                "cuda")
    np.testing.assert_array_equal(binary_call(x, x).get(), 2.0)


@gpu
def test_cuda_errors_become_backend_errors(backend, cp):
    def broken(*args, **kwargs):
        raise cp.cuda.runtime.CUDARuntimeError(1)

    impl = Impl("cuda", "binary", "broken", broken, frozenset({"float32"}), frozenset({"fp32"}))
    x = cp.ones(3, cp.float32)
    call = Call("test_err", "binary", (Operand(x, False, True),), (3,), np.dtype(np.float32))
    with pytest.raises(BackendError, match=r"^\[test_err\]"):
        backend.run(impl, call)


@gpu
def test_reported_precision_follows_registration(backend, cp):
    impl = Impl("cuda", "relu", "probe", lambda *a, **k: None, frozenset({"float32"}),
                frozenset({"fp32"}))
    x = cp.ones(3, cp.float32)
    call = Call("test_prec", "relu", (Operand(x, False, True),), (3,), np.dtype(np.float32),
                precision="tf32")
    assert backend.run(impl, call)[1]["precision"] == "fp32"


@gpu
def test_matmul_precision_is_recorded(rng, trace):
    a, b = rand(rng, 16, 16), rand(rng, 16, 16)
    lc.matmul2d(a, b, "cuda", precision="tf32")
    assert trace().precision == "tf32"
    lc.matmul2d(a.astype(np.float64), b.astype(np.float64), "cuda", precision="tf32")
    assert trace().precision == "fp32"  # float64 is never lowered


@gpu
def test_other_device_inputs_are_refused(backend, cp):
    if backend.device_count() < 2:
        pytest.skip("needs two GPUs")
    with cp.cuda.Device(1):
        x = cp.ones(3, cp.float32)
    with pytest.raises(BackendError, match="cuda:0 only"):
        binary_call(x, x)


@gpu
def test_zero_size_output(cp):
    got = binary_call(cp.ones((0, 3), cp.float32), cp.ones((0, 3), cp.float32))
    assert got.shape == (0, 3)
    host = binary_call(np.ones((4, 0), np.float32), np.ones((4, 0), np.float32))
    assert type(host) is np.ndarray and host.shape == (4, 0)


@gpu
@pytest.mark.parametrize("pool", ["native", "python"])
def test_staged_copies_are_exact_on_either_copy_pool(backend, cp, rng, pool, monkeypatch):
    """Pageable uploads and downloads of odd sizes through the staging blocks, copied by the
    native pthread pool or by the Python host pool: every byte, nothing past the end."""
    from lightning_core.backends.cuda import memory

    if pool == "python":
        monkeypatch.setattr(memory, "_host_copy", lambda: None)
    elif memory._host_copy() is None:
        pytest.skip("the native module is not built here: the Python pool stages")
    for nbytes in (1, 4097, (1 << 20) + 3, (5 << 20) + 4099):
        src = rng.integers(0, 256, nbytes, dtype=np.uint8)
        dev = cp.full(nbytes + 64, 7, cp.uint8)
        assert backend.io.upload_many([(src, dev[:nbytes])]) == nbytes
        cp.cuda.runtime.deviceSynchronize()
        got = cp.asnumpy(dev)
        np.testing.assert_array_equal(got[:nbytes], src)
        assert (got[nbytes:] == 7).all()
        back = np.full(nbytes + 64, 9, np.uint8)
        assert backend.io.download(dev[:nbytes], back[:nbytes], pinned=False) == nbytes
        np.testing.assert_array_equal(back[:nbytes], src)
        assert (back[nbytes:] == 9).all()
