"""CUDA single-head attention: a warp per query row for short sequences, a split-KV flash grid
for longer ones.

``rows`` launches ``lc_attention_rows`` (keys and values staged once per block). The flash
variants launch ``lc_attention_flash`` (``kernels/attention.cu``, whose header lists the launch
limits) exactly once: ``fused_small`` as a single block holding every query row,
``flash_splitkv`` with query tiles and the key range split over blocks so that about one wave of
resident blocks runs (geometry measured with ``tools/flash_sweep.py``), ``flash_tc`` the same
grid with its products on tensor cores (float32 at float32 accuracy through split operands,
head_dim <= 64; ``tools/probe_tc.py``, ``tools/probe_tc_causal.py``). ``auto`` (the
default) takes ``rows`` up to ``ROWS_AUTO_MAX_SEQ``, ``fused_small`` for the tiniest of the
rest, ``flash_tc`` for long sequences it takes and ``flash_splitkv`` else; head dims beyond 256
run a composite cuBLAS + CuPy path. Launch plans and split-KV scratch are cached per shape and stream, so a repeated
call costs one kernel launch. float32 and float16 inputs compute in float32, float64 inputs in
float64.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import config
from ...runtime.backend import register
from .compile import get_function
from .launch import KernelCall, aligned, function_ptr, native_launch
from .memory import stream_scratch

__all__ = ["attention_auto", "attention_fused_small", "attention_flash_splitkv",
           "attention_flash_tc", "choose_variant", "ROWS_AUTO_MAX_SEQ", "TC_AUTO_MIN_SEQ"]

_FILE = "attention.cu"
_DTYPES = ("float32", "float64", "float16")
_DTYPE_CODE = {"float32": 0, "float64": 1, "float16": 2}
_THREADS = 128
# One block runs on one SM: on an H200 a single block matched a grid up to seq 12 (about 4 us
# either way) and lost beyond (a dedicated one-block kernel took 5.8 vs 4.1 us at seq 32, d 32
# and 10.4 vs 6.0 us at seq 48, d 48), so only the tiniest problems take it.
_FUSED_MAX_MACS = 4096
# Split the key range until about this many blocks per SM exist (keyed by rows per thread),
# never beyond the blocks one wave holds (the driver's occupancy count). Measured on an H200
# (d=64, fp32, tools/flash_sweep.py): 3 for 16- and 32-row tiles (seq 512-1024: more splits
# cost more in the merge than they gain), 4 for 64-row tiles with their launch bound below
# (seq 4096: 512 blocks in one wave, 149.5 us against 179 us at 320 blocks).
_BLOCKS_PER_SM = {1: 3, 2: 3, 4: 4, 8: 2}
# Blocks per SM the flash kernel's registers must leave room for (the launch bounds' second
# argument), keyed by rows per thread; float64 builds always take 1 (they would spill).
# Unbounded, 64-row fp32 tiles take 168 registers (three blocks per SM); at four they take
# 128 with 72 bytes spilled outside the inner loops.
_MIN_BLOCKS = {4: 4}
# Query tiles of 64 rows (most register reuse) once the grid has this many (q, k) tile pairs
# per SM (seq >= ~1800 at d=64); below that 32-row tiles, or 16 when even those give under one
# pair per SM.
_WIDE_TILE_PAIRS_PER_SM = 6
# The tensor-core build (float32, head_dim <= 64), measured on an H200 without a causal mask
# by tools/probe_tc.py (run 24, device us per call, d=64): truncating splits, 32-key tiles, no
# launch bound, up to 4 blocks per SM: seq 4096 87.0 (SIMT flash 147.3), 2048 31.5 (52.0),
# 1024 21.0 (21.1), 512 16.4 (11.1); d=32: 4096 55.0 (80.1), 1024 17.3 (13.8). ``auto`` takes
# it from these sequence lengths on (by padded head dim).
_TC_MIN_BLOCKS = 1
_TC_BLOCKS_PER_SM = 4
_TC_KEYS = 4  # keys per tile / 8
_TC_TRUNC = 1
# Causal masks cross over at the same lengths (run 33, probe_tc_causal, d=64: 1536 27.0 against
# 30.0 us, 1024 22.2 against 18.6; d=32: 2048 25.1 against 27.6, 1536 22.2 against 18.4).
TC_AUTO_MIN_SEQ = {32: 2048, 64: 1536}
# Under a causal mask a query tile's keys end at its diagonal, so equal splits of every tile
# leave the last tiles' blocks as long as without the mask. From _CAUSAL_SPLIT_MIN_SEQ on the
# grid gets this many times the splits (more than one wave: the short blocks fill in behind
# the long ones). Run 34 (probe_tc_causal, device us, x1 -> x2): d=64 seq 4096 flash_tc 83.8 ->
# 62.6, SIMT 109.6 -> 94.2; 8192 292.8 -> 186.7, 396.0 -> 287.0; d=32 4096 45.3 -> 43.3, 59.3
# -> 54.2. Shorter sequences lost (2048: 31.9 -> 34.1 and 48.0 -> 51.0 at d=64).
_CAUSAL_SPLIT_FACTOR = 2
_CAUSAL_SPLIT_MIN_SEQ = 4096
_MAX_FLASH_HEAD_DIM = 256
_STATIC_SMEM = 1024  # the flash kernel's static shared memory, with slack
_COMPOSITE_BLOCK = 64  # rows per causal block of the composite path
_CACHE_LIMIT = 64
# The rows kernel (one warp per query row, keys and values staged once per block): short
# sequences whose keys and values fit in shared memory.
_ROWS_WARPS = 8
_ROWS_MAX_SEQ = 256
_ROWS_MAX_D = 128
_ROWS_MAX_SMEM = 100 * 1024
# ``auto`` takes it up to here: on an H200 (fp32) it ran seq 8 / 48 / 96 in 2.9 / 5.4 / 7.4 us
# against 6.9 / 11.1 / 9.1 us for the flash kernels, but 12.0 against 9.8 us at seq 192, d 48.
ROWS_AUTO_MAX_SEQ = 128


@dataclass(frozen=True)
class _Limits:
    sm_count: int
    smem_per_block: int


@dataclass(frozen=True)
class _Plan:
    """A compiled kernel and its launch geometry."""

    kernel: Any
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    smem: int
    acc: type  # numpy scalar type of the kernel's float arguments
    scratch: tuple[int, int, int] | None  # (part_acc, part_ml, counters) lengths, split-KV only


_limits: dict[int, _Limits] = {}
_launchers: OrderedDict[tuple[Any, ...], KernelCall | None] = OrderedDict()


def _device() -> tuple[int, _Limits]:
    import cupy  # noqa: PLC0415 - CuPy only once a CUDA implementation runs

    dev = cupy.cuda.runtime.getDevice()
    lim = _limits.get(dev)
    if lim is None:
        props = cupy.cuda.runtime.getDeviceProperties(dev)
        optin = int(props.get("sharedMemPerBlockOptin", 0)) or int(props["sharedMemPerBlock"])
        lim = _limits[dev] = _Limits(int(props["multiProcessorCount"]), optin)
    return dev, lim


def _remember(cache: OrderedDict, key: tuple[Any, ...], value: Any) -> Any:
    cache[key] = value
    if len(cache) > _CACHE_LIMIT:
        cache.popitem(last=False)
    return value


def _acc_bytes(dtype_name: str) -> int:
    return 8 if dtype_name == "float64" else 4


def _flash_shape(d: int, dtype_name: str) -> tuple[int, int, int]:
    """(padded head dim, rows per thread, keys per thread) before the small-seq adjustment."""
    dp = max(32, 1 << (d - 1).bit_length())
    if dtype_name == "float64":
        # Doubles take two registers each: fewer rows per thread keep the tiles spill-free.
        rows = {32: 4, 64: 2}.get(dp, 1)
        keys = 4 if dp == 256 else 8
    else:
        rows, keys = (2, 8) if dp == 256 else (4, 8)
    return dp, rows, keys


def _flash_smem_bytes(dp: int, rows: int, keys: int, dtype_name: str, tc: bool = False) -> int:
    """Dynamic shared memory of ``lc_attention_flash``: Q, K (P reuses it), V (rows padded by
    8 values in the tensor-core build)."""
    bm, bn = 16 * rows, 8 * keys
    elems = bm * (dp + 4) + max(bn * (dp + 4), bm * (bn + 4)) + bn * (dp + 8 if tc else dp)
    return elems * _acc_bytes(dtype_name)


def _tc_config(seq: int, d: int, dtype_name: str, causal: bool,
               lim: _Limits) -> tuple[int, int, int] | None:
    """(padded head dim, 4, keys per thread) when the tensor-core flash build takes this call:
    float32, head_dim <= 64, and its tiles fit. (Under a causal mask the 8-key steps that
    straddle the diagonal run as guarded FMAs: a masked key's value row may hold Inf or NaN,
    which a tensor-core product would multiply by zero.)"""
    if dtype_name != "float32" or d > 64:
        return None
    dp = 32 if d <= 32 else 64
    if _flash_smem_bytes(dp, 4, _TC_KEYS, dtype_name, True) > lim.smem_per_block - _STATIC_SMEM:
        return None
    return dp, 4, _TC_KEYS


def choose_variant(seq: int, d: int, dtype_name: str, causal: bool = False) -> str:
    """The variant ``auto`` runs for this shape: "rows", "fused_small", "flash_tc" (unless
    ``LC_ATTENTION_SPLIT_TF32=0``), "flash_splitkv" or "composite"."""
    _, lim = _device()
    if seq <= ROWS_AUTO_MAX_SEQ and _rows_config(seq, d, dtype_name, lim) is not None:
        return "rows"
    if seq * seq * d <= _FUSED_MAX_MACS and _flash_config(seq, d, dtype_name, lim, True):
        return "fused_small"
    tc = _tc_config(seq, d, dtype_name, causal, lim)
    if (tc is not None and seq >= TC_AUTO_MIN_SEQ[tc[0]]
            and config.get("LC_ATTENTION_SPLIT_TF32")):
        return "flash_tc"
    return "flash_splitkv" if _flash_config(seq, d, dtype_name, lim) is not None else "composite"


def _rows_config(seq: int, d: int, dtype_name: str,
                 lim: _Limits) -> tuple[int, int, int] | None:
    """(keys per lane, dims per lane, shared bytes) of ``lc_attention_rows``, or None when the
    sequence or head dim is beyond it or its keys and values would not fit."""
    if seq > _ROWS_MAX_SEQ or d > _ROWS_MAX_D:
        return None
    kpl, dpl = -(-seq // 32), -(-d // 32)
    elems = seq * (d | 1) + 3 + seq * d + _ROWS_WARPS * 32 * (kpl + dpl)
    smem = elems * _acc_bytes(dtype_name)
    if smem > min(_ROWS_MAX_SMEM, lim.smem_per_block - _STATIC_SMEM):
        return None
    return kpl, dpl, smem


def _rows_plan(seq: int, dtype_name: str, geometry: tuple[int, int, int], wrap: bool,
               vec: int = 0) -> _Plan:
    kpl, dpl, smem = geometry
    rvec = int(bool(vec) and dtype_name == "float32")
    kernel = get_function(_FILE, "lc_attention_rows", {
        "LC_DTYPE": _DTYPE_CODE[dtype_name], "KPL": kpl, "DPL": dpl, "WRAP": int(wrap),
        "RVEC": rvec, "LC_ROWS_ONLY": 1})
    kernel.max_dynamic_shared_size_bytes = max(kernel.max_dynamic_shared_size_bytes, smem)
    return _Plan(kernel, (-(-seq // _ROWS_WARPS), 1, 1), (32 * _ROWS_WARPS, 1, 1), smem,
                 _acc_type(dtype_name), None)


def _flash_config(seq: int, d: int, dtype_name: str, lim: _Limits,
                  single_block: bool = False) -> tuple[int, int, int] | None:
    """(padded head dim, rows per thread, keys per thread) of the flash kernel, or None when
    the head dim is too large for its tiles (or, for one block, the sequence for its rows)."""
    if d > _MAX_FLASH_HEAD_DIM:
        return None
    dp, rows, keys = _flash_shape(d, dtype_name)
    key_tiles = -(-seq // (8 * keys))

    def pairs(r: int) -> int:
        return -(-seq // (16 * r)) * key_tiles

    # Shorter sequences: thinner query tiles give more blocks before any split is needed.
    if not single_block and rows == 4 and pairs(4) < _WIDE_TILE_PAIRS_PER_SM * lim.sm_count:
        rows = 2
    while not single_block and rows > 1 and pairs(rows) < lim.sm_count:
        rows //= 2
    budget = lim.smem_per_block - _STATIC_SMEM
    while _flash_smem_bytes(dp, rows, keys, dtype_name) > budget and (rows > 1 or keys > 4):
        rows, keys = (rows, 4) if keys > 4 else (rows // 2, keys)
    if _flash_smem_bytes(dp, rows, keys, dtype_name) > budget or (
            single_block and seq > 16 * rows):
        return None
    return dp, rows, keys


def _vec_ok(d: int, arrays: tuple[Any, ...]) -> int:
    """1 when every row starts 16-byte aligned, so the kernels may move 4 values at a time."""
    return int(d % 4 == 0 and aligned(*arrays))


def _acc_type(dtype_name: str) -> type:
    return np.float64 if dtype_name == "float64" else np.float32


def _splits(tiles: int, key_tiles: int, sm_count: int, rows: int, resident: int,
            per_sm: int | None = None) -> int:
    """Blocks per query tile so that about ``per_sm`` (default ``_BLOCKS_PER_SM[rows]``) blocks
    per SM exist but no more than one wave (``resident`` blocks per SM), with every split
    getting the same whole number of key tiles."""
    per_sm = _BLOCKS_PER_SM[rows] if per_sm is None else per_sm
    want = min(-(-per_sm * sm_count // tiles), resident * sm_count // tiles)
    if want <= 1:
        return 1
    per_split = -(-key_tiles // min(want, key_tiles))
    return -(-key_tiles // per_split)


def _resident_blocks(kernel: Any, smem: int) -> int:
    """Blocks of ``_THREADS`` threads one SM holds at once (the driver's occupancy count); a
    CuPy without the binding gets no cap (a large count)."""
    from cupy.cuda import driver  # noqa: PLC0415

    query = getattr(driver, "occupancyMaxActiveBlocksPerMultiprocessor", None)
    ptr = function_ptr(kernel)
    if query is None or ptr is None:
        return 1 << 16
    return max(1, int(query(ptr, _THREADS, smem)))


def _flash_plan(seq: int, d: int, dtype_name: str, vec: int,
                geometry: tuple[int, int, int], lim: _Limits, single_block: bool,
                tc: bool = False, causal: bool = False) -> _Plan:
    dp, rows, keys = geometry
    tiles = -(-seq // (16 * rows))
    smem = _flash_smem_bytes(dp, rows, keys, dtype_name, tc)
    if tc:
        min_blocks = _TC_MIN_BLOCKS
    else:
        min_blocks = _MIN_BLOCKS.get(rows, 1) if _acc_bytes(dtype_name) == 4 else 1
    kernel = get_function(_FILE, "lc_attention_flash", {
        "LC_DTYPE": _DTYPE_CODE[dtype_name], "VEC_IO": vec, "HEAD_DIM_P": dp,
        "ROWS_PT": rows, "KEYS_PT": keys, "MIN_BLOCKS": min_blocks, "LC_TC": int(tc),
        "LC_TC_TRUNC": _TC_TRUNC})
    kernel.max_dynamic_shared_size_bytes = max(kernel.max_dynamic_shared_size_bytes, smem)
    per_sm = _TC_BLOCKS_PER_SM if tc else _BLOCKS_PER_SM[rows]
    resident = _resident_blocks(kernel, smem)
    if causal and seq >= _CAUSAL_SPLIT_MIN_SEQ:
        per_sm, resident = per_sm * _CAUSAL_SPLIT_FACTOR, resident * _CAUSAL_SPLIT_FACTOR
    splits = 1 if single_block else _splits(tiles, -(-seq // (8 * keys)), lim.sm_count, rows,
                                            resident, per_sm)
    bm = 16 * rows
    scratch = (tiles * splits * bm * dp, tiles * splits * 2 * bm, tiles) if splits > 1 else None
    return _Plan(kernel, (splits, tiles, 1), (_THREADS, 1, 1), smem,
                 _acc_type(dtype_name), scratch)


def _scratch(plan: _Plan, stream: Any) -> tuple[Any, Any, Any]:
    """Split-KV partials and zeroed counters for ``stream`` (``stream_scratch``: they outlive
    the launcher caches, since a captured graph keeps their addresses; launches of other
    shapes on the stream may share them, as the merging block resets its counter)."""
    n_acc, n_ml, n_cnt = plan.scratch
    return (stream_scratch("attention.acc", plan.acc, stream, n_acc),
            stream_scratch("attention.ml", plan.acc, stream, n_ml),
            stream_scratch("attention.counters", np.int32, stream, n_cnt, zeroed=True))


def _rows_call(seq: int, d: int, dtype_name: str, geometry: tuple[int, int, int], causal: bool,
               scale: float, post: tuple[float, float, bool], offsets: tuple[int, int],
               wrap: int, vec: int = 0) -> KernelCall:
    """The rows kernel's launch. ``offsets`` are where K and V start after Q; ``wrap`` > 0 reads
    every operand cyclically from a buffer of that many values (the packed conv output);
    ``vec``: every row is 16-byte aligned (float32 then stages 16 bytes per load; with
    ``wrap``, the buffer is 16-byte aligned and ``wrap`` and the offsets multiples of 4)."""
    acc = _acc_type(dtype_name)
    out_scale, out_bias, relu = post
    i64 = np.int64
    plan = _rows_plan(seq, dtype_name, geometry, wrap > 0, vec)
    return KernelCall(plan.kernel, plan.grid, plan.block, plan.smem, 4, (
        np.int32(seq), np.int32(d), np.int32(bool(causal)), acc(scale), acc(out_scale),
        acc(out_bias), np.int32(bool(relu)), i64(0), i64(offsets[0]), i64(offsets[1]),
        i64(max(1, wrap))))


def _tc_or_simt(variant: str, seq: int, d: int, dtype_name: str, causal: bool,
                lim: _Limits) -> tuple[str, tuple[int, int, int] | None]:
    """``variant`` and the tensor-core geometry it runs with (None: not the tensor-core build).
    A ``flash_tc`` outside the build's limits, or with ``LC_ATTENTION_SPLIT_TF32`` off (a tuned
    or requested one too: the knob keeps every attention on the SIMT kernels), runs as
    ``flash_splitkv``."""
    if variant != "flash_tc":
        return variant, None
    tc = _tc_config(seq, d, dtype_name, causal, lim) if config.get(
        "LC_ATTENTION_SPLIT_TF32") else None
    return ("flash_tc", tc) if tc is not None else ("flash_splitkv", None)


def _launcher(requested: str, seq: int, d: int, dtype_name: str, causal: bool,
              scale: float | None, post: tuple[float, float, bool] | None, vec: int,
              stream: Any) -> KernelCall | None:
    """The launch of one call shape (q, k, v, out go in per call); None: the composite path."""
    _, lim = _device()
    variant = choose_variant(seq, d, dtype_name, causal) if requested == "auto" else requested
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    post = (1.0, 0.0, False) if post is None else post
    variant, tc = _tc_or_simt(variant, seq, d, dtype_name, causal, lim)
    if variant == "rows":
        rows = _rows_config(seq, d, dtype_name, lim)
        if rows is not None:
            return _rows_call(seq, d, dtype_name, rows, causal, scale, post, (0, 0), 0, vec)
        variant = "flash_splitkv"  # too long or too wide for it: the flash grid runs
    single = variant == "fused_small"
    geometry = tc or _flash_config(seq, d, dtype_name, lim, single)
    if single and geometry is None:  # more rows than one block holds: the auto choice runs
        variant, tc = _tc_or_simt(choose_variant(seq, d, dtype_name, causal), seq, d,
                                  dtype_name, causal, lim)
        single = variant == "fused_small"
        geometry = tc or _flash_config(seq, d, dtype_name, lim, single)
    if geometry is None:
        return None
    plan = _flash_plan(seq, d, dtype_name, vec, geometry, lim, single, tc is not None, causal)
    acc = plan.acc
    out_scale, out_bias, relu = post
    scalars = (np.int32(seq), np.int32(d), np.int32(bool(causal)), acc(scale), acc(out_scale),
               acc(out_bias), np.int32(bool(relu)))
    # With one split the kernel returns before it touches its scratch: null pointers do.
    scratch = (np.uint64(0),) * 3 if plan.scratch is None else _scratch(plan, stream)
    return KernelCall(plan.kernel, plan.grid, plan.block, plan.smem, 4, scalars + scratch)


def _cached_launcher(requested: str, seq: int, d: int, dtype: np.dtype, causal: bool,
                     scale: float | None, post: tuple[float, float, bool] | None, vec: int,
                     dev: int, stream: Any) -> KernelCall | None:
    split = requested in ("auto", "flash_tc") and config.get("LC_ATTENTION_SPLIT_TF32")
    key = (requested, seq, d, dtype.char, causal, scale, post, vec, dev, stream.ptr, split)
    launch = _launchers.get(key, False)
    if launch is False:
        launch = _remember(_launchers, key, _launcher(requested, seq, d, dtype.name, causal,
                                                      scale, post, vec, stream))
    return launch


def _run(requested: str, q: Any, k: Any, v: Any, out: Any, stream: Any, causal: bool,
         scale: float | None, post: tuple[float, float, bool] | None) -> None:
    import cupy  # noqa: PLC0415

    seq, d = q.shape
    launch = _cached_launcher(requested, seq, d, q.dtype, causal, scale, post,
                              _vec_ok(d, (q, k, v, out)), cupy.cuda.runtime.getDevice(), stream)
    if launch is None:
        _composite(q, k, v, out, stream, causal, scale, post)
    else:
        launch(stream, q, k, v, out)


def _prepare(requested: str) -> Any:
    """The fast lane's launcher factory of one variant: shape, dtype and flags resolved once;
    a call tests the pointers' alignment and finds its launch by (alignment, stream)."""

    def prepare(in_shapes: Any, shape: tuple[int, ...], dtype: np.dtype, precision: str, *,
                causal: bool, scale: float | None, post: Any) -> Any:
        seq, d = shape
        dev, _ = _device()
        mine: dict[tuple[int, int], KernelCall | None] = {}
        d_vec = d % 4 == 0

        def launch(ins: tuple[Any, ...], out: Any, stream: Any) -> None:
            q, k, v = ins
            pq, pk, pv, po = q.data.ptr, k.data.ptr, v.data.ptr, out.data.ptr
            vec = int(d_vec and not (pq | pk | pv | po) & 15)
            key = (vec, stream.ptr)
            found = mine.get(key, False)
            if found is False:
                if len(mine) >= 8:
                    mine.clear()
                found = mine[key] = _cached_launcher(requested, seq, d, dtype, causal, scale,
                                                     post, vec, dev, stream)
            if found is None:
                _composite(q, k, v, out, stream, causal, scale, post)
            else:
                found.launch_raw(stream.ptr, pq, pk, pv, po)

        def resolve(vec: int, stream: Any) -> Any:
            """The native lane's launch for (alignment, stream); None: the composite path."""
            found = _cached_launcher(requested, seq, d, dtype, causal, scale, post,
                                     int(d_vec and vec), dev, stream)
            return None if found is None else found.launch_raw

        if native_launch() is not None:
            launch.native = {"resolve": resolve, "vec_ok": d_vec}  # type: ignore[attr-defined]
        return launch

    return prepare


def _composite(q: Any, k: Any, v: Any, out: Any, stream: Any, causal: bool,
               scale: float | None, post: tuple[float, float, bool] | None) -> None:
    """Head dims the flash kernel cannot hold: cuBLAS products and CuPy element-wise steps.

    CuPy's float32 products are true fp32 unless the process set CUPY_TF32. Under a causal
    mask the product runs in row blocks: keys before a block are visible to all its rows, and
    the diagonal block drops masked keys by selection, so 0 * Inf never reaches a row.
    """
    import cupy  # noqa: PLC0415

    seq, d = q.shape
    work = np.float64 if q.dtype == np.float64 else np.float32
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    with stream:
        qw, kw, vw = (a.astype(work, copy=False) for a in (q, k, v))
        scores = (qw @ kw.T) * work(scale)
        if causal:
            scores[cupy.triu(cupy.ones((seq, seq), dtype=bool), 1)] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        p = cupy.exp(scores)
        p /= p.sum(axis=1, keepdims=True)
        if causal:
            res = cupy.empty((seq, d), work)
            tri = cupy.tril(cupy.ones((_COMPOSITE_BLOCK, _COMPOSITE_BLOCK), dtype=bool))
            for r0 in range(0, seq, _COMPOSITE_BLOCK):
                r1 = min(seq, r0 + _COMPOSITE_BLOCK)
                diag = p[r0:r1, r0:r1, None] * vw[None, r0:r1]
                block = cupy.where(tri[:r1 - r0, :r1 - r0, None], diag, 0).sum(axis=1)
                res[r0:r1] = block + p[r0:r1, :r0] @ vw[:r0] if r0 else block
        else:
            res = p @ vw
        if post is not None:
            res = res * work(post[0]) + work(post[1])
            if post[2]:
                cupy.maximum(res, 0, out=res)
        out[...] = res.astype(out.dtype, copy=False)


@register("cuda", "attention", "auto", dtypes=_DTYPES,
          prepare=_prepare("auto"))
def attention_auto(q: Any, k: Any, v: Any, *, out: Any, stream: Any, precision: str,
                   causal: bool, scale: float | None, post: Any) -> None:
    """Shape-chosen attention (see ``choose_variant``); fp32 math whatever ``precision`` says."""
    _run("auto", q, k, v, out, stream, causal, scale, post)


@register("cuda", "attention", "rows", dtypes=_DTYPES,
          prepare=_prepare("rows"))
def attention_rows(q: Any, k: Any, v: Any, *, out: Any, stream: Any, precision: str,
                   causal: bool, scale: float | None, post: Any) -> None:
    """One warp per query row with keys and values staged in shared memory (seq <= 256,
    head_dim <= 128); longer or wider problems run ``flash_splitkv``."""
    _run("rows", q, k, v, out, stream, causal, scale, post)


@register("cuda", "attention", "fused_small", dtypes=_DTYPES,
          prepare=_prepare("fused_small"))
def attention_fused_small(q: Any, k: Any, v: Any, *, out: Any, stream: Any, precision: str,
                          causal: bool, scale: float | None, post: Any) -> None:
    """One block, one launch; a sequence longer than one block's query rows (64 at most) runs
    the ``auto`` choice instead."""
    _run("fused_small", q, k, v, out, stream, causal, scale, post)


@register("cuda", "attention", "flash_splitkv", dtypes=_DTYPES,
          prepare=_prepare("flash_splitkv"))
def attention_flash_splitkv(q: Any, k: Any, v: Any, *, out: Any, stream: Any, precision: str,
                            causal: bool, scale: float | None, post: Any) -> None:
    """Online-softmax tiles, the key range split over blocks when SMs would idle; head dims
    beyond its tiles run the composite (cuBLAS + CuPy) path."""
    _run("flash_splitkv", q, k, v, out, stream, causal, scale, post)


@register("cuda", "attention", "flash_tc", dtypes=("float32",),
          prepare=_prepare("flash_tc"))
def attention_flash_tc(q: Any, k: Any, v: Any, *, out: Any, stream: Any, precision: str,
                       causal: bool, scale: float | None, post: Any) -> None:
    """The flash grid with Q K^T and P V on tensor cores at float32 accuracy (three TF32
    products per pair of split operands), causal or not; float32 only, and head dims beyond 64
    (or ``LC_ATTENTION_SPLIT_TF32=0``) run ``flash_splitkv``."""
    _run("flash_tc", q, k, v, out, stream, causal, scale, post)


_packed: OrderedDict[tuple[Any, ...], KernelCall | None] = OrderedDict()


@register("cuda", "attention_packed", "rows_wrap", dtypes=_DTYPES)
def attention_packed(y: Any, *, out: Any, stream: Any, precision: str, seq: int,
                     d: int) -> None:
    """Non-causal attention of Q, K, V cut from ``y`` repeated cyclically to 3*seq*d values
    (the integrated conv -> attention packing): the rows kernel reads them in place; beyond its
    limits the values are packed and the ``auto`` variant runs."""
    # 16 bytes per staging load when no 4-value pack straddles the wrap: d (so the offsets
    # seq * d and 2 * seq * d) and the period multiples of 4, the buffer 16-byte aligned.
    vec = int(d % 4 == 0 and y.size % 4 == 0 and y.data.ptr % 16 == 0)
    key = (y.size, seq, d, y.dtype.char, vec)
    launch = _packed.get(key, False)
    if launch is False:
        _, lim = _device()
        rows = _rows_config(seq, d, y.dtype.name, lim)
        launch = None
        if rows is not None and y.size < 1 << 31:  # the kernel reduces offsets in 32 bits
            launch = _rows_call(seq, d, y.dtype.name, rows, False, 1.0 / math.sqrt(d),
                                (1.0, 0.0, False), (seq * d, 2 * seq * d), y.size, vec)
        _remember(_packed, key, launch)
    if launch is not None:
        launch(stream, y, y, y, out)
        return
    import cupy  # noqa: PLC0415

    total = 3 * seq * d
    with stream:
        packed = cupy.tile(y, -(-total // y.size))[:total] if y.size < total else y[:total]
        q, k, v = (packed[i * seq * d:(i + 1) * seq * d].reshape(seq, d) for i in range(3))
    _run("auto", q, k, v, out, stream, False, None, None)
