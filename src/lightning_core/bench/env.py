"""The environment a benchmark ran in, recorded next to its numbers so they can be judged."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
import sys
from typing import Any

import numpy as np

import lightning_core as lc

from .. import config
from .._version import __version__

__all__ = ["environment", "nvidia_smi"]

_SMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem",
               "clocks.max.mem", "power.limit", "temperature.gpu", "persistence_mode",
               "pstate")


def _version_of(module: str) -> str | None:
    """The version of an optional library, or None when it does not import."""
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - a broken optional install is the same as none
        return None
    return str(getattr(mod, "__version__", "unknown"))


def nvidia_smi() -> list[dict[str, str]]:
    """One dict per GPU from ``nvidia-smi --query-gpu`` (empty without the tool)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        done = subprocess.run(
            [exe, f"--query-gpu={','.join(_SMI_FIELDS)}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=15, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in done.stdout.strip().splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) == len(_SMI_FIELDS):
            gpus.append(dict(zip(_SMI_FIELDS, values, strict=True)))
    return gpus


def _cupy_device() -> dict[str, Any]:
    """Name, SM count, compute capability and CUDA versions of GPU 0 as CuPy sees them."""
    try:
        import cupy  # noqa: PLC0415 - optional

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return {}
        props = cupy.cuda.runtime.getDeviceProperties(0)
        dev = cupy.cuda.Device(0)
        name = props["name"]
        return {
            "name": name.decode() if isinstance(name, bytes) else str(name),
            "sm_count": int(dev.attributes["MultiProcessorCount"]),
            "compute_capability": str(dev.compute_capability),
            "memory_bytes": int(props["totalGlobalMem"]),
            "l2_bytes": int(props["l2CacheSize"]),
            "sm_clock_khz": int(props.get("clockRate", 0)),
            "cuda_runtime_version": int(cupy.cuda.runtime.runtimeGetVersion()),
            "cuda_driver_version": int(cupy.cuda.runtime.driverGetVersion()),
        }
    except Exception:  # noqa: BLE001 - no CuPy, no driver or no device: no GPU facts
        return {}


def _gpu() -> dict[str, Any]:
    try:
        caps = lc.runtime_backend_capabilities("cuda")
    except Exception as exc:  # noqa: BLE001 - the CUDA backend failing to start is a fact too
        caps = {"error": f"{type(exc).__name__}: {exc}"}
    return {"capabilities": caps, "device": _cupy_device(), "nvidia_smi": nvidia_smi()}


def _cpu_count() -> dict[str, int]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    total = os.cpu_count() or 1
    return {"logical": total, "usable": usable if usable is not None else total}


def environment(precision: str | None = None) -> dict[str, Any]:
    """Versions, host, GPU and precision facts for a benchmark's result file."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "lightning_core": __version__,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "numpy": np.__version__,
        "cupy": _version_of("cupy"),
        "torch": _version_of("torch"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": _cpu_count(),
        "precision": precision if precision is not None else config.get("LC_PRECISION"),
        "gpu": _gpu(),
    }
