"""Device time per call of lc ops and their torch counterparts, launch overhead excluded.

A spin kernel holds the stream while the host queues ``N`` calls, so the events around them
time back-to-back device work only. Run on the GPU machine:
PYTHONPATH=src python3 tools/kernel_times.py [out.json]
"""

from __future__ import annotations

import json
import sys

import cupy as cp
import numpy as np

import lightning_core as lc
from lightning_core.bench.suites.timers import held_device_us


def main(path: str | None) -> None:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rng = np.random.default_rng(0)
    rows = []

    def both(name, lc_fn, torch_fn):
        lc_t, th_t = held_device_us(cp, lc_fn), held_device_us(cp, torch_fn)
        rows.append({"case": name, "lc_us": round(lc_t, 2), "torch_us": round(th_t, 2)})
        print(f"{name:44s} lc {lc_t:8.2f} us   torch {th_t:8.2f} us", flush=True)

    def pair(*shape):
        host = rng.standard_normal(shape).astype(np.float32)
        return cp.asarray(host), torch.as_tensor(host, device="cuda")

    for n in (65536, 1 << 20, 1 << 22):
        (a, ta), (b, tb) = pair(n), pair(n)
        both(f"vector_add n={n}", lambda a=a, b=b: lc.vector_add(a, b),
             lambda ta=ta, tb=tb: ta + tb)
    for seq, d in ((8, 16), (12, 12), (48, 48), (96, 48), (192, 48), (512, 64), (1024, 64),
                   (2048, 64), (4096, 64)):
        (q, tq), (k, tk), (v, tv) = pair(seq, d), pair(seq, d), pair(seq, d)
        both(f"attention seq={seq} d={d}", lambda q=q, k=k, v=v: lc.attention2d(q, k, v),
             lambda tq=tq, tk=tk, tv=tv: torch.nn.functional.scaled_dot_product_attention(
                 tq[None], tk[None], tv[None])[0])
    for n_, c, h, oc in ((1, 3, 16, 16), (1, 3, 32, 16), (2, 3, 32, 16), (16, 3, 64, 16),
                         (16, 16, 32, 32), (1, 3, 8, 16)):
        (x, tx), (w, tw), (bias, tb) = pair(n_, c, h, h), pair(oc, c, 3, 3), pair(oc)
        both(f"conv_relu n={n_} c={c} h={h} oc={oc}",
             lambda x=x, w=w, bias=bias: lc.lightning_conv_relu_nchw(x, w, bias, 1, 1, 1, 1),
             lambda tx=tx, tw=tw, tb=tb: torch.relu(torch.nn.functional.conv2d(
                 tx, tw, tb, padding=1)))
    for m in (256, 512, 896, 1024):
        (a, ta), (b, tb) = pair(m, m), pair(m, m)
        both(f"matmul {m}^3", lambda a=a, b=b: lc.matmul2d(a, b), lambda ta=ta, tb=tb: ta @ tb)
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"method": "device time per call, N=20 queued behind a spin kernel, "
                                 "median of 9", "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
