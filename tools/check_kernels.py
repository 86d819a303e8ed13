"""Compile every CUDA kernel file of the package with nvcc (-arch=sm_90), as CI does.

Kernels are written for NVRTC; nvcc must accept them too, so a syntax or type error fails
on a CPU-only machine instead of on the GPU. Exits non-zero on the first failure.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile

KERNELS = pathlib.Path(__file__).resolve().parents[1] / "src/lightning_core/backends/cuda/kernels"
# Builds beyond the defaults whose code is behind a define (one nvcc run each).
VARIANTS = {"attention.cu": [["-DLC_ROWS_ONLY=1", "-DRVEC=1", "-DKPL=3", "-DDPL=2"],
                            ["-DLC_ROWS_ONLY=1", "-DRVEC=1", "-DWRAP=1", "-DKPL=6", "-DDPL=2"],
                            ["-DLC_TC=1", "-DHEAD_DIM_P=64", "-DKEYS_PT=4", "-DVEC_IO=1"],
                            ["-DLC_TC=1", "-DLC_TC_TRUNC=0", "-DHEAD_DIM_P=32"]]}


def main() -> int:
    nvcc = shutil.which("nvcc")
    files = sorted(KERNELS.glob("*.cu"))
    if nvcc is None:
        print("check_kernels: nvcc not found; skipped (install the CUDA toolkit to check)")
        return 0
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        builds = [(path, defs) for path in files for defs in [[], *VARIANTS.get(path.name, [])]]
        for path, defs in builds:
            cmd = [nvcc, "-arch=sm_90", "-std=c++17", "-c", str(path), "-I", str(KERNELS),
                   *defs, "-o", str(pathlib.Path(tmp) / (path.stem + ".o"))]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            status = "ok" if proc.returncode == 0 else "FAILED"
            print(f"check_kernels: {' '.join([path.name, *defs])}: {status}")
            if proc.returncode != 0:
                failed += 1
                print(proc.stderr, file=sys.stderr)
    print(f"check_kernels: {len(builds) - failed} compiled, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
