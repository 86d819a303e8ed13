from __future__ import annotations
import csv
import json
import os
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
import numpy as np
import torch
import lightning_core as lc
ROOT = Path(__file__).resolve().parent
OUT_DIR = ROOT / "benchmark_results"
_TIMING_RUNS = max(1, int(os.getenv("LC_BENCH_TIMING_RUNS", "3")))
def _sync_mps() -> None:
    if torch.backends.mps.is_available():
        torch.mps.synchronize()
def _time_ms(fn, warmup: int, iters: int) -> float:
    samples = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        fn()
        dt = (time.perf_counter() - t0) * 1000.0
        if i >= warmup:
            samples.append(dt)
    return statistics.mean(samples)
def _time_ms_robust(fn, warmup: int, iters: int, runs: int | None = None) -> float:
    r = _TIMING_RUNS if runs is None else max(1, int(runs))
    if r == 1:
        return _time_ms(fn, warmup=warmup, iters=iters)
    samples = [_time_ms(fn, warmup=warmup, iters=iters) for _ in range(r)]
    return statistics.median(samples)
@contextmanager
def _env(**kwargs: str):
    old = {}
    for k, v in kwargs.items():
        old[k] = os.environ.get(k)
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
def _torch_mps_mm_ms(ta_mps: torch.Tensor, tb_mps: torch.Tensor, warmup: int = 4, iters: int = 20) -> float:
    def _run() -> None:
        _ = torch.matmul(ta_mps, tb_mps)
        _sync_mps()
    return _time_ms_robust(_run, warmup=warmup, iters=iters)
def _torch_cpu_mm_ms(ta_cpu: torch.Tensor, tb_cpu: torch.Tensor, warmup: int = 4, iters: int = 20) -> float:
    def _run() -> None:
        _ = torch.matmul(ta_cpu, tb_cpu)
    return _time_ms_robust(_run, warmup=warmup, iters=iters)
def _pair_ratio(right_ms: float, left_ms: float) -> float:
    if left_ms <= 0 or right_ms != right_ms:
        return float("nan")
    return right_ms / left_ms
def _mean_or_nan(vals: list[float]) -> float:
    clean = [v for v in vals if v == v]
    if not clean:
        return float("nan")
    return statistics.mean(clean)
def _intuitive_metrics(ms_lc: float, ms_torch_mps: float, ms_integrated: float) -> dict:
    lc_vs_mps = _pair_ratio(ms_torch_mps, ms_lc)
    integrated_vs_mps = _pair_ratio(ms_torch_mps, ms_integrated)
    if ms_lc == ms_lc and ms_integrated == ms_integrated:
        if ms_lc < ms_integrated:
            ours_winner = "LC"
        elif ms_integrated < ms_lc:
            ours_winner = "Integrated"
        else:
            ours_winner = "tie"
    else:
        ours_winner = "n/a"
    best_ours_ms = min([v for v in [ms_lc, ms_integrated] if v == v], default=float("nan"))
    ours_best_vs_mps = _pair_ratio(ms_torch_mps, best_ours_ms)
    return {
        "lc_vs_mps": lc_vs_mps,
        "integrated_vs_mps": integrated_vs_mps,
        "ours_best_vs_mps": ours_best_vs_mps,
        "ours_winner": ours_winner,
    }
def _lc_one_shot_ms(a: np.ndarray, b: np.ndarray, out: np.ndarray, m: int, k: int, n: int, warmup: int = 3, iters: int = 16) -> float:
    return _time_ms_robust(
        lambda: lc.matmul_np_into(a, b, out, m, k, n, "metal"),
        warmup=warmup,
        iters=iters,
    )
def _pick_resident_mode(
    session: object,
    a: np.ndarray,
    b: np.ndarray,
    out: np.ndarray,
    loops_per_sample: int,
    *,
    warmup: int,
    iters: int,
) -> str:
    candidates: list[tuple[str, object]] = []
    if hasattr(session, "run_batch_sync_cached_no_download"):
        candidates.append(("resident_cached_no_download", lambda: session.run_batch_sync_cached_no_download(loops_per_sample)))
    if hasattr(session, "run_batch_sync_no_download_into"):
        candidates.append(("resident_no_download_into", lambda: session.run_batch_sync_no_download_into(a, b, out, loops_per_sample)))
    if hasattr(session, "run_batch_sync_into"):
        candidates.append(("resident_sync_into", lambda: session.run_batch_sync_into(a, b, out, loops_per_sample)))
    if not candidates:
        return "fallback"
    best_name = candidates[0][0]
    best_ms = float("inf")
    probe_ms: dict[str, float] = {}
    for name, fn in candidates:
        try:
            ms = _time_ms_robust(fn, warmup=warmup, iters=iters)
        except Exception:
            continue
        probe_ms[name] = ms
        if ms < best_ms:
            best_ms = ms
            best_name = name
    return best_name
def _run_resident_mode(
    session: object,
    mode: str,
    a: np.ndarray,
    b: np.ndarray,
    out: np.ndarray,
    loops_per_sample: int,
) -> None:
    if mode == "resident_cached_no_download" and hasattr(session, "run_batch_sync_cached_no_download"):
        session.run_batch_sync_cached_no_download(loops_per_sample)
        return
    if mode == "resident_no_download_into" and hasattr(session, "run_batch_sync_no_download_into"):
        session.run_batch_sync_no_download_into(a, b, out, loops_per_sample)
        return
    if hasattr(session, "run_batch_sync_into"):
        session.run_batch_sync_into(a, b, out, loops_per_sample)
        return
    if hasattr(session, "sync_into"):
        for _ in range(loops_per_sample):
            session.sync_into(a, b, out)
        return
    for _ in range(loops_per_sample):
        lc.matmul_np_into(a, b, out, int(a.shape[0]), int(a.shape[1]), int(b.shape[1]), "metal")
def _lc_resident_steady_ms(
    a: np.ndarray,
    b: np.ndarray,
    out: np.ndarray,
    m: int,
    k: int,
    n: int,
    loops_per_sample: int = 10,
    warmup: int = 2,
    iters: int = 12,
) -> float:
    if not hasattr(lc, "MatMulMetalResidentSession"):
        return float("nan")
    try:
        session = lc.MatMulMetalResidentSession(m, k, n)
        # Prime buffers once before steady-state measurements.
        session.start_into(a, b, out)
        if hasattr(session, "run_batch_sync_into"):
            session.run_batch_sync_into(a, b, out, 1)
        if max(m, k, n) >= 4096:
            tuned_loops = max(int(loops_per_sample), 32)
        elif max(m, k, n) >= 3072:
            tuned_loops = max(int(loops_per_sample), 28)
        elif max(m, k, n) >= 2048:
            tuned_loops = max(int(loops_per_sample), 20)
        else:
            tuned_loops = int(loops_per_sample)
        mode = _pick_resident_mode(
            session,
            a,
            b,
            out,
            tuned_loops,
            warmup=max(1, warmup),
            iters=max(4, iters // 2),
        )
        def _run_batch() -> None:
            _run_resident_mode(session, mode, a, b, out, tuned_loops)
        batch_ms = _time_ms_robust(_run_batch, warmup=warmup, iters=iters)
        return batch_ms / float(tuned_loops)
    except Exception:
        return float("nan")
def _integrated_api_enabled() -> bool:
    return True
def _exia_standalone_mm_ms(a: np.ndarray, b: np.ndarray, warmup: int = 3, iters: int = 16) -> float:
    if not _integrated_api_enabled():
        return float("nan")
    m, k = a.shape
    kb, n = b.shape
    if k != kb:
        return float("nan")
    out = np.empty((m * n,), dtype=np.float32)
    return _time_ms_robust(
        lambda: lc.matmul_np_into(a, b, out, m, k, n, "metal"),
        warmup=warmup,
        iters=iters,
    )
def bench_large_gemm_sweep() -> dict:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    shapes = [
        (1024, 1024, 1024),
        (1536, 1536, 1536),
        (2048, 2048, 2048),
        (3072, 3072, 3072),
        (4096, 1024, 4096),
    ]
    tune_root = OUT_DIR / "matmul_tune_profiles"
    tune_root.mkdir(parents=True, exist_ok=True)
    modes = [
        {
            "name": "runtime_default_promoted",
            "env": {
                "CJ_MATMUL_DISABLE_PROMOTED_BUCKETS": "0",
            },
        },
        {
            "name": "aggressive_mps_no_bucket",
            "env": {
                "CJ_MATMUL_DISABLE_PROMOTED_BUCKETS": "1",
                "CJ_MATMUL_PREFER_MPS_ON_LARGE": "1",
                "CJ_MATMUL_TRY_KERNEL_ON_LARGE": "0",
                "CJ_MATMUL_MPS_HYST_PCT": "5.0",
            },
        },
        {
            "name": "kernel_favor_no_bucket",
            "env": {
                "CJ_MATMUL_DISABLE_PROMOTED_BUCKETS": "1",
                "CJ_MATMUL_PREFER_MPS_ON_LARGE": "0",
                "CJ_MATMUL_TRY_KERNEL_ON_LARGE": "1",
                "CJ_MATMUL_MPS_HYST_PCT": "0.0",
            },
        },
    ]
    all_rows: list[dict] = []
    best_rows: list[dict] = []
    for m, k, n in shapes:
        a = np.random.rand(m, k).astype(np.float32)
        b = np.random.rand(k, n).astype(np.float32)
        out = np.empty((m * n,), dtype=np.float32)
        ta_cpu = torch.from_numpy(a)
        tb_cpu = torch.from_numpy(b)
        torch_cpu_ms = _torch_cpu_mm_ms(ta_cpu, tb_cpu)
        if torch.backends.mps.is_available():
            ta_mps = ta_cpu.to("mps")
            tb_mps = tb_cpu.to("mps")
            torch_mps_ms = _torch_mps_mm_ms(ta_mps, tb_mps)
        else:
            torch_mps_ms = float("nan")
        integrated_ms = _exia_standalone_mm_ms(a, b)
        for mode in modes:
            mode_name = mode["name"]
            tune_file = str(tune_root / f"{mode_name}_{m}x{k}x{n}.csv")
            with _env(CJ_MATMUL_TUNE_CACHE_FILE=tune_file, **mode["env"]):
                if hasattr(lc, "matmul_reset_tuning"):
                    try:
                        lc.matmul_reset_tuning()
                    except Exception:
                        pass
                lc_one_shot_ms = _lc_one_shot_ms(a, b, out, m, k, n)
                lc_resident_ms = _lc_resident_steady_ms(a, b, out, m, k, n)
            row = {
                "shape": f"m={m},k={k},n={n}",
                "mode": mode_name,
                "lc_one_shot_ms": lc_one_shot_ms,
                "lc_resident_steady_ms": lc_resident_ms,
                "lc_best_ms": min(lc_one_shot_ms, lc_resident_ms),
                "torch_cpu_ms": torch_cpu_ms,
                "torch_mps_ms": torch_mps_ms,
                "integrated_api_ms": integrated_ms,
                "speedup_torch_over_lc_best": (
                    torch_mps_ms / min(lc_one_shot_ms, lc_resident_ms)
                    if torch_mps_ms == torch_mps_ms and min(lc_one_shot_ms, lc_resident_ms) > 0
                    else float("nan")
                ),
                "speedup_integrated_over_lc_best": (
                    integrated_ms / min(lc_one_shot_ms, lc_resident_ms)
                    if integrated_ms == integrated_ms and min(lc_one_shot_ms, lc_resident_ms) > 0
                    else float("nan")
                ),
                "lc_torch": _pair_ratio(torch_cpu_ms, min(lc_one_shot_ms, lc_resident_ms)),
                "lc_integrated": _pair_ratio(integrated_ms, min(lc_one_shot_ms, lc_resident_ms)),
                "mps_torch": _pair_ratio(torch_cpu_ms, torch_mps_ms),
                "mps_integrated": _pair_ratio(integrated_ms, torch_mps_ms),
                **_intuitive_metrics(min(lc_one_shot_ms, lc_resident_ms), torch_mps_ms, integrated_ms),
            }
            all_rows.append(row)
        rows_for_shape = [r for r in all_rows if r["shape"] == f"m={m},k={k},n={n}"]
        best = min(rows_for_shape, key=lambda r: r["lc_best_ms"])
        best_rows.append(best)
    csv_path = OUT_DIR / "large_gemm_auto_sweep.csv"
    json_path = OUT_DIR / "large_gemm_auto_sweep.json"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(
            f,
            fieldnames=[
                "shape",
                "mode",
                "lc_one_shot_ms",
                "lc_resident_steady_ms",
                "lc_best_ms",
                "torch_cpu_ms",
                "torch_mps_ms",
                "integrated_api_ms",
                "speedup_torch_over_lc_best",
                "speedup_integrated_over_lc_best",
                "lc_torch",
                "lc_integrated",
                "mps_torch",
                "mps_integrated",
                "lc_vs_mps",
                "integrated_vs_mps",
                "ours_best_vs_mps",
                "ours_winner",
            ],
        )
        writer.writeheader()
        writer.writerows(all_rows)
    payload = {
        "backend": lc.backend_name(),
        "torch": torch.__version__,
        "mps_available": torch.backends.mps.is_available(),
        "timing_runs": _TIMING_RUNS,
        "all_rows": all_rows,
        "best_rows_per_shape": best_rows,
        "avg_lc_vs_mps": _mean_or_nan([r["lc_vs_mps"] for r in best_rows]),
        "avg_integrated_vs_mps": _mean_or_nan([r["integrated_vs_mps"] for r in best_rows]),
        "avg_ours_best_vs_mps": _mean_or_nan([r["ours_best_vs_mps"] for r in best_rows]),
    }
    with json_path.open("w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
    print(f"saved: {csv_path}")
    print(f"saved: {json_path}")
    return payload
def main() -> None:
    print(
        f"[env] lc_backend={lc.backend_name()} torch={torch.__version__} "
        f"torch_mps_available={torch.backends.mps.is_available()} "
        f"torch_mps_built={torch.backends.mps.is_built()} "
        f"timing_runs={_TIMING_RUNS}"
    )
    payload = bench_large_gemm_sweep()
    print("\n=== Best policy per shape ===")
    print("note: LC = Lightning Core engine runtime, Integrated = lightning_core high-level API, Torch = framework runtime")
    for row in payload["best_rows_per_shape"]:
        print(
            f"{row['shape']}: mode={row['mode']} "
            f"LC={row['lc_best_ms']:.4f}ms TorchCPU={row['torch_cpu_ms']:.4f}ms TorchMPS={row['torch_mps_ms']:.4f}ms Integrated={row['integrated_api_ms']:.4f}ms "
            f"lc_vs_mps={row['lc_vs_mps']:.2f}x integrated_vs_mps={row['integrated_vs_mps']:.2f}x ours_best_vs_mps={row['ours_best_vs_mps']:.2f}x winner={row['ours_winner']}"
        )
if __name__ == "__main__":
    main()
