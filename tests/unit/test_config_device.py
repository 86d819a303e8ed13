"""Configuration knobs (LC_* names, CJ_* aliases, bad values) and device-string routing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import lightning_core as lc
from lightning_core import config
from lightning_core.runtime import api_runtime
from lightning_core.runtime.device import (
    VALID_DEVICES,
    FallbackWarning,
    best_device,
    parse_device,
    reset_routes,
    resolve,
)

no_metal = pytest.mark.skipif(lc.metal_available(), reason="a Metal backend is available here")


@pytest.fixture(autouse=True)
def _fresh_config(monkeypatch):
    for knob in config.KNOBS.values():
        for name in (knob.name, *knob.aliases):
            monkeypatch.delenv(name, raising=False)
    config.reload()
    yield
    monkeypatch.undo()
    config.reload()
    reset_routes()


def test_defaults():
    assert config.get("LC_STRICT_DEVICE") is False
    assert config.get("LC_TRACE_CAPACITY") == 4096
    assert config.get("LC_SYNC_MODE") == "auto"
    assert config.get("LC_PRECISION") == "fp32"
    assert config.get("LC_MATMUL_PREFER_CUBLAS_ON_LARGE") is True


@pytest.mark.parametrize("text,value", [("1", True), ("true", True), ("ON", True),
                                        ("yes", True), ("0", False), ("off", False),
                                        ("", False), (" False ", False)])
def test_boolean_forms(monkeypatch, text, value):
    monkeypatch.setenv("LC_STRICT_DEVICE", text)
    config.reload()
    assert config.get("LC_STRICT_DEVICE") is value


@pytest.mark.parametrize("alias,name,text,value", [
    ("CJ_MATMUL_MPS_HYST_PCT", "LC_MATMUL_CUBLAS_HYST_PCT", "5.0", 5.0),
    ("CJ_MATMUL_PREFER_MPS_ON_LARGE", "LC_MATMUL_PREFER_CUBLAS_ON_LARGE", "0", False),
    ("CJ_MATMUL_DISABLE_PROMOTED_BUCKETS", "LC_MATMUL_DISABLE_PROMOTED_BUCKETS", "1", True),
    ("CJ_CONV2D_CPU_CROSSOVER_MACS", "LC_CONV2D_CPU_CROSSOVER_MACS", "260000", 260000),
    ("CJ_MATMUL_TUNE_CACHE_FILE", "LC_TUNE_CACHE_FILE", "/tmp/x.json", "/tmp/x.json"),
])
def test_cj_aliases(monkeypatch, alias, name, text, value):
    monkeypatch.setenv(alias, text)
    config.reload()
    assert config.get(name) == value
    assert config.get(alias) == value


def test_lc_name_wins_over_alias(monkeypatch):
    monkeypatch.setenv("CJ_MATMUL_MPS_HYST_PCT", "5.0")
    monkeypatch.setenv("LC_MATMUL_CUBLAS_HYST_PCT", "2.5")
    config.reload()
    assert config.get("LC_MATMUL_CUBLAS_HYST_PCT") == 2.5


@pytest.mark.parametrize("name,text", [("LC_TRACE_CAPACITY", "lots"),
                                       ("LC_STRICT_DEVICE", "maybe"),
                                       ("LC_SYNC_MODE", "sometimes"),
                                       ("LC_PRECISION", "fp8"),
                                       ("CJ_MATMUL_MPS_HYST_PCT", "five")])
def test_bad_value_raises_config_error(monkeypatch, name, text):
    monkeypatch.setenv(name, text)
    config.reload()
    canonical = config._canonical(name)
    with pytest.raises(lc.ConfigError) as err:
        config.get(canonical)
    assert str(err.value).startswith("[config]")
    assert name in str(err.value) and isinstance(err.value, ValueError)


def test_reload_rereads_environment(monkeypatch):
    assert config.get("LC_TUNE") == 1
    monkeypatch.setenv("LC_TUNE", "2")
    assert config.get("LC_TUNE") == 1  # cached until reload
    config.reload()
    assert config.get("LC_TUNE") == 2


def test_override_is_scoped():
    with config.override(LC_PRECISION="tf32", CJ_MATMUL_MPS_HYST_PCT=3.0):
        assert config.get("LC_PRECISION") == "tf32"
        assert config.get("LC_MATMUL_CUBLAS_HYST_PCT") == 3.0
    assert config.get("LC_PRECISION") == "fp32"
    with pytest.raises(KeyError, match=r"\[config\] unknown knob"):
        config.get("LC_NOPE")


def test_describe_lists_every_knob():
    rows = config.describe()
    assert {r["name"] for r in rows} == set(config.KNOBS)
    for r in rows:
        assert set(r) == {"name", "aliases", "default", "value", "doc"} and r["doc"]


def test_sync_mode_knob_feeds_the_policy(monkeypatch):
    monkeypatch.setattr(api_runtime, "_sync_mode", None)
    monkeypatch.setenv("LC_SYNC_MODE", "never")
    config.reload()
    assert lc.runtime_sync_policy_get()["mode"] == "never"


@pytest.mark.parametrize("text,parsed", [("auto", ("auto", 0)), ("cpu", ("cpu", 0)),
                                         (" CUDA ", ("cuda", 0)), ("cuda:3", ("cuda", 3)),
                                         ("Metal", ("metal", 0))])
def test_parse_device(text, parsed):
    assert parse_device("op", text) == parsed


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "cuda:-1", "mps", "", 0, None])
def test_parse_device_rejects(bad):
    with pytest.raises(lc.DeviceError) as err:
        parse_device("myop", bad)
    message = str(err.value)
    assert message.startswith("[myop]")
    assert all(v in message for v in VALID_DEVICES)


def test_resolve_direct_and_auto():
    route = resolve("op", "cpu")
    assert (route.selected, route.fallback, route.reason) == ("cpu", False, "")
    auto = resolve("op", "auto")
    assert auto.selected == best_device() == lc.backend_name() and not auto.fallback


@no_metal
@pytest.mark.parametrize("device", ["metal", "cuda:99"])
def test_unavailable_device_falls_back_and_warns_once(device):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = resolve("op", device)
        second = resolve("op", device)
    assert first is second
    assert (first.selected, first.fallback, first.reason) == (best_device(), True,
                                                              "device_unavailable")
    assert sum(issubclass(w.category, FallbackWarning) for w in caught) == 1
    reset_routes()
    with pytest.warns(FallbackWarning):
        resolve("op", device)


@no_metal
def test_strict_device_from_environment(monkeypatch):
    monkeypatch.setenv("LC_STRICT_DEVICE", "1")
    config.reload()
    reset_routes()
    with pytest.raises(lc.DeviceUnavailableError) as err:
        lc.matmul2d(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), "metal")
    assert str(err.value).startswith("[matmul2d]")
    assert isinstance(err.value, RuntimeError)
