"""Launch-plan arithmetic of the CUDA attention kernels, checked without a GPU."""

from __future__ import annotations

import pytest

from lightning_core.backends.cuda import attention as attn

H200 = attn._Limits(sm_count=132, smem_per_block=227 * 1024)


@pytest.mark.parametrize("seq,d", [(1, 1), (33, 33), (95, 64), (96, 48), (128, 64)])
def test_rows_shared_memory_covers_the_aligned_value_tile(seq, d):
    kpl, dpl, smem = attn._rows_config(seq, d, "float32", H200)
    ldk = d | 1
    v_start = (seq * ldk + 3) & ~3  # the kernel rounds V's start up to 16 bytes
    need = (v_start + seq * d + attn._ROWS_WARPS * 32 * (kpl + dpl)) * 4
    assert smem >= need
