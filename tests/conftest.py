"""Shared test helpers: devices to run on, tolerances, poisoned outputs, references."""

from __future__ import annotations

import os
import tempfile
import threading
import zlib

# Tests tune, calibrate and write tuning caches: keep all of that out of the user's cache (a
# test's synthetic calibration must never steer a later real run on this machine). The
# compiled-kernel cache under LC_CACHE_DIR stays shared; it is keyed by source and options.
os.environ["LC_TUNE_CACHE_FILE"] = os.path.join(tempfile.mkdtemp(prefix="lc-tests-"),
                                                "tune_cache.json")
os.environ.pop("CJ_MATMUL_TUNE_CACHE_FILE", None)

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import lightning_core as lc
from lightning_core.runtime.device import reset_routes

settings.register_profile(
    "lc", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile("lc")

# (rtol, atol) per (dtype, precision): |got - ref| <= atol + rtol * |ref|
TOLERANCES = {
    ("float64", "fp32"): (1e-10, 1e-12),
    ("float32", "fp32"): (2e-5, 2e-5),
    ("float32", "tf32"): (3e-3, 3e-3),
    ("float32", "bf16"): (2e-2, 2e-2),
    ("float32", "fp16"): (5e-3, 5e-3),
    ("float16", "fp32"): (5e-3, 5e-3),
    ("float16", "fp16"): (5e-3, 5e-3),
}


def tolerance(dtype, precision: str = "fp32") -> tuple[float, float]:
    return TOLERANCES[(np.dtype(dtype).name, precision)]


def assert_close(got, ref, dtype=np.float32, precision: str = "fp32", scale: float = 1.0):
    """Compare against a float64 reference; NaN where the reference is finite fails."""
    got = np.asarray(lc_to_numpy(got), dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"shape {got.shape} != {ref.shape}"
    rtol, atol = tolerance(dtype, precision)
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol * scale, equal_nan=True)


def lc_to_numpy(x):
    from lightning_core.runtime.arrays import to_numpy

    return to_numpy(x)


def poisoned(shape, dtype=np.float32, device: str = "cpu"):
    """An output buffer full of NaN, so an element the op never writes fails the check."""
    host = np.full(shape, np.nan, dtype=dtype)
    if device.startswith("cuda"):
        import cupy

        return cupy.asarray(host)
    return host


def rand(rng: np.random.Generator, *shape, dtype=np.float32, scale: float = 1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def run_in_threads(work, count: int) -> list[BaseException]:
    """Run ``work(i)`` for ``i`` in ``range(count)``, each on its own thread, all at once;
    returns what they raised (assertion failures included)."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _cuda_ok() -> bool:
    try:
        return lc.cuda_available()
    except AttributeError:
        from lightning_core.runtime.backend import get_backend

        return get_backend("cuda").is_available()


CUDA = _cuda_ok()
cuda_only = pytest.mark.skipif(not CUDA, reason="needs an NVIDIA GPU with CuPy (none here)")
DEVICES = ["cpu", pytest.param("cuda", marks=cuda_only)]


@pytest.fixture(params=DEVICES, scope="session")
def device(request):
    return request.param


@pytest.fixture(autouse=True)
def _fresh_routes():
    reset_routes()
    yield


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id: fresh per test, the same on every run."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def lane_trace():
    """Fresh fast-lane decisions and an empty, enabled trace; returns the dispatch events'
    notes (``[[], ["fast_lane"]]``: a full-road call, then a lane call)."""
    from lightning_core.runtime import dispatch

    dispatch.clear_decisions()
    lc.runtime_trace_clear()
    lc.runtime_trace_enable(True)
    yield lambda: [e["notes"] for e in lc.runtime_trace_events() if e["type"] == "op_dispatch"]
    lc.runtime_trace_enable(False)
    lc.runtime_trace_clear()

