"""One-shot elementwise calls on page-locked host arrays, their transfers and kernels overlapped.

Output element i of a flat (elementwise) implementation depends on element i of each input
only, so a one-shot call can run in chunks: chunk i's uploads go on the backend stream while
chunk i-1's kernel and download run on a side stream. The link is full duplex and each
direction has its own copy engine (8 MB up and 8 MB down at once: 188 us, against 168 us up
alone), so the call costs about its uploads plus the last chunk's kernel and download, where it
used to cost uploads + kernel + download in series (1024x1024 ``matrix_sub``: 164 us up, 11
us kernel, 81 us down; ``tools/probe_pinned.py``, run 23).

Only page-locked sources and results qualify: pageable sources are staged through pinned
blocks, which already overlaps the host copies with the DMA, and a pageable result needs a
host copy after its download.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from ... import config
from ...runtime.dispatch import host_pinned_flags
from .memory import pinned_by_flag, pinned_empty

__all__ = ["Pipeline", "chunk_count"]

_H2D, _D2H = 1, 2
_ALIGN = 4096  # chunk boundaries, in elements: every chunk keeps 16-byte alignment
_MAX_CHUNKS = 16


def chunk_count(out_bytes: int) -> int:
    """Chunks of ``LC_PIPELINE_CHUNK_BYTES`` in a result of ``out_bytes`` (at most 16), or 0
    when fewer than two: such a call runs unchunked."""
    chunk_bytes = int(config.get("LC_PIPELINE_CHUNK_BYTES"))
    count = out_bytes // chunk_bytes if chunk_bytes > 0 else 0
    return min(count, _MAX_CHUNKS) if count >= 2 else 0


class Pipeline:
    """Chunked, overlapped one-shot runs of flat implementations (see the module doc)."""

    def __init__(self, cupy: Any, stream: Any) -> None:
        self._cp = cupy
        self._main = stream
        self._side = cupy.cuda.Stream(non_blocking=True)
        self._local = threading.local()  # each thread's reusable chunk events
        self._memcpy = cupy.cuda.runtime.memcpyAsync
        self._record = cupy.cuda.runtime.eventRecord
        self._wait = cupy.cuda.runtime.streamWaitEvent

    def chunks(self, impl: Any, call: Any) -> int:
        """How many chunks ``call`` runs in; 0 when it does not qualify.

        It qualifies when the impl is flat, the plan uploads every host input and downloads
        the result, every host input is page-locked (at least one), the result is new or a
        page-locked C-contiguous ``out``, and it is at least two chunks of
        ``LC_PIPELINE_CHUNK_BYTES``.
        """
        io = call.io
        if not impl.flat or io.upload is not None or not io.download:
            return 0
        count = chunk_count(math.prod(call.out_shape) * call.dtype.itemsize)
        if not count:
            return 0
        flags = host_pinned_flags(call)  # asked once per call, shared with the other steps
        out = call.out
        if out is not None and not (type(out) is np.ndarray and out.flags.c_contiguous
                                    and pinned_by_flag(out, flags[-1])):
            return 0
        host = 0
        for operand, flag in zip(call.inputs, flags, strict=False):
            array = operand.array
            if type(array) is np.ndarray:
                if not pinned_by_flag(array, flag):
                    return 0
                host += 1
        return count if host else 0

    def _events(self, count: int) -> list[Any]:
        events = getattr(self._local, "events", None)
        if events is None:
            events = self._local.events = []
        while len(events) < count:
            events.append(self._cp.cuda.Event(disable_timing=True))
        return events

    def run(self, impl: Any, call: Any, chunks: int,
            check_device: Any) -> tuple[Any, dict[str, Any]]:
        """Run ``call`` in ``chunks`` overlapped chunks and wait for its result (pinned)."""
        cp = self._cp
        main, side = self._main, self._side
        n = math.prod(call.out_shape)
        item = call.dtype.itemsize
        result = call.out if call.out is not None else pinned_empty(call.out_shape, call.dtype)
        result_ptr = result.__array_interface__["data"][0]
        operands = []  # (host pointer or None, flat device array)
        uploaded = 0
        with main:
            dev_out = cp.ndarray((n,), call.dtype)
            for operand in call.inputs:
                array = operand.array
                if type(array) is np.ndarray:
                    operands.append((array.__array_interface__["data"][0],
                                     cp.ndarray((array.size,), array.dtype)))
                    uploaded += array.nbytes
                else:
                    operands.append((None, check_device(call, array).reshape(-1)))
        # The last chunk is about half the others: its kernel and download are the tail
        # left after the uploads end.
        step = -(-int(n / (chunks - 0.5)) // _ALIGN) * _ALIGN
        bounds = [(lo, min(n, lo + step)) for lo in range(0, n, step)]
        events = self._events(len(bounds))
        memcpy, record, wait = self._memcpy, self._record, self._wait
        main_ptr, side_ptr, out_ptr = main.ptr, side.ptr, dev_out.data.ptr
        try:
            # Every upload first: the host issues calls at a few us each on these machines,
            # slower than the link drains a chunk's kernel and download, so interleaving them
            # would leave the upload engine idle between chunks (probe_pinned duplex, run 23).
            for (lo, hi), event in zip(bounds, events):  # noqa: B905 - events may be more
                for host_ptr, dev in operands:
                    if host_ptr is not None:
                        size = dev.dtype.itemsize
                        memcpy(dev.data.ptr + lo * size, host_ptr + lo * size,
                               (hi - lo) * size, _H2D, main_ptr)
                record(event.ptr, main_ptr)
            for (lo, hi), event in zip(bounds, events):  # noqa: B905
                wait(side_ptr, event.ptr)
                impl.fn(*(dev[lo:hi] for _, dev in operands), out=dev_out[lo:hi], stream=side,
                        precision=call.precision, **call.params)
                memcpy(result_ptr + lo * item, out_ptr + lo * item, (hi - lo) * item, _D2H,
                       side_ptr)
            side.synchronize()
        except BaseException:
            # Queued copies read the caller's arrays: nothing may outlive this call.
            side.synchronize()
            main.synchronize()
            raise
        notes = [f"pipelined_chunks={len(bounds)}"]
        if not call.io.synchronize:
            notes.append("sync_forced_by_download")
        used = call.precision if call.precision in impl.precisions else "fp32"
        return result, {"bytes_uploaded": uploaded, "bytes_downloaded": n * item,
                        "synchronized": True, "notes": notes, "precision": used}
