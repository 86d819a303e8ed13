"""Lightning Core: fast tensor operators with explicit execution policy.

``import lightning_core as lc``. This module re-exports the seed-compatible flat API;
clean keyword-friendly names live in ``lc.api``.
"""

from __future__ import annotations

from . import api
from . import backends as _backends  # noqa: F401  (registers the backends)
from ._version import __version__
from .errors import (
    AliasingError,
    BackendError,
    CompileError,
    ConfigError,
    DeviceError,
    DeviceOutOfMemoryError,
    DeviceUnavailableError,
    DTypeError,
    InvalidArgumentError,
    LCError,
    NotSupportedError,
    OutBufferError,
    PolicyError,
    SessionMismatchError,
    ShapeError,
)
from .ops.activations import *  # noqa: F403
from .ops.attention import *  # noqa: F403
from .ops.conv import *  # noqa: F403
from .ops.elementwise import *  # noqa: F403
from .ops.embedding import *  # noqa: F403
from .ops.linear import *  # noqa: F403
from .ops.matmul import (
    lightning_matmul,
    lightning_matmul_into,
    matmul,
    matmul2d,
    matmul2d_into,
    matmul_np,
    matmul_np_into,
    matmul_np_into_with_policy,
    matmul_np_with_policy,
    matmul_reset_tuning,
    matmul_with_policy,
)
from .ops.norm import *  # noqa: F403
from .ops.softmax import *  # noqa: F403
from .runtime.api_runtime import *  # noqa: F403
from .runtime.device import FallbackWarning
from .runtime.policy import (
    AttentionIoPolicy,
    Conv2dIoPolicy,
    MatMulIoPolicy,
    MatrixElementwiseIoPolicy,
    VectorAddIoPolicy,
    precision,
)
from .runtime.tensor import *  # noqa: F403
from .sessions import *  # noqa: F403
from .tuning import attention_reset_tuning, tuning_report
from .tuning import install as _install_tuning

_install_tuning()
