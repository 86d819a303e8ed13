"""Host time of each part of a native-lane elementwise call (no sync; mean of many calls).

Run on the GPU machine: PYTHONPATH=src:tools python3 tools/probe_lane_parts.py [out.txt]
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np
from probe_native import host_only
from profile_overhead import report

import lightning_core as lc
from lightning_core.backends.cuda import elementwise as ew
from lightning_core.runtime import dispatch


def mean_us(fn) -> float:
    return host_only(fn, calls=20000, warmup=500)


def main(path: str | None) -> None:
    n = 65536
    a, b = cp.ones(n, cp.float32), cp.ones(n, cp.float32)
    c = cp.empty_like(a)
    for _ in range(3):
        lc.vector_add(a, b)
    key = dispatch.lane_key("vector_add", "auto", ("add",), (a, b), None)
    lane = dispatch._lanes[key]
    run = lane.run
    stream = cp.cuda.get_current_stream()
    call = ew._plan(ew._BINARY["add"], np.dtype(np.float32), n, True, 3)
    ptrs = (stream.ptr, a.data.ptr, b.data.ptr, c.data.ptr)
    take = run.recycler.take
    rows = {
        "lc.vector_add(a, b)": lambda: lc.vector_add(a, b),
        "lane_call(...) (Table)": lambda: dispatch.lane_call("vector_add", "auto", ("add",),
                                                             (a, b), None),
        "lane.run((a, b), None)": lambda: run((a, b), None),
        "Launch(stream, p, p, p)": lambda: call.launch_raw(*ptrs),
        "dispatch.lane_key(...)": lambda: dispatch.lane_key("vector_add", "auto", ("add",),
                                                            (a, b), None),
        "hash(key)": lambda: hash(key),
        "_lanes.get(key)": lambda: dispatch._lanes.get(key),
        "cp.cuda.get_current_stream()": cp.cuda.get_current_stream,
        "recycler.take(ptr)": lambda: take(stream.ptr),
        "a.shape": lambda: a.shape,
        "a.dtype": lambda: a.dtype,
        "a._c_contiguous": lambda: a._c_contiguous,
        "a.data.device_id": lambda: a.data.device_id,
        "a.data.ptr": lambda: a.data.ptr,
        "empty lambda": lambda: None,
    }
    ptr_fn = getattr(cp.cuda.stream, "get_current_stream_ptr", None)
    if ptr_fn is not None:
        rows["cupy.cuda.stream.get_current_stream_ptr()"] = ptr_fn
    lines = [f"{name:44s} {mean_us(fn):6.3f} us" for name, fn in rows.items()]
    lines.append(f"get_current_stream_ptr exists: {ptr_fn is not None}")
    report("\n".join(lines), path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
