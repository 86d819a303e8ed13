"""Runtime queries, capability and interface contracts, sync policy, the fallback rule."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import lightning_core as lc
from lightning_core import config
from lightning_core.ops.matmul import matmul_reference
from lightning_core.runtime import api_runtime
from lightning_core.runtime.backend import backend_names, get_backend
from lightning_core.runtime.device import FallbackWarning, best_device, reset_routes
from lightning_core.trace.recorder import TRACE

CAPABILITY_KEYS = {"device", "built", "available", "compute_surface", "memory_surface",
                   "sync_surface", "profiling_surface", "runtime_trace_surface",
                   "sync_policy_surface", "memory_model"}
LAYERS = {
    "compute": {"available", "op_dispatch_trace_surface", "driver_tag"},
    "memory": {"available", "allocator_surface", "memcpy_surface", "memory_model",
               "driver_tag"},
    "sync": {"available", "sync_policy_surface", "trace_sync_boundary_surface", "driver_tag"},
    "profiler": {"available", "runtime_trace_surface", "op_dispatch_trace_surface",
                 "trace_capacity", "driver_tag"},
}
TAGS = {
    "cpu": ("cpu.eager.dispatch", "cpu.host_memory", "cpu.noop_sync", "runtime.trace.ring"),
    "cuda": ("cuda.runtime.dispatch", "cuda.memory", "cuda.device_sync", "runtime.trace.ring"),
    "metal": ("metal.compute.dispatch", "metal.host_managed_memory", "metal.command_sync",
              "runtime.trace.ring"),
}
METAL_BUILT = "metal" in backend_names()
no_metal = pytest.mark.skipif(lc.metal_available(), reason="a Metal backend is available here")


@pytest.fixture(autouse=True)
def _restore_runtime(monkeypatch):
    monkeypatch.setattr(TRACE, "enabled", TRACE.enabled)
    monkeypatch.setattr(api_runtime, "_sync_mode", api_runtime._sync_mode)
    monkeypatch.setattr(api_runtime, "_sync_boundary", api_runtime._sync_boundary)
    lc.runtime_trace_clear()
    yield
    lc.runtime_trace_clear()


def _types() -> list[str]:
    return [e["type"] for e in lc.runtime_trace_events()]


def test_backend_queries():
    name = lc.backend_name()
    assert name in ("cuda", "metal", "cpu") and name == best_device()
    assert lc.cuda_available() is get_backend("cuda").is_available()
    assert lc.metal_available() is (METAL_BUILT and get_backend("metal").is_available())
    expected = "native-device" if name == "cuda" else "host-managed-compat"
    assert lc.memory_model_name() == expected


@pytest.mark.parametrize("device", ["cpu", "cuda", "metal", "auto", "cuda:0"])
def test_capabilities_contract(device):
    caps = lc.runtime_backend_capabilities(device)
    assert CAPABILITY_KEYS <= set(caps)
    kind = lc.backend_name() if device == "auto" else device.split(":")[0]
    assert caps["device"] == kind
    for key in CAPABILITY_KEYS - {"device", "memory_model"}:
        assert isinstance(caps[key], bool), key
    if kind == "cpu":
        assert caps["built"] and caps["available"] and caps["compute_surface"]
    if kind == "cuda":
        assert caps["memory_model"] == "native-device"
        assert caps["available"] is lc.cuda_available()
    if kind == "metal" and not METAL_BUILT:
        assert caps["built"] is False and caps["available"] is False
        assert caps["memory_model"] == "host-managed-compat"


def test_active_capabilities_match_backend_name():
    active = lc.runtime_active_backend_capabilities()
    assert active == lc.runtime_backend_capabilities(lc.backend_name())
    assert active["available"] is True


@pytest.mark.parametrize("fn", [lc.runtime_backend_capabilities, lc.runtime_backend_interfaces])
@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "", 3, None])
def test_unknown_device(fn, bad):
    with pytest.raises(lc.DeviceError) as err:
        fn(bad)
    assert str(err.value).startswith(f"[{fn.__name__}]")
    if isinstance(bad, str):
        assert "cpu" in str(err.value) and "metal" in str(err.value)


@pytest.mark.parametrize("device", ["cpu", "cuda", "metal"])
def test_interface_split(device):
    contract = lc.runtime_backend_interfaces(device)
    assert set(contract) == {"device", "capabilities", *LAYERS}
    assert contract["device"] == device
    caps = contract["capabilities"]
    assert caps == lc.runtime_backend_capabilities(device)
    for layer, keys in LAYERS.items():
        assert set(contract[layer]) == keys, layer
    if device != "metal" or not METAL_BUILT:
        tags = tuple(contract[layer]["driver_tag"]
                     for layer in ("compute", "memory", "sync", "profiler"))
        assert tags == TAGS[device]
    assert contract["compute"]["available"] is (caps["available"] and caps["compute_surface"])
    assert contract["memory"]["available"] is (caps["available"] and caps["memory_surface"])
    assert contract["memory"]["memory_model"] == caps["memory_model"]
    assert contract["profiler"]["trace_capacity"] == lc.runtime_trace_capacity()
    assert lc.runtime_active_backend_interfaces()["device"] == lc.backend_name()


def test_sync_policy_default_comes_from_config():
    api_runtime._sync_mode = None
    with config.override(LC_SYNC_MODE="never"):
        assert lc.runtime_sync_policy_get() == {"mode": "never", "trace_sync_boundary": False}
    lc.runtime_sync_policy_set("always", True)
    assert lc.runtime_sync_policy_get() == {"mode": "always", "trace_sync_boundary": True}


@pytest.mark.parametrize("fn", [lc.runtime_sync_policy_set, lc.runtime_sync_apply])
@pytest.mark.parametrize("args", [("sometimes", False), ("AUTO", False), (None, False),
                                  ("auto", "yes"), ("auto", 1)])
def test_bad_sync_policy(fn, args):
    with pytest.raises(lc.PolicyError) as err:
        fn(*args)
    message = str(err.value)
    assert message.startswith(f"[{fn.__name__}]")
    if args[0] != "auto":
        assert "auto, always, never" in message


@pytest.fixture
def sync_calls(monkeypatch):
    """Count synchronize() calls on the active backend."""
    calls = []
    backend = get_backend(lc.backend_name())
    monkeypatch.setattr(backend, "synchronize", lambda: calls.append(1))
    return calls


@pytest.mark.parametrize("mode,boundary,syncs,types", [
    ("never", True, 0, ["apply_sync_policy"]),
    ("auto", False, 1, ["apply_sync_policy"]),
    ("always", False, 1, ["apply_sync_policy"]),
    ("always", True, 1, ["apply_sync_policy", "device_synchronize"]),
])
def test_sync_apply(sync_calls, mode, boundary, syncs, types):
    lc.runtime_trace_enable(True)
    lc.runtime_sync_apply(mode, boundary)
    assert len(sync_calls) == syncs
    assert _types() == types
    applied = lc.runtime_trace_events()[0]
    assert applied["status"] == ("skipped" if mode == "never" else "ok")
    assert f"mode={mode}" in applied["notes"]
    assert applied["selected_device"] == lc.backend_name()


def test_sync_apply_default_uses_policy(sync_calls):
    lc.runtime_trace_enable(True)
    lc.runtime_sync_policy_set("never", False)
    lc.runtime_sync_apply_default()
    assert sync_calls == [] and _types() == ["apply_sync_policy"]
    lc.runtime_sync_policy_set("always", True)
    lc.runtime_sync_apply_default()
    assert sync_calls == [1]
    assert _types() == ["apply_sync_policy", "apply_sync_policy", "device_synchronize"]


def test_nothing_recorded_while_trace_is_off(sync_calls):
    lc.runtime_trace_enable(False)
    lc.runtime_sync_apply("always", True)
    lc.synchronize()
    assert sync_calls == [1, 1] and lc.runtime_trace_events() == []


def test_synchronize_records_event(sync_calls):
    lc.runtime_trace_enable(True)
    lc.synchronize()
    lc.synchronize(lc.backend_name())
    events = lc.runtime_trace_events()
    assert [e["type"] for e in events] == ["device_synchronize"] * 2
    assert [e["requested_device"] for e in events] == ["auto", lc.backend_name()]
    assert all(e["selected_device"] == lc.backend_name() for e in events)
    assert sync_calls == [1, 1]


def test_synchronize_bad_device():
    with pytest.raises(lc.DeviceError) as err:
        lc.synchronize("tpu")
    assert str(err.value).startswith("[synchronize]")


@no_metal
def test_metal_falls_back_warns_once_and_is_traced():
    rng = np.random.default_rng(11)
    a = rng.standard_normal((5, 4)).astype(np.float32)
    b = rng.standard_normal((4, 3)).astype(np.float32)
    lc.runtime_trace_enable(True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = lc.matmul2d(a, b, "metal")
        lc.matmul2d(a, b, "metal")
        lc.synchronize("metal")
    fallback_warnings = [w for w in caught if issubclass(w.category, FallbackWarning)]
    assert len(fallback_warnings) == 1
    assert "metal" in str(fallback_warnings[0].message)
    np.testing.assert_allclose(lc.to_device(first, "cpu"), matmul_reference(a, b),
                               rtol=2e-5, atol=2e-5)
    events = lc.runtime_trace_events()
    assert len(events) == 3
    for ev in events:
        assert ev["fallback"] is True and ev["fallback_reason"] == "device_unavailable"
        assert ev["requested_device"] == "metal"
        assert ev["selected_device"] == lc.backend_name()


@no_metal
def test_strict_device_raises():
    a = np.ones((2, 2), np.float32)
    with config.override(LC_STRICT_DEVICE=True):
        reset_routes()
        with pytest.raises(lc.DeviceUnavailableError) as err:
            lc.matmul2d(a, a, "metal")
        assert str(err.value).startswith("[matmul2d]")
        with pytest.raises(lc.DeviceUnavailableError):
            lc.synchronize("metal")
    reset_routes()
