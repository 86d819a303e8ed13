"""Export trace events as Chrome trace-event JSON, the format Perfetto and chrome://tracing load.

Every event becomes a complete event (``"ph": "X"``) with ``ts`` and ``dur`` in microseconds
counted from the earliest event. Op dispatches sit on one track per selected device; syncs,
copies and other runtime events on a ``runtime`` track. The file is written atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ..errors import InvalidArgumentError
from .events import TraceEvent

__all__ = ["chrome_trace", "write_chrome_trace"]

_OP = "runtime_trace_export_chrome"


def _track(ev: TraceEvent) -> str:
    if ev.type == "op_dispatch":
        return ev.selected_device or "unknown"
    return "runtime"


def chrome_trace(events: Sequence[TraceEvent]) -> dict[str, Any]:
    """The Chrome trace-event document for ``events`` (ring order, oldest first)."""
    pid = os.getpid()
    start = min((ev.timestamp_ns for ev in events), default=0)
    tids: dict[str, int] = {}
    body = []
    for index, ev in enumerate(events):
        tid = tids.setdefault(_track(ev), len(tids) + 1)
        body.append({
            "name": ev.op or ev.type,
            "cat": ev.type,
            "ph": "X",
            # Microseconds as floats keep nanosecond resolution; Perfetto reads them exactly.
            "ts": (ev.timestamp_ns - start) / 1000.0,
            "dur": ev.duration_ns / 1000.0,
            "pid": pid,
            "tid": tid,
            "args": {"index": index, **ev.as_dict()},
        })
    meta: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                                   "args": {"name": "lightning_core"}}]
    meta += [{"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}
             for name, tid in tids.items()]
    return {
        "traceEvents": meta + body,
        "displayTimeUnit": "ns",
        "otherData": {"lightning_core_version": __version__, "event_count": len(body),
                      "clock": "time.perf_counter_ns", "origin_ns": start},
    }


def write_chrome_trace(path: str | os.PathLike[str], events: Sequence[TraceEvent]) -> str:
    """Write ``events`` to ``path`` as Chrome trace JSON (temp file + rename); return the path."""
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"[{_OP}] folder {folder!r} does not exist")
    if os.path.isdir(target):
        raise InvalidArgumentError(f"[{_OP}] {target!r} is a folder; give a file path")
    document = chrome_trace(events)
    fd, tmp = tempfile.mkstemp(prefix=".lc_trace_", suffix=".json.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a trace is meant to be shared
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target
