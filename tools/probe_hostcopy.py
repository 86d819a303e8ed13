"""Does a host copy into pinned memory scale with native threads on this host?

Times, per size: NumPy ``copyto`` on one thread, the same through the Python host pool
(``run_parallel``, the staging fallback), a C ``memcpy`` split over 1-16 pthreads (threads
made per call, and a pool that spins without pause: the ceiling), and the native module's
``host_copy`` (what ``HostIo`` stages with when the module is built).
Sources rotate over enough arrays to leave the last-level cache (``cold``) or repeat one
(``warm``, as the one-shot targets do). Writes a table to argv[1] (default stdout).

    PYTHONPATH=src python3 tools/probe_hostcopy.py [out.txt]
"""

from __future__ import annotations

import ctypes
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

import numpy as np

C_SOURCE = r"""
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <stddef.h>
#include <time.h>

typedef struct { char *dst; const char *src; size_t n; } job_t;
static void *work(void *a) { job_t *j = a; memcpy(j->dst, j->src, j->n); return NULL; }

static double now_us(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

static void split(job_t *jobs, char *dst, const char *src, size_t n, int k) {
    size_t step = ((n + k - 1) / k + 4095) & ~(size_t)4095;
    for (int i = 0; i < k; i++) {
        size_t lo = (size_t)i * step, hi = lo + step;
        if (lo > n) lo = n;
        if (hi > n) hi = n;
        jobs[i].dst = dst + lo; jobs[i].src = src + lo; jobs[i].n = hi - lo;
    }
}

double copy_spawn(char *dst, const char *src, size_t n, int k) {
    job_t jobs[64]; pthread_t th[64];
    double t0 = now_us();
    split(jobs, dst, src, n, k);
    for (int i = 1; i < k; i++) pthread_create(&th[i], NULL, work, &jobs[i]);
    work(&jobs[0]);
    for (int i = 1; i < k; i++) pthread_join(th[i], NULL);
    return now_us() - t0;
}

/* a spinning pool: workers wait on a generation counter */
static atomic_int gen, done, quit;
static job_t pjobs[64];
static int pool_k;
static pthread_t pth[64];
static void *spin(void *a) {
    int me = (int)(size_t)a, seen = 0;
    for (;;) {
        int g;
        while ((g = atomic_load(&gen)) == seen) { if (atomic_load(&quit)) return NULL; }
        seen = g;
        if (me < pool_k) work(&pjobs[me]);
        atomic_fetch_add(&done, 1);
    }
}
void pool_start(int k) {
    atomic_store(&quit, 0); atomic_store(&gen, 0);
    pool_k = k;
    for (int i = 1; i < k; i++) pthread_create(&pth[i], NULL, spin, (void *)(size_t)i);
}
void pool_stop(int k) {
    atomic_store(&quit, 1);
    for (int i = 1; i < k; i++) pthread_join(pth[i], NULL);
}
double copy_pool(char *dst, const char *src, size_t n, int k) {
    double t0 = now_us();
    split(pjobs, dst, src, n, k);
    atomic_store(&done, 0);
    atomic_fetch_add(&gen, 1);
    work(&pjobs[0]);
    while (atomic_load(&done) < k - 1) {}
    return now_us() - t0;
}
"""


def build() -> ctypes.CDLL:
    tmp = tempfile.mkdtemp()
    src, lib = os.path.join(tmp, "hc.c"), os.path.join(tmp, "hc.so")
    with open(src, "w") as f:
        f.write(C_SOURCE)
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    subprocess.run([*cc, "-O2", "-shared", "-fPIC", "-pthread", src, "-o", lib], check=True)
    dll = ctypes.CDLL(lib)
    for name in ("copy_spawn", "copy_pool"):
        fn = getattr(dll, name)
        fn.restype = ctypes.c_double
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    dll.pool_start.argtypes = dll.pool_stop.argtypes = [ctypes.c_int]
    return dll


def main() -> None:
    out = open(sys.argv[1], "w") if len(sys.argv) > 1 else sys.stdout
    dll = build()
    try:
        import cupy as cp
        cp.cuda.alloc_pinned_memory(1)

        def pinned(n: int) -> np.ndarray:
            mem = cp.cuda.alloc_pinned_memory(n)
            return np.frombuffer(mem, np.uint8, n)
        kind = "pinned"
    except Exception:  # noqa: BLE001 - a host without CuPy: pageable destination
        def pinned(n: int) -> np.ndarray:
            return np.empty(n, np.uint8)
        kind = "pageable (no CuPy)"
    from lightning_core import native
    from lightning_core.runtime.host_threads import chunks, run_parallel

    lane = native.load()  # the production copy pool (None: not built here)
    print(f"destination: {kind}; cpus {os.cpu_count()}", file=out)
    reps = 25
    for mb in (4, 8, 32):
        n = mb << 20
        dst = pinned(n)
        dst[:] = 1
        for mode, count in (("warm", 1), ("cold", max(2, 512 // mb))):
            srcs = [np.full(n, i, np.uint8) for i in range(count)]
            turn = [0]

            def src() -> np.ndarray:
                turn[0] = (turn[0] + 1) % count
                return srcs[turn[0]]

            def timed(fn) -> float:
                ts = []
                for _ in range(reps):
                    s = src()
                    t0 = time.perf_counter()
                    r = fn(s)
                    ts.append(r if r is not None else (time.perf_counter() - t0) * 1e6)
                return statistics.median(ts)

            def row(label: str, us: float) -> None:
                print(f"{mb:3d} MB {mode:4s} {label:28s} {us:9.1f} us {n / us / 1e3:7.1f} GB/s",
                      file=out, flush=True)

            row("numpy copyto 1 thread", timed(lambda s: np.copyto(dst, s)))
            for w in (2, 4, 8):
                def pool_copy(s: np.ndarray, w: int = w) -> None:
                    parts = chunks(n, parts=w, min_chunk=1 << 16, align=4096)
                    run_parallel(lambda i: np.copyto(dst[parts[i][0]:parts[i][1]],
                                                     s[parts[i][0]:parts[i][1]]), len(parts))
                row(f"host pool copyto {w} threads", timed(pool_copy))
            for k in (1, 2, 4, 8, 16):
                row(f"C spawn {k} threads", timed(
                    lambda s, k=k: dll.copy_spawn(dst.ctypes.data, s.ctypes.data, n, k)))
            for k in (2, 4, 8, 16):
                dll.pool_start(k)
                try:
                    row(f"C spin pool {k} threads", timed(
                        lambda s, k=k: dll.copy_pool(dst.ctypes.data, s.ctypes.data, n, k)))
                finally:
                    dll.pool_stop(k)
            if lane is not None:
                for k in (2, 4, 8, 16):
                    row(f"lc host_copy {k} threads", timed(
                        lambda s, k=k: lane.host_copy(dst.ctypes.data, s.ctypes.data, n, k)))
            assert dst[0] == dst[-1]


if __name__ == "__main__":
    main()
