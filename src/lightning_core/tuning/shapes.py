"""Calls built from shapes alone: pre-tuning (``lc tune``) and the crossover's probes.

The pre-tune lists are the seed's (``ai_model_all_bench`` pre-tunes exactly these): attention
as (seq, head_dim), conv as (batch, in_ch, h, w, out_ch) with a 3x3 kernel, stride 1, pad 1,
a bias and ReLU, and matmul as (m, k, n). Each shape is searched once on the active backend and
stored for both I/O modes (the kernels' ranking does not depend on where the inputs came
from); on CUDA the entry also carries the CPU path's time, which the one-shot crossover
prefers to its model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .. import config
from ..runtime.arrays import Operand
from ..runtime.backend import Backend, implementations
from ..runtime.dispatch import Call, clear_decisions
from .keys import SPECS
from .tuner import Tuner

__all__ = ["PRETUNE_SHAPES", "OPS", "PROBES", "CPU_BIG", "make_call", "describe", "plan", "tune_shape",
           "pretune"]

PRETUNE_SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "attention": ((8, 16), (8, 32), (12, 12), (48, 48), (96, 48), (192, 48), (192, 8), (256, 64),
                  (384, 64), (512, 64), (768, 64), (1024, 64), (1536, 64), (256, 80), (512, 80),
                  (1024, 80)),
    "conv2d": ((1, 3, 8, 8, 16), (1, 3, 16, 16, 16), (2, 3, 16, 16, 16), (1, 3, 24, 24, 16),
               (1, 3, 28, 28, 16), (8, 3, 128, 128, 16), (16, 3, 64, 64, 16),
               (32, 3, 64, 64, 16), (16, 16, 32, 32, 32), (32, 16, 32, 32, 32),
               (16, 32, 28, 28, 64)),
    "matmul": ((256, 256, 256), (896, 896, 896), (1024, 1024, 1024), (512, 3072, 768),
               (1024, 3072, 768), (2048, 1024, 1024)),
}
OPS = tuple(PRETUNE_SHAPES)

# Calibration probes per op family: (kernel key, tiny shape, CPU mid shape, GPU mid shape).
# The tiny shape gives the fixed cost, the mid shapes the throughput (a few ms at most).
PROBES: dict[str, tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    "matmul": ("matmul", (1, 1, 1), (192, 192, 192), (1024, 1024, 1024)),
    "attention": ("attention", (1, 8), (128, 64), (1024, 64)),
    "conv2d": ("conv2d", (1, 1, 3, 3, 1), (1, 16, 32, 32, 16), (16, 16, 64, 64, 32)),
    "elementwise": ("binary", (1,), (1 << 17,), (1 << 22,)),
}
# CPU probes past the caches, for families whose CPU time stops following the cache rate once
# the data leaves them: the mid elementwise probe (1.5 MB moved) runs from cache, a 12 MB call
# from memory, and the CPU backend splits results of 2 MB per host thread (1M elements on 2
# threads, 2M on 4), so time is not linear in size there: run 44 measured 527 us at 1M and 549
# at 2M, and a line through the mid and 2M probes put 1M at 288 us (a pinned 1024x1024
# matrix_sub went to the CPU, 565 us, where CUDA took 289). Above the mid probe the CPU
# estimate follows the polyline through the probes' times. These probes rotate through 128 MB
# of inputs and outputs (run 49's calibration, on repeated inputs, put 1M at 389 us where the
# calls took 585).
# Matmul has them too, for another reason: the host BLAS runs small products at a fraction of
# its large-product rate, so the line through the 192^3 probe (~250 GFLOP/s in runs 58-59)
# put a 256^3 product at 138 us where the calls took 69-79 us, against a GPU one-shot model
# of 136 us: `auto` sent 256^3 to the GPU (182-250 us).
CPU_BIG: dict[str, tuple[tuple[int, ...], ...]] = {
    "elementwise": ((1 << 20,), (1 << 21,)),
    "matmul": ((256, 256, 256), (512, 512, 512)),
}


def _operands(shapes: tuple[tuple[int, ...], ...], dtype: np.dtype) -> tuple[Operand, ...]:
    # Zeros: the pages are mapped lazily and the values are never read (only the shapes).
    return tuple(Operand(np.zeros(s, dtype=dtype), False, False) for s in shapes)


def make_call(key: str, dims: tuple[int, ...], dtype: Any = np.float32,
              precision: str = "fp32") -> Call:
    """A one-shot ``Call`` of kernel ``key`` at ``dims`` (the shape tuples described above;
    ``binary`` takes ``(n,)``)."""
    dt = np.dtype(dtype)
    if key == "matmul":
        m, k, n = dims
        return Call("tune", key, _operands(((m, k), (k, n)), dt), (m, n), dt,
                    precision=precision)
    if key == "attention":
        s, d = dims
        params = {"causal": False, "scale": 1.0 / math.sqrt(d), "post": None}
        return Call("tune", key, _operands(((s, d),) * 3, dt), (s, d), dt, params,
                    precision=precision)
    if key == "conv2d":
        n, c, h, w, oc = dims
        params = {"stride_h": 1, "stride_w": 1, "pad_h": 1, "pad_w": 1, "relu": True}
        return Call("tune", key, _operands(((n, c, h, w), (oc, c, 3, 3), (oc,)), dt),
                    (n, oc, h, w), dt, params, precision=precision)
    if key == "binary":
        (n,) = dims
        return Call("tune", key, _operands(((n,), (n,)), dt), (n,), dt, {"kind": "add"},
                    precision=precision)
    raise KeyError(f"[tuning] no shape builder for kernel key {key!r}")


def describe(key: str, dims: tuple[int, ...]) -> str:
    """Readable shape text, e.g. ``seq=96,head_dim=48``."""
    names = {"attention": ("seq", "head_dim"), "conv2d": ("batch", "in_ch", "h", "w", "out_ch"),
             "matmul": ("m", "k", "n"), "binary": ("n",)}[key]
    return ",".join(f"{n}={v}" for n, v in zip(names, dims, strict=True))


def plan(ops: Iterable[str]) -> list[tuple[str, tuple[int, ...]]]:
    """The (op, dims) pairs ``pretune`` will search, in order."""
    return [(op, dims) for op in ops for dims in PRETUNE_SHAPES[op]]


def tune_shape(tuner: Tuner, backend: Backend, op: str, dims: tuple[int, ...],
               precision: str) -> dict[str, Any]:
    """Search one shape; a row saying what was chosen (or why nothing was)."""
    call = make_call(op, dims, precision=precision)
    spec = SPECS[op]
    usable = [i for i in implementations(backend.name, op) if call.dtype.name in i.dtypes]
    impls = [i for i in usable if precision in i.precisions] or usable
    row: dict[str, Any] = {"op": op, "shape": describe(op, dims), "backend": backend.name,
                           "candidates": [i.variant for i in impls], "winner": None,
                           "margin_pct": None, "cpu_us": None}
    if not impls:
        return {**row, "status": "no implementation"}
    if len(impls) < 2 and backend.name == "cpu":
        return {**row, "status": "one implementation: nothing to choose"}
    existing = tuner.lookup(backend, spec, call, "oneshot")
    by_variant = {i.variant: i for i in impls}
    untuned = tuner.promoted(spec, spec.dims(call), by_variant) or impls[0]
    incumbent = existing["winner"] if existing is not None else untuned.variant
    entry = tuner.search(backend, impls, call, incumbent=incumbent, ios=("oneshot", "resident"))
    if entry is None:
        return {**row, "status": "failed: no candidate passed its check"}
    return {**row, "status": "tuned", "winner": entry["winner"],
            "margin_pct": entry["margin_pct"], "cpu_us": entry.get("cpu_us"),
            "timings_us": entry["timings_us"], "rejected": entry["rejected"]}


def pretune(tuner: Tuner, backend: Backend, ops: Iterable[str],
            progress: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Search every shape of ``ops``' lists on ``backend``; ``progress`` sees each row."""
    precision = str(config.get("LC_PRECISION"))
    rows = []
    for op, dims in plan(ops):
        row = tune_shape(tuner, backend, op, dims, precision)
        rows.append(row)
        if progress is not None:
            progress(row)
    clear_decisions()  # calls already routed pick up the new entries
    return rows
