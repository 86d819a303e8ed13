"""Session executor of the CPU backend: replays the recorded step by calling it again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import SessionMismatchError
from ...runtime.arrays import is_device_array
from ...runtime.backend import Impl

__all__ = ["EagerExecutor"]


class EagerExecutor:
    """Same API as the CUDA graph executor; a replay is a plain call of each step."""

    xp = np
    device = "cpu"
    graphs = False

    def __init__(self) -> None:
        self._steps: dict[Any, Callable[[], None]] = {}

    @property
    def variant_count(self) -> int:
        return len(self._steps)

    def alloc(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def upload(self, op: str, name: str, src: Any, buf: np.ndarray) -> int:
        if is_device_array(src):
            raise SessionMismatchError(f"[{op}] {name} is a device array but the session runs "
                                       "on the cpu")
        np.copyto(buf, np.asarray(src).reshape(buf.shape), casting="no")
        return 0

    def download(self, buf: np.ndarray, out: Any) -> int:
        np.copyto(out.reshape(buf.shape), buf)
        return 0

    def call_impl(self, impl: Impl, inputs: tuple[Any, ...], out: Any, precision: str,
                  params: dict[str, Any]) -> None:
        if out.size:
            impl.fn(*inputs, out=out, **params)

    def bind(self, key: Any, step: Callable[[], None]) -> None:
        self._steps[key] = step

    def drop(self, key: Any) -> None:
        """Forget a recorded step."""
        self._steps.pop(key, None)

    def has(self, key: Any) -> bool:
        return key in self._steps

    def replay(self, key: Any, repeat: int = 1) -> None:
        step = self._steps[key]
        for _ in range(repeat):
            step()

    def sync(self) -> None:
        """Nothing to wait for on the CPU."""

    def follow_caller(self) -> None:
        """Nothing to order on the CPU."""

    def hand_to_caller(self) -> None:
        """Nothing to order on the CPU."""

    def launch_on_caller(self, key: Any) -> bool:
        """No graphs on the CPU: replays take the session's own road."""
        return False

    def sync_caller(self) -> None:
        """Nothing to wait for on the CPU."""

    def run_eager(self, fn: Callable[[], Any]) -> Any:
        return fn()
