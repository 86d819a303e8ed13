"""The process-wide trace ring buffer. Disabled tracing costs one attribute check."""

from __future__ import annotations

import threading
from collections import deque

from .. import config
from .events import TraceEvent

__all__ = ["Recorder", "TRACE"]


class Recorder:
    """A bounded ring of ``TraceEvent``s; the oldest is overwritten when full."""

    def __init__(self, capacity: int, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._events: deque[TraceEvent] = deque(maxlen=max(1, capacity))

    @property
    def capacity(self) -> int:
        return self._events.maxlen or 0

    def record(self, event: TraceEvent) -> None:
        with self._lock:
            self._events.append(event)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def events(self) -> list[TraceEvent]:
        with self._lock:
            return list(self._events)


TRACE = Recorder(int(config.get("LC_TRACE_CAPACITY")), bool(config.get("LC_TRACE")))
