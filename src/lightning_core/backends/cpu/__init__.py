"""The CPU backend: NumPy (BLAS for contractions), always available, the reference road."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...errors import OutBufferError
from ...runtime.arrays import to_numpy
from ...runtime.backend import Backend, Capabilities, Impl

__all__ = ["CpuBackend"]


class CpuBackend(Backend):
    """Runs every op with NumPy on the host. Sync is a no-op: results are ready on return."""

    name = "cpu"
    memory_model = "host-managed-compat"
    driver_tags = {"compute": "cpu.eager.dispatch", "memory": "cpu.host_memory",
                   "sync": "cpu.noop_sync", "profiler": "runtime.trace.ring"}

    def __init__(self) -> None:
        # Importing the kernel modules registers their implementations.
        from . import attention, conv, elementwise, matmul, nn  # noqa: F401

    def is_available(self) -> bool:
        return True

    def capabilities(self) -> Capabilities:
        return Capabilities(
            device="cpu", built=True, available=True, compute_surface=True,
            memory_surface=False, sync_surface=False, profiling_surface=False,
            memory_model=self.memory_model, graphs=False, tuning=False,
            dtypes=("float32", "float64"), precisions=("fp32",),
            details={"cores": os.cpu_count() or 1, "numpy": np.__version__},
        )

    def prepare_direct(self, impl: Impl, lane: Any) -> Any:
        """The fast lane: host inputs (and ``out``) already checked, no data to move."""
        fn, params, shape, dtype, final = impl.fn, lane.params, lane.out_shape, lane.dtype, \
            lane.final
        reshapes = lane.reshapes()
        out_reshape = lane.raw_out_shape is not None and lane.raw_out_shape != shape
        size = int(np.prod(shape))
        overlap = np.may_share_memory

        def run(arrays: tuple[np.ndarray, ...], out: np.ndarray | None) -> Any:
            if reshapes is not None:
                arrays = tuple(a if s is None else a.reshape(s)
                               for a, s in zip(arrays, reshapes, strict=True))
            if out is None:
                result = np.empty(shape, dtype=dtype)
                if size:
                    fn(*arrays, out=result, **params)
                return result if final is None else result.reshape(final)
            for a in arrays:
                if overlap(out, a):
                    return None
            if size:
                fn(*arrays, out=out.reshape(shape) if out_reshape else out, **params)
            return out

        return run

    def session_executor(self) -> Any:
        """A fresh executor for a resident session (plain replays, no graphs)."""
        from .executor import EagerExecutor

        return EagerExecutor()

    def owns(self, array: Any) -> bool:
        return type(array) is np.ndarray

    def run(self, impl: Impl, call: Any) -> tuple[Any, dict[str, Any]]:
        inputs = tuple(to_numpy(o.array) for o in call.inputs)
        notes: list[str] = []
        if any(o.on_device for o in call.inputs):
            notes.append("device_inputs_downloaded")
        out = call.out
        if out is None:
            out = np.empty(call.out_shape, dtype=call.dtype)
        elif type(out) is not np.ndarray:
            raise OutBufferError(f"[{call.op}] out is a device array but the call runs on the "
                                 "cpu; pass a NumPy out or run on the device")
        target = out if out.shape == call.out_shape else out.reshape(call.out_shape)
        if target.size:
            impl.fn(*inputs, out=target, **call.params)
        return out, {"notes": notes, "precision": "fp32", "synchronized": True}
