"""Session executor of the CUDA backend: warm up, capture the step as CUDA graphs, replay.

A session owns a non-blocking stream and a private memory pool. Every buffer the session
allocates — its resident inputs and outputs, and whatever its step allocates while it is
captured — comes from that pool, so a graph never refers to memory that someone else may be
handed later. The step is captured unrolled 1, 4, 16 and 64 times on first use of each size,
and a batch of N replays is at most a handful of graph launches (one host call each), so the
per-iteration cost is the kernel time plus the in-graph launch gap (about a microsecond).
If a step cannot be captured (a library call that is not capturable), replays fall back to
eager launches on the same stream and ``capture_error`` says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import BackendError, DeviceOutOfMemoryError
from ...runtime.backend import Impl

__all__ = ["GraphExecutor", "UNROLLS"]

UNROLLS = (64, 16, 4, 1)


class GraphExecutor:
    """Owns a stream, a memory pool and the captured graphs of one session."""

    graphs = True
    device = "cuda"

    def __init__(self) -> None:
        import cupy  # noqa: PLC0415 - only constructed when CUDA is available

        self.xp = cupy
        self._cp = cupy
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self._pool = cupy.cuda.MemoryPool()
        self._steps: dict[Any, Callable[[], None]] = {}
        self._graphs: dict[tuple[Any, int], Any] = {}
        self.capture_error: str | None = None
        # Two events ordering the session stream with the caller's (inputs in, outputs out).
        self._events = (cupy.cuda.Event(disable_timing=True), cupy.cuda.Event(disable_timing=True))
        self._current = cupy.cuda.get_current_stream
        self._record, self._wait = cupy.cuda.runtime.eventRecord, cupy.cuda.runtime.streamWaitEvent
        # Caller streams that replays were queued on since the session stream last waited.
        self._caller_streams: dict[int, Any] = {}

    @property
    def variant_count(self) -> int:
        """How many graphs this session has captured."""
        return len(self._graphs)

    def _scope(self) -> Any:
        return _Scope(self._cp, self.stream, self._pool)

    def alloc(self, shape: tuple[int, ...], dtype: Any) -> Any:
        try:
            with self._scope():
                return self._cp.zeros(shape, dtype=dtype)
        except self._cp.cuda.memory.OutOfMemoryError as exc:
            raise DeviceOutOfMemoryError(f"[session] cannot allocate {shape} {np.dtype(dtype)}"
                                         f" on the device: {exc}") from None

    def upload(self, op: str, name: str, src: Any, buf: Any) -> int:
        cp = self._cp
        if isinstance(src, cp.ndarray):
            ready = cp.cuda.Event(disable_timing=True)
            ready.record(cp.cuda.get_current_stream())
            self.stream.wait_event(ready)
            with self._scope():
                buf[...] = src.reshape(buf.shape)
            return 0
        host = np.ascontiguousarray(np.asarray(src).reshape(buf.shape))
        buf.set(host, stream=self.stream)
        return host.nbytes

    def download(self, buf: Any, out: Any) -> int:
        cp = self._cp
        if isinstance(out, cp.ndarray):
            with self._scope():
                out.reshape(buf.shape)[...] = buf
            done = cp.cuda.Event(disable_timing=True)
            done.record(self.stream)
            cp.cuda.get_current_stream().wait_event(done)
            return 0
        target = out.reshape(buf.shape)
        buf.get(stream=self.stream, out=target)
        self.stream.synchronize()
        return target.nbytes

    def call_impl(self, impl: Impl, inputs: tuple[Any, ...], out: Any, precision: str,
                  params: dict[str, Any]) -> None:
        if out.size:
            impl.fn(*inputs, out=out, stream=self.stream, precision=precision, **params)

    def bind(self, key: Any, step: Callable[[], None]) -> None:
        """Register a step and warm it up once (compiles kernels, creates library handles)."""
        with self._scope():
            step()
        self.stream.synchronize()
        self._steps[key] = step

    def drop(self, key: Any) -> None:
        """Forget a step and its captured graphs."""
        self._steps.pop(key, None)
        for gkey in [g for g in self._graphs if g[0] == key]:
            del self._graphs[gkey]

    def has(self, key: Any) -> bool:
        return key in self._steps

    def _graph(self, key: Any, unroll: int) -> Any:
        graph = self._graphs.get((key, unroll))
        if graph is not None or self.capture_error is not None:
            return graph
        step = self._steps[key]
        with self._scope():
            self.stream.begin_capture()
            try:
                for _ in range(unroll):
                    step()
            except Exception as exc:  # noqa: BLE001 - report, then end the capture
                failure: Exception | None = exc
            else:
                failure = None
            try:
                graph = self.stream.end_capture()
            except Exception as exc:  # noqa: BLE001 - an invalidated capture
                failure = failure or exc
                graph = None
        if failure is not None:
            self.capture_error = f"{type(failure).__name__}: {failure}"
            return None
        self._graphs[(key, unroll)] = graph
        return graph

    def replay(self, key: Any, repeat: int = 1) -> None:
        """Run the step ``repeat`` times on the session stream (no host sync)."""
        left = repeat
        try:
            for unroll in UNROLLS:
                while left >= unroll:
                    graph = self._graph(key, unroll)
                    if graph is None:
                        self._replay_eager(key, left)
                        return
                    graph.launch(stream=self.stream)
                    left -= unroll
        except self._cp.cuda.runtime.CUDARuntimeError as exc:
            raise BackendError(f"[session] graph replay failed: {exc}") from None

    def _replay_eager(self, key: Any, repeat: int) -> None:
        step = self._steps[key]
        with self._scope():
            for _ in range(repeat):
                step()

    def sync(self) -> None:
        self.stream.synchronize()

    def follow_caller(self) -> None:
        """Order the session stream after what the caller queued so far on its current stream
        (device inputs read in place may still be being written there), and after every
        replay ``launch_on_caller`` queued on other streams."""
        current = self._current()
        self._caller_streams[current.ptr] = current
        mine = self.stream.ptr
        event = self._events[0].ptr
        for ptr in self._caller_streams:
            if ptr != mine:
                self._record(event, ptr)
                self._wait(mine, event)
        self._caller_streams.clear()

    def launch_on_caller(self, key: Any) -> bool:
        """Queue the one-step graph of ``key`` on the caller's current stream; False when there
        is none (not captured yet, or replays run eagerly).

        For inputs read in place: the replay is ordered after the caller's writes and before
        its later work by the stream itself, so no events are recorded. Launches of one graph
        run in launch order whatever their streams; session-stream work waits for these
        launches in ``follow_caller``.
        """
        graph = self._graphs.get((key, 1))
        if graph is None:
            return False
        current = self._current()
        try:
            graph.launch(stream=current)
        except self._cp.cuda.runtime.CUDARuntimeError as exc:
            raise BackendError(f"[session] graph replay failed: {exc}") from None
        self._caller_streams[current.ptr] = current
        return True

    def sync_caller(self) -> None:
        """Wait for the caller's current stream."""
        self._current().synchronize()

    def hand_to_caller(self) -> None:
        """Order the caller's current stream after the session's queued work (outputs handed
        back without a host sync)."""
        caller, mine = self._current().ptr, self.stream.ptr
        if caller != mine:
            event = self._events[1].ptr
            self._record(event, mine)
            self._wait(caller, event)

    def run_eager(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the session stream with the session's memory pool."""
        with self._scope():
            return fn()


class _Scope:
    """``with`` the session stream current and the session pool as the allocator."""

    def __init__(self, cp: Any, stream: Any, pool: Any) -> None:
        self._stream = stream
        self._alloc = cp.cuda.using_allocator(pool.malloc)

    def __enter__(self) -> None:
        self._alloc.__enter__()
        self._stream.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._stream.__exit__(*exc)
        self._alloc.__exit__(*exc)
