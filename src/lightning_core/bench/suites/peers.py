"""PyTorch as the peer: the same work at the same precision, run every way torch offers.

Columns (``TORCH_COLUMNS``): eager with a sync after each call, eager pipelined (many calls,
one sync), a CUDA graph of the same call replayed with a sync, ``torch.compile`` (only with
``--compile``), device time by CUDA events with L2 flushed (kernel suites), and one-shot
(NumPy in, ``torch.from_numpy().to(device)``, op, ``.cpu().numpy()`` out). fp32 means true
fp32: TF32 is switched off for matmul and cuDNN before anything runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..harness import NotMeasured, Sample, Timing
from .timers import pipeline_batch, pipelined, torch_event_timer

__all__ = ["TORCH_COLUMNS", "TorchPeer", "torch_peer", "torch_columns"]

TORCH_COLUMNS = ("torch_eager", "torch_pipelined", "torch_graph", "torch_compile",
                 "torch_kernel", "torch_oneshot")

TorchFn = Callable[[Any, tuple[Any, ...]], Any]


class TorchPeer:
    """PyTorch on one device ("cuda" or "cpu"), set up for true fp32."""

    def __init__(self, torch: Any, device: str) -> None:
        self.torch = torch
        self.device = device
        self.cuda = device == "cuda"
        self.sync: Callable[[], Any] | None = torch.cuda.synchronize if self.cuda else None

    def tf32(self) -> str:
        """Whether torch may use TF32 here, read back from torch's own switches."""
        if not self.cuda:
            return "n/a (cpu)"
        backends = self.torch.backends
        return "on" if backends.cuda.matmul.allow_tf32 or backends.cudnn.allow_tf32 else "off"

    def tensors(self, hosts: tuple[np.ndarray, ...]) -> tuple[Any, ...]:
        return tuple(self.torch.from_numpy(h).to(self.device) for h in hosts)

    @staticmethod
    def to_host(t: Any) -> np.ndarray:
        return t.detach().cpu().numpy()

    def graph(self, call: Callable[[], Any]) -> Callable[[], Any]:
        """Capture ``call`` as a CUDA graph; the returned function replays it (no sync)."""
        torch = self.torch
        # Warm up on a side stream (allocator and library handles), as torch's docs require.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                call()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = call()

        def replay() -> Any:
            graph.replay()
            return static_out

        return replay

    def compiled(self, torch_fn: TorchFn, tx: tuple[Any, ...]) -> tuple[Callable[[], Any], float]:
        """``torch.compile`` of the case and the seconds its first call (the compile) took."""
        torch = self.torch
        # Every case compiles the same lambda: without a reset, dynamo would stop compiling
        # after its recompile limit and silently run later cases eagerly.
        torch._dynamo.reset()
        fn = torch.compile(lambda *t: torch_fn(torch, t))
        t0 = time.perf_counter()
        fn(*tx)
        if self.sync is not None:
            self.sync()
        return (lambda: fn(*tx)), time.perf_counter() - t0


def torch_peer(device: str) -> TorchPeer | NotMeasured:
    """The peer for ``device``, or why there is none."""
    try:
        import torch  # noqa: PLC0415 - optional peer
    except ImportError as exc:
        return NotMeasured(f"torch is not importable ({exc})")
    if device == "cuda":
        if not torch.cuda.is_available():
            return NotMeasured("torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return TorchPeer(torch, device)


def _graph_column(peer: TorchPeer, call: Callable[[], Any], checker: Any) -> Timing:
    try:
        replay = peer.graph(call)
    except Exception as exc:  # noqa: BLE001 - a capture torch refuses is a fact of the peer
        return NotMeasured(f"torch could not capture a CUDA graph ({type(exc).__name__}: {exc})")
    return checker.time("torch_graph", replay, peer.to_host, sync=peer.sync, ours=False)


def _compile_column(peer: TorchPeer, torch_fn: TorchFn, tx: tuple[Any, ...], checker: Any,
                    extra: dict[str, Any]) -> Timing:
    try:
        call, seconds = peer.compiled(torch_fn, tx)
    except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler for inductor on the cpu
        return NotMeasured(f"torch.compile failed ({type(exc).__name__}: {exc})")
    extra["torch_compile_s"] = seconds
    return checker.time("torch_compile", call, peer.to_host, sync=peer.sync, ours=False)


def _guard(timer: Callable[[], Sample]) -> Timing:
    """A timing of an already checked call, or why torch failed to run it again."""
    try:
        return timer()
    except Exception as exc:  # noqa: BLE001 - e.g. out of memory for the L2 flush buffer
        return NotMeasured(f"torch raised {type(exc).__name__}: {exc}")


def torch_columns(peer: TorchPeer | NotMeasured, torch_fn: TorchFn | None,
                  x: tuple[np.ndarray, ...], checker: Any, *, kernel: bool, compile_: bool,
                  extra: dict[str, Any]) -> dict[str, Timing]:
    """Every torch column of one case (``extra`` receives ``torch_compile_s``)."""
    if torch_fn is None:
        peer = NotMeasured("torch has no counterpart of this case")
    if isinstance(peer, NotMeasured):
        return dict.fromkeys(TORCH_COLUMNS, peer)
    torch, sync = peer.torch, peer.sync
    try:
        tx = peer.tensors(x)
    except Exception as exc:  # noqa: BLE001 - e.g. the device is out of memory
        return dict.fromkeys(TORCH_COLUMNS, NotMeasured(
            f"torch could not take the inputs ({type(exc).__name__}: {exc})"))

    def call() -> Any:
        return torch_fn(torch, tx)

    cols: dict[str, Timing] = {}
    timing = checker.timing
    cols["torch_eager"] = eager = checker.time("torch_eager", call, peer.to_host, sync=sync,
                                               ours=False)
    if not peer.cuda:
        cols["torch_pipelined"] = NotMeasured("the cpu finishes each call before returning: "
                                              "pipelined equals sync each call")
        cols["torch_graph"] = NotMeasured("torch CUDA graphs need a CUDA device")
    elif isinstance(eager, Sample):
        batch = pipeline_batch(eager.median_ns)
        cols["torch_pipelined"] = _guard(lambda: pipelined(call, sync, batch=batch, **timing))
        cols["torch_graph"] = _graph_column(peer, call, checker)
    else:
        cols["torch_pipelined"] = cols["torch_graph"] = NotMeasured("torch eager failed")
    if compile_:
        cols["torch_compile"] = _compile_column(peer, torch_fn, tx, checker, extra)
    else:
        cols["torch_compile"] = NotMeasured("torch.compile is opt-in (--compile)")
    if not kernel:
        cols["torch_kernel"] = NotMeasured("device time is measured in the kernel suites")
    elif not peer.cuda:
        cols["torch_kernel"] = NotMeasured("needs a CUDA device")
    elif not isinstance(eager, Sample):
        cols["torch_kernel"] = NotMeasured("torch eager failed")
    else:
        cols["torch_kernel"] = _guard(lambda: torch_event_timer(torch, call, **timing))
    cols["torch_oneshot"] = checker.time(
        "torch_oneshot", lambda: peer.to_host(torch_fn(torch, peer.tensors(x))), np.asarray,
        ours=False)
    return cols
