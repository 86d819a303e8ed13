"""Matrix multiply ``C[m, n] = A[m, k] @ B[k, n]`` (row-major), with the seed's names.

Zero-size dimensions follow NumPy: ``k == 0`` gives zeros, ``m == 0`` or ``n == 0`` an empty
result. Precision follows the policy (``fp32`` true IEEE by default; ``tf32``/``bf16``/``fp16``
only when asked, on backends that have them; the trace records the precision used).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..runtime import dispatch as _dispatch
from ..runtime.arrays import as_operands, check_out
from ..runtime.dispatch import Call, LaneMiss, clear_decisions, execute
from ..runtime.policy import ONE_SHOT, MatMulIoPolicy, current_precision
from ._checks import dim, flat_view, need_rank, shape_text

__all__ = [
    "matmul2d",
    "matmul2d_into",
    "matmul",
    "matmul_np",
    "matmul_np_into",
    "matmul_with_policy",
    "matmul_np_with_policy",
    "matmul_np_into_with_policy",
    "matmul_reset_tuning",
    "matmul_reference",
    "lightning_matmul",
    "lightning_matmul_into",
]


def matmul_reference(a: Any, b: Any) -> np.ndarray:
    """Float64 reference."""
    return np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64)


def _run(op: str, a: Any, b: Any, out: Any, device: Any, *,
         flat: tuple[int, int, int] | None = None, policy: MatMulIoPolicy | None = None,
         precision: str | None = None, miss: LaneMiss | None = None) -> Any:
    """One call: its lane (unless the caller tried it and passes the ``miss``: the hot public
    functions do, one Python frame less per call), else the full road."""
    if policy is None and miss is None:
        scalars = (current_precision(op, precision), *(flat or ()))
        miss = _dispatch.lane_call(op, device, scalars, (a, b), out)
        if type(miss) is not LaneMiss:
            return miss
    lane = None if miss is None else miss.key
    (oa, ob), dtype = as_operands(op, ("a", "b"), (a, b))
    if flat is not None:
        m, k, n = (dim(op, nm, v) for nm, v in zip("mkn", flat, strict=True))
        oa.array = flat_view(op, "a", oa.array, (m, k))
        ob.array = flat_view(op, "b", ob.array, (k, n))
    else:
        need_rank(op, "a", oa.array, 2)
        need_rank(op, "b", ob.array, 2)
        m, k = oa.array.shape
        if ob.array.shape[0] != k:
            raise ShapeError(f"[{op}] inner dimensions differ: a is {shape_text(oa.array.shape)}"
                             f", b is {shape_text(ob.array.shape)}")
        n = ob.array.shape[1]
    out_shape = (m, n)
    native_out = None
    if out is not None:
        native_out = check_out(op, out, out_shape, dtype, (oa, ob), flat_ok=True)
    prec = current_precision(op, precision if precision is not None else
                             (policy.precision if policy is not None else None))
    call = Call(op, "matmul", (oa, ob), out_shape, dtype, {}, native_out,
                policy.plan() if policy is not None else ONE_SHOT, prec)
    result = execute(call, device, lane=lane, final=(m * n,) if flat is not None else None)
    if out is not None:
        return out
    return result.reshape(m * n) if flat is not None else result


def matmul2d(a: Any, b: Any, device: str = "auto", *, precision: str | None = None) -> Any:
    """``a @ b`` for 2-D ``a [m, k]`` and ``b [k, n]``; returns ``[m, n]``."""
    result = _dispatch.lane_call("matmul2d", device, (current_precision("matmul2d", precision),),
                                 (a, b), None)
    if type(result) is not LaneMiss:
        return result
    return _run("matmul2d", a, b, None, device, precision=precision, miss=result)


def matmul2d_into(a: Any, b: Any, out: Any, device: str = "auto", *,
                  precision: str | None = None) -> Any:
    """``a @ b`` written into ``out`` (``[m, n]`` or flat ``m*n``); returns ``out``."""
    return _run("matmul2d_into", a, b, out, device, precision=precision)


def lightning_matmul(a: Any, b: Any, device: str = "auto") -> Any:
    """The seed's integrated-API name for ``matmul2d``."""
    return _run("lightning_matmul", a, b, None, device)


def lightning_matmul_into(a: Any, b: Any, out: Any, device: str = "auto") -> Any:
    """The seed's integrated-API name for ``matmul2d_into``."""
    return _run("lightning_matmul_into", a, b, out, device)


def matmul(a: Any, b: Any, m: int, k: int, n: int, device: str = "auto") -> Any:
    """Flat matmul: ``a`` holds ``m*k`` values, ``b`` ``k*n``; returns a flat result
    (a list when ``a`` is a list, as in the seed)."""
    result = _run("matmul", a, b, None, device, flat=(m, k, n))
    return result.tolist() if isinstance(a, list) else result


def matmul_np(a: Any, b: Any, m: int, k: int, n: int, device: str = "auto") -> Any:
    """Flat matmul returning a flat array of ``m*n`` values."""
    return _run("matmul_np", a, b, None, device, flat=(m, k, n))


def matmul_np_into(a: Any, b: Any, out: Any, m: int, k: int, n: int,
                   device: str = "auto") -> Any:
    """Flat matmul written into ``out`` (flat ``m*n`` or ``[m, n]``)."""
    return _run("matmul_np_into", a, b, out, device, flat=(m, k, n))


def matmul_with_policy(a: Any, b: Any, m: int, k: int, n: int, device: str = "auto",
                       policy: MatMulIoPolicy | None = None) -> Any:
    """Flat matmul under an explicit ``MatMulIoPolicy``."""
    result = _run("matmul_with_policy", a, b, None, device, flat=(m, k, n),
                  policy=policy or MatMulIoPolicy())
    return result.tolist() if isinstance(a, list) else result


def matmul_np_with_policy(a: Any, b: Any, m: int, k: int, n: int, device: str = "auto",
                          policy: MatMulIoPolicy | None = None) -> Any:
    """Flat matmul under a policy, returning a flat array."""
    return _run("matmul_np_with_policy", a, b, None, device, flat=(m, k, n),
                policy=policy or MatMulIoPolicy())


def matmul_np_into_with_policy(a: Any, b: Any, out: Any, m: int, k: int, n: int,
                               device: str = "auto",
                               policy: MatMulIoPolicy | None = None) -> Any:
    """Flat matmul under a policy, written into ``out``."""
    return _run("matmul_np_into_with_policy", a, b, out, device, flat=(m, k, n),
                policy=policy or MatMulIoPolicy())


def matmul_reset_tuning() -> None:
    """Forget in-memory matmul tuning: routing decisions and tuned entries (the persisted
    cache is kept and re-read on the next call)."""
    clear_decisions()
    # ops never imports tuning (it sits above ops); tuning holds entries only once imported.
    tuning = sys.modules.get("lightning_core.tuning")
    if tuning is not None:
        tuning.reset_tuning("matmul")
