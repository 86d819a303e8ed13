"""The process-wide trace ring buffer. Disabled tracing costs one attribute check."""

from __future__ import annotations

import threading
from collections import deque

from .. import config
from .events import TraceEvent

__all__ = ["Recorder", "TRACE"]


class Recorder:
    """A bounded ring of ``TraceEvent``s; the oldest is overwritten when full.

    ``dropped`` counts the events overwritten since the last ``clear()``, so a report can say
    that its window does not reach back to the start.
    """

    def __init__(self, capacity: int, enabled: bool) -> None:
        self.enabled = enabled
        self.dropped = 0
        self._lock = threading.Lock()
        self._events: deque[TraceEvent] = deque(maxlen=max(1, capacity))

    @property
    def capacity(self) -> int:
        return self._events.maxlen or 0

    def set_capacity(self, capacity: int) -> None:
        """Resize the ring, keeping the newest events that still fit."""
        with self._lock:
            kept = deque(self._events, maxlen=max(1, capacity))
            self.dropped += len(self._events) - len(kept)
            self._events = kept

    def record(self, event: TraceEvent) -> None:
        with self._lock:
            if len(self._events) == self._events.maxlen:
                self.dropped += 1
            self._events.append(event)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
            self.dropped = 0

    def events(self) -> list[TraceEvent]:
        with self._lock:
            return list(self._events)


TRACE = Recorder(int(config.get("LC_TRACE_CAPACITY")), bool(config.get("LC_TRACE")))
