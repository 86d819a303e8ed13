"""Device time of the flash attention kernel per (seq, split density, tile width) setting.

For each sequence length (head_dim 64, fp32) it times ``lc.attention2d`` behind a spin kernel
(``held_device_us``) under each value of ``_BLOCKS_PER_SM`` for the tile height ``auto`` picks
and, for long sequences, under both tile heights; prints one line per setting so the module's
constants can be chosen from measurements. Run on the GPU machine:
PYTHONPATH=src python3 tools/attention_sweep.py [out.txt]
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


def _time(seq: int, d: int = 64) -> float:
    rng = np.random.default_rng(seq)
    q, k, v = (cp.asarray(rng.standard_normal((seq, d)).astype(np.float32)) for _ in range(3))
    attn._launchers.clear()
    dispatch.clear_decisions()
    return held_device_us(cp, lambda: lc.attention2d(q, k, v, False))


def main(path: str | None) -> None:
    lines = []
    base_blocks, base_wide = dict(attn._BLOCKS_PER_SM), attn._WIDE_TILE_PAIRS_PER_SM
    for seq in (512, 1024, 2048, 4096):
        for wide in ((base_wide,) if seq < 2048 else (base_wide, 10**9)):
            attn._WIDE_TILE_PAIRS_PER_SM = wide
            for per_sm in (1, 2, 3, 4, 6, 8):
                attn._BLOCKS_PER_SM.update({r: per_sm for r in base_blocks})
                us = _time(seq)
                lines.append(f"seq {seq:5d} wide_threshold {wide:>10} blocks_per_sm {per_sm}: "
                             f"{us:8.2f} us")
                print(lines[-1], flush=True)
            attn._BLOCKS_PER_SM.update(base_blocks)
        attn._WIDE_TILE_PAIRS_PER_SM = base_wide
    report("\n".join(lines), path, echo=False)  # each line was printed as measured


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
