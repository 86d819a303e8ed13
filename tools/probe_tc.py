"""Tensor-core (3xTF32) flash attention against the SIMT flash kernel: device time and error.

For float32, d=64 (and 32), non-causal, seq 512-4096: the device time per call (back-to-back
behind a spin kernel, ``held_device_us``) of ``flash_splitkv`` and of ``flash_tc`` under
several launch bounds and split targets, and each one's largest error against the float64
reference. Run on the GPU machine: PYTHONPATH=src python3 tools/probe_tc.py [out.txt]
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
    stream = cp.cuda.get_current_stream()
    lines = []
    rng = np.random.default_rng(0)
    for d in (64, 32):
        for seq in ((512, 1024, 1536, 2048, 4096) if d == 64 else (1024, 4096)):
            q, k, v = (rng.standard_normal((seq, d)).astype(np.float32) for _ in range(3))
            ref = attention_reference(q, k, v, False) if seq <= 2048 else None
            qd, kd, vd = (cp.asarray(a) for a in (q, k, v))
            out = cp.empty((seq, d), cp.float32)

            def run(variant: str) -> None:
                impls[variant].fn(qd, kd, vd, out=out, stream=stream, precision="fp32",
                                  causal=False, scale=1.0 / math.sqrt(d), post=None)

            def err() -> str:
                if ref is None:
                    return ""
                return f" max err {float(np.abs(cp.asnumpy(out) - ref).max()):.2e}"

            settings = [("flash_splitkv", None, None)]
            settings += [("flash_tc", mb, per) for mb in (1, 2) for per in (1, 2, 3, 4)]
            for variant, mb, per in settings:
                if mb is not None:
                    att._TC_MIN_BLOCKS, att._TC_BLOCKS_PER_SM = mb, per
                att._launchers.clear()
                us = held_device_us(cp, lambda v=variant: run(v))
                run(variant)
                stream.synchronize()
                tag = variant if mb is None else f"{variant} minblocks={mb} per_sm={per}"
                lines.append(f"seq={seq:5d} d={d:3d} {tag:40s} {us:8.1f} us{err()}")
                print(lines[-1], flush=True)
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
