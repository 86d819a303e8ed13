"""Where a one-shot call on page-locked host arrays goes under device="auto", and its time
against device="cuda" and "cpu" (the targets' oneshot_pinned rows call with "auto").

Run on the GPU machine: PYTHONPATH=src python3 tools/probe_pinned_route.py [out.txt]
"""

from __future__ import annotations

import statistics
import sys

import numpy as np
from profile_overhead import report

import lightning_core as lc
from lightning_core.bench.suites.timers import host_times


def main(path: str | None) -> None:
    lines = []
    rng = np.random.default_rng(3)
    for rows in (1024, 2048):
        hosts = [rng.standard_normal(rows * 1024).astype(np.float32) for _ in range(2)]
        a, b = (lc.pinned_like(h) for h in hosts)
        for src, dst in zip(hosts, (a, b), strict=True):
            dst[...] = src
        for device in ("auto", "cuda", "cpu"):
            t = host_times(lambda d=device: lc.matrix_sub(a, b, rows, 1024, d), iters=40)
            lc.runtime_trace_enable(True)
            lc.runtime_trace_clear()
            lc.matrix_sub(a, b, rows, 1024, device)
            event = lc.runtime_trace_events()[-1]
            lc.runtime_trace_enable(False)
            lines.append(f"{rows}x1024 {device:5s} {statistics.median(t):8.1f} us -> "
                         f"{event['selected_device']} {event['impl']} ({event['impl_reason']}; "
                         f"{event.get('fallback_reason', '')}) notes={event.get('notes')}")
            print(lines[-1], flush=True)
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
