"""cuBLAS GEMM for ``matmul`` and ``linear`` (GEMM + one fused bias/activation epilogue).

Row-major ``C[m, n] = A[m, k] @ B[k, n]`` is the column-major product ``C^T = B^T A^T``, so
``gemmEx`` gets B first with no transposes. Precision is explicit: float32 runs true IEEE fp32
(``CUBLAS_COMPUTE_32F`` on a handle in the default math mode, so never TF32) unless the call
asks for ``tf32`` / ``bf16`` / ``fp16`` tensor-core compute. float64 always computes in float64
and float16 accumulates in float32. Each host thread gets its own handle (cuBLAS handles are not
thread-safe); the handle is bound to the call's stream with ``cublasSetStream``, and calls go
straight to libcublas so that they can be captured in CUDA graphs.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

import numpy as np

from ...errors import BackendError
from ...runtime.backend import register
from .elementwise import bias_activation

__all__ = ["gemm"]

_DTYPES = ("float32", "float64", "float16")
_PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
# cudaDataType values from library_types.h.
_CUDA_R = {"f": 0, "d": 1, "e": 2}
_tls = threading.local()
_lib_cache: list[Any] = []
_direct_cache: list[Any] = []

# Host-side alpha = 1 and beta = 0 (pointer mode host); kept alive for the process.
_ONE = {"f": np.ones(1, np.float32), "d": np.ones(1, np.float64)}
_ZERO = {"f": np.zeros(1, np.float32), "d": np.zeros(1, np.float64)}
_SCALARS = {c: (_ONE[c].ctypes.data, _ZERO[c].ctypes.data) for c in ("f", "d")}


def _lib() -> Any:
    """CuPy's cuBLAS binding, imported on first use (loading it needs libcublas)."""
    if not _lib_cache:
        from cupy_backends.cuda.libs import cublas  # noqa: PLC0415

        _lib_cache.append(cublas)
    return _lib_cache[0]


class _Cublas:
    """Direct ctypes calls into the libcublas CuPy already loaded.

    CuPy's binding refuses cuBLAS calls while a stream is being captured, and re-binds its
    handle to CuPy's current stream; calling the library directly on our own handle (bound to
    the call's stream, with a fixed workspace so nothing is allocated during a capture) keeps
    GEMMs capturable in CUDA graphs.
    """

    WORKSPACE = 32 << 20  # cuBLAS's recommended workspace on Hopper

    def __init__(self) -> None:
        import cupy  # noqa: PLC0415

        lib = _lib()
        lib.destroy(lib.create())  # makes sure libcublas is loaded in this process
        self.dll = ctypes.CDLL(_loaded_library("libcublas.so"))
        self.gemm = self.dll.cublasGemmEx
        vp, i = ctypes.c_void_p, ctypes.c_int
        self.gemm.argtypes = [vp, i, i, i, i, i, vp, vp, i, i, vp, i, i, vp, vp, i, i, i, i]
        self.gemm.restype = i
        self._cupy = cupy

    def handle(self, stream_ptr: int) -> int:
        """This thread's handle, bound to ``stream_ptr``."""
        state = getattr(_tls, "ctypes_handle", None)
        if state is None:
            handle = ctypes.c_void_p()
            _check(self.dll.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate")
            _check(self.dll.cublasSetMathMode(handle, 0), "cublasSetMathMode")
            workspace = self._cupy.cuda.alloc(self.WORKSPACE)
            _check(self.dll.cublasSetWorkspace_v2(handle, ctypes.c_void_p(workspace.ptr),
                                                  ctypes.c_size_t(self.WORKSPACE)),
                   "cublasSetWorkspace")
            state = _tls.ctypes_handle = [handle, None, workspace]
        if state[1] != stream_ptr:
            _check(self.dll.cublasSetStream_v2(state[0], ctypes.c_void_p(stream_ptr)),
                   "cublasSetStream")
            state[1] = stream_ptr
        return state[0].value


def _loaded_library(stem: str) -> str:
    """The path of an already-loaded shared library whose file name starts with ``stem``."""
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            path = line.rsplit(None, 1)[-1]
            if os.path.basename(path).startswith(stem):
                return path
    return f"{stem}.13"


def _check(status: int, what: str) -> None:
    if status != 0:
        raise BackendError(f"[matmul] {what} failed with cuBLAS status {status}")


def _direct() -> _Cublas | None:
    if not _direct_cache:
        try:
            _direct_cache.append(_Cublas())
        except (OSError, AttributeError, BackendError):
            _direct_cache.append(None)  # fall back to CuPy's binding (not capturable)
    return _direct_cache[0]


def _compute_type(lib: Any, dtype_char: str, precision: str) -> tuple[int, str, str]:
    """(cuBLAS compute type, scalar type char, precision actually used)."""
    if dtype_char == "d":
        return lib.CUBLAS_COMPUTE_64F, "d", "fp32"  # float64 is native: nothing lowered
    if dtype_char == "e":
        return lib.CUBLAS_COMPUTE_32F, "f", "fp16" if precision == "fp16" else "fp32"
    fast = {"tf32": lib.CUBLAS_COMPUTE_32F_FAST_TF32, "bf16": lib.CUBLAS_COMPUTE_32F_FAST_16BF,
            "fp16": lib.CUBLAS_COMPUTE_32F_FAST_16F}
    if precision in fast:
        return fast[precision], "f", precision
    return lib.CUBLAS_COMPUTE_32F, "f", "fp32"


def gemm(a: Any, b: Any, out: Any, stream: Any, precision: str) -> str:
    """``out = a @ b`` on ``stream`` for C-contiguous 2-D arrays; returns the precision used."""
    lib = _lib()
    m, k = a.shape
    n = b.shape[1]
    dtype_char = out.dtype.char
    data_type = _CUDA_R[dtype_char]
    compute, scalar_char, used = _compute_type(lib, dtype_char, precision)
    alpha, beta = _SCALARS[scalar_char]
    # k == 0 is legal (C = 0); cuBLAS still wants leading dimensions >= 1.
    args = (lib.CUBLAS_OP_N, lib.CUBLAS_OP_N, n, m, k, alpha, b.data.ptr, data_type, n,
            a.data.ptr, data_type, max(k, 1), beta, out.data.ptr, data_type, n, compute,
            lib.CUBLAS_GEMM_DEFAULT)
    direct = _direct()
    if direct is not None:
        _check(direct.gemm(direct.handle(stream.ptr), *args), "cublasGemmEx")
        return used
    with stream:  # CuPy's binding binds its handle to the current stream
        lib.gemmEx(_cupy_handle(), *args)
    return used


def _cupy_handle() -> int:
    handle = getattr(_tls, "handle", None)
    if handle is None:
        lib = _lib()
        handle = _tls.handle = lib.create()
        lib.setMathMode(handle, lib.CUBLAS_DEFAULT_MATH)
    return handle


def _prepared_gemm(m: int, k: int, n: int, dtype: np.dtype, precision: str) -> Any:
    """The fast lane's GEMM: every cuBLAS argument but the pointers and the handle resolved
    once. None when only CuPy's binding is available (its generic path then runs)."""
    direct = _direct()
    if direct is None:
        return None
    lib = _lib()
    data_type = _CUDA_R[dtype.char]
    compute, scalar_char, _ = _compute_type(lib, dtype.char, precision)
    alpha, beta = _SCALARS[scalar_char]
    op_n, algo, lda = lib.CUBLAS_OP_N, lib.CUBLAS_GEMM_DEFAULT, max(k, 1)
    call, handle, binding = direct.gemm, direct.handle, lib.gemmEx

    def run(a: Any, b: Any, out: Any, stream: Any) -> None:
        # ``stream`` is CuPy's current stream here, so CuPy's Cython binding (about 3 us
        # cheaper per call than ctypes) binds our handle, with its fixed workspace, to the
        # right stream. Should it refuse (e.g. during a stream capture), ctypes runs the call.
        own = handle(stream.ptr)
        try:
            binding(own, op_n, op_n, n, m, k, alpha, b.data.ptr, data_type, n, a.data.ptr,
                    data_type, lda, beta, out.data.ptr, data_type, n, compute, algo)
            return
        except Exception:  # noqa: BLE001 - the ctypes call below reports real errors
            pass
        status = call(own, op_n, op_n, n, m, k, alpha, b.data.ptr, data_type, n, a.data.ptr,
                      data_type, lda, beta, out.data.ptr, data_type, n, compute, algo)
        if status:
            _check(status, "cublasGemmEx")

    return run


def _prepare_matmul(in_shapes: Any, shape: tuple[int, ...], dtype: np.dtype,
                    precision: str) -> Any:
    (m, k), _ = in_shapes
    run = _prepared_gemm(m, k, shape[1], dtype, precision)
    if run is None:
        return None

    def launch(ins: tuple[Any, ...], out: Any, stream: Any) -> None:
        run(ins[0], ins[1], out, stream)

    return launch


def _prepare_linear(in_shapes: Any, shape: tuple[int, ...], dtype: np.dtype, precision: str,
                    activation: str | None = None) -> Any:
    m, k = in_shapes[0]
    run = _prepared_gemm(m, k, shape[1], dtype, precision)
    if run is None:
        return None
    epilogue = len(in_shapes) == 3 or activation is not None

    def launch(ins: tuple[Any, ...], out: Any, stream: Any) -> None:
        run(ins[0], ins[1], out, stream)
        if epilogue:
            bias_activation(out, ins[2] if len(ins) == 3 else None, activation, stream)

    return launch


@register("cuda", "matmul", "cublas", dtypes=_DTYPES, precisions=_PRECISIONS,
          prepare=_prepare_matmul, default=True)
def matmul_cublas(a: Any, b: Any, *, out: Any, stream: Any, precision: str) -> str:
    """``out = a @ b`` through cuBLAS."""
    return gemm(a, b, out, stream, precision)


@register("cuda", "linear", "cublas_epilogue", dtypes=_DTYPES, precisions=_PRECISIONS,
          prepare=_prepare_linear)
def linear_cublas(x: Any, w: Any, *bias: Any, out: Any, stream: Any, precision: str,
                  activation: str | None = None) -> str:
    """``out = act(x @ w + bias)``: one GEMM, then one fused epilogue launch if needed."""
    used = gemm(x, w, out, stream, precision)
    bias_activation(out, bias[0] if bias else None, activation, stream)
    return used
