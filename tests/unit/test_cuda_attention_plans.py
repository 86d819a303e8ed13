"""Launch-plan arithmetic of the CUDA attention kernels, checked without a GPU."""

from __future__ import annotations

import pytest

from lightning_core.backends.cuda import attention as attn

H200 = attn._Limits(sm_count=132, smem_per_block=227 * 1024)


@pytest.mark.parametrize("rows", [1, 2, 4])
def test_float32_head_dim_64_double_buffers_within_the_limit(rows):
    assert attn._async_ok(64, rows, 8, "float32", 1, H200)
    one = attn._flash_smem_bytes(64, rows, 8, "float32")
    two = attn._flash_smem_bytes(64, rows, 8, "float32", 2)
    q_bytes = 16 * rows * 68 * 4
    assert two - q_bytes == 2 * (one - q_bytes)  # Q once, K/P and V twice
    assert two <= H200.smem_per_block - attn._STATIC_SMEM


@pytest.mark.parametrize("dp,dtype,vec", [(64, "float64", 1), (64, "float16", 1),
                                          (64, "float32", 0), (32, "float32", 1),
                                          (128, "float32", 1), (256, "float32", 1)])
def test_other_builds_stay_single_buffered(dp, dtype, vec):
    assert not attn._async_ok(dp, 2, 8, dtype, vec, H200)


def test_double_buffering_respects_a_small_shared_memory_limit():
    small = attn._Limits(sm_count=132, smem_per_block=48 * 1024)
    assert not attn._async_ok(64, 4, 8, "float32", 1, small)


@pytest.mark.parametrize("seq,d", [(1, 1), (33, 33), (95, 64), (96, 48), (128, 64)])
def test_rows_shared_memory_covers_the_aligned_value_tile(seq, d):
    kpl, dpl, smem = attn._rows_config(seq, d, "float32", H200)
    ldk = d | 1
    v_start = (seq * ldk + 3) & ~3  # the kernel rounds V's start up to 16 bytes
    need = (v_start + seq * d + attn._ROWS_WARPS * 32 * (kpl + dpl)) * 4
    assert smem >= need
