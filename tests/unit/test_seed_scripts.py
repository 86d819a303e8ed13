"""The seed's own benchmark scripts run unmodified against this package (tests/seed_scripts).

quick_bench.py runs on every test run. The other three (large_gemm_auto_sweep.py, ml_all_bench.py,
dl_all_bench.py) have no size knobs and take minutes on 2 cores, so they run only with
LC_RUN_SLOW_SEED_SCRIPTS=1, e.g.

    LC_RUN_SLOW_SEED_SCRIPTS=1 python3 -m pytest -q tests/unit/test_seed_scripts.py
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import shutil
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


# --- the seed's three other embedded scripts (large_gemm_auto_sweep, ml_all_bench, dl_all_bench) --

SEED_DIR = ROOT / "tests" / "seed_scripts"
# Stand-in for `import torch` (the scripts import it unconditionally); used only without torch.
TORCH_STUB = SEED_DIR / "torch_stub"
RUN_SLOW = os.environ.get("LC_RUN_SLOW_SEED_SCRIPTS") == "1"


def _unless_slow_allowed(minutes: str):
    return pytest.mark.skipif(
        not RUN_SLOW,
        reason=f"runs a full-size seed sweep (about {minutes} min on 2 cores); "
               "set LC_RUN_SLOW_SEED_SCRIPTS=1 to run it")


def _seed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT / "src")]
    if importlib.util.find_spec("torch") is None:
        paths.append(str(TORCH_STUB))
    env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


def _run_seed_copy(tmp_path: Path, name: str, subdir: str,
                   extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a byte-identical copy of a seed script, placed as in the seed's repository.

    The scripts derive their output folder from ``Path(__file__)`` (``benchmarks/reports/...``
    for the sweep, ``benchmark_results/`` beside the *_all_bench scripts), so where the copy
    lies puts every file they write under ``tmp_path``.
    """
    script = tmp_path / subdir / name
    script.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SEED_DIR / name, script)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_seed_env(extra_env),
                          capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, f"seed script failed:\n{done.stdout}\n{done.stderr}"
    return done


def _saved_results(tmp_path: Path, done: subprocess.CompletedProcess[str],
                   stem: str) -> tuple[Path, Path]:
    """The CSV and JSON a *_all_bench script wrote to benchmark_results/ (and said so)."""
    out_dir = tmp_path.resolve() / "benchmark_results"
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    assert f"saved: {csv_path}" in done.stdout and f"saved: {json_path}" in done.stdout
    return csv_path, json_path


def _read_csv(path: Path, columns: list[str]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == columns
        return list(reader)


def _finite_ms(value) -> float:
    ms = float(value)
    assert math.isfinite(ms) and ms > 0, value
    return ms


GEMM_SHAPES = ["m=1024,k=1024,n=1024", "m=1536,k=1536,n=1536", "m=2048,k=2048,n=2048",
               "m=3072,k=3072,n=3072", "m=4096,k=1024,n=4096"]
GEMM_MODES = ["runtime_default_promoted", "aggressive_mps_no_bucket", "kernel_favor_no_bucket"]
SWEEP_COLUMNS = ["shape", "mode", "lc_one_shot_ms", "lc_resident_steady_ms", "lc_best_ms",
                 "torch_mps_ms", "speedup_torch_over_lc_best"]
DL_SWEEP_COLUMNS = ["shape", "mode", "lc_one_shot_ms", "lc_resident_steady_ms", "lc_best_ms",
                    "torch_cpu_ms", "torch_mps_ms", "integrated_api_ms",
                    "speedup_torch_over_lc_best", "speedup_integrated_over_lc_best", "lc_torch",
                    "lc_integrated", "mps_torch", "mps_integrated", "lc_vs_mps",
                    "integrated_vs_mps", "ours_best_vs_mps", "ours_winner"]
ML_COLUMNS = ["suite", "bench", "shape", "lightning_core_ms", "torch_cpu_ms", "torch_mps_ms",
              "integrated_api_ms", "speedup_torch_over_lc", "speedup_integrated_over_lc",
              "lc_torch", "lc_integrated", "mps_torch", "mps_integrated", "lc_vs_mps",
              "integrated_vs_mps", "ours_best_vs_mps", "ours_winner"]
ML_ROWS = [
    ("linear_classifier_inference", "batch=1024,in=1024,out=512"),
    ("linear_classifier_inference", "batch=2048,in=1024,out=512"),
    ("linear_classifier_inference", "batch=4096,in=1024,out=1024"),
    ("matrix_preprocessing_sub", "rows=512,cols=512"),
    ("matrix_preprocessing_sub", "rows=1024,cols=1024"),
    ("matrix_preprocessing_sub", "rows=2048,cols=1024"),
    ("feature_scaling_vector_add", "n=65536"),
    ("feature_scaling_vector_add", "n=262144"),
    ("feature_scaling_vector_add", "n=1048576"),
    ("feature_scaling_vector_add", "n=4194304"),
]
# The *_all_bench scripts time each case as the median of LC_BENCH_TIMING_RUNS runs (default
# 3); one run keeps the same code paths at a third of the time.
ONE_TIMING_RUN = {"LC_BENCH_TIMING_RUNS": "1"}


def _check_sweep(rows: list[dict[str, str]], payload: dict, json_keys: list[str]) -> None:
    assert [(r["shape"], r["mode"]) for r in rows] == [
        (shape, mode) for shape in GEMM_SHAPES for mode in GEMM_MODES]
    for row in rows:
        # The seed's dl sweep turns an exception in the resident path into NaN: finite means
        # the resident session really ran.
        one_shot = _finite_ms(row["lc_one_shot_ms"])
        resident = _finite_ms(row["lc_resident_steady_ms"])
        assert float(row["lc_best_ms"]) == min(one_shot, resident), row
    assert list(payload) == json_keys
    assert payload["backend"] in ("cpu", "cuda", "metal")
    assert len(payload["all_rows"]) == len(rows)
    assert [r["shape"] for r in payload["best_rows_per_shape"]] == GEMM_SHAPES
    for best in payload["best_rows_per_shape"]:
        _finite_ms(best["lc_best_ms"])


@pytest.mark.slow
@_unless_slow_allowed("5")
def test_seed_large_gemm_auto_sweep_runs_unmodified(tmp_path):
    done = _run_seed_copy(tmp_path, "large_gemm_auto_sweep.py", "benchmarks")
    out_dir = tmp_path.resolve() / "benchmarks" / "reports" / "2026-03-29"
    csv_path = out_dir / "large_gemm_auto_sweep.csv"
    json_path = out_dir / "large_gemm_auto_sweep.json"
    assert f"saved: {csv_path}" in done.stdout and f"saved: {json_path}" in done.stdout
    _check_sweep(_read_csv(csv_path, SWEEP_COLUMNS), json.loads(json_path.read_text()),
                 ["backend", "torch", "mps_available", "all_rows", "best_rows_per_shape"])


@pytest.mark.slow
@_unless_slow_allowed("8")
def test_seed_ml_all_bench_runs_unmodified(tmp_path):
    done = _run_seed_copy(tmp_path, "ml_all_bench.py", ".", ONE_TIMING_RUN)
    csv_path, json_path = _saved_results(tmp_path, done, "ml_all_bench")
    rows = _read_csv(csv_path, ML_COLUMNS)
    assert [(r["bench"], r["shape"]) for r in rows] == ML_ROWS
    for row in rows:
        assert row["suite"] == "ml_all"
        _finite_ms(row["lightning_core_ms"])
        _finite_ms(row["integrated_api_ms"])
    summary = json.loads(json_path.read_text())
    assert list(summary)[:5] == ["backend", "torch", "mps_available", "timing_runs", "rows"]
    assert summary["timing_runs"] == 1 and len(summary["rows"]) == len(ML_ROWS)


@pytest.mark.slow
@_unless_slow_allowed("32")
def test_seed_dl_all_bench_runs_unmodified(tmp_path):
    done = _run_seed_copy(tmp_path, "dl_all_bench.py", ".", ONE_TIMING_RUN)
    csv_path, json_path = _saved_results(tmp_path, done, "large_gemm_auto_sweep")
    rows = _read_csv(csv_path, DL_SWEEP_COLUMNS)
    for row in rows:
        _finite_ms(row["integrated_api_ms"])
    payload = json.loads(json_path.read_text())
    _check_sweep(rows, payload,
                 ["backend", "torch", "mps_available", "timing_runs", "all_rows",
                  "best_rows_per_shape", "avg_lc_vs_mps", "avg_integrated_vs_mps",
                  "avg_ours_best_vs_mps"])
    assert payload["timing_runs"] == 1


# Where each script lies in the seed's project page (1-based, inclusive: the code only, without
# the "<path> (full)" heading line before it). The page lost all indentation.
SEED_PAGE = ROOT.parent / "shared" / "seed" / "lightning_core_0.1.13_project_page.txt"
PAGE_LINES = {
    "quick_bench.py": (412, 571),
    "large_gemm_auto_sweep.py": (573, 757),
    "ml_all_bench.py": (3156, 3534),
    "dl_all_bench.py": (3536, 3895),
}


@pytest.mark.skipif(not SEED_PAGE.is_file(), reason=f"seed page not found at {SEED_PAGE}")
@pytest.mark.parametrize("name", sorted(PAGE_LINES))
def test_seed_script_is_the_page_text_up_to_indentation(name):
    first, last = PAGE_LINES[name]
    page = SEED_PAGE.read_text(encoding="utf-8").split("\n")[first - 1:last]
    ours = (SEED_DIR / name).read_text(encoding="utf-8")
    assert ours.endswith("\n")
    lines = ours[:-1].split("\n")
    assert [line.lstrip(" ") for line in lines] == page
    assert all(len(line) - len(line.lstrip(" ")) == len(line) - len(line.lstrip())
               for line in lines), "indentation must be spaces only"
