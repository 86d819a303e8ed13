"""Compile every CUDA kernel file of the package with nvcc (-arch=sm_90), as CI does, and the
native module (``native/*.c``) with the C compiler and ``-Werror``.

Kernels are written for NVRTC; nvcc must accept them too, so a syntax or type error fails
on a CPU-only machine instead of on the GPU. Exits non-zero when any build failed.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile

KERNELS = pathlib.Path(__file__).resolve().parents[1] / "src/lightning_core/backends/cuda/kernels"
SRC = pathlib.Path(__file__).resolve().parents[1] / "src"
# Builds beyond the defaults whose code is behind a define (one nvcc run each).
VARIANTS = {"attention.cu": [["-DLC_ROWS_ONLY=1", "-DRVEC=1", "-DKPL=3", "-DDPL=2"],
                            ["-DLC_ROWS_ONLY=1", "-DRVEC=1", "-DWRAP=1", "-DKPL=6", "-DDPL=2"],
                            ["-DLC_TC=1", "-DHEAD_DIM_P=64", "-DKEYS_PT=4", "-DVEC_IO=1"],
                            ["-DLC_TC=1", "-DLC_TC_TRUNC=0", "-DHEAD_DIM_P=32"]]}


def check_native() -> int:
    """Build the native module with every warning an error (the package's own compile
    command, ``native.compile_command``); 1 when it fails."""
    import sysconfig

    sys.path.insert(0, str(SRC))  # the source tree's package, installed or not
    from lightning_core import native

    with tempfile.TemporaryDirectory() as tmp:
        cmd = native.compile_command(
            native.source_paths(), str(pathlib.Path(tmp) / "_lane.so"), "-Wextra", "-Werror",
            "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-Wno-cast-function-type")
        include = sysconfig.get_paths()["include"]
        if shutil.which(cmd[0]) is None or not pathlib.Path(include, "Python.h").exists():
            print("check_kernels: native module skipped (no C compiler or Python headers here)")
            return 0
        proc = subprocess.run(cmd, capture_output=True, text=True)
    names = " + ".join(f"native/{p.name}" for p in native.source_paths())
    print(f"check_kernels: {names}: {'ok' if proc.returncode == 0 else 'FAILED'}")
    if proc.returncode:
        print(proc.stderr, file=sys.stderr)
    return int(proc.returncode != 0)


def main() -> int:
    native_failed = check_native()
    nvcc = shutil.which("nvcc")
    files = sorted(KERNELS.glob("*.cu"))
    if nvcc is None:
        print("check_kernels: nvcc not found; skipped (install the CUDA toolkit to check)")
        return native_failed
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
    return 1 if failed or native_failed else 0


if __name__ == "__main__":
    sys.exit(main())
