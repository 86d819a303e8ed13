"""The seed's own quick_bench.py runs unmodified against this package (tests/seed_scripts)."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "seed_scripts" / "quick_bench.py"

SEED_ROWS = [
    ("attention2d", "seq=8,head_dim=16"),
    ("attention2d", "seq=96,head_dim=48"),
    ("attention2d", "seq=256,head_dim=64"),
    ("conv2d_relu", "batch=1,in_ch=3,h=16,w=16,out_ch=16,k=3"),
    ("conv2d_relu", "batch=1,in_ch=3,h=32,w=32,out_ch=16,k=3"),
    ("conv2d_relu", "batch=2,in_ch=3,h=32,w=32,out_ch=16,k=3"),
    ("matmul2d", "m=256,k=256,n=256"),
    ("matmul2d", "m=1024,k=1024,n=1024"),
    ("matmul2d", "m=2048,k=2048,n=2048"),
]
SEED_COLUMNS = ["suite", "bench", "shape", "lightning_core_ms", "torch_mps_ms",
                "speedup_torch_over_lc"]


def _run_seed_script(tmp_path: Path, device: str) -> list[dict[str, str]]:
    out = tmp_path / f"q_{device}.csv"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    # Tiny iteration counts: the 2048³ matmul costs about 0.1 s a call on 2 cores.
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", device, "--warmup", "1", "--iters", "2",
         "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"seed script failed:\n{done.stdout}\n{done.stderr}"
    assert f"saved: {out}" in done.stdout
    with open(out, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == SEED_COLUMNS
        return list(reader)


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_seed_quick_bench_runs_unmodified(tmp_path, device):
    rows = _run_seed_script(tmp_path, device)
    assert [(r["bench"], r["shape"]) for r in rows] == SEED_ROWS
    for row in rows:
        assert row["suite"] == "quick_bench"
        ms = float(row["lightning_core_ms"])
        assert math.isfinite(ms) and ms > 0, row
