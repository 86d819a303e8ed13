"""Backends, registered explicitly: importing this package registers every known backend.

Each backend is one folder and one small class. A backend's kernels are loaded when the
backend is first asked for, so importing Lightning Core never imports CuPy or MLX.
"""

from ..runtime.backend import register_backend


def _cpu():
    from .cpu import CpuBackend

    return CpuBackend()


def _cuda():
    from .cuda import CudaBackend

    return CudaBackend()


register_backend("cpu", _cpu)
register_backend("cuda", _cuda)
