"""Benchmarks: the timing harness, environment capture, result files and the suites.

``lc bench <suite>`` (``bench.cli.main``) runs a suite: ``quick`` (``bench.quick``) or one of
``bench.suites`` (kernel, pipeline, ml, gemm-sweep, api-overhead, scaling), or ``all``.
Importing this package imports neither CuPy nor PyTorch.
"""

from __future__ import annotations

from .env import environment
from .harness import NotMeasured, Sample, Timing, device_event_timer, measure
from .report import write_csv, write_json, write_results

__all__ = [
    "NotMeasured",
    "Sample",
    "Timing",
    "device_event_timer",
    "environment",
    "measure",
    "write_csv",
    "write_json",
    "write_results",
]
