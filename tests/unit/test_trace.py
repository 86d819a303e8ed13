"""The runtime trace: ring buffer, op-dispatch events, the timeline report, Chrome export."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

import lightning_core as lc
from lightning_core.runtime import api_runtime
from lightning_core.runtime.device import FallbackWarning
from lightning_core.trace.events import TraceEvent
from lightning_core.trace.recorder import TRACE
from lightning_core.trace.timeline import (
    EVENT_SORT_KEYS,
    GROUP_KEYS,
    GROUP_SORT_KEYS,
    build_timeline,
)

SEED_EVENT_KEYS = {"type", "status", "timestamp_ns", "size_bytes", "detail0", "detail1", "op",
                   "requested_device", "selected_device", "fallback"}
DISPATCH_KEYS = {"op", "requested_device", "selected_device", "fallback", "fallback_reason",
                 "impl", "impl_reason", "shapes", "dtype", "precision", "duration_ns",
                 "bytes_uploaded", "bytes_downloaded", "synchronized", "notes", "index"}
REPORT_KEYS = {"event_count", "event_sort_by", "event_descending", "group_by", "group_sort_by",
               "group_descending", "hotspot_top_k", "notes", "window_ns", "events", "groups",
               "hotspots"}
ROW_KEYS = {"index", "type", "status", "op", "requested_device", "selected_device", "fallback",
            "timestamp_ns", "offset_ns", "delta_prev_ns", "delta_next_ns", "size_bytes",
            "detail0", "detail1", "duration_ns"}
GROUP_ROW_KEYS = {"key", "count", "total_delta_next_ns", "avg_delta_next_ns",
                  "max_delta_next_ns", "total_size_bytes", "first_timestamp_ns",
                  "last_timestamp_ns", "window_share_pct", "total_duration_ns"}


@pytest.fixture(autouse=True)
def _restore_trace(monkeypatch):
    monkeypatch.setattr(TRACE, "enabled", TRACE.enabled)
    monkeypatch.setattr(api_runtime, "_sync_mode", api_runtime._sync_mode)
    monkeypatch.setattr(api_runtime, "_sync_boundary", api_runtime._sync_boundary)
    capacity = TRACE.capacity
    lc.runtime_trace_clear()
    yield
    lc.runtime_trace_set_capacity(capacity)
    lc.runtime_trace_clear()


def _mm(m: int, device: str = "cpu") -> None:
    a = np.ones((m, 3), np.float32)
    b = np.ones((3, 2), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        lc.matmul2d(a, b, device)


def test_enable_disable_and_clear():
    lc.runtime_trace_enable(False)
    assert lc.runtime_trace_enabled() is False
    _mm(2)
    assert lc.runtime_trace_events() == []
    lc.runtime_trace_enable(True)
    assert lc.runtime_trace_enabled() is True
    _mm(2)
    assert len(lc.runtime_trace_events()) == 1
    lc.runtime_trace_clear()
    assert lc.runtime_trace_events() == []


def test_capacity_default_and_ring_overwrites_oldest():
    assert lc.runtime_trace_capacity() == 4096 or os.environ.get("LC_TRACE_CAPACITY")
    lc.runtime_trace_set_capacity(5)
    assert lc.runtime_trace_capacity() == 5
    lc.runtime_trace_enable(True)
    for m in range(1, 9):
        _mm(m)
    events = lc.runtime_trace_events()
    assert [e["shapes"][0][0] for e in events] == [4, 5, 6, 7, 8]
    assert [e["index"] for e in events] == [0, 1, 2, 3, 4]
    report = lc.runtime_trace_timeline()
    assert report["event_count"] == 5
    assert any("overwrote 3" in note for note in report["notes"])


def test_shrinking_keeps_newest_events():
    lc.runtime_trace_enable(True)
    for m in range(1, 7):
        _mm(m)
    lc.runtime_trace_set_capacity(2)
    assert [e["shapes"][0][0] for e in lc.runtime_trace_events()] == [5, 6]
    lc.runtime_trace_set_capacity(10)
    assert len(lc.runtime_trace_events()) == 2


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8", None])
def test_bad_capacity(bad):
    with pytest.raises(lc.InvalidArgumentError) as err:
        lc.runtime_trace_set_capacity(bad)
    assert str(err.value).startswith("[runtime_trace_set_capacity]")


def test_op_dispatch_event_fields():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((7, 5)).astype(np.float32)
    b = rng.standard_normal((5, 3)).astype(np.float32)
    lc.runtime_trace_enable(True)
    lc.matmul2d(a, b, "cpu")
    (ev,) = lc.runtime_trace_events()
    assert SEED_EVENT_KEYS | DISPATCH_KEYS <= set(ev)
    assert ev["type"] == "op_dispatch" and ev["status"] == "ok"
    assert (ev["op"], ev["requested_device"], ev["selected_device"]) == ("matmul2d", "cpu", "cpu")
    assert ev["fallback"] is False and ev["fallback_reason"] == ""
    assert ev["impl"].startswith("cpu.matmul.")
    assert ev["impl_reason"] in ("tuned", "policy", "crossover", "default")
    assert ev["shapes"] == [[7, 5], [5, 3], [7, 3]]
    assert (ev["dtype"], ev["precision"]) == ("float32", "fp32")
    assert ev["size_bytes"] == a.nbytes + b.nbytes
    assert isinstance(ev["timestamp_ns"], int) and ev["duration_ns"] >= 0
    json.dumps(ev)  # plain Python values only


def test_fallback_dispatch_is_marked():
    if lc.metal_available():
        pytest.skip("a Metal backend is available here, so 'metal' does not fall back")
    lc.runtime_trace_enable(True)
    _mm(3, "metal")
    (ev,) = lc.runtime_trace_events()
    assert ev["fallback"] is True and ev["fallback_reason"] == "device_unavailable"
    assert (ev["requested_device"], ev["selected_device"]) == ("metal", lc.backend_name())


def test_timeline_groups_by_op_path():
    if lc.metal_available():
        pytest.skip("a Metal backend is available here, so 'metal' does not fall back")
    lc.runtime_trace_enable(True)
    for _ in range(3):
        _mm(4, "cpu")
    for _ in range(2):
        _mm(4, "metal")
    lc.synchronize("cpu")
    report = lc.runtime_trace_timeline(group_by="op_path", hotspot_top_k=0)
    assert set(report) == REPORT_KEYS
    counts = {g["key"]: g["count"] for g in report["groups"]}
    assert counts == {"matmul2d|cpu|direct": 3, f"matmul2d|{lc.backend_name()}|fallback": 2,
                      "non_op": 1}
    for g in report["groups"]:
        assert set(g) == GROUP_ROW_KEYS
    totals = [g["total_delta_next_ns"] for g in report["groups"]]
    assert totals == sorted(totals, reverse=True)
    assert sum(totals) == report["window_ns"]
    assert sum(g["window_share_pct"] for g in report["groups"]) == pytest.approx(100.0)
    assert len(report["hotspots"]) == 6
    assert ROW_KEYS <= set(report["events"][0])


def _synthetic() -> list[TraceEvent]:
    """Ring order differs from time order on purpose (index 0 started last)."""
    return [
        TraceEvent("op_dispatch", 400, 30, size_bytes=8, op="matmul2d", requested_device="metal",
                   selected_device="cpu", fallback=True, fallback_reason="device_unavailable"),
        TraceEvent("op_dispatch", 100, 10, size_bytes=16, op="matmul2d",
                   requested_device="cpu", selected_device="cpu"),
        TraceEvent("device_synchronize", 150, 20, status="ok"),
        TraceEvent("op_dispatch", 160, 5, status="error", op=""),
    ]


def test_timeline_arithmetic_on_known_events():
    report = build_timeline(_synthetic(), hotspot_top_k=2)
    rows = report["events"]
    assert [r["index"] for r in rows] == [1, 2, 3, 0]
    assert [r["offset_ns"] for r in rows] == [0, 50, 60, 300]
    assert [r["delta_prev_ns"] for r in rows] == [0, 50, 10, 240]
    # The last event's delta_next runs to the window end (its own end, 430).
    assert [r["delta_next_ns"] for r in rows] == [50, 10, 240, 30]
    assert report["window_ns"] == 330
    assert [h["index"] for h in report["hotspots"]] == [3, 1]
    groups = {g["key"]: g for g in report["groups"]}
    assert groups["op_dispatch"]["count"] == 3
    assert groups["op_dispatch"]["total_delta_next_ns"] == 320
    assert groups["op_dispatch"]["max_delta_next_ns"] == 240
    assert groups["op_dispatch"]["total_size_bytes"] == 24
    assert groups["op_dispatch"]["total_duration_ns"] == 45
    assert groups["op_dispatch"]["first_timestamp_ns"] == 100
    assert groups["op_dispatch"]["last_timestamp_ns"] == 400
    assert groups["op_dispatch"]["avg_delta_next_ns"] == pytest.approx(320 / 3)
    assert groups["device_synchronize"]["window_share_pct"] == pytest.approx(100 * 10 / 330)


@pytest.mark.parametrize("group_by,keys", [
    ("type", {"op_dispatch", "device_synchronize"}),
    ("status", {"ok", "error"}),
    ("type_status", {"op_dispatch|ok", "device_synchronize|ok", "op_dispatch|error"}),
    ("op", {"matmul2d", "non_op", "unknown"}),
    ("op_selected_device", {"matmul2d|cpu", "non_op", "unknown|unknown"}),
    ("op_path", {"matmul2d|cpu|direct", "matmul2d|cpu|fallback", "non_op",
                 "unknown|unknown|direct"}),
])
def test_group_keys(group_by, keys):
    report = build_timeline(_synthetic(), group_by=group_by)
    assert {g["key"] for g in report["groups"]} == keys
    assert sum(g["count"] for g in report["groups"]) == 4


@pytest.mark.parametrize("key", EVENT_SORT_KEYS)
@pytest.mark.parametrize("descending", [False, True])
def test_event_sorting(key, descending):
    rows = build_timeline(_synthetic(), event_sort_by=key, event_descending=descending)["events"]
    values = [r[key] for r in rows]
    assert values == sorted(values, reverse=descending)


@pytest.mark.parametrize("key", GROUP_SORT_KEYS)
@pytest.mark.parametrize("descending", [False, True])
def test_group_sorting(key, descending):
    groups = build_timeline(_synthetic(), group_by="op_path", group_sort_by=key,
                            group_descending=descending)["groups"]
    values = [g[key] for g in groups]
    assert values == sorted(values, reverse=descending)


def test_hotspot_top_k_zero_means_all_and_empty_trace():
    assert len(build_timeline(_synthetic(), hotspot_top_k=0)["hotspots"]) == 4
    empty = lc.runtime_trace_timeline()
    assert (empty["event_count"], empty["window_ns"]) == (0, 0)
    assert empty["events"] == empty["groups"] == empty["hotspots"] == []


@pytest.mark.parametrize("kwargs,valid", [
    ({"event_sort_by": "speed"}, EVENT_SORT_KEYS),
    ({"group_by": "device"}, GROUP_KEYS),
    ({"group_sort_by": "avg"}, GROUP_SORT_KEYS),
    ({"hotspot_top_k": -1}, ("0 = all",)),
    ({"hotspot_top_k": 2.0}, ("0 = all",)),
])
def test_bad_timeline_arguments(kwargs, valid):
    with pytest.raises(lc.InvalidArgumentError) as err:
        lc.runtime_trace_timeline(**kwargs)
    message = str(err.value)
    assert message.startswith("[runtime_trace_timeline]")
    assert all(v in message for v in valid)


def test_chrome_export_round_trip(tmp_path):
    lc.runtime_trace_enable(True)
    _mm(5, "cpu")
    _mm(6, "cpu")
    lc.synchronize()
    path = tmp_path / "trace.json"
    assert lc.runtime_trace_export_chrome(path) == str(path)
    doc = json.loads(path.read_text())
    assert doc["displayTimeUnit"] == "ns"
    complete = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert [e["name"] for e in complete] == ["matmul2d", "matmul2d", "device_synchronize"]
    assert complete[0]["ts"] == 0.0
    for e in complete:
        assert e["dur"] >= 0 and e["ts"] >= 0
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
    assert complete[0]["args"]["selected_device"] == "cpu"
    assert complete[1]["args"]["shapes"] == [[6, 3], [3, 2], [6, 2]]
    lanes = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert {"cpu", "runtime"} <= lanes
    assert os.listdir(tmp_path) == ["trace.json"]  # no temp file left behind
    assert path.stat().st_mode & 0o644 == 0o644


def test_chrome_export_bad_paths(tmp_path):
    for bad in (tmp_path / "missing" / "t.json", tmp_path):
        with pytest.raises(lc.InvalidArgumentError) as err:
            lc.runtime_trace_export_chrome(bad)
        assert str(err.value).startswith("[runtime_trace_export_chrome]")
