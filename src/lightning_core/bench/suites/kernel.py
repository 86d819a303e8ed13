"""Kernel suite: the seed's attention and conv + ReLU kernels, and PERF.md's larger attention.

Cases (fp32): attention (seq, head_dim) = (8,16), (8,32), (12,12), (96,48), (256,64),
(512,64), (1024,64), (1536,64), non-causal; conv2d + bias + ReLU, k3 s1 p1, (N,C,H,W,OC) =
(1,3,16,16,16), (1,3,24,24,16), (2,3,16,16,16), (1,3,28,28,16), (1,3,32,32,16),
(2,3,32,32,16), (16,3,64,64,16), (16,16,32,32,32). Besides the per-call columns, each case's
device time is measured with CUDA events and the L2 flushed, on both sides.

The conv case is the whole fused op on both sides (conv + bias + ReLU against
``relu(conv2d(x, w, b))``), where the seed timed conv alone against torch's conv + ReLU.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

import lightning_core as lc

from ..quick import attention_np, conv_relu_np
from .common import Case, add_arguments, run_suite, work

__all__ = ["DESCRIPTION", "RESULT_NAME", "TABLE_COLUMNS", "add_arguments", "attention",
           "conv_relu", "cases", "run"]

DESCRIPTION = "attention and conv+ReLU kernels (seed + PERF.md cases) vs PyTorch, NumPy, floor"
RESULT_NAME = "kernel_bench"
TABLE_COLUMNS = ("bench", "shape", "lc_resident_ms", "lc_kernel_ms", "torch_eager_ms",
                 "torch_graph_ms", "torch_kernel_ms", "speedup_eager", "speedup_kernel",
                 "lc_oneshot_ms", "torch_oneshot_ms", "status")

ATTENTION = ((8, 16), (8, 32), (12, 12), (96, 48), (256, 64), (512, 64), (1024, 64), (1536, 64))
CONV = ((1, 3, 16, 16, 16), (1, 3, 24, 24, 16), (2, 3, 16, 16, 16), (1, 3, 28, 28, 16),
        (1, 3, 32, 32, 16), (2, 3, 32, 32, 16), (16, 3, 64, 64, 16), (16, 16, 32, 32, 32))

# Steady state of a resident attention session: nothing uploaded or downloaded, then a sync.
_ATTN_FIRST = lc.AttentionIoPolicy(download_out=False, download_v=False)
_ATTN_STEADY = lc.AttentionIoPolicy(upload_q=False, upload_k=False, upload_v=False,
                                    download_out=False, download_v=False)


def _attention_oneshot(x: tuple[Any, ...], device: str) -> Callable[[], Any]:
    return lambda: lc.attention2d(x[0], x[1], x[2], False, device)


def attention(seq: int, dim: int, *, size: int | None = None, sweep: str = "") -> Case:
    """Single-head, non-causal ``softmax(q kᵀ/√d) v`` on ``[seq, dim]`` inputs."""

    def resident(x: tuple[Any, ...], device: str) -> Callable[[], Any]:
        q, k, v = x
        session = lc.AttentionSession(seq, dim, False, device)
        out = np.empty((seq, dim), np.float32)  # not written: the result stays resident
        session.forward_with_policy_into(q, k, v, out, _ATTN_FIRST)

        def call() -> Any:
            session.forward_with_policy_into(q, k, v, out, _ATTN_STEADY)
            return session.output

        return call

    def torch_fn(torch: Any, t: tuple[Any, ...]) -> Any:
        # SDPA takes [batch, heads, seq, dim]; the seed handed it [1, 1, seq, dim] views too.
        q, k, v = (a.view(1, 1, seq, dim) for a in t)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    shape = (seq, dim)
    return Case(
        "attention", f"seq={seq},head_dim={dim}", (shape,) * 3, attention_np,
        _attention_oneshot, resident, work(4.0 * seq * seq * dim, (shape,) * 3, shape),
        "attention2d; resident: AttentionSession, no upload/download, sync",
        torch_fn=torch_fn, numpy_fn=attention_np, kernel=_attention_oneshot, size=size,
        sweep=sweep)


def _conv_oneshot(x: tuple[Any, ...], device: str) -> Callable[[], Any]:
    return lambda: lc.lightning_conv_relu_nchw(x[0], x[1], x[2], 1, 1, 1, 1, device)


def _conv_torch(torch: Any, t: tuple[Any, ...]) -> Any:
    return torch.relu(torch.nn.functional.conv2d(t[0], t[1], t[2], padding=1))


def _conv_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return lc.conv2d_reference(x, w, b, 1, 1, 1, 1, relu=True)


def conv_relu(n: int, c: int, h: int, w: int, oc: int, k: int = 3) -> Case:
    """conv2d (stride 1, pad 1) + bias + ReLU, NCHW."""
    xs, ws, out = (n, c, h, w), (oc, c, k, k), (n, oc, h + 3 - k, w + 3 - k)

    def resident(x: tuple[Any, ...], device: str) -> Callable[[], Any]:
        session = lc.Conv2dResidentSession(n, c, h, w, oc, k, k, 1, 1, 1, 1, True, device)
        host_out = np.empty(out, np.float32)  # not written by sync_into
        session.start_into(x[0], x[1], x[2], host_out)

        def call() -> Any:
            session.sync_into(x[0], x[1], x[2], host_out)
            return session.output

        return call

    return Case(
        "conv_relu", f"batch={n},in_ch={c},h={h},w={w},out_ch={oc},k={k}", (xs, ws, (oc,)),
        _conv_reference, _conv_oneshot, resident,
        work(2.0 * n * oc * out[2] * out[3] * c * k * k, (xs, ws, (oc,)), out),
        "lightning_conv_relu_nchw; resident: Conv2dResidentSession.sync_into",
        torch_fn=_conv_torch, numpy_fn=conv_relu_np, kernel=_conv_oneshot)


def cases() -> list[Case]:
    """Attention then conv + ReLU, in PERF.md's order."""
    return ([attention(s, d) for s, d in ATTENTION]
            + [conv_relu(*shape) for shape in CONV])


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the selected cases on ``args.device``."""
    return run_suite(args, "kernel", cases(), kernel=True)
