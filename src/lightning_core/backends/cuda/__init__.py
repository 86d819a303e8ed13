"""The CUDA backend (CuPy). Importing this module never imports CuPy; constructing it does.

``run(impl, call)`` is the contract every CUDA implementation is written against: inputs and
``out`` arrive as C-contiguous CuPy arrays on device 0 (``call.dtype``; embedding ids int64),
and the implementation is called as
``impl.fn(*inputs, out=out, stream=stream, precision=call.precision, **call.params)``. It
enqueues work on ``stream`` only and never synchronizes. It may return the name of the
precision it actually used; otherwise the trace records ``call.precision`` when the impl is
registered for it, else ``"fp32"``.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ...errors import BackendError, DeviceOutOfMemoryError, LCError
from ...runtime.arrays import register_adopter, register_pinned_check
from ...runtime.backend import Backend, Capabilities, Impl
from ...runtime.dispatch import host_pinned_flags
from ...runtime.policy import ONE_SHOT
from .launch import stream_ptr_capsule
from .memory import HostIo, Recycler, is_pinned, pinned_empty, release_recycled
from .pipeline import Pipeline

__all__ = ["CudaBackend", "cupy_or_none"]

_KERNEL_MODULES = ("elementwise", "nn", "blas", "gemm")
_OPTIONAL_MODULES = ("attention", "conv")


def cupy_or_none() -> Any:
    """CuPy if it imports and sees a GPU, else None."""
    try:
        import cupy  # noqa: PLC0415

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:  # noqa: BLE001 - no CuPy, no driver, or no device
        return None


def _load_kernel_modules() -> None:
    """Import the implementation modules (importing registers them)."""
    for name in _KERNEL_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    for name in _OPTIONAL_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise


class CudaBackend(Backend):
    """NVIDIA GPU 0 through CuPy: one non-blocking stream, pinned staging, NVRTC kernels."""

    name = "cuda"
    memory_model = "native-device"
    driver_tags = {"compute": "cuda.runtime.dispatch", "memory": "cuda.memory",
                   "sync": "cuda.device_sync", "profiler": "runtime.trace.ring"}

    def __init__(self) -> None:
        self._cp = cp = cupy_or_none()
        self._caps: Capabilities | None = None
        self._stream: Any = None
        if cp is None:
            return
        self._stream = cp.cuda.Stream(non_blocking=True)
        self._stream_ptr = self._stream.ptr
        # Two reusable events: caller -> us before a launch, us -> caller after an async one.
        self._events = (cp.cuda.Event(disable_timing=True), cp.cuda.Event(disable_timing=True))
        self._join_ptr, self._done_ptr = (e.ptr for e in self._events)
        self._event_record = cp.cuda.runtime.eventRecord
        self._stream_wait = cp.cuda.runtime.streamWaitEvent
        # ``cupy.ndarray(shape, dtype)`` is what ``cupy.empty`` calls, minus a Python frame.
        self._empty = cp.ndarray
        self._current_stream = cp.cuda.get_current_stream
        self._oom = cp.cuda.memory.OutOfMemoryError
        self.io = HostIo(cp, self._stream)
        self._pipeline = Pipeline(cp, self._stream)
        register_adopter(self._adopt, native=cp.ndarray)
        register_pinned_check(is_pinned)
        _load_kernel_modules()

    # -- what the backend is -----------------------------------------------------------------
    def is_available(self) -> bool:
        return self._cp is not None

    def device_count(self) -> int:
        return self._cp.cuda.runtime.getDeviceCount() if self._cp is not None else 0

    @property
    def stream(self) -> Any:
        """The backend's non-blocking ``cupy.cuda.Stream``; every impl runs on it."""
        return self._stream

    def capabilities(self) -> Capabilities:
        if self._caps is None:
            self._caps = self._read_capabilities()
        return self._caps

    def _read_capabilities(self) -> Capabilities:
        ok = self._cp is not None
        details: dict[str, Any] = {}
        if ok:
            rt = self._cp.cuda.runtime
            props = rt.getDeviceProperties(0)
            name = props.get("name", b"")
            details = {
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "compute_capability": f"{props['major']}.{props['minor']}",
                "sm_count": int(props["multiProcessorCount"]),
                "shared_mem_per_block_optin": int(props.get("sharedMemPerBlockOptin", 0)),
                "l2_cache_bytes": int(props.get("l2CacheSize", 0)),
                "total_memory_bytes": int(props["totalGlobalMem"]),
                "driver_version": rt.driverGetVersion(),
                "runtime_version": rt.runtimeGetVersion(),
                "cupy": self._cp.__version__,
                "device_count": rt.getDeviceCount(),
            }
        return Capabilities(
            device="cuda", built=True, available=ok, compute_surface=ok, memory_surface=ok,
            sync_surface=ok, profiling_surface=ok, memory_model=self.memory_model, graphs=True,
            tuning=True, dtypes=("float32", "float64", "float16"),
            precisions=("fp32", "tf32", "bf16", "fp16"), details=details)

    def synchronize(self) -> None:
        """Wait for all queued work on the device (our stream, sessions' streams, ...)."""
        if self._cp is not None:
            self._cp.cuda.Device(0).synchronize()

    def session_executor(self) -> Any:
        """A fresh CUDA-graph executor for a resident session or a capture."""
        from .graph import GraphExecutor  # noqa: PLC0415

        return GraphExecutor()

    def owns(self, array: Any) -> bool:
        return self._cp is not None and isinstance(array, self._cp.ndarray)

    def pinned_empty(self, shape: Any, dtype: Any = np.float32) -> np.ndarray:
        """A page-locked host array (full-speed transfers, no staging copy)."""
        return pinned_empty(shape, dtype)

    def _adopt(self, x: Any) -> Any:
        """CuPy arrays as is; ``__cuda_array_interface__`` and CUDA DLPack zero-copy."""
        cp = self._cp
        if isinstance(x, cp.ndarray):
            return x
        try:
            if hasattr(x, "__cuda_array_interface__"):
                return cp.asarray(x)
            if hasattr(x, "__dlpack__"):
                return cp.from_dlpack(x)
        except (RuntimeError, TypeError, ValueError, BufferError):
            return None  # e.g. a torch tensor that requires grad: arrays.py reports it
        return None

    # -- running a call ----------------------------------------------------------------------
    def run(self, impl: Impl, call: Any) -> tuple[Any, dict[str, Any]]:
        try:
            if call.resident and type(call.out) is not np.ndarray:
                return self._run_resident(impl, call)
            chunks = self._pipeline.chunks(impl, call) if impl.flat else 0
            if chunks:
                self._join_caller()
                return self._pipeline.run(impl, call, chunks, self._check_device)
            return self._run_host(impl, call)
        except self._oom as exc:
            self.io.forget_resident()
            release_recycled()
            need = int(np.prod(call.out_shape)) * call.dtype.itemsize
            raise DeviceOutOfMemoryError(
                f"[{call.op}] the device ran out of memory running {impl.name} (output "
                f"{need} bytes, shapes {[tuple(o.array.shape) for o in call.inputs]}): {exc}"
            ) from None
        except RuntimeError as exc:
            if isinstance(exc, LCError) or not type(exc).__module__.startswith(("cupy", "cuda")):
                raise
            raise BackendError(f"[{call.op}] CUDA error in {impl.name}: {exc}") from None

    def _check_device(self, call: Any, array: Any) -> Any:
        if array.data.device_id != 0:
            raise BackendError(f"[{call.op}] input is on cuda:{array.data.device_id}; "
                               "Lightning Core runs on cuda:0 only (copy it there first)")
        return array

    def _join_caller(self) -> Any:
        """Order our stream after work the caller queued on its current stream.

        Ours is non-blocking, so it does not wait for the legacy default stream by itself;
        without this an input still being written there could be read early.
        """
        caller = self._current_stream()
        if caller.ptr != self._stream_ptr:
            self._event_record(self._join_ptr, caller.ptr)
            self._stream_wait(self._stream_ptr, self._join_ptr)
        return caller

    def _finish_async(self, caller: Any) -> None:
        """Let the caller's stream, not the host, wait for our result."""
        if caller.ptr != self._stream_ptr:
            self._event_record(self._done_ptr, self._stream_ptr)
            self._stream_wait(caller.ptr, self._done_ptr)

    def _launch(self, impl: Impl, call: Any, arrays: list[Any], out: Any,
                stream: Any = None) -> str:
        shape = call.out_shape
        target = out if out.shape == shape else out.reshape(shape)
        used = None
        if target.size:
            used = impl.fn(*arrays, out=target, stream=stream or self._stream,
                           precision=call.precision, **call.params)
        if type(used) is str:
            return used
        return call.precision if call.precision in impl.precisions else "fp32"

    def prepare_direct(self, impl: Impl, lane: Any) -> Any:
        """The fast lane: device inputs (and ``out``) already checked; launch on the caller's
        current stream, no host sync (as ``_run_resident``).

        Everything but the arrays is resolved here once: the impl's own prepared launcher when
        it has one (kernel, grid, scalars), the reshapes, the byte ranges for the overlap test.
        """
        shape, dtype, final, op = lane.out_shape, lane.dtype, lane.final, lane.op
        if impl.prepare is not None:
            launch = impl.prepare(lane.shapes, shape, dtype, lane.precision, **lane.params)
        else:
            launch = None
        # Flat launchers (elementwise kernels) read and write flat memory: the caller's arrays
        # go in as they are and a new result is made in its final shape.
        flat = impl.flat and launch is not None
        if launch is None:
            fn, precision, params = impl.fn, lane.precision, lane.params

            def launch(ins: tuple[Any, ...], out: Any, stream: Any) -> None:
                fn(*ins, out=out, stream=stream, precision=precision, **params)

        reshapes = None if flat else lane.reshapes()
        out_reshape = (not flat and lane.raw_out_shape is not None
                       and lane.raw_out_shape != shape)
        made_shape = (shape if final is None else final) if flat else shape
        final = None if flat else final
        size = int(np.prod(shape))
        out_bytes = size * dtype.itemsize
        in_bytes = lane.raw_nbytes
        current, oom = self._current_stream, self._oom
        # New results come from a recycler: small ones the caller has dropped are reused.
        recycler = Recycler(self._empty, made_shape, dtype, oom=oom)
        take = recycler.take

        def out_of_memory(exc: BaseException) -> None:
            raise DeviceOutOfMemoryError(f"[{op}] the device ran out of memory running "
                                         f"{impl.name}: {exc}") from None

        def run(arrays: tuple[Any, ...], out: Any) -> Any:
            if out is not None:
                lo = out.data.ptr
                hi = lo + out_bytes
                for a, nbytes in zip(arrays, in_bytes):  # noqa: B905 - equal by construction
                    p = a.data.ptr
                    if p < hi and lo < p + nbytes:
                        return None
            if reshapes is not None:
                arrays = tuple(a if s is None else a.reshape(s)
                               for a, s in zip(arrays, reshapes, strict=True))
            try:
                if out is None:
                    stream = current()
                    result = take(stream.ptr)
                    if size:
                        launch(arrays, result, stream)
                    return result if final is None else result.reshape(final)
                if size:
                    launch(arrays, out.reshape(shape) if out_reshape else out, current())
            except oom as exc:
                out_of_memory(exc)
            return out

        run.recycler = recycler  # type: ignore[attr-defined] - for tests and probes
        # A launcher whose kernel takes the arrays' pointers as they are says how the native
        # lane launches it (``native``: its Launch objects, or a resolver); then the same run
        # goes in C, this one its fallback (kernels the resolver has none for).
        native = getattr(launch, "native", None)
        if native is not None and reshapes is None and final is None and not out_reshape:
            from ...native import load  # noqa: PLC0415 - loaded: its Launch objects exist

            return load().PtrRun(current=current, take=take, size=size, out_bytes=out_bytes,
                                 in_bytes=tuple(in_bytes), oom=oom, on_oom=out_of_memory,
                                 fallback=run, recycler=recycler, kept=recycler.kept,
                                 kept_streams=recycler.kept_streams,
                                 stream_ptr=stream_ptr_capsule(), **native)
        return run

    def _run_resident(self, impl: Impl, call: Any) -> tuple[Any, dict[str, Any]]:
        """Device-resident inputs: launch on the caller's current stream, like CuPy and torch.

        Work is ordered with whatever the caller queued on that stream, so no events are
        needed, and inside a capture (a session's stream is current) the launch is captured.
        The result is returned without a host sync unless an explicit policy asks for one.
        """
        arrays = []
        for operand in call.inputs:
            array = operand.array
            if array.data.device_id:
                self._check_device(call, array)
            arrays.append(array)
        stream = self._current_stream()
        out = call.out
        if out is None:
            out = self._empty(call.out_shape, call.dtype)
        used = self._launch(impl, call, arrays, out, stream)
        sync = call.io is not ONE_SHOT and call.io.synchronize
        if sync:
            stream.synchronize()
        return out, {"bytes_uploaded": 0, "bytes_downloaded": 0, "synchronized": sync,
                     "notes": [], "precision": used}

    def _run_host(self, impl: Impl, call: Any) -> tuple[Any, dict[str, Any]]:
        io = call.io
        notes: list[str] = []
        uploaded = downloaded = 0
        out = call.out
        host_out = type(out) is np.ndarray
        caller = self._join_caller()
        # Pinned or not, per input then out, asked of the driver once for the whole call.
        flags = host_pinned_flags(call)
        with self._stream:
            arrays = []
            pending = []  # (host source, device copy): queued together, one staging batch
            pinned = []  # the sources' flags
            for i, operand in enumerate(call.inputs):
                src = operand.array
                if type(src) is np.ndarray:
                    dev, needed = self.io.device_copy(src, reuse=not io.uploads(i),
                                                      remember=io.upload is not None,
                                                      notes=notes)
                    if needed:
                        pending.append((src, dev))
                        pinned.append(flags[i])
                else:
                    dev = self._check_device(call, src)
                arrays.append(dev)
            try:
                uploaded = self.io.upload_many(pending, pinned)
            except BaseException:
                self.io.forget_resident()  # a remembered copy may hold a partial upload
                raise
            dev_out = self._empty(call.out_shape, call.dtype) if out is None or host_out else out
            used = self._launch(impl, call, arrays, dev_out)
        synced = io.synchronize
        if host_out:
            if not io.download:
                notes.append("download_forced_by_host_out")
            if not io.synchronize:
                notes.append("sync_forced_by_download")
            downloaded = self.io.download(dev_out, out.reshape(call.out_shape), flags[-1])
            result, synced = out, True
        elif out is not None or call.resident or not io.download:
            if out is None and not call.resident:
                notes.append("download_skipped")
            result = dev_out
            if synced:
                self._stream.synchronize()
            else:
                self._finish_async(caller)
        else:
            if not io.synchronize:
                notes.append("sync_forced_by_download")
            result, downloaded = self.io.download_new(dev_out)
            synced = True
        return result, {"bytes_uploaded": uploaded, "bytes_downloaded": downloaded,
                        "synchronized": synced, "notes": notes, "precision": used}
