"""Tensor-core (3xTF32) flash attention against the SIMT flash kernel: device time and error.

For float32, d=64 (and 32), non-causal, seq 512-4096: the device time per call (back-to-back
behind a spin kernel, ``held_device_us``) of ``flash_splitkv`` and of ``flash_tc`` under each
operand split (rounded or truncated), key tile, launch bound and split target, and each one's
largest error against the float64 reference. Run on the GPU machine: PYTHONPATH=src python3 tools/probe_tc.py [out.txt]
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
        for seq in ((512, 1024, 2048, 4096) if d == 64 else (1024, 4096)):
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

            settings = [("flash_splitkv", None)]
            settings += [("flash_tc", (trunc, keys, mb, per)) for trunc in (0, 1)
                         for keys in (4, 8) for mb in (1, 3) for per in (2, 4)]
            for variant, knobs in settings:
                if knobs is not None:
                    (att._TC_TRUNC, att._TC_KEYS, att._TC_MIN_BLOCKS,
                     att._TC_BLOCKS_PER_SM) = knobs
                att._launchers.clear()
                us = held_device_us(cp, lambda v=variant: run(v))
                run(variant)
                stream.synchronize()
                tag = variant if knobs is None else (
                    f"{variant} trunc={knobs[0]} keys={8 * knobs[1]} minblocks={knobs[2]} "
                    f"per_sm={knobs[3]}")
                lines.append(f"seq={seq:5d} d={d:3d} {tag:40s} {us:8.1f} us{err()}")
                print(lines[-1], flush=True)
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
