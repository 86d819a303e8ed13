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


@pytest.mark.parametrize("tiles,key_tiles,rows,resident,expect", [
    (64, 64, 4, 4, 8),    # seq 4096, 64-row tiles, four blocks per SM: 512 blocks, one wave
    (64, 64, 4, 3, 6),    # three resident: 384 blocks, not 448 (a second, near-empty wave)
    (32, 8, 1, 4, 8),     # seq 512, 16-row tiles: every key tile its own split
    (32, 16, 2, 4, 8),    # seq 1024, 32-row tiles
    (400, 64, 4, 4, 1),   # already a full grid: no split
])
def test_split_count_fills_at_most_one_wave(tiles, key_tiles, rows, resident, expect):
    splits = attn._splits(tiles, key_tiles, H200.sm_count, rows, resident)
    assert splits == expect
    assert tiles * splits <= max(tiles, resident * H200.sm_count)
    per_split = -(-key_tiles // splits)
    assert -(-key_tiles // per_split) == splits  # every split gets the same whole count
