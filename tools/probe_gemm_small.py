"""Device time of small fp32 GEMM kernels: the package's ``lc_gemm_tiled`` and ``lc_gemm_tiled4``
(at several GROUPS and PIECES) against the candidates of ``probe_gemm_small.cu``.

Each kernel is checked against a float64 product (awkward shapes included) before it is timed;
times are ``held_device_us`` (calls queued behind a spin kernel, launch gaps excluded). Run on
the GPU machine: PYTHONPATH=src python3 tools/probe_gemm_small.py [out.txt]
"""

from __future__ import annotations

import pathlib
import sys

import cupy as cp
import numpy as np

from lightning_core.backends.cuda.compile import kernels_dir
from lightning_core.bench.suites.timers import held_device_us

HERE = pathlib.Path(__file__).resolve().parent
EMPTY = 'extern "C" __global__ void lc_empty(float* p) { if (p == nullptr) p[0] = 0.0f; }'


def build(source: str, name: str, defines: dict[str, int], smem: int):
    opts = ("-std=c++17", "-arch=sm_90", f"-I{kernels_dir()}",
            *(f"-D{k}={v}" for k, v in defines.items()))
    fn = cp.RawModule(code=source, options=opts).get_function(name)
    fn.max_dynamic_shared_size_bytes = smem
    return fn


def main(path: str | None, only: str | None = None) -> None:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    tiled = (kernels_dir() / "gemm.cu").read_text()
    vec = (HERE / "probe_gemm_small.cu").read_text()
    variants = {}
    for g in (4, 8, 16):
        variants[f"tiled G={g}"] = (build(tiled, "lc_gemm_tiled", {"GROUPS": g},
                                          g * 32 * (33 + 16) * 4), g, (16, 32), 0)
    specs = [("vec G=8", 8, 0, 32, {}), ("vec4 G=4", 4, 1, 32, {}), ("vec4 G=8", 8, 1, 32, {}),
             ("vec4 G=8 KC16", 8, 1, 16, {}), ("vec4 G=16 KC16", 16, 1, 16, {}),
             ("vec4 G=8 noFMA", 8, 1, 32, {"NO_COMPUTE": 1}),
             ("vec4 G=8 noLDG", 8, 1, 32, {"NO_LOAD": 1})]
    for name, g, load4, kc, extra in specs:
        smem = max(g * (32 * (kc + 4) + kc * 16), g * 32 * 16) * 4
        variants[name] = (build(vec, "lc_gemm_vec", {"GROUPS": g, "LOAD4": load4, "VKC": kc,
                                                     **extra}, smem), g, (16, 32), load4)
    empty = cp.RawKernel(EMPTY, "lc_empty")
    rng = np.random.default_rng(1)

    def launcher(fn, g, tile, _load4, a, b, c):
        m, k = a.shape
        n = b.shape[1]
        grid = (-(-n // tile[0]), -(-m // tile[1]))
        smem = fn.max_dynamic_shared_size_bytes
        return lambda: fn(grid, (32 * g,), (a, b, c, np.int32(m), np.int32(n), np.int32(k)),
                          shared_mem=smem)

    for g, pieces in ((8, 4), (8, 2), (8, 1), (4, 4), (16, 4)):  # the package's cp.async kernel
        smem = max(g * 2 * (32 * 36 + 32 * 16), g * 32 * 16) * 4
        variants[f"tiled4 G={g} P{pieces}"] = (
            build(tiled, "lc_gemm_tiled4", {"GROUPS": g, "PIECES": pieces}, smem), g, (16, 32),
            1)
    variants["vec4 G=8 bare"] = (build(vec, "lc_gemm_vec", {"GROUPS": 8, "LOAD4": 1,
                                                            "NO_COMPUTE": 1, "NO_LOAD": 1},
                                       8 * (32 * 36 + 512) * 4), 8, (16, 32), 1)
    if only:  # three launches at 256^3 for Nsight Compute (--launch-skip 2 -c 1)
        fn, g, tile, load4 = variants[only]
        a, b = (cp.asarray(rng.standard_normal((256, 256)).astype(np.float32)) for _ in "ab")
        run = launcher(fn, g, tile, load4, a, b, cp.empty((256, 256), np.float32))
        for _ in range(3):
            run()
        cp.cuda.Device().synchronize()
        return

    # Correctness first, on awkward shapes.
    for m, k, n in ((256, 256, 256), (33, 257, 17), (255, 100, 253), (1, 1, 1), (64, 1000, 48), (36, 68, 20)):
        ah = rng.standard_normal((m, k)).astype(np.float32)
        bh = rng.standard_normal((k, n)).astype(np.float32)
        ref = ah.astype(np.float64) @ bh.astype(np.float64)
        a, b = cp.asarray(ah), cp.asarray(bh)
        for name, (fn, g, tile, load4) in variants.items():
            if load4 and (k % 4 or n % 4):
                continue
            c = cp.full((m, n), np.nan, np.float32)
            launcher(fn, g, tile, load4, a, b, c)()
            err = float(np.max(np.abs(cp.asnumpy(c) - ref)) / max(1.0, np.max(np.abs(ref))))
            ok = err < 1e-5 or "no" in name or "bare" in name  # the diagnostics skip work on purpose
            say(f"check {m}x{k}x{n:<5d} {name:12s} rel err {err:.2e} {'ok' if ok else 'FAIL'}")
            if not ok:
                variants[name] = None  # type: ignore[assignment]
        variants = {k_: v for k_, v in variants.items() if v is not None}

    for m, k, n in ((256, 256, 256), (128, 256, 128), (320, 320, 320), (256, 1024, 64),
                    (384, 384, 384), (512, 512, 512)):
        a = cp.asarray(rng.standard_normal((m, k)).astype(np.float32))
        b = cp.asarray(rng.standard_normal((k, n)).astype(np.float32))
        c = cp.empty((m, n), np.float32)
        ta, tb = torch.as_tensor(a, device="cuda"), torch.as_tensor(b, device="cuda")
        say(f"--- {m}x{k}x{n}")
        say(f"empty kernel     {held_device_us(cp, lambda: empty((1,), (32,), (c,))):6.2f} us")
        say(f"torch            {held_device_us(cp, lambda: ta @ tb):6.2f} us")
        import lightning_core as lc
        say(f"lc.matmul2d      {held_device_us(cp, lambda: lc.matmul2d(a, b)):6.2f} us")
        for name, (fn, g, tile, load4) in variants.items():
            t = held_device_us(cp, launcher(fn, g, tile, load4, a, b, c))
            say(f"{name:16s} {t:6.2f} us")
    if path:
        pathlib.Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--ncu":  # one variant, 256^3, for Nsight Compute
        main(None, only=sys.argv[2])
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else None)
