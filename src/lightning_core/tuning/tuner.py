"""The tuner: which registered implementation a call runs with, by measurement.

It is the dispatcher's selector hook (``runtime.dispatch.set_selector``). Per kernel key and
shape bucket it answers, in order:

1. ``LC_TUNE >= 1``: the cached winner for this machine → reason ``"tuned(+12.3%)"`` (how much
   faster it was than the runner-up when it was measured);
2. ``LC_TUNE == 2`` on a miss: time every candidate now on random inputs of the call's shapes
   and dtype, after checking each against the float64 reference (a wrong or failing candidate
   is rejected and can never win), cache the winner, and use it;
3. a promoted default bucket (``PROMOTED``; at any ``LC_TUNE``, since they are defaults, not
   measurements; ``LC_MATMUL_DISABLE_PROMOTED_BUCKETS`` turns them off) → ``"promoted"``;
4. nothing: the dispatcher takes the first registered variant → ``"default"``.

A challenger replaces the incumbent (the previous winner, else the untuned choice) only when
it is more than ``LC_TUNE_HYST_PCT`` (default ``HYSTERESIS_PCT``) faster, so timing noise does not flip choices. GEMM-family
knobs, with their CUDA meaning: ``LC_MATMUL_CUBLAS_HYST_PCT`` keeps cuBLAS unless one of our
kernels beats it by more than that percentage; on large GEMMs (m*k*n >= ``LARGE_GEMM_OPS``)
``LC_MATMUL_PREFER_CUBLAS_ON_LARGE`` makes cuBLAS the promoted default and the first one timed,
and ``LC_MATMUL_TRY_KERNEL_ON_LARGE=0`` times cuBLAS alone.
"""

from __future__ import annotations

import datetime
import threading
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import config

# The thresholds the CUDA kernels' own ``auto`` choices use (plain constants: importing these
# modules does not import CuPy).
from ..backends.cuda.attention import ROWS_AUTO_MAX_SEQ
from ..backends.cuda.conv import DIRECT_MAX_MACS, DIRECT_MAX_TAPS
from ..backends.cuda.gemm import tiled_by_default
from ..runtime.backend import Backend, Impl, implementations
from ..runtime.dispatch import Call, clear_decisions
from .cache import TuneCache
from .keys import SPECS, OpSpec, entry_key, io_mode, machine_fingerprint, machine_id
from .measure import HostRunner, mismatch, random_inputs, runner_for, tolerance

__all__ = ["Tuner", "Promoted", "PROMOTED", "HYSTERESIS_PCT", "LARGE_GEMM_OPS", "choose_winner"]

HYSTERESIS_PCT = 3.0
LARGE_GEMM_OPS = 4_000_000_000  # m*k*n from which a GEMM counts as large (the seed's default)
_VENDOR = "cublas"  # variants whose name holds this call the vendor library


@dataclass(frozen=True)
class Promoted:
    """A default used before any measurement exists for a bucket."""

    key: str
    variant: str
    when: Callable[[dict[str, int]], bool]


# From the H200 measurements behind the CUDA backend's own heuristics (backends/cuda/
# attention.py, conv.py): one fused block wins while the problem fits it and more blocks would
# not pay; split-KV grids keep every SM busy on long sequences; a direct conv launch wins on
# short reductions per output, im2col + cuBLAS on long reductions of large problems.
PROMOTED: tuple[Promoted, ...] = (
    Promoted("attention", "rows", lambda d: d["s"] <= ROWS_AUTO_MAX_SEQ and d["d"] <= 64),
    Promoted("attention", "fused_small",
             lambda d: d["s"] <= 128 and d["s"] ** 2 * d["d"] <= 1 << 17),
    # Long sequences: the backend's own shape choice (split-KV SIMT tiles, or the tensor-core
    # build for float32 from ``TC_AUTO_MIN_SEQ`` on).
    Promoted("attention", "auto", lambda d: d["s"] >= 256),
    Promoted("matmul", "tiled", lambda d: tiled_by_default(d["m"], d["k"], d["n"])),
    Promoted("conv2d", "direct", lambda d: d["c"] * d["kh"] * d["kw"] <= DIRECT_MAX_TAPS),
    Promoted("conv2d", "im2col_gemm", lambda d: d["c"] * d["kh"] * d["kw"] > DIRECT_MAX_TAPS
             and d["n"] * d["oc"] * d["oh"] * d["ow"] * d["c"] * d["kh"] * d["kw"]
             > DIRECT_MAX_MACS),
)


def _large_gemm(spec: OpSpec, dims: dict[str, int]) -> bool:
    return spec.family == "matmul" and dims["m"] * dims["k"] * dims["n"] >= LARGE_GEMM_OPS


def choose_winner(timings: dict[str, float], incumbent: str | None, *, vendor_pct: float | None,
                  hysteresis_pct: float = HYSTERESIS_PCT) -> tuple[str, float | None, bool]:
    """(winner, margin % over the best other candidate, kept by hysteresis).

    ``vendor_pct`` (GEMM family only) keeps the fastest vendor variant unless a kernel beats it
    by more than that percentage. The incumbent then stays unless the winner beats it by more
    than ``hysteresis_pct``.
    """
    best = min(timings, key=timings.__getitem__)
    vendors = [v for v in timings if _VENDOR in v]
    kernels = [v for v in timings if _VENDOR not in v]
    if vendor_pct is not None and vendors and kernels:
        vendor = min(vendors, key=timings.__getitem__)
        kernel = min(kernels, key=timings.__getitem__)
        best = vendor if timings[vendor] <= timings[kernel] * (1 + vendor_pct / 100) else kernel
    kept = False
    if (incumbent in timings and incumbent != best
            and timings[best] * (1 + hysteresis_pct / 100) >= timings[incumbent]):
        best, kept = incumbent, True
    others = [t for v, t in timings.items() if v != best]
    margin = (min(others) / timings[best] - 1) * 100 if others and timings[best] > 0 else None
    return best, margin, kept


def reason_of(entry: dict[str, Any]) -> str:
    """The trace's ``impl_reason`` for a tuned entry, e.g. ``"tuned(+12.3%)"``."""
    margin = entry.get("margin_pct")
    return "tuned" if not isinstance(margin, int | float) else f"tuned({margin:+.1f}%)"


class Tuner:
    """Selector hook, search and report over one ``TuneCache``."""

    def __init__(self, cache: TuneCache, *, warmup: int = 2, runs: int = 7,
                 budget_s: float = 0.25) -> None:
        self.cache = cache
        self.timing = {"warmup": warmup, "runs": runs, "budget_s": budget_s}
        self._machines: dict[str, tuple[dict[str, Any], str]] = {}
        self._lock = threading.RLock()
        self.failures: deque[dict[str, Any]] = deque(maxlen=64)

    def machine(self, backend: Backend) -> tuple[dict[str, Any], str]:
        """(fingerprint, machine id) of ``backend`` on this machine (computed once)."""
        found = self._machines.get(backend.name)
        if found is None:
            fingerprint = machine_fingerprint(backend)
            found = self._machines[backend.name] = (fingerprint, machine_id(fingerprint))
        return found

    # -- the selector hook -------------------------------------------------------------------
    def select(self, backend: Backend, impls: list[Impl], call: Call) -> tuple[Impl, str] | None:
        """``runtime.dispatch`` selector: (impl, reason), or None for the dispatcher's default."""
        spec = SPECS.get(call.kernel)
        if spec is None:
            return None
        try:
            dims = spec.dims(call)
        except (ValueError, IndexError):
            return None  # a call shaped unlike its spec (sessions may build partial calls)
        by_variant = {i.variant: i for i in impls}
        mode = int(config.get("LC_TUNE"))
        if mode >= 1:
            entry = self.lookup(backend, spec, call)
            if entry is not None and entry["winner"] in by_variant:
                return by_variant[entry["winner"]], reason_of(entry)
            if mode >= 2 and all(p in call.params for p in spec.params):
                untuned = self.promoted(spec, dims, by_variant) or impls[0]
                entry = self.search(backend, impls, call, incumbent=untuned.variant)
                if entry is not None:
                    return by_variant[entry["winner"]], reason_of(entry)
        promoted = self.promoted(spec, dims, by_variant)
        return (promoted, "promoted") if promoted is not None else None

    def lookup(self, backend: Backend, spec: OpSpec, call: Call,
               io: str | None = None) -> dict[str, Any] | None:
        """The cached entry of ``call`` on this machine, or None."""
        _, mid = self.machine(backend)
        return self.cache.entry(mid, entry_key(spec, call, io))

    def promoted(self, spec: OpSpec, dims: dict[str, int],
                 by_variant: dict[str, Impl]) -> Impl | None:
        """The promoted default of this bucket among ``by_variant``, or None."""
        if config.get("LC_MATMUL_DISABLE_PROMOTED_BUCKETS"):
            return None
        if _large_gemm(spec, dims) and config.get("LC_MATMUL_PREFER_CUBLAS_ON_LARGE"):
            vendor = [i for v, i in by_variant.items() if _VENDOR in v]
            if vendor:
                return vendor[0]
        for rule in PROMOTED:
            if rule.key == spec.key and rule.variant in by_variant and rule.when(dims):
                return by_variant[rule.variant]
        return None

    # -- measuring ---------------------------------------------------------------------------
    def candidates(self, spec: OpSpec, dims: dict[str, int], impls: list[Impl]) -> list[Impl]:
        """The implementations a search times, in the order it times them."""
        if not _large_gemm(spec, dims):
            return list(impls)
        vendor = [i for i in impls if _VENDOR in i.variant]
        if vendor and not config.get("LC_MATMUL_TRY_KERNEL_ON_LARGE"):
            return vendor
        if config.get("LC_MATMUL_PREFER_CUBLAS_ON_LARGE"):
            return vendor + [i for i in impls if _VENDOR not in i.variant]
        return list(impls)

    def search(self, backend: Backend, impls: list[Impl], call: Call, *,
               incumbent: str | None, ios: tuple[str, ...] | None = None
               ) -> dict[str, Any] | None:
        """Check and time every candidate for ``call``; cache and return the entry (None when
        no candidate passed its check). ``ios`` lists the I/O modes to store it under."""
        spec = SPECS[call.kernel]
        ios = ios or (io_mode(call),)
        fingerprint, mid = self.machine(backend)
        key = entry_key(spec, call, ios[0])
        dims = spec.dims(call)
        # Seeded per bucket: a re-search draws the same inputs.
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        timings: dict[str, float] = {}
        rejected: dict[str, str] = {}
        with self._lock:
            try:
                host = random_inputs(spec, call, rng)
                ref = spec.reference(host, call.params)
                runner = runner_for(backend)
                dev = runner.prepare(host)
            except Exception as exc:  # noqa: BLE001 - a search never fails the user's call
                self.failures.append({"key": key, "error": f"{type(exc).__name__}: {exc}"})
                return None
            rtol = tolerance(call.dtype.name, call.precision)
            for impl in self.candidates(spec, dims, impls):
                result = self._time_one(runner, impl, dev, ref, rtol, call)
                if isinstance(result, str):
                    rejected[impl.variant] = result
                else:
                    timings[impl.variant] = result
            if not timings:
                self.failures.append({"key": key, "rejected": rejected})
                return None
            vendor_pct = (float(config.get("LC_MATMUL_CUBLAS_HYST_PCT"))
                          if spec.family == "matmul" else None)
            winner, margin, kept = choose_winner(
                timings, incumbent, vendor_pct=vendor_pct,
                hysteresis_pct=float(config.get("LC_TUNE_HYST_PCT")))
            entry = {
                "op": spec.key, "shape": dims, "dtype": call.dtype.name,
                "precision": call.precision, "winner": winner,
                "margin_pct": None if margin is None else round(margin, 2),
                "kept_by_hysteresis": kept, "incumbent": incumbent,
                "timings_us": {v: round(t, 3) for v, t in timings.items()},
                "rejected": rejected, "timer": runner.timer, "backend": backend.name,
                "tuned_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
            }
            if "oneshot" in ios and backend.name != "cpu":
                entry["cpu_us"] = self._cpu_us(call, host, ref, rtol)
            for io in ios:
                self.cache.put(fingerprint, mid, entry_key(spec, call, io), {**entry, "io": io})
        return entry

    def _time_one(self, runner: Any, impl: Impl, dev: tuple[Any, ...], ref: np.ndarray,
                  rtol: float, call: Call) -> float | str:
        """Median µs of ``impl`` after its output passed the reference check, or why not."""
        try:
            out = runner.output(call)
            runner.invoke(impl, dev, out, call)  # also the first-use compile
            bad = mismatch(runner.fetch(out), ref, rtol)
            if bad is not None:
                return bad
            return runner.time_us(impl, dev, out, call, **self.timing)
        except Exception as exc:  # noqa: BLE001 - a broken candidate is rejected, not raised
            return f"error: {type(exc).__name__}: {exc}"

    def _cpu_us(self, call: Call, host: tuple[Any, ...], ref: np.ndarray,
                rtol: float) -> float | None:
        """Host-clock time of the CPU path on the same inputs (for the one-shot crossover)."""
        usable = [i for i in implementations("cpu", call.kernel) if call.dtype.name in i.dtypes]
        if not usable:
            return None
        result = self._time_one(HostRunner(), usable[0], host, ref, rtol, call)
        return result if isinstance(result, float) else None

    # -- state -------------------------------------------------------------------------------
    def forget(self, op: str | None = None) -> None:
        """Drop in-memory tuned entries (of kernel key ``op``, or all) and routing decisions."""
        self.cache.forget(op)
        clear_decisions()

    def report(self, backends: list[Backend]) -> dict[str, Any]:
        """What was chosen per bucket on this machine, by how much, when, among which
        candidates; plus the cache file, the crossover calibration and failed searches."""
        machines = self.cache.machines()
        entries: list[dict[str, Any]] = []
        ours: dict[str, Any] = {}
        calibration: dict[str, Any] = {}
        for backend in backends:
            fingerprint, mid = self.machine(backend)
            ours[mid] = fingerprint
            section = machines.get(mid, {})
            if section.get("calibration"):
                calibration[mid] = section["calibration"]
            for key, entry in sorted(section.get("entries", {}).items()):
                parts = key.split("|")
                if len(parts) != 6:
                    continue  # written by another build; never matched either
                op, bucket, dtype, precision, layout, io = parts
                entries.append({
                    "machine": mid, "key": key, "op": op, "bucket": bucket, "dtype": dtype,
                    "precision": precision, "layout": layout, "io": io,
                    "winner": entry["winner"], "margin_pct": entry.get("margin_pct"),
                    "reason": reason_of(entry), "candidates": entry.get("timings_us", {}),
                    "rejected": entry.get("rejected", {}), "cpu_us": entry.get("cpu_us"),
                    "kept_by_hysteresis": entry.get("kept_by_hysteresis", False),
                    "tuned_at": entry.get("tuned_at"), "shape": entry.get("shape"),
                })
        return {
            "cache_file": self.cache.path, "persistent": self.cache.persistent,
            "tune_mode": int(config.get("LC_TUNE")), "hysteresis_pct": float(config.get("LC_TUNE_HYST_PCT")),
            "machines": ours, "foreign_machines": sorted(set(machines) - set(ours)),
            "entries": entries, "calibration": calibration, "failures": list(self.failures),
        }
