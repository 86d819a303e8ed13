"""Pipeline suite: the seed's chained blocks, each timed whole on both sides.

Cases (fp32):
- ffn_gelu (batch, d_model, d_ff) = (512,768,3072), (1024,768,3072):
  ``linear(gelu_tanh(linear(x, w1, b1)), w2, b2)``;
- ln_proj (batch, d_model, out) = (1024,1024,1024), (2048,1024,1024):
  ``linear(layer_norm(x, g, b), w, bias)``;
- conv_attn: conv (1,3,8,8 -> 16, k3 s1 p1) + ReLU, flattened, tiled to 3·seq·d, sliced into
  q, k, v, attention, with (seq, d) = (48,48), (192,48), (192,8), (96,48).

The seed timed only the last projection of ffn and ln_proj (GELU and LayerNorm ran in NumPy,
untimed); here the whole chain is timed. Lightning Core runs a chain as one ``lc.capture``
(one CUDA graph) resident on device inputs, and one-shot as the same capture fed NumPy arrays;
conv_attn runs ``lightning_conv_attention_torchstrong_nchw(..., execution_mode="graph")``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

import lightning_core as lc

from ..quick import attention_np, conv_relu_np
from .common import Case, add_arguments, captured, captured_oneshot, run_suite, work

__all__ = ["DESCRIPTION", "RESULT_NAME", "TABLE_COLUMNS", "add_arguments", "ffn_gelu",
           "ln_proj", "conv_attn", "cases", "run"]

DESCRIPTION = "ffn (linear+GELU+linear), LayerNorm->proj, conv->attention chains vs PyTorch"
RESULT_NAME = "pipeline_bench"
TABLE_COLUMNS = ("bench", "shape", "lc_resident_ms", "torch_eager_ms", "torch_graph_ms",
                 "speedup_eager", "speedup_graph", "lc_oneshot_ms", "torch_oneshot_ms",
                 "speedup_oneshot", "status")

FFN = ((512, 768, 3072), (1024, 768, 3072))
LN_PROJ = ((1024, 1024, 1024), (2048, 1024, 1024))
CONV_ATTN = ((48, 48), (192, 48), (192, 8), (96, 48))
CONV_INPUT = (1, 3, 8, 8, 16)  # N, C, H, W, OC of the seed's conv -> attention block
EPS = 1e-5


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    c = x.dtype.type(np.sqrt(2.0 / np.pi))
    return x.dtype.type(0.5) * x * (1 + np.tanh(c * (x + x.dtype.type(0.044715) * x ** 3)))


def _ffn_lc(x: Any, w1: Any, b1: Any, w2: Any, b2: Any) -> Any:
    return lc.linear(lc.linear(x, w1, b1, "gelu"), w2, b2)


def _ffn_np(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray,
            b2: np.ndarray) -> np.ndarray:
    return _gelu_tanh(x @ w1 + b1) @ w2 + b2


def _ffn_torch(torch: Any, t: tuple[Any, ...]) -> Any:
    hidden = torch.nn.functional.gelu(torch.addmm(t[2], t[0], t[1]), approximate="tanh")
    return torch.addmm(t[4], hidden, t[3])


def _chain_case(bench: str, shape: str, shapes: tuple[tuple[int, ...], ...],
                fn: Callable[..., Any], numpy_fn: Callable[..., np.ndarray],
                torch_fn: Callable[[Any, tuple[Any, ...]], Any], flops: float,
                out: tuple[int, ...], scales: tuple[float, ...]) -> Case:
    """A chain of lc operators: one capture, resident on device inputs or fed NumPy."""
    return Case(
        bench, shape, shapes, numpy_fn,
        lambda x, device: captured_oneshot(fn, x, device),
        lambda x, device: captured(fn, x, device), work(flops, shapes, out),
        "lc.capture of the chain: one-shot copies NumPy in and out; resident reads device "
        "inputs in place", torch_fn=torch_fn, numpy_fn=numpy_fn, scales=scales)


def ffn_gelu(batch: int, d_model: int, d_ff: int) -> Case:
    """``linear(gelu_tanh(linear(x, w1, b1)), w2, b2)``."""
    shapes = ((batch, d_model), (d_model, d_ff), (d_ff,), (d_ff, d_model), (d_model,))
    return _chain_case("ffn_gelu", f"batch={batch},d_model={d_model},d_ff={d_ff}", shapes,
                       _ffn_lc, _ffn_np, _ffn_torch, 4.0 * batch * d_model * d_ff,
                       (batch, d_model), (1.0, d_model ** -0.5, 1.0, d_ff ** -0.5, 1.0))


def _ln_proj_lc(x: Any, g: Any, b: Any, w: Any, bias: Any) -> Any:
    return lc.linear(lc.layer_norm(x, g, b, EPS), w, bias)


def _ln_proj_np(x: np.ndarray, g: np.ndarray, b: np.ndarray, w: np.ndarray,
                bias: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return (centred / np.sqrt(var + x.dtype.type(EPS)) * g + b) @ w + bias


def _ln_proj_torch(torch: Any, t: tuple[Any, ...]) -> Any:
    normed = torch.nn.functional.layer_norm(t[0], (t[0].shape[-1],), t[1], t[2], EPS)
    return torch.addmm(t[4], normed, t[3])


def ln_proj(batch: int, d_model: int, d_out: int) -> Case:
    """``linear(layer_norm(x, g, b), w, bias)``."""
    shapes = ((batch, d_model), (d_model,), (d_model,), (d_model, d_out), (d_out,))
    return _chain_case("ln_proj", f"batch={batch},d_model={d_model},out={d_out}", shapes,
                       _ln_proj_lc, _ln_proj_np, _ln_proj_torch,
                       2.0 * batch * d_model * d_out + 8.0 * batch * d_model, (batch, d_out),
                       (1.0, 1.0, 1.0, d_model ** -0.5, 1.0))


def _pack(flat: Any, seq: int, dim: int, tile: Callable[[Any, int], Any]) -> list[Any]:
    """Repeat ``flat`` cyclically to 3·seq·dim values and slice q, k, v (the seed's
    packing)."""
    total, sd = 3 * seq * dim, seq * dim
    packed = tile(flat, -(-total // flat.shape[0]))[:total]
    return [packed[i * sd:(i + 1) * sd].reshape(seq, dim) for i in range(3)]


def conv_attn(seq: int, dim: int) -> Case:
    """conv + ReLU -> QKV packing -> attention, the seed's integrated block."""
    n, c, h, w, oc = CONV_INPUT
    shapes = ((n, c, h, w), (oc, c, 3, 3), (oc,))

    def lc_call(x: tuple[Any, ...], device: str) -> Callable[[], Any]:
        return lambda: lc.lightning_conv_attention_torchstrong_nchw(
            x[0], x[1], x[2], seq, dim, 1, 1, 1, 1, device, execution_mode="graph")

    def numpy_fn(x: np.ndarray, wt: np.ndarray, b: np.ndarray) -> np.ndarray:
        q, k, v = _pack(conv_relu_np(x, wt, b).reshape(-1), seq, dim, np.tile)
        return attention_np(q, k, v).reshape(-1)

    def torch_fn(torch: Any, t: tuple[Any, ...]) -> Any:
        conv = torch.nn.functional.conv2d(t[0], t[1], t[2], padding=1)
        q, k, v = _pack(torch.relu(conv).reshape(-1), seq, dim, lambda a, r: a.repeat(r))
        out = torch.nn.functional.scaled_dot_product_attention(
            q.view(1, 1, seq, dim), k.view(1, 1, seq, dim), v.view(1, 1, seq, dim))
        return out.reshape(-1)

    conv_flops = 2.0 * n * oc * h * w * c * 9
    return Case(
        "conv_attn", f"conv(n={n},c={c}->{oc},h={h},w={w},k=3)+attn(seq={seq},d={dim})",
        shapes, numpy_fn, lc_call, lc_call,
        work(conv_flops + 4.0 * seq * seq * dim, shapes, (seq * dim,)),
        "lightning_conv_attention_torchstrong_nchw(execution_mode='graph'): one-shot on NumPy, "
        "resident on device inputs", torch_fn=torch_fn, numpy_fn=numpy_fn)


def cases() -> list[Case]:
    """ffn, ln_proj, conv_attn, in the seed's order."""
    return ([ffn_gelu(*s) for s in FFN] + [ln_proj(*s) for s in LN_PROJ]
            + [conv_attn(s, d) for s, d in CONV_ATTN])


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the selected cases on ``args.device``."""
    return run_suite(args, "pipeline", cases())
