"""Why did ``device="auto"`` pick a side? Replays the targets' auto one-shot cases in order and
prints, per case, the trace of the first calls (selected device, reason), the crossover's
estimate and the median times of auto / cpu / cuda.

Run on the GPU machine: PYTHONPATH=src python3 tools/probe_auto.py [out.txt]
"""

from __future__ import annotations

import sys

import numpy as np
from profile_overhead import report

import lightning_core as lc
from lightning_core.bench.suites.timers import host_median_us
from lightning_core.runtime.backend import get_backend
from lightning_core.tuning import CROSSOVER, keys
from lightning_core.tuning.shapes import make_call


def main(path: str | None) -> None:
    rng = np.random.default_rng(0)
    lines: list[str] = []

    def f32(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    cases = [
        ("vector_add n=65536", lambda a, b, d: lc.vector_add(a, b, d), (f32(65536), f32(65536)),
         "binary", (65536,)),
        ("vector_add n=1048576", lambda a, b, d: lc.vector_add(a, b, d),
         (f32(1 << 20), f32(1 << 20)), "binary", (1 << 20,)),
        ("conv 1x3x32x32->16", lambda x, w, b, d: lc.lightning_conv_relu_nchw(x, w, b, 1, 1, 1, 1,
                                                                             d),
         (f32(1, 3, 32, 32), f32(16, 3, 3, 3), f32(16)), "conv2d", (1, 3, 32, 32, 16)),
    ]
    cuda = get_backend("cuda")
    for name, fn, hosts, key, dims in cases:
        lc.runtime_trace_clear()
        lc.runtime_trace_enable(True)
        for _ in range(3):
            fn(*hosts, "auto")
        lc.runtime_trace_enable(False)
        # Only the case's own calls: the first one's calibration runs forced-CUDA probes too.
        own = [ev for ev in lc.runtime_trace_events() if ev.get("requested_device") == "auto"]
        for ev in own[:3]:
            lines.append(f"{name}: {ev['type']} selected={ev.get('selected_device')} "
                         f"impl={ev.get('impl')} why={ev.get('impl_reason')} "
                         f"fallback={ev.get('fallback_reason')} notes={ev.get('notes')}")
        est = CROSSOVER.estimate(cuda, keys.SPECS[key], make_call(key, dims))
        lines.append(f"{name}: estimate cpu {est.cpu_us:.1f} us gpu {est.gpu_us:.1f} us "
                     f"({est.source})")
        times = {d: host_median_us(lambda d=d: fn(*hosts, d)) for d in ("auto", "cpu", "cuda")}
        lines.append(f"{name}: " + ", ".join(f"{d} {t:.1f} us" for d, t in times.items()))
    report("\n".join(lines), path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
