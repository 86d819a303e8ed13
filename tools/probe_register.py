"""Does page-locking a caller's NumPy array in place beat staging it? (cudaHostRegister)

For 1, 4, 16 and 32 MB arrays: register + async copy + sync + unregister, against the staged
upload (``HostIo.upload_many``) and a plain pageable copy. Median µs. Run on the GPU machine:
PYTHONPATH=src python3 tools/probe_register.py [out.txt]
"""

from __future__ import annotations

import sys

import cupy as cp
import numpy as np
from profile_overhead import report

from lightning_core.bench.suites.timers import host_median_us
from lightning_core.runtime.backend import get_backend


def main(path: str | None) -> None:
    rt = cp.cuda.runtime
    io = get_backend("cuda").io
    stream = io._stream
    lines = []
    for mb in (1, 4, 16, 32):
        src = np.random.default_rng(mb).standard_normal(mb * 262144).astype(np.float32)
        dst = cp.empty_like(cp.asarray(src))
        ptr, n = src.ctypes.data, src.nbytes

        def registered(flags: int = 0) -> None:
            rt.hostRegister(ptr, n, flags)
            rt.memcpyAsync(dst.data.ptr, ptr, n, 1, stream.ptr)
            stream.synchronize()
            rt.hostUnregister(ptr)

        def register_only() -> None:
            rt.hostRegister(ptr, n, 0)
            rt.hostUnregister(ptr)

        def staged() -> None:
            io.upload_many([(src, dst)])
            stream.synchronize()

        def pageable() -> None:
            rt.memcpyAsync(dst.data.ptr, ptr, n, 1, stream.ptr)
            stream.synchronize()

        for name, fn in (("register + copy + unregister", registered),
                         ("register + unregister only", register_only),
                         ("staged upload", staged), ("pageable memcpy", pageable)):
            try:
                us = host_median_us(fn)
                lines.append(f"{mb:3d} MB  {name:32s} {us:9.1f} us  {n / us / 1e3:6.1f} GB/s")
            except Exception as exc:  # noqa: BLE001 - a probe reports what failed
                lines.append(f"{mb:3d} MB  {name:32s} failed: {exc}")
            print(lines[-1], flush=True)
        got = cp.asnumpy(dst)
        lines.append(f"{mb:3d} MB  copy exact: {bool(np.array_equal(got, src))}")
    report("\n".join(lines), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
