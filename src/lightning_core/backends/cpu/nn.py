"""CPU kernels of the NN op families: relu, gelu, softmax, layer_norm, linear, embedding.

Each writes into the caller's ``out`` with NumPy ufuncs' ``out=`` argument so that a call
allocates at most one scratch array the size of the output (row statistics aside). Inputs are
C-contiguous and already validated by the op modules (see docs/dev/kernel_contracts.md).
"""

from __future__ import annotations

import math

import numpy as np

from ...runtime.backend import register
from .elementwise import chunked, relu_into

__all__ = [
    "erf",
    "relu_numpy",
    "gelu_numpy",
    "softmax_numpy",
    "layer_norm_numpy",
    "linear_numpy",
    "embedding_numpy",
]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)

# erf splits at |x| = 2: below, the series below converges in 32 terms to ~1e-16; above,
# the continued fraction of erfc converges in 45 terms (both measured against math.erf).
_ERF_SPLIT = 2.0
_ERFC_CF_TERMS = 45


def _series_coefficients(count: int) -> tuple[float, ...]:
    """``1 / (2k+1)!!`` for k < count, the coefficients of the series used by ``_erf_series``."""
    coeffs = [1.0]
    for k in range(1, count):
        coeffs.append(coeffs[-1] / (2 * k + 1))
    return tuple(coeffs)


_ERF_SERIES = _series_coefficients(32)


def _erf_series(x: np.ndarray) -> np.ndarray:
    """erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_k x (2x^2)^k / (2k+1)!! for 0 <= x < 2.

    Every term is positive, so unlike the Taylor series there is no cancellation.
    """
    t = np.multiply(x, x)
    t *= 2.0
    acc = np.full_like(x, _ERF_SERIES[-1])
    for c in reversed(_ERF_SERIES[:-1]):
        acc *= t
        acc += c
    t *= -0.5
    np.exp(t, out=t)
    acc *= t
    acc *= x
    acc *= _TWO_OVER_SQRT_PI
    return acc


def _erfc_continued_fraction(x: np.ndarray) -> np.ndarray:
    """erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))) for x >= 2."""
    f = x.copy()
    for k in range(_ERFC_CF_TERMS, 0, -1):
        np.divide(0.5 * k, f, out=f)
        f += x
    e = np.multiply(x, x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    e *= _INV_SQRT_PI
    e /= f
    return e


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised float64 error function (max abs error ~1e-15 against ``math.erf``)."""
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    result = np.empty_like(ax)
    small = ax < _ERF_SPLIT
    large = ~small  # NaN lands here and stays NaN
    # x*x overflows to inf for |x| > 1e154 and inf/inf appears for x = inf; both end in erf = 1.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result[small] = _erf_series(ax[small])
        result[large] = 1.0 - _erfc_continued_fraction(ax[large])
    return np.copysign(result, x, out=result)


# erfc(z) = t * exp(-z^2 + P(t)), t = 1 / (1 + z/2), z >= 0, with P the degree-9 Chebyshev fit
# of Numerical Recipes' ``erfcc``: relative error below 1.1e-7 for every z (checked against
# ``math.erfc`` on [0, 9]), so 1 + erf(x) keeps float32 accuracy on both sides of zero (it is
# erfc(-x) for x < 0). Ten polynomial steps instead of the series' 32 terms and the continued
# fraction's 45 divisions: float32 and float16 GELU take this path, float64 the exact one.
_ERFC_FIT = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
             -1.13520398, 1.48851587, -0.82215223, 0.17087277)


def _erfc_fit(z: np.ndarray) -> np.ndarray:
    """erfc(z) for z >= 0 (float64, relative error < 1.1e-7); ``z`` is overwritten."""
    t = np.multiply(z, 0.5)
    t += 1.0
    np.reciprocal(t, out=t)
    p = np.full_like(z, _ERFC_FIT[-1])
    for c in reversed(_ERFC_FIT[:-1]):
        p *= t
        p += c
    np.multiply(z, z, out=z)
    np.subtract(p, z, out=p)
    np.exp(p, out=p)
    p *= t
    return p


def _gelu_tanh(x: np.ndarray, out: np.ndarray) -> None:
    """0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715 x^3))); safe when ``out`` is ``x``."""
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.multiply(x, x)
        t *= 0.044715
        t += 1.0
        t *= x
        t *= _SQRT_2_OVER_PI
        np.tanh(t, out=t)
        t += 1.0
        t *= 0.5
        np.multiply(x, t, out=out)


def _gelu_erf(x: np.ndarray, out: np.ndarray) -> None:
    """0.5*x*(1 + erf(x/sqrt(2))) computed in float64; safe when ``out`` is ``x``. float64
    inputs take the exact erf; float32 and float16 the erfc fit (accurate beyond their
    precision)."""
    if x.dtype == np.float64:
        e = erf(np.multiply(x, _INV_SQRT_2))
        e += 1.0
    else:
        z = np.abs(x, dtype=np.float64)
        z *= _INV_SQRT_2
        with np.errstate(over="ignore", invalid="ignore"):
            e = _erfc_fit(z)  # erfc(|x|/sqrt 2): 1 + erf(x/sqrt 2) for x < 0
            np.subtract(2.0, e, out=e, where=x >= 0)  # and 2 - that for x >= 0
    e *= 0.5
    with np.errstate(invalid="ignore"):
        np.multiply(e, x, out=out, casting="same_kind")


def _activate(out: np.ndarray, activation: str | None) -> None:
    """Apply ``activation`` to ``out`` in place."""
    if activation == "relu":
        relu_into(out, out)
    elif activation == "gelu_tanh":
        _gelu_tanh(out, out)
    elif activation == "gelu_erf":
        _gelu_erf(out, out)


@register("cpu", "relu", "numpy")
def relu_numpy(x: np.ndarray, *, out: np.ndarray) -> None:
    """max(x, 0); NaN stays NaN. Large arrays run in chunks on the host pool."""
    if not chunked(relu_into, out, x):
        relu_into(x, out)


@register("cpu", "gelu", "numpy")
def gelu_numpy(x: np.ndarray, *, out: np.ndarray, approximate: str) -> None:
    """GELU, tanh approximation or exact erf form (``approximate="none"``). Large arrays run
    in chunks on the host pool."""
    fn = _gelu_tanh if approximate == "tanh" else _gelu_erf
    if not chunked(fn, out, x):
        fn(x, out)


@register("cpu", "softmax", "numpy")
def softmax_numpy(x: np.ndarray, *, out: np.ndarray) -> None:
    """Row softmax of ``x [rows, cols]``, stable: the row max is subtracted first."""
    row_max = np.max(x, axis=1, keepdims=True)
    # A row holding +inf or only -inf gives inf - inf = NaN, as in the float64 reference.
    with np.errstate(invalid="ignore"):
        np.subtract(x, row_max, out=out)
        np.exp(out, out=out)
        out /= np.sum(out, axis=1, keepdims=True)


@register("cpu", "layer_norm", "numpy")
def layer_norm_numpy(x: np.ndarray, *affine: np.ndarray, out: np.ndarray, eps: float,
                     has_weight: bool, has_bias: bool) -> None:
    """Row layer norm of ``x [rows, cols]`` (biased variance), then ``* weight + bias``."""
    cols = x.shape[1]
    # inf in a row (inf - inf) or eps = 0 on a constant row (0/0) give NaN, as the reference.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        np.subtract(x, np.mean(x, axis=1, keepdims=True), out=out)
        # einsum sums the squares row by row without a full-size temporary.
        var = np.einsum("ij,ij->i", out, out)
        var /= cols
        var += eps
        out /= np.sqrt(var, out=var)[:, None]
    if has_weight:
        out *= affine[0]
    if has_bias:
        out += affine[-1]


@register("cpu", "linear", "numpy")
def linear_numpy(x: np.ndarray, w: np.ndarray, *bias: np.ndarray, out: np.ndarray,
                 activation: str | None) -> None:
    """``x [m,k] @ w [k,n]`` (BLAS) into ``out``, then bias and activation in place."""
    # inf * 0 inside the product is NaN by IEEE, as in the reference; not worth a warning.
    with np.errstate(over="ignore", invalid="ignore"):
        np.matmul(x, w, out=out)
        if bias:
            out += bias[0]
    _activate(out, activation)


@register("cpu", "embedding", "numpy")
def embedding_numpy(ids: np.ndarray, table: np.ndarray, *, out: np.ndarray) -> None:
    """Gather rows of ``table`` by ``ids`` (already range-checked by the op module)."""
    # mode="raise" would make np.take buffer the whole output; the ids are known valid.
    np.take(table, ids, axis=0, out=out, mode="clip")
