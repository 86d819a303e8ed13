"""The sorted / grouped / hotspot report over trace events (``lc.runtime_trace_timeline``).

Events are put in timestamp order (ring position breaks ties) before the deltas are computed:
``delta_prev_ns`` is the time since the previous event started, ``delta_next_ns`` the time
until the next one starts. The last event's ``delta_next_ns`` runs to the end of the window
(the latest event end), so the deltas of all events add up to ``window_ns`` and a group's
``window_share_pct`` says which share of the traced time it accounts for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InvalidArgumentError
from .events import TraceEvent

__all__ = ["EVENT_SORT_KEYS", "GROUP_KEYS", "GROUP_SORT_KEYS", "build_timeline"]

EVENT_SORT_KEYS = ("index", "timestamp_ns", "offset_ns", "delta_prev_ns", "delta_next_ns",
                   "size_bytes", "duration_ns")
GROUP_KEYS = ("type", "status", "type_status", "op", "op_selected_device", "op_path")
GROUP_SORT_KEYS = ("key", "count", "total_delta_next_ns", "avg_delta_next_ns",
                   "max_delta_next_ns", "total_size_bytes", "total_duration_ns")

_OP = "runtime_trace_timeline"
_NOTES = (
    "timestamp_ns is time.perf_counter_ns() at the start of an event; offset_ns counts from "
    "the earliest event",
    "index is the ring position (0 = oldest event kept); rows are put in timestamp order "
    "before deltas are computed",
    "delta_next_ns is the time until the next event starts; for the last event it runs to the "
    "end of the window (the latest event end), so delta_next_ns adds up to window_ns",
    "group keys: op_path = op|selected_device|direct or op|selected_device|fallback, "
    "op_selected_device = op|selected_device, type_status = type|status; 'non_op' marks "
    "events that are not op dispatches, 'unknown' a missing device",
    "hotspots are the events with the largest delta_next_ns; hotspot_top_k=0 returns all",
)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidArgumentError(f"[{_OP}] {name} must be one of {', '.join(allowed)}; "
                                   f"got {value!r}")
    return value  # type: ignore[return-value]


def _dispatch_part(ev: TraceEvent) -> str | None:
    """``op`` of an op dispatch (``unknown`` when unnamed), None for other events."""
    if ev.type != "op_dispatch":
        return None
    return ev.op or "unknown"


def _key_fn(group_by: str) -> Callable[[TraceEvent], str]:
    def op_key(ev: TraceEvent) -> str:
        return _dispatch_part(ev) or "non_op"

    def op_device_key(ev: TraceEvent) -> str:
        op = _dispatch_part(ev)
        return "non_op" if op is None else f"{op}|{ev.selected_device or 'unknown'}"

    def op_path_key(ev: TraceEvent) -> str:
        op = _dispatch_part(ev)
        if op is None:
            return "non_op"
        path = "fallback" if ev.fallback else "direct"
        return f"{op}|{ev.selected_device or 'unknown'}|{path}"

    return {
        "type": lambda ev: ev.type,
        "status": lambda ev: ev.status,
        "type_status": lambda ev: f"{ev.type}|{ev.status}",
        "op": op_key,
        "op_selected_device": op_device_key,
        "op_path": op_path_key,
    }[group_by]


def _rows(events: Sequence[TraceEvent]) -> tuple[list[dict[str, Any]], int]:
    """Event rows with offsets and deltas (in timestamp order), and the window length."""
    order = sorted(range(len(events)), key=lambda i: (events[i].timestamp_ns, i))
    if not order:
        return [], 0
    start = events[order[0]].timestamp_ns
    end = max(ev.timestamp_ns + ev.duration_ns for ev in events)
    rows = []
    for pos, i in enumerate(order):
        ev = events[i]
        prev_ts = events[order[pos - 1]].timestamp_ns if pos else ev.timestamp_ns
        next_ts = events[order[pos + 1]].timestamp_ns if pos + 1 < len(order) else end
        row = {"index": i, **ev.as_dict()}
        row["offset_ns"] = ev.timestamp_ns - start
        row["delta_prev_ns"] = ev.timestamp_ns - prev_ts
        row["delta_next_ns"] = next_ts - ev.timestamp_ns
        rows.append(row)
    return rows, end - start


def _groups(events: Sequence[TraceEvent], rows: list[dict[str, Any]], group_by: str,
            window_ns: int) -> list[dict[str, Any]]:
    key_of = _key_fn(group_by)
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = key_of(events[row["index"]])
        g = groups.get(key)
        if g is None:
            g = groups[key] = {
                "key": key, "count": 0, "total_delta_next_ns": 0, "avg_delta_next_ns": 0.0,
                "max_delta_next_ns": 0, "total_size_bytes": 0,
                "first_timestamp_ns": row["timestamp_ns"], "last_timestamp_ns": 0,
                "window_share_pct": 0.0, "total_duration_ns": 0,
            }
        g["count"] += 1
        g["total_delta_next_ns"] += row["delta_next_ns"]
        g["max_delta_next_ns"] = max(g["max_delta_next_ns"], row["delta_next_ns"])
        g["total_size_bytes"] += row["size_bytes"]
        g["total_duration_ns"] += row["duration_ns"]
        g["last_timestamp_ns"] = row["timestamp_ns"]
    for g in groups.values():
        g["avg_delta_next_ns"] = g["total_delta_next_ns"] / g["count"]
        if window_ns > 0:
            g["window_share_pct"] = 100.0 * g["total_delta_next_ns"] / window_ns
    return list(groups.values())


def _sorted(rows: list[dict[str, Any]], by: str, descending: bool,
            tie: str) -> list[dict[str, Any]]:
    """Sort on ``by`` (ties broken by ``tie``, always ascending)."""
    if by == "key":
        return sorted(rows, key=lambda r: r["key"], reverse=descending)
    sign = -1 if descending else 1
    return sorted(rows, key=lambda r: (sign * r[by], r[tie]))


def build_timeline(events: Sequence[TraceEvent], *, event_sort_by: str = "timestamp_ns",
                   event_descending: bool = False, group_by: str = "type",
                   group_sort_by: str = "total_delta_next_ns", group_descending: bool = True,
                   hotspot_top_k: int = 8, dropped: int = 0) -> dict[str, Any]:
    """The timeline report over ``events`` (given in ring order, oldest first)."""
    _choice("event_sort_by", event_sort_by, EVENT_SORT_KEYS)
    _choice("group_by", group_by, GROUP_KEYS)
    _choice("group_sort_by", group_sort_by, GROUP_SORT_KEYS)
    if isinstance(hotspot_top_k, bool) or not isinstance(hotspot_top_k, int) \
            or hotspot_top_k < 0:
        raise InvalidArgumentError(f"[{_OP}] hotspot_top_k must be an integer >= 0 (0 = all); "
                                   f"got {hotspot_top_k!r}")
    rows, window_ns = _rows(events)
    groups = _groups(events, rows, group_by, window_ns)
    hotspots = [dict(r) for r in _sorted(rows, "delta_next_ns", True, "index")]
    notes = list(_NOTES)
    if dropped:
        notes.append(f"the ring overwrote {dropped} older events; the window starts at the "
                     "oldest event kept")
    return {
        "event_count": len(rows),
        "event_sort_by": event_sort_by,
        "event_descending": bool(event_descending),
        "group_by": group_by,
        "group_sort_by": group_sort_by,
        "group_descending": bool(group_descending),
        "hotspot_top_k": hotspot_top_k,
        "notes": notes,
        "window_ns": window_ns,
        "events": _sorted(rows, event_sort_by, bool(event_descending), "index"),
        "groups": _sorted(groups, group_sort_by, bool(group_descending), "key"),
        "hotspots": hotspots[:hotspot_top_k] if hotspot_top_k else hotspots,
    }
