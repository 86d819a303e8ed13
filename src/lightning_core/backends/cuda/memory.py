"""Host <-> device data movement of the CUDA backend: pinned staging, parallel host copies,
the residency cache and page-locked host arrays.

Why: on the H200 machine pageable transfers reach 13-16 GB/s and pinned ones 55 GB/s, but a
single-threaded ``np.copyto`` into pinned memory reaches only 11 GB/s (PERF.md). So large host
arrays are copied into reusable pinned blocks by several threads, piece by piece, and each
piece's DMA is queued as soon as it is staged, overlapping the copy with the transfer. The copy
runs on the native module's pthread pool when it is built (``host_copy``: run 44 staged 4 MB
in 85 us on eight C threads where the Python pool took 400 us on any count: its threads
take the GIL around every NumPy call), else on the Python host pool. Pinned blocks are never
allocated per call: each carries an event recorded after its last transfer and is reused once
that event has completed.
"""

from __future__ import annotations

import collections
import math
import sys
import threading
import weakref
from typing import Any

import numpy as np

from ...runtime.arrays import PINNED_MIN_BYTES
from ...runtime.host_threads import chunks, host_threads, run_parallel

__all__ = ["pinned_empty", "is_pinned", "pinned_by_flag", "HostIo", "Recycler",
           "release_recycled", "stream_scratch"]

_MIN_BLOCK = 1 << 16  # smallest staging block: 64 KiB
_PARALLEL_MIN = 1 << 20  # below 1 MiB one thread copies faster than handing work out
_CHUNK_MIN = 1 << 20
_TWO_WORKERS_MAX = 12 << 20  # staging batches up to this size copy on 2 threads, larger on 4
# Native staging: pieces of about this size, each copied by every thread then sent; the last
# piece's transfer is what the copy cannot hide.
_PIECE_BYTES = 1 << 20
_MAX_PIECES = 32
_RESIDENT_BYTES = 2 << 30  # device memory the residency cache may hold before evicting
_H2D = 1  # cudaMemcpyHostToDevice
_D2H = 2  # cudaMemcpyDeviceToHost
# Results the fast lane may recycle: each at most this big, all lanes together at most the
# budget. A recycled result costs ~0.2 us, a new ``cupy.ndarray`` ~2 us, and big new results
# cost more than that around the call (tools/probe_ew_alloc.py, run 30: lc.vector_add + sync
# of 4M elements 22.9 us recycled against 25.5 us with new results, 16M 63.3 against 66.6).
# Memory held here was dropped by the caller; CuPy's own pool would keep it cached just the
# same, and a device out-of-memory lets all of it go (``release_recycled``) before giving up.
_RECYCLE_MAX_BYTES = 64 << 20
_RECYCLE_BUDGET = 256 << 20
_recycled_bytes = [0]
_recyclers: weakref.WeakSet[Recycler] = weakref.WeakSet()


def _held_refcount() -> int:
    """``sys.getrefcount`` of an object held only by a list, read inside a ``zip`` loop over
    it and a second list (the exact pattern of ``Recycler.take``: zip's reused result tuple
    holds the item too), measured rather than assumed."""
    held, streams = [object()], [0]
    for obj, _ in zip(held, streams, strict=False):
        return sys.getrefcount(obj)
    return 0


_ONLY_OURS = _held_refcount()


def _host_copy() -> Any:
    """The native parallel copy ``host_copy(dst, src, nbytes, threads, stream=False,
    last=True)`` (``native/hostcopy.c``), or None when the native module is off or unbuilt."""
    from ...native import load  # noqa: PLC0415 - built on first use, knob read each call

    module = load()
    return None if module is None else module.host_copy


def _copy_threads(nbytes: int) -> int:
    """Threads for a native copy of ``nbytes``: the host pool's count from 1 MiB, else one."""
    return host_threads() if nbytes >= _PARALLEL_MIN else 1


def pinned_empty(shape: Any, dtype: Any = np.float32) -> np.ndarray:
    """A NumPy array backed by page-locked memory from CuPy's pinned pool."""
    import cupy  # noqa: PLC0415 - only called when the CUDA backend exists

    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(d) for d in shape)
    count = math.prod(shape)
    if count == 0:
        return np.empty(shape, dtype)
    mem = cupy.cuda.alloc_pinned_memory(count * dtype.itemsize)
    return np.frombuffer(mem, dtype, count).reshape(shape)


_is_memory_pinned: list[Any] = []  # CuPy's check, imported on first use
# Answers by the array that owns the memory (the end of the ``base`` chain): id -> (weak
# reference, pinned). The driver query costs a few microseconds on the GPU hosts; an owner
# alive holds its allocation, so the answer stays true while the reference resolves to it.
_pinned_memo: dict[int, tuple[Any, bool]] = {}
_MEMO_LIMIT = 4096


def is_pinned(array: np.ndarray) -> bool:
    """True when ``array``'s memory is page-locked (ours, torch's ``pin_memory``, ...).

    Asked of the driver once per owning array while it lives. Memory page-locked or released
    in place afterwards (``cudaHostRegister`` on a live array) keeps the first answer; that
    only changes how a copy is made, never what it copies.
    """
    if array.nbytes == 0:
        return False
    owner = array
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    hit = _pinned_memo.get(id(owner))
    if hit is not None and hit[0]() is owner:
        return hit[1]
    if not _is_memory_pinned:
        from cupy.cuda import pinned_memory  # noqa: PLC0415

        _is_memory_pinned.append(pinned_memory.is_memory_pinned)
    answer = bool(_is_memory_pinned[0](array.__array_interface__["data"][0]))
    if len(_pinned_memo) >= _MEMO_LIMIT:
        _pinned_memo.clear()
    _pinned_memo[id(owner)] = (weakref.ref(owner), answer)
    return answer


def pinned_by_flag(array: np.ndarray, flag: bool | None) -> bool:
    """``is_pinned(array)``, answered by a call's flag (``host_pinned_flags``) when it is
    conclusive: True, or False for an array big enough to have been asked (smaller ones are
    flagged False unasked). The driver is asked otherwise (``flag`` None: no flag known)."""
    if flag or (flag is not None and array.nbytes >= PINNED_MIN_BYTES):
        return bool(flag)
    return is_pinned(array)


class _Block:
    """One pinned staging buffer and the event after its last transfer."""

    __slots__ = ("mem", "ptr", "size", "event")

    def __init__(self, cupy: Any, size: int) -> None:
        self.mem = cupy.cuda.alloc_pinned_memory(size)
        self.ptr = self.mem.ptr
        self.size = size
        self.event = cupy.cuda.Event(disable_timing=True)

    def view(self, nbytes: int) -> np.ndarray:
        return np.frombuffer(self.mem, np.uint8, nbytes)


# Kernel scratch by (role, dtype, stream, size class), never freed: a CUDA graph captured with
# a launch keeps the scratch addresses it saw after the launch caches have dropped that
# launch, so the memory must outlive them. Launches on one stream run in order, so launches
# of different shapes share the smallest power-of-two buffer that fits; what one (role,
# dtype, stream) holds stays under twice its largest need.
_scratch_sets: dict[tuple[str, str, int, int], Any] = {}


def stream_scratch(role: str, dtype: Any, stream: Any, elems: int, *,
                   zeroed: bool = False) -> Any:
    """A flat device buffer of at least ``elems`` values for work queued on ``stream``
    (``zeroed``: filled with zeros when made; users that need zeros must leave it so)."""
    import cupy  # noqa: PLC0415 - only called when the CUDA backend exists

    dt = np.dtype(dtype)
    need = max(1, elems)
    fits = [k for k in _scratch_sets if k[:3] == (role, dt.char, stream.ptr) and k[3] >= need]
    if fits:
        return _scratch_sets[min(fits, key=lambda k: k[3])]
    size = 1 << (need - 1).bit_length()
    with stream:
        buf = (cupy.zeros if zeroed else cupy.empty)(size, dt)
    _scratch_sets[(role, dt.char, stream.ptr, size)] = buf
    return buf


class Recycler:
    """Result arrays of one fast-lane signature, handed out again once the caller dropped them.

    A kept array whose only reference is this recycler's list is free: the caller let go of
    it and every view of it (a view holds its base). It is handed out again only on the
    stream it was made on, so reuse is stream-ordered exactly like CuPy's own pool, where a
    freed block goes back to its stream's arena. At most ``slots`` arrays per signature, none
    above ``_RECYCLE_MAX_BYTES``, ``_RECYCLE_BUDGET`` bytes across all signatures.
    """

    __slots__ = ("_arrays", "_streams", "_new", "_shape", "_dtype", "_nbytes", "_slots",
                 "_oom", "_lock", "__weakref__")

    def __init__(self, new: Any, shape: tuple[int, ...], dtype: np.dtype, slots: int = 2,
                 oom: type[BaseException] | tuple[type[BaseException], ...] = ()) -> None:
        self._arrays: list[Any] = []
        self._streams: list[int] = []
        # Held while the two lists change (a pair appended, both cleared), so another thread's
        # release can never leave them out of step. Readers take no lock: a reader between
        # the two changes sees lists of different lengths, and the native lane then calls
        # take; take's own scan pairs them with zip.
        self._lock = threading.Lock()
        self._new, self._shape, self._dtype, self._oom = new, shape, dtype, oom
        self._nbytes = math.prod(shape) * dtype.itemsize
        self._slots = slots if 0 < self._nbytes <= _RECYCLE_MAX_BYTES else 0
        if self._slots:
            _recyclers.add(self)

    def take(self, stream_ptr: int) -> Any:
        """A free kept array made on ``stream_ptr``, else a new one (kept if room is left)."""
        for arr, stream in zip(self._arrays, self._streams, strict=False):  # see _lock
            if sys.getrefcount(arr) == _ONLY_OURS and stream == stream_ptr:
                return arr
        try:
            arr = self._new(self._shape, self._dtype)
        except self._oom:
            # What every recycler holds may be what the device lacks: let it go, try again.
            release_recycled()
            arr = self._new(self._shape, self._dtype)
        with self._lock:
            if (len(self._arrays) < self._slots and len(self._arrays) == len(self._streams)
                    and _recycled_bytes[0] + self._nbytes <= _RECYCLE_BUDGET):
                _recycled_bytes[0] += self._nbytes
                self._arrays.append(arr)
                self._streams.append(stream_ptr)
        return arr

    @property
    def kept(self) -> list[Any]:
        """The kept arrays: this very list, changed in place only (the native lane reads it
        to find a free one without calling ``take``)."""
        return self._arrays

    @property
    def kept_streams(self) -> list[int]:
        """The stream each kept array was made on, index for index with ``kept``."""
        return self._streams

    def release(self) -> None:
        """Forget every kept array (the caller's still-held ones stay the caller's)."""
        with self._lock:
            _recycled_bytes[0] -= self._nbytes * len(self._arrays)
            self._arrays.clear()
            self._streams.clear()

    def __del__(self, _held: list[int] = _recycled_bytes) -> None:
        # The budget list is bound at definition: at interpreter exit the module's globals
        # may already be gone when the last recyclers are collected.
        _held[0] -= self._nbytes * len(self._arrays)


def release_recycled() -> None:
    """Let every recycler's kept results go back to CuPy's pool (on a device out-of-memory)."""
    for recycler in list(_recyclers):
        recycler.release()


class HostIo:
    """Uploads, downloads and the residency cache of one backend stream."""

    def __init__(self, cupy: Any, stream: Any, *, resident_entries: int = 16) -> None:
        self._cp = cupy
        self._stream = stream
        self._memcpy = cupy.cuda.runtime.memcpyAsync
        self._lock = threading.Lock()
        self._free: dict[int, list[_Block]] = {}
        self._resident: collections.OrderedDict[tuple[Any, ...], Any] = collections.OrderedDict()
        self._resident_entries = resident_entries
        self._inflight: collections.deque[tuple[Any, Any]] = collections.deque()

    @staticmethod
    def _workers(nbytes: int) -> int:
        """Copy threads for ``nbytes`` of staging. Measured on the H200 host (probe_host, run
        13): 4-8 MiB went fastest on 2 threads (4 were 1.3x slower), 16-32 MiB on 4."""
        if nbytes < _PARALLEL_MIN:
            return 1
        return min(host_threads(), 2 if nbytes <= _TWO_WORKERS_MAX else 4)

    def _chunks(self, nbytes: int) -> list[tuple[int, int]]:
        """Byte ranges of one download's copy out of staging: one per copy thread."""
        workers = self._workers(nbytes)
        if workers == 1:
            return [(0, nbytes)]
        return chunks(nbytes, parts=workers, min_chunk=_CHUNK_MIN, align=4096)

    # -- staging blocks ----------------------------------------------------------------------
    def _acquire(self, nbytes: int) -> _Block:
        size = max(_MIN_BLOCK, 1 << (nbytes - 1).bit_length())
        with self._lock:
            bucket = self._free.get(size)
            if bucket:
                for i, block in enumerate(bucket):
                    if block.event.done:
                        return bucket.pop(i)
        return _Block(self._cp, size)

    def _release(self, block: _Block) -> None:
        block.event.record(self._stream)
        with self._lock:
            self._free.setdefault(block.size, []).append(block)

    def staged_bytes(self) -> int:
        """Pinned bytes held by the staging pool (for tests and ``lc info``)."""
        with self._lock:
            return sum(b.size for bucket in self._free.values() for b in bucket)

    # -- uploads -----------------------------------------------------------------------------
    def upload(self, src: np.ndarray, dst: Any) -> int:
        """Queue ``src`` (C-contiguous host array) into device array ``dst``; returns bytes."""
        return self.upload_many([(src, dst)])

    def upload_many(self, pairs: list[tuple[np.ndarray, Any]],
                    pinned: list[bool | None] | None = None) -> int:
        """Queue every ``(src, dst)`` host-to-device copy of one call; returns bytes.
        ``pinned``: per pair, the call's pinned flag of ``src`` (``pinned_by_flag``), if known.

        Pinned sources go straight to DMA. The others are staged through pinned blocks as one
        batch: their chunks are spread over the copy threads together (a call's inputs share
        the host's memory bandwidth, so the batch, not each input, picks the thread count) and
        each chunk's DMA is queued, in order, as soon as it is staged.
        """
        stream_ptr = self._stream.ptr
        total = 0
        staged: list[tuple[np.ndarray, int, int]] = []  # (flat bytes, dst ptr, nbytes)
        for i, (src, dst) in enumerate(pairs):
            nbytes = src.nbytes
            if nbytes == 0:
                continue
            total += nbytes
            if pinned_by_flag(src, None if pinned is None else pinned[i]):
                self._memcpy(dst.data.ptr, src.__array_interface__["data"][0], nbytes, _H2D,
                             stream_ptr)
                self._keep_alive(src)
            else:
                staged.append((src.reshape(-1).view(np.uint8), dst.data.ptr, nbytes))
        if not staged:
            return total
        blocks = [self._acquire(n) for _, _, n in staged]
        copy = _host_copy()
        if copy is not None:
            try:
                self._stage_native(copy, staged, blocks, stream_ptr)
            finally:
                for block in blocks:
                    self._release(block)
            return total
        workers = self._workers(sum(n for _, _, n in staged))
        # jobs: (staging view, source view, dst ptr, staging ptr, bytes), in DMA order; two
        # chunks per copy thread so the DMA of early chunks overlaps later copies.
        jobs = []
        for (flat, dst_ptr, nbytes), block in zip(staged, blocks, strict=True):
            view = block.view(nbytes)
            pieces = chunks(nbytes, parts=2 * workers, min_chunk=_CHUNK_MIN, align=4096) \
                if workers > 1 else [(0, nbytes)]
            jobs += [(view[lo:hi], flat[lo:hi], dst_ptr + lo, block.ptr + lo, hi - lo)
                     for lo, hi in pieces]

        def stage(i: int) -> None:
            np.copyto(jobs[i][0], jobs[i][1])

        def send(i: int) -> None:
            self._memcpy(jobs[i][2], jobs[i][3], jobs[i][4], _H2D, stream_ptr)

        try:
            run_parallel(stage, len(jobs), workers=workers, then=send)
        finally:
            for block in blocks:
                self._release(block)
        return total

    def _stage_native(self, copy: Any, staged: list[tuple[np.ndarray, int, int]],
                      blocks: list[_Block], stream_ptr: int) -> None:
        """``upload_many``'s staging on the native pool: piece by piece, every thread copying
        each piece, its DMA queued before the next piece is copied.

        The copies write the staging blocks with streaming (non-temporal) stores. With plain
        stores the DMA reads lines still dirty in the CPU's caches, and copy and DMA slowed
        each other down: run 48 (``tools/probe_staging.py``, 2 x 4 MB) took 412 us piece by
        piece against 229 us streamed, where the DMA alone takes 165 us."""
        threads = _copy_threads(sum(n for _, _, n in staged))
        pieces = []  # (staging ptr, source ptr, dst ptr, bytes) in DMA order
        for (flat, dst_ptr, nbytes), block in zip(staged, blocks, strict=True):
            src_ptr = flat.__array_interface__["data"][0]
            parts = min(_MAX_PIECES, max(1, nbytes // _PIECE_BYTES))
            pieces += [(block.ptr + lo, src_ptr + lo, dst_ptr + lo, hi - lo)
                       for lo, hi in chunks(nbytes, parts=parts, min_chunk=_MIN_BLOCK,
                                            align=4096)]
        last = len(pieces) - 1
        for i, (stage_ptr, src_ptr, dst_ptr, nbytes) in enumerate(pieces):
            # Streaming stores; the pool's threads stay awake until the last piece.
            copy(stage_ptr, src_ptr, nbytes, threads, True, i == last)
            self._memcpy(dst_ptr, stage_ptr, nbytes, _H2D, stream_ptr)

    def device_copy(self, src: np.ndarray, *, reuse: bool, remember: bool,
                    notes: list[str]) -> tuple[Any, bool]:
        """The device array for a host input and whether it must be uploaded now.

        ``reuse``: the policy says a device copy uploaded earlier is current; on a miss the
        array is uploaded anyway (note ``upload_forced_no_resident_copy``). ``remember``: keep
        the uploaded copy for a later ``reuse`` call. Queue the uploads (``upload_many``)
        before any work that reads them.
        """
        key = (src.__array_interface__["data"][0], src.shape, src.dtype.str)
        cached = self._resident.get(key)
        if reuse:
            if cached is not None:
                self._resident.move_to_end(key)
                return cached, False
            notes.append("upload_forced_no_resident_copy")
        dev = cached if cached is not None else self._cp.empty(src.shape, src.dtype)
        if remember or cached is not None:
            self._resident[key] = dev
            self._resident.move_to_end(key)
            held = sum(a.nbytes for a in self._resident.values())
            while len(self._resident) > 1 and (len(self._resident) > self._resident_entries
                                               or held > _RESIDENT_BYTES):
                held -= self._resident.popitem(last=False)[1].nbytes
        return dev, True

    def forget_resident(self) -> None:
        """Drop every remembered device copy (after OOM, or on request)."""
        self._resident.clear()

    def _keep_alive(self, obj: Any) -> None:
        """Hold ``obj`` until the stream passes this point (async DMA reads from it)."""
        event = None
        while self._inflight and self._inflight[0][0].done:
            event = self._inflight.popleft()[0]
        if event is None:
            event = self._cp.cuda.Event(disable_timing=True)
        event.record(self._stream)
        self._inflight.append((event, obj))

    # -- downloads ---------------------------------------------------------------------------
    def download(self, src: Any, dst: np.ndarray, pinned: bool | None = None) -> int:
        """Copy device array ``src`` into host array ``dst`` and wait for it; returns bytes.
        ``pinned``: the call's pinned flag of ``dst`` (``pinned_by_flag``), if known."""
        nbytes = dst.nbytes
        if nbytes == 0:
            self._stream.synchronize()
            return 0
        stream = self._stream
        src_ptr = src.data.ptr
        if pinned_by_flag(dst, pinned):
            self._memcpy(dst.__array_interface__["data"][0], src_ptr, nbytes, _D2H, stream.ptr)
            stream.synchronize()
            return nbytes
        block = self._acquire(nbytes)
        self._memcpy(block.ptr, src_ptr, nbytes, _D2H, stream.ptr)
        stream.synchronize()
        copy = _host_copy()
        if copy is not None and dst.flags.c_contiguous:
            try:
                copy(dst.__array_interface__["data"][0], block.ptr, nbytes,
                     _copy_threads(nbytes))
            finally:
                self._release(block)
            return nbytes
        staging = block.view(nbytes)
        flat = dst.reshape(-1).view(np.uint8)
        ranges = self._chunks(nbytes)

        def copy_out(i: int) -> None:
            lo, hi = ranges[i]
            np.copyto(flat[lo:hi], staging[lo:hi])

        try:
            run_parallel(copy_out, len(ranges))
        finally:
            self._release(block)
        return nbytes

    def download_new(self, src: Any) -> tuple[np.ndarray, int]:
        """A new pinned host array holding device array ``src`` (after a wait)."""
        host = pinned_empty(src.shape, src.dtype)
        return host, self.download(src, host, pinned=True)
