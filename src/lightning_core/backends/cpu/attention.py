"""CPU attention: ``softmax(Q Kᵀ · scale) V`` in blocks of query rows, BLAS for both products.

Each block of query rows gets one scores tile ``[rows, keys]`` in a scratch buffer that is
reused for every block, so the scratch stays at a few MiB however long the sequence is. With
``causal`` a block only multiplies the keys it can see (``keys = last row + 1``), which halves
the work, and only the diagonal tile needs a mask. The softmax subtracts the row max before
``exp`` (no overflow), and the 1/sum normalisation and the policy postprocess are applied in
one pass over the output rows.
"""

from __future__ import annotations

import functools
from itertools import pairwise

import numpy as np

from ...runtime.backend import register
from .elementwise import relu_into

# Scores per block: 2**20 elements is 4 MiB in float32, which stays in a server core's L2/L3
# between the two GEMMs; blocks keep at least 64 rows so each GEMM is large enough for BLAS.
_BLOCK_SCORES = 1 << 20
_MIN_BLOCK_ROWS = 64


@functools.lru_cache(maxsize=8)
def _strict_upper(n: int) -> np.ndarray:
    """Read-only ``[n, n]`` mask of the keys ``j > i`` (shared by every call of size ``n``)."""
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    mask.flags.writeable = False
    return mask


def _row_bounds(seq: int, v: np.ndarray, causal: bool) -> list[int]:
    """Start of every block of query rows, then ``seq``."""
    rows = max(1, min(seq, max(_MIN_BLOCK_ROWS, _BLOCK_SCORES // seq)))
    starts = set(range(0, seq, rows))
    if causal:
        finite_rows = np.isfinite(v).all(axis=1)
        if not finite_rows.all():
            # A masked key inside the diagonal tile has p == 0, and 0 * NaN (or 0 * Inf) is
            # NaN. Starting a block at every non-finite row of v keeps such rows out of the
            # keys a block masks, so they reach exactly the queries that attend to them.
            starts.update(np.flatnonzero(~finite_rows).tolist())
    return [*sorted(starts), seq]


def _normalise(o: np.ndarray, denom: np.ndarray,
               post: tuple[float, float, bool] | None) -> None:
    """``o / denom``, then ``o * scale + bias`` and ReLU when a postprocess is set, in place."""
    if post is None:
        o /= denom
        return
    out_scale, out_bias, relu = post
    o *= out_scale / denom
    if out_bias:
        o += out_bias
    if relu:
        relu_into(o, o)


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, scores: np.ndarray, out: np.ndarray,
            post: tuple[float, float, bool] | None, mask: np.ndarray | None = None,
            start: int = 0) -> None:
    """One block of query rows: ``out = softmax(q kᵀ) v`` through ``scores [rows, keys]``;
    ``mask`` (causal) hides the keys after each row from column ``start`` on."""
    np.matmul(q, k.T, out=scores)
    if mask is not None:
        # Assign -inf rather than add it, so a NaN score at a masked key disappears.
        rows = scores.shape[0]
        np.copyto(scores[:, start:], -np.inf, where=mask[:rows, :rows])
    scores -= scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    denom = scores.sum(axis=1, keepdims=True)
    np.matmul(scores, v, out=out)
    _normalise(out, denom, post)


@register("cpu", "attention", "numpy")
def attention_numpy(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, out: np.ndarray,
                    causal: bool, scale: float,
                    post: tuple[float, float, bool] | None) -> None:
    """Blocked attention straight into ``out``."""
    seq = q.shape[0]
    # Scaling q costs seq*d multiplies instead of seq*seq on the scores.
    q_scaled = q * q.dtype.type(scale)
    if not causal and seq * seq <= _BLOCK_SCORES:
        # One block of every row, without the loop's slicing and bookkeeping (a fifth of a
        # tiny call's time at seq 8).
        _attend(q_scaled, k, v, np.empty((seq, seq), q.dtype), out, post)
        return
    bounds = _row_bounds(seq, v, causal)
    widest = max(b - a for a, b in pairwise(bounds))
    work = np.empty(widest * seq, dtype=q.dtype)
    mask = _strict_upper(widest) if causal else None
    for start, stop in pairwise(bounds):
        keys = stop if causal else seq
        _attend(q_scaled[start:stop], k[:keys], v[:keys],
                work[: (stop - start) * keys].reshape(stop - start, keys), out[start:stop],
                post, mask, start)


@register("cpu", "attention_packed", "numpy")
def attention_packed_numpy(y: np.ndarray, *, out: np.ndarray, seq: int, d: int) -> None:
    """Non-causal attention of Q, K, V cut from ``y`` repeated cyclically to 3*seq*d values."""
    sd = seq * d
    packed = np.resize(y, 3 * sd)  # np.resize repeats the values cyclically
    q, k, v = (packed[i * sd:(i + 1) * sd].reshape(seq, d) for i in range(3))
    attention_numpy(q, k, v, out=out, causal=False, scale=1.0 / float(np.sqrt(d)), post=None)
