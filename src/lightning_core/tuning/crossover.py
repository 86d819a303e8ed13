"""CPU crossover: run a one-shot host call with ``device="auto"`` on the CPU when that is faster.

It is the dispatcher's crossover hook (``runtime.dispatch.set_crossover``), consulted only for
calls whose inputs are all on the host; device-resident inputs stay on the device. The model::

    gpu_oneshot_us = launch_sync_us + per_input_us * (inputs - 2)
                     + bytes_in / h2d + bytes_out / d2h + work / gpu_rate
    cpu_us         = work / cpu_rate + cpu_overhead_us        → CPU when cpu_us < gpu_oneshot_us

(for families with probes past the caches, ``CPU_BIG``, work above the mid probe follows the
polyline through the mid and those probes' measured times instead).

with work = 2mkn flops (matmul, linear), 4 s^2 d (attention), 2 MACs (conv), elements (the
rest). Pinned host arrays move at the pinned rate, others at the rate of the backend's staged
path. When the tuner has timed this exact shape one-shot (``cpu_us`` and the kernel's time in
its entry), those measured times replace the rate terms.

``launch_sync_us`` and ``per_input_us`` are timed through the public API (a one-element
``vector_add`` and ``relu`` forced onto the GPU), so they hold everything a user's one-shot pays
besides bytes and kernel: validation, staging, events, the result's allocation, the sync.
The costs are calibrated once per machine (``lc tune --calibrate``, else lazily on first need
when ``LC_TUNE >= 1``: transfers and launch latency, then each op family's rates, each part
well under a second) and stored in the tuning cache under the machine's key. Knobs:
``LC_CROSSOVER=0`` disables the hook; ``LC_CONV2D_CPU_CROSSOVER_MACS >= 0`` replaces the conv
model by "CPU when MACs <= threshold" (re-read on every consultation when
``LC_CONV2D_CPU_CROSSOVER_DYNAMIC=1``).
"""

from __future__ import annotations

import copy
import datetime
import itertools
import math
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import config
from ..backends.cuda.pipeline import chunk_count
from ..runtime.backend import Backend, implementations
from ..runtime.device import Route
from ..runtime.dispatch import Call, host_pinned_flags
from ..trace.recorder import TRACE
from .keys import SPECS, OpSpec
from .measure import CudaRunner, HostRunner
from .shapes import CPU_BIG, PROBES, make_call
from .tuner import Tuner

__all__ = ["Crossover", "Estimate", "estimate", "cpu_model_us", "measure_cpu",
           "DEFAULT_CALIBRATION", "FAMILIES"]

FAMILIES = tuple(PROBES)

# PERF.md's GPU machine (H200, 16 cores), used only when LC_TUNE=0 forbids measuring and no
# calibration of this machine is stored. Rates are work units per microsecond.
DEFAULT_CALIBRATION: dict[str, Any] = {
    "h2d_gbps": {"pinned": 55.2, "pageable": 16.2},
    "d2h_gbps": {"pinned": 54.5, "pageable": 13.5},
    "launch_sync_us": 20.0,
    "families": {
        "matmul": {"cpu_rate": 1.0e6, "cpu_overhead_us": 5.0, "gpu_rate": 5.0e7},
        "attention": {"cpu_rate": 3.0e4, "cpu_overhead_us": 10.0, "gpu_rate": 3.0e6},
        "conv2d": {"cpu_rate": 5.0e4, "cpu_overhead_us": 20.0, "gpu_rate": 1.0e7},
        "elementwise": {"cpu_rate": 2.0e3, "cpu_overhead_us": 3.0, "gpu_rate": 3.0e5},
    },
    "source": "PERF.md defaults (not measured on this machine)",
}
_COMMON = ("h2d_gbps", "d2h_gbps", "launch_sync_us")
# A stored calibration of another format is measured again. 2: pageable uploads staged on the
# native copy pool (several times faster than the Python pool the older rates came from),
# elementwise CPU points past the caches (``cpu_points``). 3: matmul CPU points at 256^3 and
# 512^3.
_CAL_FORMAT = 3
_TRANSFER_BYTES = 8 << 20
_BUDGET_S = 0.05  # per timed quantity
_COLD_BYTES = 128 << 20  # data the probes past the caches rotate through (above any LLC here)


@dataclass(frozen=True)
class Estimate:
    """Predicted one-shot times of a call on each side, and where the numbers came from."""

    cpu_us: float
    gpu_us: float
    source: str  # "measured" (tuned entry of this exact shape) or "model"

    @property
    def use_cpu(self) -> bool:
        return self.cpu_us < self.gpu_us


def _transfer_us(nbytes: int, gbps: float) -> float:
    return nbytes / (gbps * 1e3)  # GB/s is bytes per ns


def estimate(spec: OpSpec, call: Call, cal: dict[str, Any], *, pinned_in: tuple[bool, ...],
             pinned_out: bool, entry: dict[str, Any] | None = None) -> Estimate:
    """The crossover model for ``call`` under calibration ``cal`` (see the module doc)."""
    dims = spec.dims(call)
    h2d, d2h = cal["h2d_gbps"], cal["d2h_gbps"]
    up = sum(_transfer_us(o.array.nbytes, h2d["pinned" if p else "pageable"])
             for o, p in zip(call.inputs, pinned_in, strict=True))
    out_bytes = math.prod(call.out_shape) * call.dtype.itemsize
    down = _transfer_us(out_bytes, d2h["pinned" if pinned_out else "pageable"])
    moved = up + down
    chunks = _pipeline_chunks(spec, out_bytes, pinned_in, pinned_out)
    if chunks:
        # backends/cuda/pipeline.py: the downloads run under the uploads (both directions at
        # once cost ~12% more than one: 8+8 MB in 188 us against 168 us up alone), leaving the
        # last chunk's download after them.
        moved = max(up, down) * _DUPLEX_COST + down / chunks
    # Calibrations written before per_input_us existed charge every call the 2-input cost.
    fixed = (cal["launch_sync_us"] + cal.get("per_input_us", 0.0) * (len(call.inputs) - 2)
             + moved)
    if (entry is not None and isinstance(entry.get("cpu_us"), float)
            and entry.get("shape") == dims and entry["winner"] in entry["timings_us"]):
        return Estimate(entry["cpu_us"], fixed + entry["timings_us"][entry["winner"]],
                        "measured")
    rates = cal["families"][spec.family]
    work = spec.work(dims)
    return Estimate(cpu_model_us(rates, work), fixed + work / rates["gpu_rate"], "model")


def cpu_model_us(rates: dict[str, Any], work: float) -> float:
    """The CPU time the calibration predicts for ``work``: the rate line through the tiny and
    mid probes, and above the mid probe the polyline through the mid and bigger probes' (work,
    µs) points (``cpu_points``) when the family has them.

    The polyline never falls (a point measured faster than a smaller one counts as the
    smaller one's time). Beyond the last point the time grows at least in proportion to the
    work: the CPU backend adds threads up to the last probe's size, so the last segment can be
    nearly flat (run 44: 1M elements 527 µs on two threads, 2M 549 on four), while past the
    thread cap a call twice as big takes about twice as long."""
    points = rates.get("cpu_points")
    if not points or len(points) < 2 or work <= points[0][0]:
        return work / rates["cpu_rate"] + rates["cpu_overhead_us"]
    works = [float(w) for w, _ in points]
    if any(w1 <= w0 for w0, w1 in itertools.pairwise(works)):  # not increasing: unusable
        return work / rates["cpu_rate"] + rates["cpu_overhead_us"]
    times = list(itertools.accumulate((float(t) for _, t in points), max))
    for (w0, t0), (w1, t1) in itertools.pairwise(zip(works, times, strict=True)):
        if work <= w1:
            return t0 + (work - w0) * (t1 - t0) / (w1 - w0)
    (w0, t0), (w1, t1) = (works[-2], times[-2]), (works[-1], times[-1])
    return max(t1 + (work - w1) * (t1 - t0) / (w1 - w0), t1 * work / w1)


_DUPLEX_COST = 1.12


def _pipeline_chunks(spec: OpSpec, out_bytes: int, pinned_in: tuple[bool, ...],
                     pinned_out: bool) -> int:
    """The chunk count the CUDA backend's overlapped one-shot path would use for a call of a
    flat (elementwise) CUDA default with all-pinned host data (0: it would not overlap)."""
    if not pinned_out or not pinned_in or not all(pinned_in):
        return 0
    impls = implementations("cuda", spec.key)
    if not impls or not impls[0].flat:
        return 0
    return chunk_count(out_bytes)


def _plain_oneshot(call: Call) -> bool:
    """Host inputs only, upload everything, download, synchronize, no explicit variant: the
    only calls the CPU may take over."""
    io = call.io
    return (io.download and io.synchronize and (io.upload is None or all(io.upload))
            and not any(o.on_device for o in call.inputs) and call.variant is None
            and (call.out is None or type(call.out) is np.ndarray))


class Crossover:
    """The crossover hook plus the calibration it runs on."""

    def __init__(self, tuner: Tuner) -> None:
        self.tuner = tuner
        self._cal: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._warned = False

    def __call__(self, route: Route, call: Call) -> bool:
        """``runtime.dispatch`` crossover hook: True runs ``call`` on the CPU."""
        if route.selected != "cuda" or not config.get("LC_CROSSOVER"):
            return False
        spec = SPECS.get(call.kernel)
        if spec is None or not _plain_oneshot(call) or not any(
                call.dtype.name in i.dtypes for i in implementations("cpu", call.kernel)):
            return False
        if call.kernel == "conv2d":
            dynamic = bool(config.get("LC_CONV2D_CPU_CROSSOVER_DYNAMIC"))
            limit = int(config.get("LC_CONV2D_CPU_CROSSOVER_MACS", fresh=dynamic))
            if limit >= 0:
                return spec.work(spec.dims(call)) / 2 <= limit
        try:
            return self.estimate(route.backend, spec, call).use_cpu
        except Exception as exc:  # noqa: BLE001 - routing must never fail the call itself
            if not self._warned:
                self._warned = True
                warnings.warn(f"[tuning] CPU crossover unavailable ({type(exc).__name__}: "
                              f"{exc}); one-shot calls stay on the GPU", RuntimeWarning,
                              stacklevel=2)
            return False

    def estimate(self, backend: Backend, spec: OpSpec, call: Call) -> Estimate:
        """The model's prediction for a one-shot ``call`` on ``backend`` (CUDA)."""
        cal = self.calibration(backend, spec.family)
        # The same pinned flags the dispatcher keys its decisions by (host_pinned_flags).
        flags = host_pinned_flags(call)
        pinned_in = flags[:len(call.inputs)]
        # Results of one-shot calls without an out buffer come back in pinned memory.
        pinned_out = call.out is None or flags[-1]
        entry = (self.tuner.lookup(backend, spec, call, "oneshot")
                 if int(config.get("LC_TUNE")) >= 1 else None)
        return estimate(spec, call, cal, pinned_in=pinned_in, pinned_out=pinned_out,
                        entry=entry)

    def calibration(self, backend: Backend, family: str) -> dict[str, Any]:
        """This machine's calibration, measuring what is missing when ``LC_TUNE >= 1`` and
        filling it from ``DEFAULT_CALIBRATION`` otherwise."""
        with self._lock:
            _, mid = self.tuner.machine(backend)
            cal = self._cal.get(mid) or copy.deepcopy(self.tuner.cache.calibration(mid) or {})
            if cal and cal.get("format") != _CAL_FORMAT:
                cal = {}  # measured by an older version: its numbers no longer hold
            missing = [k for k in _COMMON if k not in cal]
            if not missing and family in cal.get("families", {}):
                self._cal[mid] = cal
                return cal
            if int(config.get("LC_TUNE")) >= 1:
                return self.calibrate(backend, (family,), base=cal)
            # Not kept: once measuring is allowed, the real numbers replace these.
            filled = copy.deepcopy(cal)
            for key in missing:
                filled[key] = copy.deepcopy(DEFAULT_CALIBRATION[key])
            filled.setdefault("families", {}).setdefault(
                family, dict(DEFAULT_CALIBRATION["families"][family]))
            filled["source"] = DEFAULT_CALIBRATION["source"]
            return filled

    def calibrate(self, backend: Backend, families: tuple[str, ...] = FAMILIES, *,
                  base: dict[str, Any] | None = None) -> dict[str, Any]:
        """Measure (or re-measure) transfers, launch latency and ``families``' rates on
        ``backend`` (CUDA) and store them in the cache; returns the calibration."""
        with self._lock:
            t0 = time.perf_counter()
            fingerprint, mid = self.tuner.machine(backend)
            cal = copy.deepcopy(base) if base else {}
            if base is None or any(k not in cal for k in _COMMON):
                cal.update(_measure_transfers(backend))
            fams = cal.setdefault("families", {})
            for family in families:
                fams[family] = {**measure_cpu(family), **_measure_gpu(backend, family)}
            cal["measured_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")
            cal["measure_s"] = round(time.perf_counter() - t0, 3)
            cal["format"] = _CAL_FORMAT
            cal.pop("source", None)
            self.tuner.cache.put_calibration(fingerprint, mid, cal)
            self._cal[mid] = cal
            return cal

    def forget(self) -> None:
        """Drop the in-memory calibration (the cache keeps its copy)."""
        with self._lock:
            self._cal.clear()


def _median_us(fn: Any, runs: int = 5) -> float:
    fn()  # warm-up: staging blocks, first-use allocations
    samples = []
    deadline = time.perf_counter() + _BUDGET_S
    while len(samples) < runs and (len(samples) < 2 or time.perf_counter() < deadline):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    return float(np.median(samples))


def _measure_transfers(backend: Backend) -> dict[str, Any]:
    """Upload/download rates through the backend's own host I/O path, and the fixed cost of a
    tiny one-shot call (uploads, launch, download, sync)."""
    import cupy  # noqa: PLC0415

    io, stream = backend.io, backend.stream  # type: ignore[attr-defined]
    pageable = np.ones(_TRANSFER_BYTES, np.uint8)
    pinned = backend.pinned_empty(_TRANSFER_BYTES, np.uint8)  # type: ignore[attr-defined]
    pinned[...] = 1
    with stream:
        dev = cupy.empty(_TRANSFER_BYTES, np.uint8)

    def up(src: np.ndarray) -> None:
        io.upload(src, dev)
        stream.synchronize()

    def rate(fn: Any, arg: np.ndarray) -> float:
        return _TRANSFER_BYTES / (_median_us(lambda: fn(arg)) * 1e3)

    from ..ops.activations import relu  # noqa: PLC0415 - ops import the runtime, not tuning
    from ..ops.elementwise import vector_add  # noqa: PLC0415

    one = np.ones(1, np.float32)
    # The probes are not the user's calls: keep them out of the trace (and its cost out of
    # the timings).
    tracing, TRACE.enabled = TRACE.enabled, False
    try:
        two_inputs = _median_us(lambda: vector_add(one, one, "cuda"), runs=15)
        one_input = _median_us(lambda: relu(one, "cuda"), runs=15)
    finally:
        TRACE.enabled = tracing
    return {
        "h2d_gbps": {"pinned": rate(up, pinned), "pageable": rate(up, pageable)},
        "d2h_gbps": {"pinned": rate(lambda d: io.download(dev, d), pinned),
                     "pageable": rate(lambda d: io.download(dev, d), pageable)},
        "launch_sync_us": two_inputs,
        "per_input_us": max(two_inputs - one_input, 0.0),
    }


def _probe_inputs(call: Call) -> tuple[np.ndarray, ...]:
    # Constant inputs: values do not change these kernels' speed, and filling is cheap.
    return tuple(np.full(o.array.shape, 0.5, call.dtype) for o in call.inputs)


def settled_us(measure: Any, *, tries: int = 6, agree: float = 1.2) -> float:
    """The fastest of repeated ``measure()`` medians, once two of them agree within ``agree``
    (at most ``tries``). A calibration is stored and trusted across processes, so one taken
    during a stall must not stick: a BLAS pool waking up, or another process, once made a
    192^3 CPU GEMM look 60x slower, and the GPU test suite once stored a 7 GFLOP/s CPU GEMM
    rate (run 26) that sent 256^3 one-shots to the GPU."""
    seen: list[float] = []
    for _ in range(max(1, tries)):
        seen.append(float(measure()))
        seen.sort()
        if len(seen) >= 2 and seen[1] <= seen[0] * agree:
            break
    return seen[0]


def measure_cpu(family: str) -> dict[str, Any]:
    """The CPU path's fixed cost (tiny probe) and rate (mid probe minus tiny), work per µs;
    with probes past the caches (``CPU_BIG``) also the mid and those probes' (work, µs)
    points (``cpu_points``)."""
    key, tiny_dims, cpu_dims, _ = PROBES[family]
    spec = SPECS[key]
    host = HostRunner()
    impl = implementations("cpu", key)[0]
    times = []
    for dims in (tiny_dims, cpu_dims):
        call = make_call(key, dims)
        inputs = _probe_inputs(call)
        out = host.output(call)
        times.append((spec.work(spec.dims(call)), settled_us(
            lambda i=inputs, o=out, c=call: host.time_us(impl, i, o, c, warmup=2, runs=5,
                                                         budget_s=_BUDGET_S))))
    for dims in CPU_BIG.get(family, ()):
        # Past the caches for real: enough (inputs, out) sets that each run reads and writes
        # memory the previous runs have not just left in the last-level cache.
        call = make_call(key, dims)
        per_set = (sum(o.array.nbytes for o in call.inputs)
                   + math.prod(call.out_shape) * call.dtype.itemsize)
        sets = [(_probe_inputs(call), host.output(call))
                for _ in range(max(2, -(-_COLD_BYTES // per_set)))]
        turn = itertools.cycle(sets)  # one rotation across every repeat of the measurement
        times.append((spec.work(spec.dims(call)), settled_us(
            lambda t=turn, c=call: host.time_rotating_us(impl, t.__next__, c, warmup=2, runs=5,
                                                         budget_s=_BUDGET_S))))
        del sets, turn
    (w_tiny, t_tiny), (w_mid, t_mid) = times[:2]
    rate = (w_mid - w_tiny) / max(t_mid - t_tiny, 1e-3)
    rates: dict[str, Any] = {"cpu_rate": rate,
                             "cpu_overhead_us": max(t_tiny - w_tiny / rate, 0.0)}
    if len(times) > 2:
        rates["cpu_points"] = [list(point) for point in times[1:]]
    return rates


def _measure_gpu(backend: Backend, family: str) -> dict[str, float]:
    """The GPU kernel's rate on a probe large enough to fill the device, work per µs."""
    key, _, _, gpu_dims = PROBES[family]
    spec = SPECS[key]
    call = make_call(key, gpu_dims)
    impl = [i for i in implementations("cuda", key)
            if "float32" in i.dtypes and "fp32" in i.precisions][0]
    runner = CudaRunner(backend)
    inputs = runner.prepare(_probe_inputs(call))
    out = runner.output(call)
    runner.invoke(impl, inputs, out, call)  # first use compiles
    t_gpu = runner.time_us(impl, inputs, out, call, warmup=1, runs=5, budget_s=_BUDGET_S)
    return {"gpu_rate": spec.work(spec.dims(call)) / max(t_gpu, 1e-3)}
