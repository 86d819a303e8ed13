"""Device time of the packed (conv -> attention) rows kernel: 16-byte staging loads (aligned
buffer) against scalar ones (the same values in a view one float into its allocation).

Run on the GPU machine: PYTHONPATH=src python3 tools/probe_packed.py [out.txt]
"""

from __future__ import annotations

import sys

import cupy as cp
from profile_overhead import report

from lightning_core.bench.suites.timers import held_device_us
from lightning_core.ops.attention import attention_packed


def main(path: str | None) -> None:
    lines = []
    base = cp.random.standard_normal(1024 + 4, dtype=cp.float32)
    aligned, shifted = base[:1024], base[1:1025]
    for seq, d in ((48, 48), (96, 48), (192, 48), (192, 8)):
        times = {name: held_device_us(cp, lambda y=y: attention_packed(y, seq, d, "cuda"))
                 for name, y in (("16-byte loads", aligned), ("scalar loads", shifted))}
        lines.append(f"seq={seq:<4d} d={d:<3d} " + "  ".join(f"{k} {v:6.2f} us"
                                                          for k, v in times.items()))
        print(lines[-1], flush=True)
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
