from __future__ import annotations
import csv
import json
import os
import statistics
import time
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
def _time_ms(fn, warmup: int = 3, iters: int = 20) -> float:
    vals = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        fn()
        dt = (time.perf_counter() - t0) * 1000.0
        if i >= warmup:
            vals.append(dt)
    return statistics.mean(vals)
def _time_ms_robust(fn, warmup: int = 3, iters: int = 20, runs: int | None = None) -> float:
    r = _TIMING_RUNS if runs is None else max(1, int(runs))
    if r == 1:
        return _time_ms(fn, warmup=warmup, iters=iters)
    samples = [_time_ms(fn, warmup=warmup, iters=iters) for _ in range(r)]
    return statistics.median(samples)
def _speedup(torch_ms: float, lc_ms: float) -> float:
    if lc_ms <= 0 or torch_ms != torch_ms:
        return float("nan")
    return torch_ms / lc_ms
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
def _integrated_api_enabled() -> bool:
    return True
def _pick_linear_resident_mode(
    session: object,
    x: np.ndarray,
    w: np.ndarray,
    out: np.ndarray,
    loops: int,
) -> str:
    candidates: list[tuple[str, object]] = []
    if hasattr(session, "run_batch_sync_cached_no_download"):
        candidates.append(("resident_cached_no_download", lambda: session.run_batch_sync_cached_no_download(loops)))
    if hasattr(session, "run_batch_sync_no_download_into"):
        candidates.append(("resident_no_download_into", lambda: session.run_batch_sync_no_download_into(x, w, out, loops)))
    if hasattr(session, "run_batch_sync_into"):
        candidates.append(("resident_sync_into", lambda: session.run_batch_sync_into(x, w, out, loops)))
    if not candidates:
        return "fallback"
    best_name = candidates[0][0]
    best_ms = float("inf")
    probe_ms: dict[str, float] = {}
    for name, fn in candidates:
        try:
            ms = _time_ms_robust(fn, warmup=2, iters=8)
        except Exception:
            continue
        probe_ms[name] = ms
        if ms < best_ms:
            best_ms = ms
            best_name = name
    return best_name
def _run_linear_resident_mode(
    session: object,
    mode: str,
    x: np.ndarray,
    w: np.ndarray,
    out: np.ndarray,
    loops: int,
) -> None:
    if mode == "resident_cached_no_download" and hasattr(session, "run_batch_sync_cached_no_download"):
        session.run_batch_sync_cached_no_download(loops)
        return
    if mode == "resident_no_download_into" and hasattr(session, "run_batch_sync_no_download_into"):
        session.run_batch_sync_no_download_into(x, w, out, loops)
        return
    if hasattr(session, "run_batch_sync_into"):
        session.run_batch_sync_into(x, w, out, loops)
        return
    if hasattr(session, "sync_into"):
        for _ in range(loops):
            session.sync_into(x, w, out)
        return
    for _ in range(loops):
        lc.matmul_np_into(x, w, out, int(x.shape[0]), int(x.shape[1]), int(w.shape[1]), "metal")
def bench_feature_scaling_vector_add() -> list[dict]:
    rows: list[dict] = []
    for n in [65536, 262144, 1048576, 4 * 1048576]:
        a = np.random.rand(n).astype(np.float32)
        b_vec = np.random.rand(n).astype(np.float32)
        best_backend = "metal"
        best_probe = float("inf")
        for backend_name in ("metal", "cpu"):
            try:
                probe_ms = _time_ms(lambda backend_name=backend_name: lc.vector_add(a, b_vec, backend_name), warmup=3, iters=12)
            except Exception:
                continue
            if probe_ms < best_probe:
                best_probe = probe_ms
                best_backend = backend_name
        ms_lc = _time_ms_robust(lambda: lc.vector_add(a, b_vec, best_backend), warmup=5, iters=40)
        ta = torch.from_numpy(a)
        tb = torch.from_numpy(b_vec)
        def _torch_add_cpu() -> None:
            _ = ta + tb
        ms_torch_cpu = _time_ms_robust(_torch_add_cpu, warmup=5, iters=40)
        if torch.backends.mps.is_available():
            ta = ta.to("mps")
            tb = tb.to("mps")
            def _torch_add() -> None:
                _ = ta + tb
                _sync_mps()
            ms_torch = _time_ms_robust(_torch_add, warmup=5, iters=40)
        else:
            ms_torch = float("nan")
        if _integrated_api_enabled():
            ms_integrated = _time_ms_robust(lambda: lc.vector_add(a, b_vec, best_backend), warmup=5, iters=40)
        else:
            ms_integrated = float("nan")
        rows.append(
            {
                "suite": "ml_all",
                "bench": "feature_scaling_vector_add",
                "shape": f"n={n}",
                "lightning_core_ms": ms_lc,
                "torch_cpu_ms": ms_torch_cpu,
                "torch_mps_ms": ms_torch,
                "integrated_api_ms": ms_integrated,
                "speedup_torch_over_lc": _speedup(ms_torch, ms_lc),
                "speedup_integrated_over_lc": _speedup(ms_integrated, ms_lc),
                "lc_torch": _pair_ratio(ms_torch_cpu, ms_lc),
                "lc_integrated": _pair_ratio(ms_integrated, ms_lc),
                "mps_torch": _pair_ratio(ms_torch_cpu, ms_torch),
                "mps_integrated": _pair_ratio(ms_integrated, ms_torch),
                **_intuitive_metrics(ms_lc, ms_torch, ms_integrated),
            }
        )
    return rows
def bench_linear_classifier_inference() -> list[dict]:
    rows: list[dict] = []
    for batch, in_dim, out_dim in [(1024, 1024, 512), (2048, 1024, 512), (4096, 1024, 1024)]:
        x = np.random.rand(batch, in_dim).astype(np.float32)
        w = np.random.rand(in_dim, out_dim).astype(np.float32)
        out = np.empty((batch * out_dim,), dtype=np.float32)
        session = None
        use_resident = False
        if hasattr(lc, "MatMulMetalResidentSession"):
            try:
                session = lc.MatMulMetalResidentSession(batch, in_dim, out_dim)
                session.start_into(x, w, out)
                session.run_batch_sync_into(x, w, out, 1)
                use_resident = True
            except Exception:
                session = None
                use_resident = False
        # Resident 미지원 폴백에서는 같은 반복 수를 유지하면 시간이 과도하게 길어짐.
        loops = 16 if use_resident else 2
        if use_resident and session is not None:
            best_loops = loops
            best_mode = "resident_sync_into"
            best_lc = float("inf")
            for lp in (8, 12, 16, 20, 24, 32, 40, 48):
                mode = _pick_linear_resident_mode(session, x, w, out, lp)
                def _probe_resident(lp=lp, mode=mode) -> None:
                    _run_linear_resident_mode(session, mode, x, w, out, lp)
                probe_ms = _time_ms_robust(_probe_resident, warmup=1, iters=6) / float(lp)
                if probe_ms < best_lc:
                    best_lc = probe_ms
                    best_loops = lp
                    best_mode = mode
            def _lc_run() -> None:
                _run_linear_resident_mode(session, best_mode, x, w, out, best_loops)
            ms_lc = _time_ms_robust(_lc_run, warmup=3, iters=16) / float(best_loops)
            loops = best_loops
        else:
            def _lc_run() -> None:
                for _ in range(loops):
                    lc.matmul_np_into(x, w, out, batch, in_dim, out_dim, "metal")
            ms_lc = _time_ms_robust(_lc_run, warmup=3, iters=16) / float(loops)
        tx = torch.from_numpy(x)
        tw = torch.from_numpy(w)
        def _torch_run_cpu() -> None:
            for _ in range(loops):
                _ = torch.matmul(tx, tw)
        ms_torch_cpu = _time_ms_robust(_torch_run_cpu, warmup=3, iters=16) / float(loops)
        if torch.backends.mps.is_available():
            tx = tx.to("mps")
            tw = tw.to("mps")
            def _torch_run() -> None:
                for _ in range(loops):
                    _ = torch.matmul(tx, tw)
                _sync_mps()
            ms_torch = _time_ms_robust(_torch_run, warmup=3, iters=16) / float(loops)
        else:
            ms_torch = float("nan")
        if _integrated_api_enabled():
            int_out = np.empty((batch * out_dim,), dtype=np.float32)
            def _integrated_run() -> None:
                for _ in range(loops):
                    lc.matmul_np_into(x, w, int_out, batch, in_dim, out_dim, "metal")
            ms_integrated = _time_ms_robust(_integrated_run, warmup=3, iters=16) / float(loops)
        else:
            ms_integrated = float("nan")
        rows.append(
            {
                "suite": "ml_all",
                "bench": "linear_classifier_inference",
                "shape": f"batch={batch},in={in_dim},out={out_dim}",
                "lightning_core_ms": ms_lc,
                "torch_cpu_ms": ms_torch_cpu,
                "torch_mps_ms": ms_torch,
                "integrated_api_ms": ms_integrated,
                "speedup_torch_over_lc": _speedup(ms_torch, ms_lc),
                "speedup_integrated_over_lc": _speedup(ms_integrated, ms_lc),
                "lc_torch": _pair_ratio(ms_torch_cpu, ms_lc),
                "lc_integrated": _pair_ratio(ms_integrated, ms_lc),
                "mps_torch": _pair_ratio(ms_torch_cpu, ms_torch),
                "mps_integrated": _pair_ratio(ms_integrated, ms_torch),
                **_intuitive_metrics(ms_lc, ms_torch, ms_integrated),
            }
        )
    return rows
def bench_matrix_preprocessing() -> list[dict]:
    rows: list[dict] = []
    for rows_n, cols_n in [(512, 512), (1024, 1024), (2048, 1024)]:
        a = np.random.rand(rows_n * cols_n).astype(np.float32)
        b = np.random.rand(rows_n * cols_n).astype(np.float32)
        if hasattr(lc, "MatrixElemwiseMetalResidentSession"):
            sess = lc.MatrixElemwiseMetalResidentSession(rows_n, cols_n)
            out = np.empty_like(a)
            sess.sub_start_into(a, b, out)
            def _lc_sub() -> None:
                sess.sub_run_into(a, b, out)
            ms_lc = _time_ms_robust(_lc_sub, warmup=4, iters=24)
        else:
            ms_lc = _time_ms_robust(lambda: lc.matrix_sub(a, b, rows_n, cols_n, "metal"), warmup=4, iters=24)
        ta = torch.from_numpy(a.reshape(rows_n, cols_n))
        tb = torch.from_numpy(b.reshape(rows_n, cols_n))
        def _torch_sub_cpu() -> None:
            _ = ta - tb
        ms_torch_cpu = _time_ms_robust(_torch_sub_cpu, warmup=4, iters=24)
        if torch.backends.mps.is_available():
            ta = ta.to("mps")
            tb = tb.to("mps")
            def _torch_sub() -> None:
                _ = ta - tb
                _sync_mps()
            ms_torch = _time_ms_robust(_torch_sub, warmup=4, iters=24)
        else:
            ms_torch = float("nan")
        if _integrated_api_enabled():
            ms_integrated = _time_ms_robust(lambda: a - b, warmup=4, iters=24)
        else:
            ms_integrated = float("nan")
        rows.append(
            {
                "suite": "ml_all",
                "bench": "matrix_preprocessing_sub",
                "shape": f"rows={rows_n},cols={cols_n}",
                "lightning_core_ms": ms_lc,
                "torch_cpu_ms": ms_torch_cpu,
                "torch_mps_ms": ms_torch,
                "integrated_api_ms": ms_integrated,
                "speedup_torch_over_lc": _speedup(ms_torch, ms_lc),
                "speedup_integrated_over_lc": _speedup(ms_integrated, ms_lc),
                "lc_torch": _pair_ratio(ms_torch_cpu, ms_lc),
                "lc_integrated": _pair_ratio(ms_integrated, ms_lc),
                "mps_torch": _pair_ratio(ms_torch_cpu, ms_torch),
                "mps_integrated": _pair_ratio(ms_integrated, ms_torch),
                **_intuitive_metrics(ms_lc, ms_torch, ms_integrated),
            }
        )
    return rows
def write_outputs(rows: list[dict]) -> tuple[Path, Path]:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    csv_path = OUT_DIR / "ml_all_bench.csv"
    json_path = OUT_DIR / "ml_all_bench.json"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(
            f,
            fieldnames=[
                "suite",
                "bench",
                "shape",
                "lightning_core_ms",
                "torch_cpu_ms",
                "torch_mps_ms",
                "integrated_api_ms",
                "speedup_torch_over_lc",
                "speedup_integrated_over_lc",
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
        writer.writerows(rows)
    summary = {
        "backend": lc.backend_name(),
        "torch": torch.__version__,
        "mps_available": torch.backends.mps.is_available(),
        "timing_runs": _TIMING_RUNS,
        "rows": rows,
        "avg_speedup_torch_over_lc": _mean_or_nan([r["speedup_torch_over_lc"] for r in rows]),
        "avg_speedup_integrated_over_lc": _mean_or_nan([r["speedup_integrated_over_lc"] for r in rows]),
        "avg_lc_torch": _mean_or_nan([r["lc_torch"] for r in rows]),
        "avg_lc_integrated": _mean_or_nan([r["lc_integrated"] for r in rows]),
        "avg_mps_torch": _mean_or_nan([r["mps_torch"] for r in rows]),
        "avg_mps_integrated": _mean_or_nan([r["mps_integrated"] for r in rows]),
        "avg_lc_vs_mps": _mean_or_nan([r["lc_vs_mps"] for r in rows]),
        "avg_integrated_vs_mps": _mean_or_nan([r["integrated_vs_mps"] for r in rows]),
        "avg_ours_best_vs_mps": _mean_or_nan([r["ours_best_vs_mps"] for r in rows]),
    }
    with json_path.open("w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return csv_path, json_path
def main() -> None:
    print(
        f"[env] lc_backend={lc.backend_name()} torch={torch.__version__} "
        f"torch_mps_available={torch.backends.mps.is_available()} "
        f"torch_mps_built={torch.backends.mps.is_built()} "
        f"timing_runs={_TIMING_RUNS}"
    )
    rows: list[dict] = []
    rows.extend(bench_linear_classifier_inference())
    rows.extend(bench_matrix_preprocessing())
    # Run large vector cases last to reduce thermal interference on linear/matmul-heavy rows.
    rows.extend(bench_feature_scaling_vector_add())
    csv_path, json_path = write_outputs(rows)
    print(f"saved: {csv_path}")
    print(f"saved: {json_path}")
    print("\n=== ML all bench summary ===")
    print("note: LC = Lightning Core engine runtime, Integrated = lightning_core high-level API, Torch = framework runtime")
    for r in rows:
        print(
            f"{r['bench']} | {r['shape']} | "
            f"LC={r['lightning_core_ms']:.4f}ms TorchCPU={r['torch_cpu_ms']:.4f}ms TorchMPS={r['torch_mps_ms']:.4f}ms Integrated={r['integrated_api_ms']:.4f}ms "
            f"lc_vs_mps={r['lc_vs_mps']:.2f}x integrated_vs_mps={r['integrated_vs_mps']:.2f}x ours_best_vs_mps={r['ours_best_vs_mps']:.2f}x winner={r['ours_winner']}"
        )
if __name__ == "__main__":
    main()
