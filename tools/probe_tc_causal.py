"""Causal attention on tensor cores (``flash_tc``) against the SIMT flash kernel: device time
at each causal split factor (``_CAUSAL_SPLIT_FACTOR``), error against the float64 reference,
and masked Inf/NaN values kept out.

Run on the GPU machine: PYTHONPATH=src python3 tools/probe_tc_causal.py [out.txt]
"""

from __future__ import annotations

import math
import sys

import cupy as cp
import numpy as np
from profile_overhead import report

from lightning_core.backends.cuda import attention as att
from lightning_core.bench.suites.timers import held_device_us
from lightning_core.ops.attention import attention_reference
from lightning_core.runtime.backend import implementations


def main(path: str | None) -> None:
    impls = {i.variant: i for i in implementations("cuda", "attention")}
    saved = att._CAUSAL_SPLIT_FACTOR, att._CAUSAL_SPLIT_MIN_SEQ
    stream = cp.cuda.get_current_stream()
    lines = []
    rng = np.random.default_rng(0)
    for d in (64, 32):
        for seq in (512, 1024, 1536, 2048, 4096, 8192):
            q, k, v = (rng.standard_normal((seq, d)).astype(np.float32) for _ in range(3))
            ref = attention_reference(q, k, v, True) if seq <= 2048 else None
            qd, kd, vd = (cp.asarray(a) for a in (q, k, v))
            out = cp.empty((seq, d), cp.float32)
            cells = []
            for variant in ("flash_splitkv", "flash_tc"):
                for factor in (1, 2, 3):  # the causal grid's split factor, at every length
                    att._CAUSAL_SPLIT_FACTOR, att._CAUSAL_SPLIT_MIN_SEQ = factor, 0
                    att._launchers.clear()

                    def run(variant: str = variant) -> None:
                        impls[variant].fn(qd, kd, vd, out=out, stream=stream,
                                          precision="fp32", causal=True,
                                          scale=1.0 / math.sqrt(d), post=None)

                    us = held_device_us(cp, run)
                    run()
                    stream.synchronize()
                    err = ("" if ref is None else
                           f" err {float(np.abs(cp.asnumpy(out) - ref).max()):.1e}")
                    cells.append(f"{variant} x{factor} {us:6.1f} us{err}")
            att._CAUSAL_SPLIT_FACTOR, att._CAUSAL_SPLIT_MIN_SEQ = saved
            att._launchers.clear()
            lines.append(f"causal seq={seq:5d} d={d:3d}  " + "  ".join(cells))
            print(lines[-1], flush=True)
    # Masked keys holding Inf / NaN must not reach rows that cannot see them.
    seq, d = 1000, 64
    q, k, v = (rng.standard_normal((seq, d)).astype(np.float32) for _ in range(3))
    v[seq // 2:, :] = np.inf
    out = cp.empty((seq, d), cp.float32)
    impls["flash_tc"].fn(*(cp.asarray(a) for a in (q, k, v)), out=out, stream=stream,
                         precision="fp32", causal=True, scale=1.0 / math.sqrt(d), post=None)
    got = cp.asnumpy(out)[:seq // 2]
    lines.append(f"masked Inf value rows {seq // 2}..: the rows before them finite: "
                 f"{bool(np.isfinite(got).all())}")
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
