"""Device time of the flash attention kernel per tile geometry, split count and launch bound.

For each sequence length (head_dim 64, fp32) it forces each (rows per thread, keys per thread,
splits, min blocks per SM) candidate on ``lc.attention2d``, checks the result against a float64
reference, and times it behind a spin kernel (``held_device_us``). The line marked ``auto`` is
the module's own choice. Run on the GPU machine:
PYTHONPATH=src python3 tools/flash_sweep.py [out.txt] [seq ...]
(``--force ROWS,KEYS,SPLITS,MINB seq ...`` runs one setting untimed, for ``ncu``;
``--unroll out.txt seq ...`` times the module's own geometry under each loop-unroll build.)
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np
from profile_overhead import report

import lightning_core as lc
from lightning_core.backends.cuda import attention as attn
from lightning_core.bench.suites.timers import held_device_us
from lightning_core.runtime import dispatch

_D = 64


def _reference(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    s = (q.astype(np.float64) @ k.T.astype(np.float64)) / np.sqrt(q.shape[1])
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)) @ v.astype(np.float64)


def _measure(seq: int, host: tuple[np.ndarray, ...], ref: np.ndarray) -> tuple[float, float]:
    q, k, v = (cp.asarray(x) for x in host)
    attn._launchers.clear()
    dispatch.clear_decisions()
    out = lc.attention2d(q, k, v, False)
    err = float(np.abs(cp.asnumpy(out) - ref).max())
    return held_device_us(cp, lambda: lc.attention2d(q, k, v, False)), err


def _candidates(seq: int) -> list[tuple[int, int, int, int]]:
    out = []
    for rows in (1, 2, 4, 8):
        tiles = -(-seq // (16 * rows))
        for keys in (4, 8, 16):
            if keys == 16 and rows < 4:
                continue
            key_tiles = -(-seq // (8 * keys))
            for splits in (1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32):
                blocks = tiles * splits
                if splits > key_tiles or blocks < 64 or blocks > 2048:
                    continue
                for minb in {4: (1, 3, 4), 8: (1, 2)}.get(rows, (1,)):
                    out.append((rows, keys, splits, minb))
    return out


def _force(config: str, seqs: list[int]) -> None:
    """Run ``rows,keys,splits,minb`` twice per sequence, untimed (for ``ncu``)."""
    rows, keys, splits, mb = (int(x) for x in config.split(","))
    attn._flash_config = lambda *a, **kw: (64, rows, keys)
    attn._splits = lambda *a: splits
    attn._MIN_BLOCKS.update({r: mb for r in (1, 2, 4, 8)})
    for seq in seqs:
        rng = np.random.default_rng(seq)
        q, k, v = (cp.asarray(rng.standard_normal((seq, _D)).astype(np.float32))
                   for _ in range(3))
        for _ in range(2):
            lc.attention2d(q, k, v, False)
    cp.cuda.get_current_stream().synchronize()


def _unrolls(seqs: list[int]) -> list[str]:
    """The module's own geometry per sequence under each QK_UNROLL x PV_UNROLL build."""
    lines, build = [], attn.get_function
    for seq in seqs:
        rng = np.random.default_rng(seq)
        host = tuple(rng.standard_normal((seq, _D)).astype(np.float32) for _ in range(3))
        ref = _reference(*host)
        for qk in (2, 4, 8, 16):
            for pv in (1, 2, 4):
                extra = {"QK_UNROLL": qk, "PV_UNROLL": pv}
                attn.get_function = lambda f, k, defs, extra=extra: build(
                    f, k, {**defs, **extra} if k == "lc_attention_flash" else defs)
                try:
                    us, err = _measure(seq, host, ref)
                finally:
                    attn.get_function = build
                lines.append(f"seq {seq:5d} qk_unroll {qk:2d} pv_unroll {pv}: {us:8.2f} us  "
                             f"err {err:.1e}" + ("  WRONG" if err > 1e-4 else ""))
                print(lines[-1], flush=True)
    return lines


def main(path: str | None, seqs: list[int]) -> None:
    lines = []
    config, splits_fn, minb = attn._flash_config, attn._splits, dict(attn._MIN_BLOCKS)
    for seq in seqs:
        rng = np.random.default_rng(seq)
        host = tuple(rng.standard_normal((seq, _D)).astype(np.float32) for _ in range(3))
        ref = _reference(*host)
        us, err = _measure(seq, host, ref)
        results = [(us, f"seq {seq:5d} auto: {us:8.2f} us  err {err:.1e}")]
        print(results[0][1], flush=True)
        for rows, keys, splits, mb in _candidates(seq):
            attn._flash_config = lambda *a, r=rows, k=keys, **kw: (64, r, k)
            attn._splits = lambda *a, s=splits: s
            attn._MIN_BLOCKS.update({r: mb for r in (1, 2, 4, 8)})
            try:
                us, err = _measure(seq, host, ref)
            finally:
                attn._flash_config, attn._splits = config, splits_fn
                attn._MIN_BLOCKS.clear()
                attn._MIN_BLOCKS.update(minb)
            line = (f"seq {seq:5d} rows {rows} keys {keys} splits {splits:2d} minb {mb}: "
                    f"{us:8.2f} us  err {err:.1e}" + ("  WRONG" if err > 1e-4 else ""))
            results.append((us, line))
            print(line, flush=True)
        best = min(results)
        lines += [r[1] for r in results] + [f"seq {seq:5d} BEST {best[1]}"]
    attn._launchers.clear()
    dispatch.clear_decisions()
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--unroll":
        report("\n".join(_unrolls([int(a) for a in args[2:]])), args[1], echo=False)
        raise SystemExit(0)
    if args and args[0] == "--force":
        _force(args[1], [int(a) for a in args[2:]])
        raise SystemExit(0)
    out_path = args.pop(0) if args and not args[0].isdigit() else None
    main(out_path, [int(a) for a in args] or [512, 1024, 2048, 4096])
