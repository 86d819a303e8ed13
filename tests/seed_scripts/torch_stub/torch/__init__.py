"""A stand-in for PyTorch, put on the path only when the real torch is not installed.

The seed's benchmark scripts (large_gemm_auto_sweep.py, ml_all_bench.py, dl_all_bench.py) say
``import torch`` unconditionally, for their Torch comparison columns. On a machine without
PyTorch, tests/unit/test_seed_scripts.py puts this folder's parent on PYTHONPATH so that the
scripts still run unmodified against lightning_core. It provides exactly what those scripts
touch: ``from_numpy``, ``matmul``, ``Tensor`` with ``+``, ``-``, ``@`` and ``.to("cpu")``,
``backends.mps.is_available()/is_built()`` (both False, so every ``torch_mps_ms`` is NaN),
``mps.synchronize()`` and ``__version__`` (which says it is this stub). "Torch CPU" timings
written under it are NumPy timings; nothing should read them as PyTorch's.
"""

from __future__ import annotations

import types

import numpy as np

__version__ = "0.0.0+lightning-core-seed-script-stub"


def _array(value):
    return value._array if isinstance(value, Tensor) else value


class Tensor:
    """A NumPy array behind the few Tensor operations the seed scripts use."""

    def __init__(self, array):
        self._array = np.asarray(array)

    @property
    def shape(self):
        return self._array.shape

    def numpy(self):
        return self._array

    def to(self, device):
        if str(device) != "cpu":
            raise RuntimeError(f"the torch stub has only the cpu device, not {device!r}")
        return self

    def __add__(self, other):
        return Tensor(self._array + _array(other))

    def __sub__(self, other):
        return Tensor(self._array - _array(other))

    def __matmul__(self, other):
        return Tensor(self._array @ _array(other))


def from_numpy(array):
    return Tensor(array)


def matmul(a, b):
    return Tensor(np.matmul(_array(a), _array(b)))


backends = types.SimpleNamespace(
    mps=types.SimpleNamespace(is_available=lambda: False, is_built=lambda: False))
mps = types.SimpleNamespace(synchronize=lambda: None)
cuda = types.SimpleNamespace(is_available=lambda: False)
