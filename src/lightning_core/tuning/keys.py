"""What a tuned choice is keyed by: op specs, shape buckets, entry keys and machine fingerprints.

A shape bucket keeps every dimension up to 64 exact and rounds larger ones up to the next power
of two (96 -> 128, 129 -> 256): kernels change behaviour at those sizes (warps, tiles), while
a choice measured at 700 still holds at 1000. Geometry that selects different code (kernel
size, stride, padding) and flags (causal, kind) are kept exact.

An entry key names the op, bucket, dtype, precision, layout and I/O mode; the machine
fingerprint (GPU name and compute capability, driver, CUDA, CuPy and lightning_core versions,
the sha256 of the CUDA kernel sources) selects the section of the cache an entry lives in, so
an entry measured anywhere else never matches.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._version import __version__
from ..ops.activations import gelu_reference, relu_reference
from ..ops.attention import attention_reference
from ..ops.conv import conv2d_reference
from ..ops.elementwise import binary_reference
from ..ops.linear import linear_reference
from ..ops.matmul import matmul_reference
from ..ops.norm import layer_norm_reference
from ..ops.softmax import softmax_reference
from ..runtime.backend import Backend
from ..runtime.dispatch import Call

__all__ = ["OpSpec", "SPECS", "register_spec", "bucket_dim", "bucket_of",
           "io_mode", "entry_key", "machine_fingerprint", "machine_id", "kernel_source_hash"]

_EXACT_UP_TO = 64


@dataclass(frozen=True)
class OpSpec:
    """How the tuner reads, checks and costs one kernel key.

    ``dims(call)`` gives the named sizes (``exact`` lists those never bucketed), ``reference``
    the float64 result from host inputs and params, ``work`` the op's work (flops, or elements
    for memory-bound ops) and ``family`` the calibration class of the CPU crossover.
    ``inputs`` (optional) draws the random inputs of a search.
    """

    key: str
    layout: str
    dims: Callable[[Call], dict[str, int]]
    reference: Callable[[tuple[np.ndarray, ...], dict[str, Any]], np.ndarray]
    work: Callable[[dict[str, int]], float]
    family: str
    exact: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    inputs: Callable[[np.random.Generator, Call], tuple[np.ndarray, ...]] | None = None


def _shape(call: Call, i: int) -> tuple[int, ...]:
    return tuple(int(d) for d in call.inputs[i].array.shape)


def _size(call: Call) -> dict[str, int]:
    return {"n": math.prod(call.out_shape)}


def _rows_cols(call: Call) -> dict[str, int]:
    rows, cols = _shape(call, 0)
    return {"rows": rows, "cols": cols}


def _mkn(call: Call) -> dict[str, int]:
    (m, k), (_, n) = _shape(call, 0), _shape(call, 1)
    return {"m": m, "k": k, "n": n}


def _attention_dims(call: Call) -> dict[str, int]:
    s, d = _shape(call, 0)
    return {"s": s, "d": d}


def _conv_dims(call: Call) -> dict[str, int]:
    n, c, h, w = _shape(call, 0)
    oc, _, kh, kw = _shape(call, 1)
    _, _, oh, ow = call.out_shape
    return {"n": n, "c": c, "h": h, "w": w, "oc": oc, "kh": kh, "kw": kw, "oh": oh, "ow": ow}


def _conv_ref(x: tuple[np.ndarray, ...], p: dict[str, Any]) -> np.ndarray:
    bias = x[2] if len(x) > 2 else None
    return conv2d_reference(x[0], x[1], bias, p["stride_h"], p["stride_w"], p["pad_h"],
                            p["pad_w"], p["relu"])


def _layer_norm_ref(x: tuple[np.ndarray, ...], p: dict[str, Any]) -> np.ndarray:
    weight = x[1] if p["has_weight"] else None
    bias = x[-1] if p["has_bias"] else None
    return layer_norm_reference(x[0], weight, bias, p["eps"])


def _divisor_safe(rng: np.random.Generator, call: Call) -> tuple[np.ndarray, ...]:
    """Random operands whose second one stays away from zero (division)."""
    a = rng.standard_normal(_shape(call, 0))
    b = rng.uniform(0.5, 2.0, _shape(call, 1)) * rng.choice((-1.0, 1.0), _shape(call, 1))
    return a.astype(call.dtype), b.astype(call.dtype)


SPECS: dict[str, OpSpec] = {}


def register_spec(spec: OpSpec) -> None:
    """Make a kernel key tunable (the built-in keys are registered below)."""
    SPECS[spec.key] = spec


for _spec in (
    OpSpec("matmul", "row-major", _mkn, lambda x, p: matmul_reference(x[0], x[1]),
           lambda d: 2.0 * d["m"] * d["k"] * d["n"], "matmul"),
    OpSpec("linear", "row-major,w[in,out]", _mkn,
           lambda x, p: linear_reference(x[0], x[1], x[2] if len(x) > 2 else None,
                                         p["activation"]),
           lambda d: 2.0 * d["m"] * d["k"] * d["n"], "matmul", params=("activation",)),
    OpSpec("attention", "[seq,d] row-major", _attention_dims,
           lambda x, p: attention_reference(x[0], x[1], x[2], p["causal"], p["scale"], p["post"]),
           lambda d: 4.0 * d["s"] * d["s"] * d["d"], "attention", params=("causal",)),
    OpSpec("conv2d", "nchw,oihw", _conv_dims, _conv_ref,
           lambda d: 2.0 * d["n"] * d["oc"] * d["oh"] * d["ow"] * d["c"] * d["kh"] * d["kw"],
           "conv2d", exact=("kh", "kw"), params=("stride_h", "stride_w", "pad_h", "pad_w")),
    OpSpec("binary", "contiguous", _size, lambda x, p: binary_reference(x[0], x[1], p["kind"]),
           lambda d: float(d["n"]), "elementwise", params=("kind",),
           inputs=_divisor_safe),
    OpSpec("relu", "contiguous", _size, lambda x, p: relu_reference(x[0]),
           lambda d: float(d["n"]), "elementwise"),
    OpSpec("gelu", "contiguous", _size, lambda x, p: gelu_reference(x[0], p["approximate"]),
           lambda d: float(d["n"]), "elementwise", params=("approximate",)),
    OpSpec("softmax", "[rows,cols] row-major", _rows_cols, lambda x, p: softmax_reference(x[0]),
           lambda d: float(d["rows"] * d["cols"]), "elementwise"),
    OpSpec("layer_norm", "[rows,cols] row-major", _rows_cols, _layer_norm_ref,
           lambda d: float(d["rows"] * d["cols"]), "elementwise",
           params=("has_weight", "has_bias")),
):
    register_spec(_spec)


def bucket_dim(value: int) -> int:
    """``value`` itself up to 64, else the next power of two at or above it."""
    if value <= _EXACT_UP_TO:
        return value
    return 1 << (value - 1).bit_length()


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    return "none" if value is None else str(value)


def bucket_of(spec: OpSpec, call: Call) -> str:
    """The bucket text of ``call``, e.g. ``"s=128,d=64,causal=0"``.

    A spec param the call does not carry is left out, so such a call (a session asking before
    its params are bound) matches no entry measured with that param.
    """
    dims = spec.dims(call)
    parts = [f"{k}={v if k in spec.exact else bucket_dim(v)}" for k, v in dims.items()
             if k not in ("oh", "ow")]
    parts += [f"{name}={_param_text(call.params[name])}" for name in spec.params
              if name in call.params]
    return ",".join(parts)


def io_mode(call: Call) -> str:
    """``"resident"`` when every input already lives on the device, else ``"oneshot"``."""
    return "resident" if call.resident else "oneshot"


def entry_key(spec: OpSpec, call: Call, io: str | None = None) -> str:
    """``op|bucket|dtype|precision|layout|io``: one tuned choice within a machine section."""
    return "|".join((spec.key, bucket_of(spec, call), call.dtype.name, call.precision,
                     spec.layout, io or io_mode(call)))


_kernel_hash: str | None = None


def kernel_source_hash() -> str:
    """sha256 over the names and bytes of every file in ``backends/cuda/kernels/``."""
    global _kernel_hash
    if _kernel_hash is None:
        digest = hashlib.sha256()
        folder = importlib.resources.files("lightning_core.backends.cuda") / "kernels"
        for item in sorted(folder.iterdir(), key=lambda p: p.name):
            if item.is_file():
                digest.update(item.name.encode() + b"\0" + item.read_bytes() + b"\0")
        _kernel_hash = digest.hexdigest()
    return _kernel_hash


def machine_fingerprint(backend: Backend) -> dict[str, Any]:
    """Everything about this machine and build that can change which implementation wins."""
    if backend.name == "cuda":
        details = backend.capabilities().details
        return {"backend": "cuda", "gpu": details.get("name"),
                "compute_capability": details.get("compute_capability"),
                "driver": details.get("driver_version"),
                "cuda_runtime": details.get("runtime_version"), "cupy": details.get("cupy"),
                "lightning_core": __version__, "kernel_sha256": kernel_source_hash()}
    return {"backend": backend.name, "machine": platform.machine(),
            "processor": platform.processor(), "cores": os.cpu_count() or 1,
            "numpy": np.__version__, "lightning_core": __version__}


def machine_id(fingerprint: dict[str, Any]) -> str:
    """A short stable name of a fingerprint: ``<backend>-<first 16 hex of its sha256>``."""
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return f"{fingerprint.get('backend', '?')}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
