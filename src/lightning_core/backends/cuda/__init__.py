"""The CUDA backend (CuPy). Importing this module never imports CuPy; using it does."""

from __future__ import annotations

from typing import Any

from ...runtime.backend import Backend, Capabilities

__all__ = ["CudaBackend", "cupy_or_none"]


def cupy_or_none() -> Any:
    """CuPy if it imports and sees a GPU, else None."""
    try:
        import cupy  # noqa: PLC0415

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:  # noqa: BLE001 - no CuPy, no driver, or no device
        return None


class CudaBackend(Backend):
    """NVIDIA GPUs through CuPy; see this folder's modules for memory, kernels and BLAS."""

    name = "cuda"
    memory_model = "native-device"
    driver_tags = {"compute": "cuda.runtime.dispatch", "memory": "cuda.memory",
                   "sync": "cuda.device_sync", "profiler": "runtime.trace.ring"}

    def __init__(self) -> None:
        self._cp = cupy_or_none()

    def is_available(self) -> bool:
        return self._cp is not None

    def capabilities(self) -> Capabilities:
        return Capabilities(
            device="cuda", built=True, available=self.is_available(),
            compute_surface=self.is_available(), memory_surface=self.is_available(),
            sync_surface=self.is_available(), profiling_surface=self.is_available(),
            memory_model=self.memory_model, graphs=True, tuning=True,
            dtypes=("float32", "float64", "float16"), precisions=("fp32", "tf32", "bf16", "fp16"),
        )
