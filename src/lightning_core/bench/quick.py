"""The quick benchmark: the seed's nine quick-bench cases, checked, then timed against peers.

Cases (all fp32): attention2d (seq, head_dim) = (8,16), (96,48), (256,64), non-causal;
conv2d_relu (N,C,H,W,OC,k) = (1,3,16,16,16,3), (1,3,32,32,16,3), (2,3,32,32,16,3), stride 1,
pad 1, with bias and ReLU on every side (the seed timed conv without ReLU against torch with
it); matmul2d 256³, 1024³, 2048³.

Per case: Lightning Core one-shot (NumPy in, NumPy out), Lightning Core resident (CuPy
inputs already on the GPU, result left there, sync each call; cuda only), PyTorch on the same
device (TF32 off) and NumPy on the host. Every result is checked against a float64 NumPy
reference before it is timed; a wrong or failing result marks the row and fails the run.
``torch_over_lc`` compares like with like: resident to torch on cuda, one-shot to torch on cpu.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import lightning_core as lc

from .harness import NotMeasured, Sample, Timing, measure

__all__ = ["DESCRIPTION", "RESULT_NAME", "TABLE_COLUMNS", "Case", "cases", "run"]

DESCRIPTION = "the seed's quick cases (attention, conv+ReLU, matmul) vs PyTorch and NumPy"
RESULT_NAME = "quick_bench"
TABLE_COLUMNS = ("bench", "shape", "device", "lc_oneshot_ms", "lc_resident_ms", "torch_ms",
                 "numpy_ms", "compared", "torch_over_lc", "status")
PRECISION = "fp32"
# Max-norm relative error allowed against the float64 reference. True fp32 stays near 1e-6 on
# these shapes; TF32 (10-bit mantissa) lands near 5e-4, so this bound also catches a peer or
# an implementation that lowered precision behind our back.
REL_TOL = 5e-5

Inputs = tuple[np.ndarray, ...]


def attention_np(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``softmax(q kᵀ / √d) v`` computed in the inputs' dtype."""
    scores = (q @ k.T) * q.dtype.type(1.0 / np.sqrt(q.shape[1]))
    scores -= scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    return scores @ v


def conv_relu_np(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``relu(conv2d(x, w) + b)``, stride 1, pad 1, NCHW, computed in the inputs' dtype."""
    kh, kw = w.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = sliding_window_view(padded, (kh, kw), axis=(2, 3))
    out = np.einsum("nchwij,ocij->nohw", windows, w, optimize=True)
    out += b[None, :, None, None]
    return np.maximum(out, 0, out=out)


def matmul_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in the inputs' dtype."""
    return a @ b


@dataclass(frozen=True)
class Case:
    """One benchmark case: its inputs and how each side computes it."""

    bench: str
    shape: str
    shapes: tuple[tuple[int, ...], ...]
    lc_fn: Callable[[Any, Inputs, str], Any]
    numpy_fn: Callable[..., np.ndarray]
    torch_fn: Callable[[Any, tuple[Any, ...]], Any]
    torch_views: Callable[[Any], Any] | None = None  # reshapes each torch input, if needed

    @property
    def ident(self) -> str:
        return f"{self.bench}/{self.shape}"

    def inputs(self, rng: np.random.Generator) -> Inputs:
        return tuple(rng.standard_normal(s, dtype=np.float32) for s in self.shapes)


def _attention_case(seq: int, dim: int) -> Case:
    # SDPA takes [batch, heads, seq, dim]; the seed handed it [1, 1, seq, dim] views too.
    return Case(
        "attention2d", f"seq={seq},head_dim={dim}", ((seq, dim),) * 3,
        lambda lc, x, dev: lc.attention2d(x[0], x[1], x[2], False, dev),
        attention_np,
        lambda F, t: F.scaled_dot_product_attention(t[0], t[1], t[2], is_causal=False),
        lambda t: t.reshape(1, 1, *t.shape))


def _conv_case(n: int, c: int, h: int, w: int, oc: int, k: int) -> Case:
    return Case(
        "conv2d_relu", f"batch={n},in_ch={c},h={h},w={w},out_ch={oc},k={k}",
        ((n, c, h, w), (oc, c, k, k), (oc,)),
        lambda lc, x, dev: lc.lightning_conv_relu_nchw(x[0], x[1], x[2], 1, 1, 1, 1, dev),
        conv_relu_np,
        lambda F, t: F.relu(F.conv2d(t[0], t[1], t[2], stride=1, padding=1)))


def _matmul_case(m: int, k: int, n: int) -> Case:
    return Case(
        "matmul2d", f"m={m},k={k},n={n}", ((m, k), (k, n)),
        lambda lc, x, dev: lc.matmul2d(x[0], x[1], dev),
        matmul_np,
        lambda F, t: t[0] @ t[1])


def cases() -> list[Case]:
    """The nine cases in the seed's order (attention, conv, matmul)."""
    return ([_attention_case(s, d) for s, d in ((8, 16), (96, 48), (256, 64))]
            + [_conv_case(*shape) for shape in ((1, 3, 16, 16, 16, 3), (1, 3, 32, 32, 16, 3),
                                                (2, 3, 32, 32, 16, 3))]
            + [_matmul_case(s, s, s) for s in (256, 1024, 2048)])


def rel_error(got: Any, ref: np.ndarray) -> float:
    """Max-norm relative error of ``got`` against ``ref`` (inf for NaN or a wrong shape)."""
    got = np.asarray(got, dtype=np.float64)
    if got.shape != ref.shape:
        return float("inf")
    diff = np.abs(got - ref)
    if not np.all(np.isfinite(diff)):
        return float("inf")
    return float(diff.max(initial=0.0) / max(float(np.abs(ref).max(initial=0.0)), 1e-30))


class _Checked:
    """Runs one side of a case: check it against the reference, then time it."""

    def __init__(self, ref: np.ndarray, timing: dict[str, Any]) -> None:
        self.ref = ref
        self.timing = timing
        self.failures: list[str] = []
        self.max_err = 0.0

    def time(self, label: str, fn: Callable[[], Any], to_host: Callable[[Any], Any],
             sync: Callable[[], Any] | None = None) -> Timing:
        try:
            err = rel_error(to_host(fn()), self.ref)
        except Exception as exc:  # noqa: BLE001 - any failure of the side under test is data
            return self._fail(label, f"raised {type(exc).__name__}: {exc}")
        self.max_err = max(self.max_err, err)
        if not err <= REL_TOL:
            return self._fail(label, f"wrong result: max relative error {err:.3g} > {REL_TOL}")
        return measure(fn, sync=sync, **self.timing)

    def _fail(self, label: str, reason: str) -> NotMeasured:
        self.failures.append(f"{label}: {reason}")
        return NotMeasured(reason)


def _torch(device: str) -> tuple[Any, Any, str] | NotMeasured:
    """(torch, torch.nn.functional, torch device) set for true fp32, or why not."""
    from .suites.peers import torch_peer  # noqa: PLC0415 - the one place torch is set up

    peer = torch_peer(device)
    if isinstance(peer, NotMeasured):
        return peer
    return peer.torch, peer.torch.nn.functional, "cuda" if device == "cuda" else "cpu"


def _ratio(num: Timing, den: Timing) -> float:
    if isinstance(num, Sample) and isinstance(den, Sample) and den.median_ns > 0:
        return num.median_ns / den.median_ns
    return float("nan")


def run_case(case: Case, index: int, args: argparse.Namespace,
             peer: tuple[Any, Any, str] | NotMeasured) -> dict[str, Any]:
    """Check and time one case on ``args.device``; return its row."""
    device = args.device
    host = np.random.default_rng([args.seed, index])
    x = case.inputs(host)
    ref = case.numpy_fn(*(a.astype(np.float64) for a in x))
    side = _Checked(ref, {"warmup": args.warmup, "iters": args.iters,
                          "min_time_s": args.min_time_s, "max_time_s": args.max_time_s})
    oneshot = side.time("lc_oneshot", lambda: case.lc_fn(lc, x, device), np.asarray)
    if device == "cuda":
        import cupy  # noqa: PLC0415 - present whenever the cuda backend is

        dx = tuple(cupy.asarray(a) for a in x)
        resident: Timing = side.time("lc_resident", lambda: case.lc_fn(lc, dx, device),
                                     cupy.asnumpy, sync=cupy.cuda.Device().synchronize)
    else:
        resident = NotMeasured(f"inputs cannot be device-resident on {device}")
    if isinstance(peer, NotMeasured):
        torch_t: Timing = peer
    else:
        torch, F, tdev = peer
        tx = tuple(torch.from_numpy(a).to(tdev) for a in x)
        if case.torch_views is not None:
            tx = tuple(case.torch_views(t) for t in tx)
        tsync = torch.cuda.synchronize if tdev == "cuda" else None
        torch_t = side.time("torch", lambda: case.torch_fn(F, tx),
                            lambda t: t.cpu().numpy().reshape(ref.shape), sync=tsync)
    numpy_t = side.time("numpy", lambda: case.numpy_fn(*x), np.asarray)
    compared, lc_t = ("resident", resident) if device == "cuda" else ("oneshot", oneshot)
    for failure in side.failures:
        print(f"[bench quick] {case.ident} on {device}: {failure}", file=sys.stderr)
    return {
        "suite": "quick", "bench": case.bench, "shape": case.shape, "device": device,
        "precision": PRECISION, "status": "FAILED" if side.failures else "ok",
        "compared": compared, "torch_over_lc": _ratio(torch_t, lc_t),
        "numpy_over_lc": _ratio(numpy_t, oneshot),
        "lc_oneshot": oneshot, "lc_resident": resident, "torch": torch_t, "numpy": numpy_t,
        "max_rel_err": side.max_err,
    }


def selected(filters: list[str] | None) -> list[Case]:
    """The cases whose ``bench/shape`` contains any of ``filters`` (all when none)."""
    every = cases()
    if not filters:
        return every
    return [c for c in every if any(f in c.ident for f in filters)]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the selected cases on ``args.device`` (already resolved to cpu or cuda)."""
    peer = _torch(args.device)
    wanted = {c.ident for c in selected(args.cases)}
    rows = []
    with lc.precision(PRECISION):
        # Each case keeps its index in the full list, so its inputs do not depend on the filter.
        for index, case in enumerate(cases()):
            if case.ident in wanted:
                print(f"[bench quick] {case.ident} ...", file=sys.stderr, flush=True)
                rows.append(run_case(case, index, args, peer))
    return rows
