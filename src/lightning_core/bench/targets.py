"""The CUDA backend's acceptance measurements, side by side with torch in one process.

Each row times the same work, at the same precision (true fp32: TF32 off on both sides), and
says which target of the CUDA-backend issue it checks. "sync" rows time one call plus a stream
synchronize with the host clock (what one call costs a user); "kernel" rows time device work
with CUDA events. The two (or more) sides of a row are timed in alternating rounds, so neither
always runs first on a warmer or cooler machine, and the row's ratio is the median of the
rounds' ratios (a drift between rounds cancels; the ratio of the overall medians is kept as
``ratio_of_medians``). Raw samples are kept so every ratio can be traced.

    PYTHONPATH=src python3 -m lightning_core.bench.targets --out results.json
    PYTHONPATH=src python3 -m lightning_core.bench.targets --only conv_attn,session  # a subset
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import lightning_core as lc
from lightning_core.bench.suites.peers import TorchPeer
from lightning_core.bench.suites.timers import held_device_us, host_times, host_times_interleaved

__all__ = ["main"]


def _pipelined(fn: Callable[[], Any], sync: Callable[[], None], n: int = 1000,
               rounds: int = 7) -> float:
    """µs per call of ``n`` back-to-back calls followed by one sync: the median of ``rounds``
    rounds (one round's mean swings by microseconds with whatever else the host does)."""
    for _ in range(50):
        fn()
    sync()
    per = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        sync()
        per.append((time.perf_counter_ns() - t0) / 1e3 / n)
    return statistics.median(per)


def _event_us(cp: Any, fn: Callable[[], Any], reps: int = 50) -> float:
    """Median device µs of ``fn`` on the current stream, by CUDA events."""
    for _ in range(5):
        fn()
    out = []
    for _ in range(reps):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        out.append(cp.cuda.get_elapsed_time(start, stop) * 1e3)
    return statistics.median(out)


def _paired_ratio(lc_us: list[float], ref_us: list[float], turn: int) -> float:
    """Median over rounds of (reference's turn median ÷ ours): samples come in turns of
    ``turn`` calls taken side by side (``host_times_interleaved``), so each round's two
    medians share the machine's state and a drift between rounds cancels."""
    rounds = min(len(lc_us), len(ref_us)) // turn
    ratios = [statistics.median(ref_us[i * turn:(i + 1) * turn])
              / statistics.median(lc_us[i * turn:(i + 1) * turn]) for i in range(rounds)]
    return statistics.median(ratios) if ratios else math.nan


def _row(rows: list[dict[str, Any]], family: str, case: str, target: float, lc_us: list[float],
         ref_us: list[float], ref_name: str, note: str = "", *, turn: int | None = None) -> None:
    """One target row. With ``turn`` (interleaved samples) the ratio is the paired one
    (``_paired_ratio``); the ratio of the overall medians is kept beside it."""
    lc_med, ref_med = statistics.median(lc_us), statistics.median(ref_us)
    of_medians = ref_med / lc_med if lc_med > 0 else math.nan
    ratio = _paired_ratio(lc_us, ref_us, turn) if turn else of_medians
    rows.append({"family": family, "case": case, "lc_us": lc_med, "ref_us": ref_med,
                 "reference": ref_name, "ratio_ref_over_lc": ratio,
                 "ratio_of_medians": of_medians, "paired_turn": turn, "target": target,
                 "pass": bool(ratio >= target), "note": note,
                 "lc_samples_us": lc_us, "ref_samples_us": ref_us})


# Calls per turn of the interleaved timer (the paired ratio's rounds): rows comparing two
# sides, and the device="auto" rows (three or four sides, longer turns).
_TURN = 10
_AUTO_TURN = 12

FAMILIES = ("gemm", "elementwise", "attention", "conv_relu", "oneshot", "auto", "crossover",
            "host_overhead", "session", "conv_attn", "bandwidth")


def run(quick: bool = False, only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Every family's rows, or those of ``only`` (names from ``FAMILIES``)."""
    import cupy as cp
    import torch
    import torch.nn.functional as F

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows: list[dict[str, Any]] = []

    def want(family: str) -> bool:
        return only is None or family in only

    rng = np.random.default_rng(20261129)
    stream_sync = cp.cuda.get_current_stream().synchronize
    tsync = torch.cuda.synchronize

    def both(host: np.ndarray) -> tuple[Any, Any]:
        return cp.asarray(host), torch.from_numpy(host).cuda()

    def f32(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    def pair(lc_fn: Callable[[], Any], lc_sync: Callable[[], Any], ref_fn: Callable[[], Any],
             ref_sync: Callable[[], Any]) -> tuple[list[float], list[float]]:
        """Per-call µs of ours and the reference (each call followed by its sync), measured in
        alternating rounds so neither side always runs first."""
        t = host_times_interleaved({"lc": lambda: (lc_fn(), lc_sync()),
                                    "ref": lambda: (ref_fn(), ref_sync())}, per_round=_TURN)
        return t["lc"], t["ref"]

    def torch_oneshot(fn_t: Callable[..., Any], *hosts: np.ndarray) -> Callable[[], Any]:
        return lambda: fn_t(*(torch.from_numpy(h).cuda() for h in hosts)).cpu().numpy()

    crossover_info: dict[str, Any] = {"calibration": {}, "estimates": {}}

    # GEMM (device-resident, one call + sync)
    if want("gemm"):
        gemms = [(256, 256, 256), (896, 896, 896), (1024, 1024, 1024), (1536, 1536, 1536),
                 (2048, 2048, 2048), (3072, 3072, 3072), (4096, 1024, 4096)]
        for m, k, n in gemms[:3] if quick else gemms:
            (ca, ta), (cb, tb) = both(f32(m, k)), both(f32(k, n))
            lc_t, th_t = pair(lambda: lc.matmul2d(ca, cb), stream_sync, lambda: ta @ tb, tsync)
            tgt = 2.0 if m == 256 else 0.97
            _row(rows, "gemm", f"m={m},k={k},n={n}", tgt, lc_t, th_t, "torch eager", turn=_TURN)

    # elementwise (device-resident)
    if want("elementwise"):
        for rows_, cols in ((512, 512), (1024, 1024), (2048, 1024)):
            (ca, ta), (cb, tb) = both(f32(rows_ * cols)), both(f32(rows_ * cols))
            lc_t, th_t = pair(lambda: lc.matrix_sub(ca, cb, rows_, cols), stream_sync,
                              lambda: ta - tb, tsync)
            _row(rows, "elementwise", f"matrix_sub {rows_}x{cols}", 1.2, lc_t, th_t, "torch eager",
                 turn=_TURN)
        for n in (65536, 262144, 1048576, 4194304):
            (ca, ta), (cb, tb) = both(f32(n)), both(f32(n))
            lc_t, th_t = pair(lambda: lc.vector_add(ca, cb), stream_sync, lambda: ta + tb, tsync)
            _row(rows, "elementwise", f"vector_add n={n}", 1.2, lc_t, th_t, "torch eager",
                 turn=_TURN)

    # attention (device-resident) vs torch SDPA fp32
    if want("attention"):
        for seq, d in ((8, 16), (8, 32), (12, 12), (96, 48), (512, 64), (1024, 64), (1536, 64),
                       (2048, 64), (4096, 64)):
            qs = [both(f32(seq, d)) for _ in range(3)]
            cq, ck, cv = (x[0] for x in qs)
            tq, tk, tv = (x[1].view(1, 1, seq, d) for x in qs)
            lc_t, th_t = pair(lambda: lc.attention2d(cq, ck, cv, False), stream_sync,
                              lambda: F.scaled_dot_product_attention(tq, tk, tv), tsync)
            tgt = 2.0 if seq <= 96 else 3.0
            _row(rows, "attention", f"seq={seq},head_dim={d}", tgt, lc_t, th_t, "torch SDPA eager",
                 turn=_TURN)

    # conv + ReLU (device-resident) vs cuDNN conv + relu
    if want("conv_relu"):
        for n_, c, h, w_, oc in ((1, 3, 16, 16, 16), (1, 3, 24, 24, 16), (2, 3, 16, 16, 16),
                                 (1, 3, 28, 28, 16), (1, 3, 32, 32, 16), (2, 3, 32, 32, 16),
                                 (16, 3, 64, 64, 16), (16, 16, 32, 32, 32)):
            (cx, tx), (cw, tw), (cb, tb) = both(f32(n_, c, h, w_)), both(f32(oc, c, 3, 3)), both(
                f32(oc))
            lc_t, th_t = pair(lambda: lc.lightning_conv_relu_nchw(cx, cw, cb, 1, 1, 1, 1),
                              stream_sync, lambda: F.relu(F.conv2d(tx, tw, tb, padding=1)), tsync)
            small = n_ * oc * h * w_ * c * 9 < 2_000_000
            _row(rows, "conv_relu", f"batch={n_},in_ch={c},h={h},w={w_},out_ch={oc},k=3",
                 2.0 if small else 1.0, lc_t, th_t, "torch eager (cuDNN)", turn=_TURN)

    # one-shot NumPy in / NumPy out, ordinary (pageable) arrays >= 1 MB
    if want("oneshot"):
        oneshots = [
            ("matrix_sub 1024x1024", lambda a, b: lc.matrix_sub(a, b, 1024, 1024),
             lambda a, b: a - b, (f32(1024 * 1024), f32(1024 * 1024))),
            ("matrix_sub 2048x1024", lambda a, b: lc.matrix_sub(a, b, 2048, 1024),
             lambda a, b: a - b, (f32(2048 * 1024), f32(2048 * 1024))),
            ("vector_add n=4194304", lc.vector_add, lambda a, b: a + b, (f32(4194304), f32(4194304))),
            ("matmul 1024^3", lambda a, b: lc.matmul2d(a, b, "cuda"), lambda a, b: a @ b,
             (f32(1024, 1024), f32(1024, 1024))),
        ]
        for name, lc_fn, t_fn, hosts in oneshots:
            lc_t, th_t = pair(lambda: lc_fn(*hosts), lambda: None,
                              torch_oneshot(t_fn, *hosts), lambda: None)
            _row(rows, "oneshot_pageable", name, 1.5, lc_t, th_t, "torch one-shot", turn=_TURN)
            pinned = tuple(lc.pinned_like(h) for h in hosts)
            for src, dst in zip(hosts, pinned, strict=True):
                dst[...] = src
            lc_p = host_times(lambda: lc_fn(*pinned), lambda: None, iters=60)
            dev = tuple(cp.asarray(h) for h in hosts)
            kern = _event_us(cp, lambda: lc_fn(*dev))
            out_bytes = lc_fn(*dev).nbytes
            floor = (sum(h.nbytes for h in hosts) + out_bytes) / 55e9 * 1e6 + kern
            _row(rows, "oneshot_pinned", name, 1 / 1.3, lc_p, [floor] * len(lc_p),
                 "bytes/55GB/s + kernel", note=f"kernel {kern:.1f} us")

    # device="auto" one-shot (NumPy in / NumPy out): never slower than 1.1x the faster of the
    # forced devices; on the tiny attention and conv cases >= 2x torch's GPU one-shot path.
    if want("auto"):
        def sdpa(q: Any, k: Any, v: Any) -> Any:
            return F.scaled_dot_product_attention(q[None], k[None], v[None])[0]

        def conv_relu(x: Any, w: Any, b: Any) -> Any:
            return F.relu(F.conv2d(x, w, b, padding=1))

        autos: list[tuple[str, Callable[..., Any], Callable[..., Any] | None,
                          tuple[np.ndarray, ...]]] = [
            ("vector_add n=65536", lambda a, b, dev: lc.vector_add(a, b, dev), None,
             (f32(65536), f32(65536))),
            ("vector_add n=1048576", lambda a, b, dev: lc.vector_add(a, b, dev), None,
             (f32(1 << 20), f32(1 << 20))),
            ("matrix_sub 512x512", lambda a, b, dev: lc.matrix_sub(a, b, 512, 512, dev), None,
             (f32(512 * 512), f32(512 * 512))),
            ("matmul 256^3", lambda a, b, dev: lc.matmul2d(a, b, dev), None,
             (f32(256, 256), f32(256, 256))),
            ("matmul 1024^3", lambda a, b, dev: lc.matmul2d(a, b, dev), None,
             (f32(1024, 1024), f32(1024, 1024))),
        ]
        for seq, d in ((8, 16), (8, 32), (12, 12), (96, 48), (512, 64)):
            autos.append((f"attention seq={seq},head_dim={d}",
                          lambda q, k, v, dev: lc.attention2d(q, k, v, False, dev),
                          sdpa if seq <= 96 else None, (f32(seq, d), f32(seq, d), f32(seq, d))))
        for n_, h in ((1, 16), (1, 24), (2, 16), (1, 32), (2, 32)):
            autos.append((f"conv_relu batch={n_},in_ch=3,h={h},w={h},out_ch=16,k=3",
                          lambda x, w, b, dev: lc.lightning_conv_relu_nchw(x, w, b, 1, 1, 1, 1, dev),
                          conv_relu, (f32(n_, 3, h, h), f32(16, 3, 3, 3), f32(16))))
        for name, lc_fn, t_fn, hosts in autos:
            # Interleaved rounds: the three devices see the same machine state.
            fns = {dev: (lambda dev=dev: lc_fn(*hosts, dev)) for dev in ("auto", "cpu", "cuda")}
            if t_fn is not None:
                fns["torch"] = torch_oneshot(t_fn, *hosts)
            # Longer turns with a longer warm-up: a CPU turn leaves BLAS and pool threads
            # spinning, a GPU turn leaves them asleep.
            times = host_times_interleaved(fns, rounds=8, per_round=_AUTO_TURN, round_warmup=6,
                                           budget_s=2.0)
            t_auto, t_cpu, t_cuda = times["auto"], times["cpu"], times["cuda"]
            faster, which = (t_cpu, "cpu") if statistics.median(t_cpu) <= statistics.median(
                t_cuda) else (t_cuda, "cuda")
            _row(rows, "auto_oneshot", name, 1 / 1.1, t_auto, faster, f"faster forced ({which})",
                 note=f"cpu {statistics.median(t_cpu):.1f} us, cuda {statistics.median(t_cuda):.1f}"
                      " us", turn=_AUTO_TURN)
            if t_fn is not None:
                _row(rows, "auto_vs_torch", name, 2.0, t_auto, times["torch"],
                     "torch GPU one-shot", turn=_AUTO_TURN)

    # What the crossover decided those on: its calibration and, per auto case, its estimate.
    if want("crossover"):
        from lightning_core.runtime.backend import get_backend
        from lightning_core.tuning import CROSSOVER, keys
        from lightning_core.tuning.shapes import make_call

        cuda = get_backend("cuda")
        try:
            for family in ("elementwise", "matmul", "attention", "conv2d"):
                crossover_info["calibration"][family] = CROSSOVER.calibration(cuda, family)
            for name, dims, key in (("vector_add n=65536", (65536,), "binary"),
                                    ("vector_add n=1048576", (1 << 20,), "binary"),
                                    ("conv_relu 1x3x32x32->16", (1, 3, 32, 32, 16), "conv2d"),
                                    ("attention 96x48", (96, 48), "attention")):
                est = CROSSOVER.estimate(cuda, keys.SPECS[key], make_call(key, dims))
                crossover_info["estimates"][name] = {"cpu_us": est.cpu_us, "gpu_us": est.gpu_us,
                                                     "source": est.source}
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            crossover_info["error"] = f"{type(exc).__name__}: {exc}"

    # host overhead on device-resident data vs a bare CuPy launch of the same kind of kernel
    if want("host_overhead"):
        add = cp.RawKernel(r'''extern "C" __global__ void add(const float* a, const float* b,
            float* c, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i < n) c[i] = a[i] + b[i]; }''', "add")
        n = 1024
        ca, cb, cc = cp.ones(n, cp.float32), cp.ones(n, cp.float32), cp.empty(n, cp.float32)
        bare = _pipelined(lambda: add((4,), (256,), (ca, cb, cc, np.int32(n))), stream_sync)
        ours = _pipelined(lambda: lc.vector_add_into(ca, cb, cc), stream_sync)
        alloc = _pipelined(lambda: lc.vector_add(ca, cb), stream_sync)
        rows.append({"family": "host_overhead", "case": "vector_add_into n=1024 pipelined",
                     "lc_us": ours, "ref_us": bare, "reference": "bare CuPy RawKernel launch",
                     "ratio_ref_over_lc": bare / ours, "target": "lc <= bare + 3 us",
                     "pass": bool(ours <= bare + 3.0),
                     "note": f"overhead {ours - bare:.2f} us; with output allocation {alloc:.1f} us"})

    # resident sessions: per-iteration cost inside run_batch_sync vs the kernel alone
    if want("session"):
        for size in (256, 1024):
            ha, hb = f32(size, size), f32(size, size)
            sess = lc.MatMulResidentSession(size, size, size, "cuda")
            sess.update(ha, hb)
            da, db, dc = cp.asarray(ha), cp.asarray(hb), cp.empty((size, size), cp.float32)
            kern = held_device_us(cp, lambda: lc.matmul2d_into(da, db, dc))
            reps = 2000 if size == 256 else 500
            sess.run_batch_sync_cached_no_download(reps)
            per = []
            for _ in range(5):
                t0 = time.perf_counter_ns()
                sess.run_batch_sync_cached_no_download(reps)
                per.append((time.perf_counter_ns() - t0) / 1e3 / reps)
            med = statistics.median(per)
            rows.append({"family": "session", "case": f"matmul {size}^3 run_batch_sync x{reps}",
                         "lc_us": med, "ref_us": kern,
                         "reference": "kernel time (events around 20 queued launches)",
                         "ratio_ref_over_lc": kern / med, "target": "per-iter <= kernel + 1 us",
                         "pass": bool(med <= kern + 1.0),
                         "note": f"graphs={sess.graph_count} samples={[round(p, 2) for p in per]}"})

    # integrated conv -> attention: graph mode vs torch eager and torch CUDA graph
    if want("conv_attn"):
        for seq, d in ((48, 48), (192, 48), (192, 8), (96, 48)):
            hx, hw, hb = f32(1, 3, 8, 8), f32(16, 3, 3, 3), f32(16)
            (cx, tx), (cw, tw), (cbias, tb) = both(hx), both(hw), both(hb)

            def lc_graph():
                return lc.lightning_conv_attention_torchstrong_nchw(
                    cx, cw, cbias, seq, d, 1, 1, 1, 1, "cuda", execution_mode="graph")

            def torch_chain():
                y = F.relu(F.conv2d(tx, tw, tb, padding=1)).reshape(-1)
                total = 3 * seq * d
                packed = y.repeat(-(-total // y.numel()))[:total]
                q, k, v = (packed[i * seq * d:(i + 1) * seq * d].view(1, 1, seq, d)
                           for i in range(3))
                return F.scaled_dot_product_attention(q, k, v)

            ref = lc.conv_attention_reference(hx, hw, hb, seq, d, 1, 1, 1, 1)
            got = cp.asnumpy(lc_graph())
            err = float(np.abs(got - ref).max())
            torch_graph = TorchPeer(torch, "cuda").graph(torch_chain)
            times = host_times_interleaved({
                "lc": lambda: (lc_graph(), stream_sync()),
                "eager": lambda: (torch_chain(), tsync()),
                "graph": lambda: (torch_graph(), tsync())}, per_round=_TURN)
            lc_t, th_t, tg_t = times["lc"], times["eager"], times["graph"]
            _row(rows, "conv_attn", f"conv 1x3->16 8x8 + attn seq={seq},d={d}", 4.0, lc_t, th_t,
                 "torch eager", note=f"max err {err:.2e}", turn=_TURN)
            _row(rows, "conv_attn", f"conv 1x3->16 8x8 + attn seq={seq},d={d}", 1.0, lc_t, tg_t,
                 "torch CUDA graph", turn=_TURN)

    # bandwidth of elementwise kernels on >= 64 MB
    if want("bandwidth"):
        big = 32 * 1024 * 1024
        src, dst = cp.ones(big * 2, cp.float32), cp.empty(big * 2, cp.float32)
        copy_us = _event_us(cp, lambda: dst.__setitem__(Ellipsis, src), reps=20)
        copy_bw = 2 * src.nbytes / (copy_us * 1e-6)
        ca, cb = cp.ones(big, cp.float32), cp.ones(big, cp.float32)
        add_us = _event_us(cp, lambda: lc.vector_add(ca, cb), reps=20)
        add_bw = 3 * ca.nbytes / (add_us * 1e-6)
        rows.append({"family": "bandwidth", "case": "vector_add 128 MB x2 -> 128 MB",
                     "lc_us": add_us, "ref_us": copy_us, "reference": "device copy 256 MB",
                     "ratio_ref_over_lc": add_bw / copy_bw, "target": 0.85,
                     "pass": bool(add_bw / copy_bw >= 0.85),
                     "note": f"lc {add_bw / 1e9:.0f} GB/s, copy {copy_bw / 1e9:.0f} GB/s"})
    return {"rows": rows, "environment": _environment(cp, torch), "crossover": crossover_info}


def _environment(cp: Any, torch: Any) -> dict[str, Any]:
    props = cp.cuda.runtime.getDeviceProperties(0)
    return {"gpu": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
            "cupy": cp.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "lightning_core": lc.__version__, "driver": cp.cuda.runtime.driverGetVersion(),
            "runtime": cp.cuda.runtime.runtimeGetVersion(), "precision": "fp32 (TF32 off)",
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="cuda_targets.json")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="",
                        help=f"comma-separated families to run (of: {', '.join(FAMILIES)})")
    args = parser.parse_args(argv)
    only = tuple(f for f in args.only.split(",") if f) or None
    unknown = sorted(set(only or ()) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")
    result = run(args.quick, only)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1, default=str)
    fails = 0
    for r in result["rows"]:
        fails += not r["pass"]
        print(f"{'PASS' if r['pass'] else 'FAIL'} {r['family']:16s} {r['case']:44s} "
              f"lc {r['lc_us']:9.1f} us  ref {r['ref_us']:9.1f} us  "
              f"x{r['ratio_ref_over_lc']:.2f}{' paired' if r.get('paired_turn') else ''} "
              f"(target {r['target']}) {r['note']}")
    for name, est in result["crossover"].get("estimates", {}).items():
        print(f"crossover estimate {name}: cpu {est['cpu_us']:.1f} us, gpu {est['gpu_us']:.1f} us "
              f"({est['source']})")
    print(f"targets: {len(result['rows']) - fails} pass, {fails} fail")
    return 0


if __name__ == "__main__":
    sys.exit(main())
