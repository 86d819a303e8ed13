"""Execution policy as data: per-call I/O policies, the precision policy and the sync policy.

The seed's policy objects are mutable (its scripts toggle ``policy.synchronize``), so they are
plain dataclasses; the dispatcher turns each into a frozen ``IoPlan`` when a call starts, so a
policy changed later never affects a call already made.

Rule: no call hands the caller host memory that it can read before it is valid. A download is
a completion point, so ``download_out=True`` with ``synchronize=False`` still waits for the
result before returning host memory (the trace notes it); with ``download_out=False`` the
result stays on the device and ``lc.synchronize()`` or a session sync is the completion point.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

from .. import config
from ..errors import PolicyError

__all__ = [
    "IoPlan",
    "ONE_SHOT",
    "MatMulIoPolicy",
    "MatrixElementwiseIoPolicy",
    "VectorAddIoPolicy",
    "Conv2dIoPolicy",
    "AttentionIoPolicy",
    "PRECISIONS",
    "precision",
    "current_precision",
    "check_precision",
]

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


@dataclass(frozen=True, slots=True)
class IoPlan:
    """What one call moves: which inputs to upload, whether to download and to sync."""

    upload: tuple[bool, ...] | None = None  # None: upload every host input
    download: bool = True
    synchronize: bool = True

    def uploads(self, index: int) -> bool:
        return True if self.upload is None else self.upload[index]


ONE_SHOT = IoPlan()


@dataclass(slots=True)
class MatMulIoPolicy:
    """Per-call I/O policy of a matmul (seed fields; all True is a one-shot call)."""

    upload_a: bool = True
    upload_b: bool = True
    download_out: bool = True
    synchronize: bool = True
    precision: str | None = None

    def plan(self) -> IoPlan:
        return IoPlan((self.upload_a, self.upload_b), self.download_out, self.synchronize)


@dataclass(slots=True)
class MatrixElementwiseIoPolicy:
    """Per-call I/O policy of matrix_sub/add/mul/div."""

    upload_a: bool = True
    upload_b: bool = True
    download_out: bool = True
    synchronize: bool = True

    def plan(self) -> IoPlan:
        return IoPlan((self.upload_a, self.upload_b), self.download_out, self.synchronize)


@dataclass(slots=True)
class VectorAddIoPolicy(MatrixElementwiseIoPolicy):
    """Per-call I/O policy of vector_add."""


@dataclass(slots=True)
class Conv2dIoPolicy:
    """Per-call I/O policy of conv2d (x, weight, bias)."""

    upload_x: bool = True
    upload_w: bool = True
    upload_bias: bool = True
    download_out: bool = True
    synchronize: bool = True

    def plan(self) -> IoPlan:
        return IoPlan((self.upload_x, self.upload_w, self.upload_bias), self.download_out,
                      self.synchronize)


@dataclass(slots=True)
class AttentionIoPolicy:
    """Per-call I/O and postprocess policy of attention.

    The postprocess is ``out * output_scale + output_bias``, then ``max(0, .)`` when
    ``output_relu`` is on. ``loss_every`` applies to ``train_step`` (N > 1: compute the loss every
    N steps; 0: a shape-aware default).
    """

    upload_q: bool = True
    upload_k: bool = True
    upload_v: bool = True
    upload_target: bool = True
    download_out: bool = True
    download_v: bool = True
    synchronize: bool = True
    loss_every: int = 1
    output_scale: float = 1.0
    output_bias: float = 0.0
    output_relu: bool = False

    def plan(self) -> IoPlan:
        return IoPlan((self.upload_q, self.upload_k, self.upload_v), self.download_out,
                      self.synchronize)

    def postprocess(self) -> tuple[float, float, bool] | None:
        """``(scale, bias, relu)``, or None when the postprocess is the identity."""
        if self.output_scale == 1.0 and self.output_bias == 0.0 and not self.output_relu:
            return None
        return (float(self.output_scale), float(self.output_bias), bool(self.output_relu))


_precision: contextvars.ContextVar[str | None] = contextvars.ContextVar("lc_precision",
                                                                        default=None)


def check_precision(op: str, value: object) -> str:
    """Validate a precision name."""
    if value not in PRECISIONS:
        raise PolicyError(f"[{op}] precision must be one of {', '.join(PRECISIONS)}; "
                          f"got {value!r}")
    return value  # type: ignore[return-value]


@contextlib.contextmanager
def precision(value: str) -> Iterator[None]:
    """Scope a precision policy: ``with lc.precision("tf32"): ...``."""
    token = _precision.set(check_precision("precision", value))
    try:
        yield
    finally:
        _precision.reset(token)


def current_precision(op: str, explicit: str | None = None) -> str:
    """Per-call value > scoped ``lc.precision`` > ``LC_PRECISION`` (default fp32)."""
    if explicit is not None:
        return check_precision(op, explicit)
    scoped = _precision.get()
    if scoped is not None:
        return scoped
    return config.get("LC_PRECISION")
