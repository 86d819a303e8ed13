"""Resident sessions (upload once, replay many), the general capture API, and the integrated
conv → attention path. On CUDA replays are CUDA graphs; on the CPU they are plain calls."""

from .attention import AttentionSession, attention2d_session
from .capture import CapturedFunction, capture
from .conv import Conv2dMetalResidentSession, Conv2dResidentSession
from .elementwise import (
    MatrixElemwiseMetalResidentSession,
    MatrixElemwiseResidentSession,
    VectorAddMetalResidentSession,
    VectorAddResidentSession,
)
from .integrated import (
    clear_integrated_attention_session_cache,
    conv_attention_reference,
    lightning_conv_attention_torchstrong_nchw,
    lightning_conv_attention_torchstrong_nchw_ab_report,
    lightning_conv_attention_torchstrong_nchw_into,
)
from .matmul import MatMulMetalResidentSession, MatMulResidentSession, matmul2d_resident_session

__all__ = [
    "AttentionSession",
    "attention2d_session",
    "CapturedFunction",
    "capture",
    "Conv2dResidentSession",
    "Conv2dMetalResidentSession",
    "MatrixElemwiseResidentSession",
    "MatrixElemwiseMetalResidentSession",
    "VectorAddResidentSession",
    "VectorAddMetalResidentSession",
    "clear_integrated_attention_session_cache",
    "conv_attention_reference",
    "lightning_conv_attention_torchstrong_nchw",
    "lightning_conv_attention_torchstrong_nchw_ab_report",
    "lightning_conv_attention_torchstrong_nchw_into",
    "MatMulResidentSession",
    "MatMulMetalResidentSession",
    "matmul2d_resident_session",
]
