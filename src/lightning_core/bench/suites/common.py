"""What every comparison suite shares: the case model, the correctness gate, the run loop.

A ``Case`` says how each side computes the same work: Lightning Core one-shot (NumPy in, NumPy
out), Lightning Core resident (a session or a capture on device-resident inputs, one call and a
sync), optionally Lightning Core device time (one call on CuPy inputs, by CUDA events), PyTorch
(see ``peers``), NumPy on the host, and the float64 reference. ``run_case`` checks every side
against the reference before timing it, times it with the harness, adds the physical floors
and the like-for-like ratios, and returns one row (see ``report`` for how rows become files).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

import lightning_core as lc

from ...runtime.arrays import to_numpy
from ..harness import NotMeasured, Sample, Timing, measure
from ..quick import REL_TOL, rel_error
from ..summary import COMPARISONS
from .ceilings import Ceilings, Floor, Work, ceilings
from .peers import TorchFn, TorchPeer, torch_columns, torch_peer
from .timers import cupy_event_timer

__all__ = ["Case", "Checker", "Context", "PRECISION", "add_arguments", "progress", "run_suite",
           "ratio", "selected", "device_inputs", "work", "synced", "captured",
           "captured_oneshot"]

PRECISION = "fp32"
Inputs = tuple[np.ndarray, ...]
# (inputs, device) -> a function that runs one call: the three Lightning Core sides.
Factory = Callable[[tuple[Any, ...], str], Callable[[], Any]]
# Host NumPy is not timed above this much work: beyond it a call takes tens of ms to seconds on
# a few cores, and timing it would cost more than the rest of the case.
NUMPY_MAX_FLOPS = 2e9


@dataclass(frozen=True)
class Case:
    """One case: its inputs, its reference, and how each side computes it."""

    bench: str
    shape: str
    shapes: tuple[tuple[int, ...], ...]
    reference: Callable[..., np.ndarray]  # float64 inputs -> float64 result
    oneshot: Factory  # host inputs; the call returns a host array
    resident: Factory  # inputs in device memory (host on the cpu); the call waits
    work: Work
    lc_path: str  # what the Lightning Core columns time, in words
    torch_fn: TorchFn | None = None
    numpy_fn: Callable[..., np.ndarray] | None = None
    kernel: Factory | None = None  # one call on device inputs, no sync (event-timed)
    scales: tuple[float, ...] = ()  # per-input standard deviation (default 1)
    size: int | None = None  # the swept size, for scaling curves
    sweep: str = ""  # what the size counts (the x axis of the scaling plot)

    @property
    def ident(self) -> str:
        return f"{self.bench}/{self.shape}"

    def inputs(self, rng: np.random.Generator) -> Inputs:
        scales = self.scales or (1.0,) * len(self.shapes)
        return tuple((rng.standard_normal(s, dtype=np.float32) * np.float32(k))
                     for s, k in zip(self.shapes, scales, strict=True))


class Checker:
    """Checks one side of a case against the float64 reference, then times it."""

    def __init__(self, ident: str, ref: np.ndarray, timing: dict[str, Any]) -> None:
        self.ident = ident
        self.ref = ref
        self.timing = timing
        self.failures: list[str] = []
        self.max_err = 0.0

    def error(self, got: Any) -> float:
        """Max-norm relative error of ``got`` (reshaped when only the layout differs)."""
        got = np.asarray(got)
        if got.size == self.ref.size:
            got = got.reshape(self.ref.shape)
        return rel_error(got, self.ref)

    def time(self, label: str, fn: Callable[[], Any], to_host: Callable[[Any], Any], *,
             sync: Callable[[], Any] | None = None,
             timer: Callable[..., Sample] | None = None, ours: bool = True) -> Timing:
        """Check ``fn()`` then time it (``timer`` or sync + host clock); failures are data."""
        try:
            err = self.error(to_host(fn()))
            if not err <= REL_TOL:
                return self.fail(label, f"wrong result: max relative error {err:.3g} > "
                                        f"{REL_TOL}")
            self.max_err = max(self.max_err, err)
            if timer is not None:
                return timer(fn, **self.timing)
            return measure(fn, sync=sync, **self.timing)
        except Exception as exc:  # noqa: BLE001 - a side that raises is a result, not a crash
            return self.fail(label, f"raised {type(exc).__name__}: {exc}", counts=ours)

    def fail(self, label: str, reason: str, *, counts: bool = True) -> NotMeasured:
        """Record why a side has no timing; ``counts``: it fails the row (ours, or a wrong
        peer)."""
        print(f"[bench] {self.ident}: {label}: {reason}", file=sys.stderr)
        if counts:
            self.failures.append(f"{label}: {reason}")
        return NotMeasured(reason)


@dataclass
class Context:
    """Everything a suite run shares: device, seed, timing budget, peer, ceilings."""

    suite: str
    device: str
    seed: int
    timing: dict[str, Any]
    peer: TorchPeer | NotMeasured
    ceil: Ceilings
    compile_: bool = False
    kernel: bool = False  # measure device time (kernel suites only)

    @classmethod
    def from_args(cls, args: argparse.Namespace, suite: str, *, kernel: bool) -> Context:
        timing = {"warmup": args.warmup, "iters": args.iters, "min_time_s": args.min_time_s,
                  "max_time_s": args.max_time_s}
        return cls(suite, args.device, args.seed, timing, torch_peer(args.device),
                   ceilings(args.device, getattr(args, "ceilings", "measure")),
                   compile_=getattr(args, "compile", False), kernel=kernel)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the comparison suites (shared with ``lc bench all``)."""
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile of each case (slow: compiles per case)")
    parser.add_argument("--ceilings", choices=("measure", "perf-md"), default="measure",
                        help="where the floors' peak rates come from: measured in this run, or "
                             "the H200 table of PERF.md")


def ratio(num: Timing, den: Timing) -> float:
    """``num / den`` of two medians (NaN unless both were measured)."""
    if isinstance(num, Sample) and isinstance(den, Sample) and den.median_ns > 0:
        return num.median_ns / den.median_ns
    return float("nan")


def device_inputs(x: Inputs, device: str) -> tuple[Any, ...]:
    """The inputs in the device's memory (CuPy arrays on cuda, the host arrays on the cpu)."""
    if device != "cuda":
        return x
    import cupy  # noqa: PLC0415 - present whenever the cuda backend is

    return tuple(cupy.asarray(a) for a in x)


def _lc_side(checker: Checker, label: str, factory: Factory, x: tuple[Any, ...], device: str,
             *, timer: Callable[..., Sample] | None = None) -> Timing:
    try:
        call = factory(x, device)
    except Exception as exc:  # noqa: BLE001 - failing to build a session fails the row
        return checker.fail(label, f"raised {type(exc).__name__}: {exc}")
    return checker.time(label, call, to_numpy, timer=timer)


def _numpy_side(case: Case, checker: Checker, x: Inputs) -> Timing:
    if case.numpy_fn is None:
        return NotMeasured("no host NumPy counterpart")
    if case.work.flops > NUMPY_MAX_FLOPS:
        return NotMeasured(f"host NumPy not timed above {NUMPY_MAX_FLOPS:.0e} FLOPs (budget)")
    fn = case.numpy_fn
    return checker.time("numpy", lambda: fn(*x), np.asarray, ours=False)


def _ratios(cols: dict[str, Timing]) -> dict[str, float]:
    return {name: ratio(cols.get(num), cols.get(den)) for name, num, den, _ in COMPARISONS
            if num is not None and num in cols}


def run_case(case: Case, index: int, ctx: Context) -> dict[str, Any]:
    """Check and time every side of ``case``; return its row."""
    x = case.inputs(np.random.default_rng([ctx.seed, index]))
    ref = case.reference(*(a.astype(np.float64) for a in x))
    checker = Checker(case.ident, ref, ctx.timing)
    cols: dict[str, Timing] = {}
    cols["lc_oneshot"] = _lc_side(checker, "lc_oneshot", case.oneshot, x, ctx.device)
    dx = device_inputs(x, ctx.device)
    cols["lc_resident"] = _lc_side(checker, "lc_resident", case.resident, dx, ctx.device)
    if not ctx.kernel or case.kernel is None:
        cols["lc_kernel"] = NotMeasured("device time is measured in the kernel suites")
    elif ctx.device != "cuda":
        cols["lc_kernel"] = NotMeasured("needs a CUDA device")
    else:
        cols["lc_kernel"] = _lc_side(checker, "lc_kernel", case.kernel, dx, ctx.device,
                                     timer=cupy_event_timer)
    extra: dict[str, Any] = {}
    cols.update(torch_columns(ctx.peer, case.torch_fn, x, checker, kernel=ctx.kernel,
                              compile_=ctx.compile_, extra=extra))
    cols["numpy"] = _numpy_side(case, checker, x)
    floor = Floor.of(case.work, ctx.ceil)
    size = {"size": case.size, "sweep": case.sweep} if case.size is not None else {}
    return {
        "suite": ctx.suite, "bench": case.bench, "shape": case.shape, **size,
        "device": ctx.device, "precision": PRECISION, "torch_tf32": _tf32(ctx.peer),
        "status": "FAILED" if checker.failures else "ok", **cols, **_ratios(cols),
        "floor_kernel_ms": floor.kernel_ms, "floor_resident_ms": floor.resident_ms,
        "floor_oneshot_ms": floor.oneshot_ms, "floor_bound": floor.bound,
        "floor_source": ctx.ceil.source,
        "lc_resident_over_floor": _over(cols["lc_resident"], floor.resident_ms),
        "flops": case.work.flops, "device_bytes": case.work.device_bytes, **extra,
        "max_rel_err": checker.max_err, "lc_path": case.lc_path,
    }


def _tf32(peer: TorchPeer | NotMeasured) -> str:
    return "n/a (no torch)" if isinstance(peer, NotMeasured) else peer.tf32()


def _over(timing: Timing, floor_ms: float) -> float:
    if isinstance(timing, Sample) and floor_ms > 0:
        return timing.median_ms / floor_ms
    return float("nan")


def selected(cases: Sequence[Any], filters: Sequence[str] | None) -> list[tuple[int, Any]]:
    """(index in the full list, case) of the cases whose ``ident`` contains any filter."""
    return [(i, c) for i, c in enumerate(cases)
            if not filters or any(f in c.ident for f in filters)]


@contextmanager
def progress(label: str, total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr (rich), or one plain line per case without rich."""
    try:
        from rich.console import Console  # noqa: PLC0415 - optional
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        state = {"done": 0}

        def plain(text: str) -> None:
            state["done"] += 1
            print(f"[bench {label}] {state['done']}/{total} {text}", file=sys.stderr, flush=True)

        yield plain
        return
    bar = Progress(TextColumn(f"[bold]{label}[/bold]"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.description}"),
                   console=Console(stderr=True))
    with bar:
        task = bar.add_task("", total=total)

        def advance(text: str) -> None:
            bar.update(task, advance=1, description=text)

        yield advance


def run_suite(args: argparse.Namespace, suite: str, cases: Sequence[Case], *,
              kernel: bool = False) -> list[dict[str, Any]]:
    """Run the selected ``cases`` on ``args.device`` and return their rows."""
    chosen = selected(cases, args.cases)
    if not chosen:
        return []
    ctx = Context.from_args(args, suite, kernel=kernel)
    rows = []
    with lc.precision(PRECISION), progress(suite, len(chosen)) as advance:
        for index, case in chosen:
            rows.append(run_case(case, index, ctx))
            advance(case.ident)
    return rows


# ---- helpers the suites build their cases from -------------------------------------------

F32 = 4  # bytes per element


def work(flops: float, inputs: Sequence[tuple[int, ...]], out: tuple[int, ...]) -> Work:
    """The least work of a case: its FLOPs, each input read and the output written once."""
    in_bytes = F32 * sum(int(np.prod(s)) for s in inputs)
    out_bytes = F32 * int(np.prod(out))
    return Work(flops, in_bytes + out_bytes, in_bytes, out_bytes)


def synced(device: str, launch: Callable[[], Any], result: Callable[[], Any]
           ) -> Callable[[], Any]:
    """A call that launches, waits for the device and returns the result."""

    def call() -> Any:
        launch()
        lc.synchronize(device)
        return result()

    return call


def captured(fn: Callable[..., Any], x: tuple[Any, ...], device: str) -> Callable[[], Any]:
    """``fn`` captured once on ``x`` (read where they are), replayed with a sync per call."""
    session = lc.capture(fn, *x, device=device, inputs="address")
    return lambda: session(*x)


def captured_oneshot(fn: Callable[..., Any], x: tuple[Any, ...], device: str
                     ) -> Callable[[], Any]:
    """NumPy in, NumPy out through a capture: inputs copied in, the chain run, result out."""
    session = lc.capture(fn, *x, device=device)
    return lambda: to_numpy(session(*x))
