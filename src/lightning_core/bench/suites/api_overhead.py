"""API-overhead suite: the seed's direct calls against the same work through ``lc.api``.

Cases (fp32, the seed's ``api_overhead_bench``): attention (seq, head_dim) = (256,64),
(512,64) on flat inputs, ``lc.lightning_attention`` vs ``lc.api.attention``; conv + bias +
ReLU (1,3,32,32,16) and (2,3,32,32,16), ``lc.lightning_conv_relu_nchw`` vs
``lc.api.conv_relu_nchw``; the conv -> attention block with attention (48,48) and (96,48),
``lc.lightning_conv_attention_torchstrong_nchw`` vs ``lc.api.conv_attention_torchstrong_nchw``
(graph mode). Each pair runs one-shot (NumPy in/out) and, on CUDA, on device-resident inputs
with a sync after each call. PyTorch is not a party here: the ratio is lc.api ÷ direct, so
1.00x means the clean API adds nothing measurable. The suites' shared options (``--compile``,
``--ceilings``) are accepted so that one command line serves every suite; they change nothing
here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import lightning_core as lc

from ...runtime.arrays import to_numpy
from ..harness import NotMeasured, Timing
from ..quick import attention_np, conv_relu_np
from .common import PRECISION, Checker, add_arguments, device_inputs, progress, ratio, selected
from .pipeline import conv_attn

__all__ = ["DESCRIPTION", "RESULT_NAME", "TABLE_COLUMNS", "Pair", "add_arguments", "cases",
           "run"]

DESCRIPTION = "direct calls vs the lc.api layer on the same work (seed api_overhead cases)"
RESULT_NAME = "api_overhead_bench"
TABLE_COLUMNS = ("bench", "shape", "direct_oneshot_ms", "api_oneshot_ms",
                 "api_over_direct_oneshot", "direct_resident_ms", "api_resident_ms",
                 "api_over_direct_resident", "status")

Call = Callable[[tuple[Any, ...], str], Any]


@dataclass(frozen=True)
class Pair:
    """One case: the same work through the direct call and through ``lc.api``."""

    bench: str
    shape: str
    shapes: tuple[tuple[int, ...], ...]
    reference: Callable[..., np.ndarray]
    direct: Call
    api: Call
    path: str

    @property
    def ident(self) -> str:
        return f"{self.bench}/{self.shape}"


def _attention(seq: int, dim: int) -> Pair:
    flat = (seq * dim,)

    def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        return attention_np(*(a.reshape(seq, dim) for a in (q, k, v))).reshape(-1)

    return Pair("engine_direct_vs_python_api_attention", f"seq={seq},head_dim={dim}",
                (flat,) * 3, reference,
                lambda x, dev: lc.lightning_attention(x[0], x[1], x[2], seq, dim, False, dev),
                lambda x, dev: lc.api.attention(x[0], x[1], x[2], seq, dim, False, dev),
                "lc.lightning_attention vs lc.api.attention (flat inputs)")


def _conv(n: int, c: int, h: int, w: int, oc: int) -> Pair:
    return Pair("engine_direct_vs_python_api_conv",
                f"batch={n},in_ch={c},h={h},w={w},out_ch={oc},k=3",
                ((n, c, h, w), (oc, c, 3, 3), (oc,)), conv_relu_np,
                lambda x, dev: lc.lightning_conv_relu_nchw(x[0], x[1], x[2], 1, 1, 1, 1, dev),
                lambda x, dev: lc.api.conv_relu_nchw(x[0], x[1], x[2], 1, 1, 1, 1, dev),
                "lc.lightning_conv_relu_nchw vs lc.api.conv_relu_nchw")


def _conv_attn(seq: int, dim: int) -> Pair:
    block = conv_attn(seq, dim)

    def call(fn: Callable[..., Any]) -> Call:
        return lambda x, dev: fn(x[0], x[1], x[2], seq, dim, 1, 1, 1, 1, dev,
                                 execution_mode="graph")

    return Pair("engine_direct_vs_python_api_conv_attn", block.shape, block.shapes,
                block.reference, call(lc.lightning_conv_attention_torchstrong_nchw),
                call(lc.api.conv_attention_torchstrong_nchw),
                "lightning_conv_attention_torchstrong_nchw vs lc.api (graph mode)")


def cases() -> list[Pair]:
    """Attention, conv, conv -> attention pairs, in the seed's order."""
    return [_attention(256, 64), _attention(512, 64), _conv(1, 3, 32, 32, 16),
            _conv(2, 3, 32, 32, 16), _conv_attn(48, 48), _conv_attn(96, 48)]


def _side(checker: Checker, label: str, fn: Call, x: tuple[Any, ...], device: str,
          sync: bool) -> Timing:
    def call() -> Any:
        out = fn(x, device)
        if sync:
            lc.synchronize(device)
        return out

    return checker.time(label, call, to_numpy)


def run_pair(pair: Pair, index: int, args: argparse.Namespace,
             timing: dict[str, Any]) -> dict[str, Any]:
    """Check and time both entry points of ``pair``; return its row."""
    device = args.device
    rng = np.random.default_rng([args.seed, index])
    x = tuple(rng.standard_normal(s, dtype=np.float32) for s in pair.shapes)
    checker = Checker(pair.ident, pair.reference(*(a.astype(np.float64) for a in x)), timing)
    cols: dict[str, Timing] = {
        "direct_oneshot": _side(checker, "direct_oneshot", pair.direct, x, device, False),
        "api_oneshot": _side(checker, "api_oneshot", pair.api, x, device, False),
    }
    if device == "cuda":
        dx = device_inputs(x, device)
        cols["direct_resident"] = _side(checker, "direct_resident", pair.direct, dx, device,
                                        True)
        cols["api_resident"] = _side(checker, "api_resident", pair.api, dx, device, True)
    else:
        cols["direct_resident"] = cols["api_resident"] = NotMeasured(
            f"inputs cannot be device-resident on {device}")
    return {
        "suite": "api-overhead", "bench": pair.bench, "shape": pair.shape, "device": device,
        "precision": PRECISION, "status": "FAILED" if checker.failures else "ok", **cols,
        "api_over_direct_oneshot": ratio(cols["api_oneshot"], cols["direct_oneshot"]),
        "api_over_direct_resident": ratio(cols["api_resident"], cols["direct_resident"]),
        "max_rel_err": checker.max_err, "lc_path": pair.path,
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the selected pairs on ``args.device``."""
    chosen = selected(cases(), args.cases)
    timing = {"warmup": args.warmup, "iters": args.iters, "min_time_s": args.min_time_s,
              "max_time_s": args.max_time_s}
    rows = []
    with lc.precision(PRECISION), progress("api-overhead", len(chosen)) as advance:
        for index, pair in chosen:
            rows.append(run_pair(pair, index, args, timing))
            advance(pair.ident)
    return rows
