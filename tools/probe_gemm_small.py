"""Device time of the package's small fp32 GEMM kernels, ``lc_gemm_tiled`` and
``lc_gemm_tiled4``, at several GROUPS (and PIECES), beside torch and ``lc.matmul2d``.

Each kernel is checked against a float64 product (awkward shapes included) before it is timed;
times are ``held_device_us`` (calls queued behind a spin kernel, launch gaps excluded). The
candidates this probe once compared (16-byte shared loads without ``cp.async``, loads-only and
FMA-only diagnostics; runs 55-58) are in the history of this file (commit d21e9cb). Run on the
GPU machine: PYTHONPATH=src python3 tools/probe_gemm_small.py [out.txt]
``--ncu NAME`` launches one variant three times at 256^3, for Nsight Compute.
"""

from __future__ import annotations

import pathlib
import sys

import cupy as cp
import numpy as np

from lightning_core.backends.cuda.compile import kernels_dir
from lightning_core.bench.suites.timers import held_device_us

EMPTY = 'extern "C" __global__ void lc_empty(float* p) { if (p == nullptr) p[0] = 0.0f; }'
BM, BN = 32, 16  # the kernels' tile of C (kernels/gemm.cu)


def build(name: str, defines: dict[str, int], smem: int):
    source = (kernels_dir() / "gemm.cu").read_text()
    opts = ("-std=c++17", "-arch=sm_90", f"-I{kernels_dir()}",
            *(f"-D{k}={v}" for k, v in defines.items()))
    fn = cp.RawModule(code=source, options=opts).get_function(name)
    fn.max_dynamic_shared_size_bytes = smem
    return fn


def variants() -> dict[str, tuple[object, int, bool]]:
    """name -> (kernel, warps a block, needs K and N multiples of 4)."""
    out: dict[str, tuple[object, int, bool]] = {}
    for g in (4, 8, 16):
        out[f"tiled G={g}"] = (build("lc_gemm_tiled", {"GROUPS": g}, g * 32 * (33 + 16) * 4),
                               g, False)
    for g, pieces in ((8, 4), (8, 2), (8, 1), (4, 4), (16, 4)):
        smem = g * 2 * 32 * (32 + 4 + 16) * 4  # two chunk buffers a warp (any K)
        out[f"tiled4 G={g} P{pieces}"] = (
            build("lc_gemm_tiled4", {"GROUPS": g, "PIECES": pieces}, smem), g, True)
    return out


def launcher(fn, g: int, a, b, c):
    m, k = a.shape
    n = b.shape[1]
    grid = (-(-n // BN), -(-m // BM))
    smem = fn.max_dynamic_shared_size_bytes
    return lambda: fn(grid, (32 * g,), (a, b, c, np.int32(m), np.int32(n), np.int32(k)),
                      shared_mem=smem)


def main(path: str | None, only: str | None = None) -> None:
    import torch

    import lightning_core as lc

    torch.backends.cuda.matmul.allow_tf32 = False
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    kernels = variants()
    rng = np.random.default_rng(1)
    if only:  # three launches at 256^3 for Nsight Compute (--launch-skip 2 -c 1)
        fn, g, _ = kernels[only]
        a, b = (cp.asarray(rng.standard_normal((256, 256)).astype(np.float32)) for _ in "ab")
        run = launcher(fn, g, a, b, cp.empty((256, 256), np.float32))
        for _ in range(3):
            run()
        cp.cuda.Device().synchronize()
        return

    # Correctness first, on awkward shapes; a kernel that fails is not timed.
    for m, k, n in ((256, 256, 256), (33, 257, 17), (255, 100, 253), (1, 1, 1), (64, 1000, 48),
                    (36, 68, 20)):
        ah = rng.standard_normal((m, k)).astype(np.float32)
        bh = rng.standard_normal((k, n)).astype(np.float32)
        ref = ah.astype(np.float64) @ bh.astype(np.float64)
        a, b = cp.asarray(ah), cp.asarray(bh)
        for name, (fn, g, four) in list(kernels.items()):
            if four and (k % 4 or n % 4):
                continue
            c = cp.full((m, n), np.nan, np.float32)
            launcher(fn, g, a, b, c)()
            err = float(np.max(np.abs(cp.asnumpy(c) - ref)) / max(1.0, np.max(np.abs(ref))))
            ok = err < 1e-5
            say(f"check {m}x{k}x{n:<5d} {name:14s} rel err {err:.2e} {'ok' if ok else 'FAIL'}")
            if not ok:
                del kernels[name]

    empty = cp.RawKernel(EMPTY, "lc_empty")
    for m, k, n in ((256, 256, 256), (128, 256, 128), (320, 320, 320), (256, 1024, 64),
                    (384, 384, 384), (512, 512, 512)):
        a = cp.asarray(rng.standard_normal((m, k)).astype(np.float32))
        b = cp.asarray(rng.standard_normal((k, n)).astype(np.float32))
        c = cp.empty((m, n), np.float32)
        ta, tb = torch.as_tensor(a, device="cuda"), torch.as_tensor(b, device="cuda")
        say(f"--- {m}x{k}x{n}")
        say(f"empty kernel     {held_device_us(cp, lambda: empty((1,), (32,), (c,))):6.2f} us")
        say(f"torch            {held_device_us(cp, lambda: ta @ tb):6.2f} us")
        say(f"lc.matmul2d      {held_device_us(cp, lambda: lc.matmul2d(a, b)):6.2f} us")
        for name, (fn, g, four) in kernels.items():
            if four and (k % 4 or n % 4):
                continue
            say(f"{name:16s} {held_device_us(cp, launcher(fn, g, a, b, c)):6.2f} us")
    if path:
        pathlib.Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--ncu":
        main(None, only=sys.argv[2])
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else None)
