"""Trace events: one frozen record per dispatch, sync, copy or policy application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TraceEvent", "EVENT_TYPES"]

EVENT_TYPES = (
    "op_dispatch",
    "device_synchronize",
    "apply_sync_policy",
    "memcpy",
    "malloc_device",
    "free_device",
    "graph_capture",
    "graph_replay",
    "compile",
    "tune",
)


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One runtime event. ``timestamp_ns`` is the start, on ``time.perf_counter_ns``'s clock."""

    type: str
    timestamp_ns: int
    duration_ns: int = 0
    status: str = "ok"
    size_bytes: int = 0
    op: str = ""
    requested_device: str = ""
    selected_device: str = ""
    fallback: bool = False
    fallback_reason: str = ""
    impl: str = ""
    impl_reason: str = ""
    shapes: tuple[tuple[int, ...], ...] = ()
    dtype: str = ""
    precision: str = ""
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
    synchronized: bool = False
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The seed's raw event keys plus ours (plain Python values only)."""
        return {
            "type": self.type,
            "status": self.status,
            "timestamp_ns": self.timestamp_ns,
            "duration_ns": self.duration_ns,
            "size_bytes": self.size_bytes,
            "detail0": self.op,
            "detail1": self.impl,
            "op": self.op,
            "requested_device": self.requested_device,
            "selected_device": self.selected_device,
            "fallback": self.fallback,
            "fallback_reason": self.fallback_reason,
            "impl": self.impl,
            "impl_reason": self.impl_reason,
            "shapes": [list(s) for s in self.shapes],
            "dtype": self.dtype,
            "precision": self.precision,
            "bytes_uploaded": self.bytes_uploaded,
            "bytes_downloaded": self.bytes_downloaded,
            "synchronized": self.synchronized,
            "notes": list(self.notes),
        }
