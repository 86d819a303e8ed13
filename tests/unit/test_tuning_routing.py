"""Implementation routing by the tuner (LC_TUNE 0/1/2, hysteresis, promoted buckets, the trace
reason), the CPU crossover model, tuning_report, the reset functions and the CLI commands."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from conftest import CUDA

import lightning_core as lc
from lightning_core import cli, config, tuning
from lightning_core.runtime import backend as backend_mod
from lightning_core.runtime.arrays import Operand
from lightning_core.runtime.backend import Backend, Capabilities, Impl, register
from lightning_core.runtime.device import Route
from lightning_core.runtime.dispatch import Call, execute, set_selector
from lightning_core.tuning import crossover as crossover_mod
from lightning_core.tuning import keys, shapes
from lightning_core.tuning import tuner as tuner_mod
from lightning_core.tuning.cache import TuneCache
from lightning_core.tuning.crossover import DEFAULT_CALIBRATION, Crossover, estimate
from lightning_core.tuning.keys import OpSpec, bucket_dim, bucket_of, entry_key
from lightning_core.tuning.tuner import Promoted, Tuner, choose_winner

KEY = "tune_probe"
SPEC = OpSpec(KEY, "contiguous", lambda c: {"n": math.prod(c.out_shape)},
              lambda x, p: x[0].astype(np.float64) + x[1], lambda d: float(d["n"]), "elementwise")


def fast(a, b, *, out):
    np.add(a, b, out=out)


def slow(a, b, *, out):
    time.sleep(0.002)
    np.add(a, b, out=out)


class Probe:
    """A dummy kernel key with two CPU variants and a tuner on a private cache file."""

    def __init__(self, tmp_path):
        self.cache = TuneCache(str(tmp_path / "tune.json"))
        self.tuner = Tuner(self.cache, warmup=1, runs=3, budget_s=0.02)

    def call(self, n: int = 256, dtype=np.float32) -> tuple[Call, np.ndarray, np.ndarray]:
        a = np.arange(n, dtype=dtype)
        b = np.ones(n, dtype=dtype)
        ops = (Operand(a, False, False), Operand(b, False, False))
        return Call(KEY, KEY, ops, (n,), np.dtype(dtype)), a, b

    def run(self, n: int = 256) -> tuple[np.ndarray, str]:
        lc.runtime_trace_clear()
        call, a, b = self.call(n)
        out = execute(call, "cpu")
        np.testing.assert_array_equal(out, a + b)
        return out, lc.runtime_trace_events()[-1]["impl_reason"]


@pytest.fixture
def probe(monkeypatch, tmp_path):
    monkeypatch.setitem(backend_mod._IMPLS, ("cpu", KEY), [])
    monkeypatch.setitem(keys.SPECS, KEY, SPEC)
    register("cpu", KEY, "slow")(slow)  # registered first: the dispatcher's default
    register("cpu", KEY, "fast")(fast)
    p = Probe(tmp_path)
    set_selector(p.tuner.select)
    was = lc.runtime_trace_enabled()
    lc.runtime_trace_enable(True)
    yield p
    lc.runtime_trace_enable(was)
    tuning.install()


def test_bucketing():
    assert [bucket_dim(v) for v in (1, 7, 64, 65, 96, 128, 129, 1000)] == \
        [1, 7, 64, 128, 128, 128, 256, 1024]
    att = shapes.make_call("attention", (96, 48))
    assert bucket_of(keys.SPECS["attention"], att) == "s=128,d=48,causal=0"
    conv = shapes.make_call("conv2d", (16, 3, 64, 64, 16))
    assert bucket_of(keys.SPECS["conv2d"], conv) == \
        "n=16,c=3,h=64,w=64,oc=16,kh=3,kw=3,stride_h=1,stride_w=1,pad_h=1,pad_w=1"
    mm = shapes.make_call("matmul", (896, 896, 896), precision="tf32")
    assert entry_key(keys.SPECS["matmul"], mm) == \
        "matmul|m=1024,k=1024,n=1024|float32|tf32|row-major|oneshot"


def test_tune_0_ignores_the_cache(probe):
    fp, mid = probe.tuner.machine(backend_mod.get_backend("cpu"))
    call, _, _ = probe.call()
    probe.cache.put(fp, mid, entry_key(SPEC, call), {"winner": "fast", "margin_pct": 50.0,
                                                     "timings_us": {"fast": 1.0}})
    with config.override(LC_TUNE=0):
        assert probe.run()[1] == "default"
    with config.override(LC_TUNE=1):
        set_selector(probe.tuner.select)  # forget the decision made under LC_TUNE=0
        assert probe.run()[1] == "tuned(+50.0%)"


def test_tune_1_uses_cache_but_never_searches(probe):
    with config.override(LC_TUNE=1):
        assert probe.run()[1] == "default"
    assert probe.tuner.report([backend_mod.get_backend("cpu")])["entries"] == []


def test_tune_2_searches_on_a_miss_then_uses_the_cache(probe, tmp_path):
    with config.override(LC_TUNE=2):
        _, reason = probe.run(300)
    assert reason.startswith("tuned(+") and reason.endswith("%)")
    report = probe.tuner.report([backend_mod.get_backend("cpu")])
    (row,) = report["entries"]
    assert row["winner"] == "fast" and row["margin_pct"] > 10
    assert set(row["candidates"]) == {"slow", "fast"} and row["rejected"] == {}
    assert row["bucket"] == "n=512" and row["io"] == "oneshot" and row["tuned_at"]
    assert row["reason"] == reason and report["persistent"]
    # Another process (a fresh tuner on the same file) uses it without searching.
    other = Tuner(TuneCache(str(tmp_path / "tune.json")))
    set_selector(other.select)
    with config.override(LC_TUNE=1):
        assert probe.run(400)[1] == reason  # same bucket


def test_sessions_calls_without_params_do_not_search(probe, monkeypatch):
    monkeypatch.setitem(keys.SPECS, KEY, OpSpec(KEY, "c", SPEC.dims, SPEC.reference, SPEC.work,
                                                "elementwise", params=("kind",)))
    with config.override(LC_TUNE=2):
        assert probe.run()[1] == "default"


def test_promoted_bucket_before_measurement(probe, monkeypatch):
    rule = Promoted(KEY, "fast", lambda d: d["n"] <= 1000)
    monkeypatch.setattr(tuner_mod, "PROMOTED", (rule,))
    with config.override(LC_TUNE=1):
        assert probe.run(500)[1] == "promoted"
        assert probe.run(5000)[1] == "default"
    with config.override(LC_TUNE=0):  # defaults, not measurements: tuning off keeps them
        set_selector(probe.tuner.select)
        assert probe.run(500)[1] == "promoted"
    with config.override(LC_TUNE=1, LC_MATMUL_DISABLE_PROMOTED_BUCKETS=True):
        set_selector(probe.tuner.select)
        assert probe.run(500)[1] == "default"


def _impls(*variants: str) -> dict[str, Impl]:
    return {v: Impl("cuda", "x", v, fast, frozenset({"float32"}), frozenset({"fp32"}))
            for v in variants}


def test_promoted_table_and_gemm_knobs(tmp_path):
    tuner = Tuner(TuneCache(str(tmp_path / "t.json")))
    att = keys.SPECS["attention"]
    variants = _impls("auto", "fused_small", "flash_splitkv")
    assert tuner.promoted(att, {"s": 8, "d": 16}, variants).variant == "fused_small"
    assert tuner.promoted(att, {"s": 1024, "d": 64}, variants).variant == "auto"
    assert tuner.promoted(att, {"s": 128, "d": 64}, variants) is None
    with_rows = _impls("auto", "rows", "fused_small", "flash_splitkv")
    assert tuner.promoted(att, {"s": 96, "d": 48}, with_rows).variant == "rows"
    assert tuner.promoted(att, {"s": 1024, "d": 64}, with_rows).variant == "auto"
    conv = keys.SPECS["conv2d"]
    small = {"n": 1, "c": 3, "h": 16, "w": 16, "oc": 16, "kh": 3, "kw": 3, "oh": 16, "ow": 16}
    assert tuner.promoted(conv, small, _impls("auto", "direct", "im2col_gemm")).variant == "direct"
    mm = keys.SPECS["matmul"]
    large = {"m": 2048, "k": 2048, "n": 2048}
    gemms = _impls("tiled", "cublas")
    assert tuner.promoted(mm, large, gemms).variant == "cublas"
    assert [i.variant for i in tuner.candidates(mm, large, list(gemms.values()))] == \
        ["cublas", "tiled"]
    with config.override(LC_MATMUL_TRY_KERNEL_ON_LARGE=False):
        assert [i.variant for i in tuner.candidates(mm, large, list(gemms.values()))] == \
            ["cublas"]
    with config.override(LC_MATMUL_PREFER_CUBLAS_ON_LARGE=False):
        assert tuner.promoted(mm, large, gemms) is None
    # Small products default to our tiled kernel, mid-sized ones to the dispatcher's default.
    assert tuner.promoted(mm, {"m": 256, "k": 256, "n": 256}, gemms).variant == "tiled"
    assert tuner.promoted(mm, {"m": 1024, "k": 1024, "n": 1024}, gemms) is None
    # Up to 384^3 when K and N are multiples of 4 (the cp.async kernel), 320^3 otherwise.
    assert tuner.promoted(mm, {"m": 384, "k": 384, "n": 384}, gemms).variant == "tiled"
    assert tuner.promoted(mm, {"m": 384, "k": 383, "n": 384}, gemms) is None
    assert tuner.promoted(mm, {"m": 384, "k": 384, "n": 382}, gemms) is None
    assert tuner.promoted(mm, {"m": 320, "k": 319, "n": 321}, gemms).variant == "tiled"
    assert tuner.promoted(mm, {"m": 385, "k": 384, "n": 384}, gemms) is None
    # A tall product within the bound but beyond the launch's 65535 row tiles stays on cuBLAS.
    assert tuner.promoted(mm, {"m": 65535 * 32, "k": 3, "n": 3}, gemms).variant == "tiled"
    assert tuner.promoted(mm, {"m": 65535 * 32 + 1, "k": 3, "n": 3}, gemms) is None
    assert tuner.promoted(mm, {"m": 256, "k": 256, "n": 256}, _impls("cublas")) is None


def test_tiled_gemm_refuses_more_rows_than_its_grid_holds():
    from lightning_core.backends.cuda import gemm
    from lightning_core.errors import NotSupportedError

    with pytest.raises(NotSupportedError, match=r"^\[matmul\] the tiled kernels take at most"):
        gemm.plan(65535 * 32 + 1, 3, 3)


def test_hysteresis_and_vendor_margin():
    # No incumbent: the fastest wins; the margin is over the runner-up.
    assert choose_winner({"a": 10.0, "b": 12.0}, None, vendor_pct=None) == \
        ("a", pytest.approx(20.0), False)
    # A challenger within 3% does not replace the incumbent; beyond 3% it does.
    winner, margin, kept = choose_winner({"a": 9.8, "b": 10.0}, "b", vendor_pct=None)
    assert (winner, kept) == ("b", True) and margin == pytest.approx(-2.0)
    assert choose_winner({"a": 9.0, "b": 10.0}, "b", vendor_pct=None)[:1] == ("a",)
    # cuBLAS stays unless a kernel beats it by more than LC_MATMUL_CUBLAS_HYST_PCT.
    times = {"cublas": 10.0, "tiled": 9.6}
    assert choose_winner(times, None, vendor_pct=0.0)[0] == "tiled"
    assert choose_winner(times, None, vendor_pct=5.0)[0] == "cublas"
    assert choose_winner({"only": 3.0}, None, vendor_pct=None) == ("only", None, False)


CAL = {"h2d_gbps": {"pinned": 50.0, "pageable": 10.0},
       "d2h_gbps": {"pinned": 50.0, "pageable": 10.0}, "launch_sync_us": 20.0,
       "families": {"matmul": {"cpu_rate": 1e5, "cpu_overhead_us": 5.0, "gpu_rate": 1e7},
                    "elementwise": {"cpu_rate": 1e3, "cpu_overhead_us": 2.0, "gpu_rate": 1e5},
                    "attention": {"cpu_rate": 1e4, "cpu_overhead_us": 8.0, "gpu_rate": 1e6},
                    "conv2d": {"cpu_rate": 2e4, "cpu_overhead_us": 10.0, "gpu_rate": 1e6}},
       "format": crossover_mod._CAL_FORMAT}


def test_crossover_model_with_injected_numbers():
    tiny = shapes.make_call("binary", (1024,))
    est = estimate(keys.SPECS["binary"], tiny, CAL, pinned_in=(False, False), pinned_out=True)
    # cpu: 1024/1e3 + 2; gpu: 20 + 2*4096 B at 10 GB/s + 4096 B at 50 GB/s + 1024/1e5
    assert est.cpu_us == pytest.approx(3.024)
    assert est.gpu_us == pytest.approx(20 + 0.8192 + 0.08192 + 0.01024)
    assert est.use_cpu and est.source == "model"
    big = shapes.make_call("matmul", (1024, 1024, 1024))
    est = estimate(keys.SPECS["matmul"], big, CAL, pinned_in=(True, True), pinned_out=True)
    assert not est.use_cpu  # 2.1e9 flops: 21 ms on the CPU, 0.2 ms + 250 µs of PCIe on the GPU
    spec = keys.SPECS["matmul"]
    entry = {"shape": spec.dims(big), "cpu_us": 100.0, "winner": "cublas",
             "timings_us": {"cublas": 90.0}}
    measured = estimate(spec, big, CAL, pinned_in=(True, True), pinned_out=True, entry=entry)
    assert measured.source == "measured" and measured.cpu_us == 100.0 and measured.use_cpu


def test_crossover_model_charges_each_input_beyond_two():
    """launch_sync_us is a 2-input one-shot; per_input_us adds (or removes) the cost of each
    input more (or fewer); calibrations without it charge every call the 2-input cost."""
    cal = {**CAL, "per_input_us": 15.0}
    attn = shapes.make_call("attention", (8, 16))
    plain = estimate(keys.SPECS["attention"], attn, CAL, pinned_in=(False,) * 3,
                     pinned_out=True)
    charged = estimate(keys.SPECS["attention"], attn, cal, pinned_in=(False,) * 3,
                       pinned_out=True)
    assert charged.gpu_us == pytest.approx(plain.gpu_us + 15.0)
    add = shapes.make_call("binary", (1024,))
    assert estimate(keys.SPECS["binary"], add, cal, pinned_in=(False,) * 2,
                    pinned_out=True).gpu_us == pytest.approx(
        estimate(keys.SPECS["binary"], add, CAL, pinned_in=(False,) * 2,
                 pinned_out=True).gpu_us)


def test_crossover_model_overlaps_pinned_flat_transfers(monkeypatch):
    """A flat (elementwise) CUDA default on all-pinned data is charged the overlapped
    transfers of backends/cuda/pipeline.py: the larger direction times the duplex cost, plus
    the last chunk's download; anything else pays both directions in series."""
    flat = Impl("cuda", "binary", "vec", lambda *a, **k: None, frozenset({"float32"}),
                frozenset({"fp32"}), flat=True)
    monkeypatch.setattr(crossover_mod, "implementations",
                        lambda backend, op: [flat] if op == "binary" else [])
    big = shapes.make_call("binary", (1 << 20,))  # 4 MB out: 4 chunks of 1 MiB
    spec = keys.SPECS["binary"]
    up, down = 2 * 4.194304 / 50 * 1e3, 4.194304 / 50 * 1e3
    serial = estimate(spec, big, CAL, pinned_in=(True, False), pinned_out=True)
    assert serial.gpu_us == pytest.approx(20 + up / 2 + 4.194304e3 / 10 + down + 2**20 / 1e5)
    est = estimate(spec, big, CAL, pinned_in=(True, True), pinned_out=True)
    assert est.gpu_us == pytest.approx(20 + up * crossover_mod._DUPLEX_COST + down / 4
                                       + 2**20 / 1e5)
    with config.override(LC_PIPELINE_CHUNK_BYTES=0):
        off = estimate(spec, big, CAL, pinned_in=(True, True), pinned_out=True)
    assert off.gpu_us == pytest.approx(20 + up + down + 2**20 / 1e5)
    not_flat = Impl("cuda", "binary", "other", flat.fn, flat.dtypes, flat.precisions)
    monkeypatch.setattr(crossover_mod, "implementations", lambda backend, op: [not_flat])
    assert estimate(spec, big, CAL, pinned_in=(True, True),
                    pinned_out=True).gpu_us == pytest.approx(off.gpu_us)


def test_calibration_waits_for_two_measurements_that_agree():
    def fake(values):
        it = iter(values)
        calls = []

        def measure():
            calls.append(1)
            return next(it)
        return measure, calls

    measure, calls = fake([2000.0, 80.0, 78.0, 1.0])  # a stall first, then two that agree
    assert crossover_mod.settled_us(measure) == 78.0 and len(calls) == 3
    measure, calls = fake([80.0, 90.0])  # steady: two runs
    assert crossover_mod.settled_us(measure) == 80.0 and len(calls) == 2
    measure, calls = fake([2000.0, 1000.0, 600.0, 350.0, 200.0, 120.0, 1.0])  # never settles
    assert crossover_mod.settled_us(measure) == 120.0 and len(calls) == 6


def test_cpu_implementations_are_known_before_any_cpu_call():
    """The registry builds a backend before answering about it: in a fresh process the CPU
    crossover once heard "no CPU kernels" until something had run on the CPU."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    code = ("from lightning_core.runtime.backend import implementations, _INSTANCES\n"
            "import lightning_core\n"
            "assert 'cpu' not in _INSTANCES, 'imported lightning_core built the cpu backend'\n"
            "assert implementations('cpu', 'binary'), 'no cpu binary kernels'\n"
            "assert implementations('cpu', 'conv2d'), 'no cpu conv2d kernels'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr


class FakeCuda(Backend):
    name = "cuda"

    def capabilities(self):
        return Capabilities("cuda", True, True, True, True, True, True, details={
            "name": "Fake GPU", "compute_capability": "9.0", "driver_version": 1,
            "runtime_version": 1, "cupy": "0"})


def test_crossover_hook(tmp_path, monkeypatch):
    from lightning_core.runtime import arrays

    monkeypatch.setattr(arrays, "_PINNED_CHECK", [lambda array: False])  # nothing pinned
    tuner = Tuner(TuneCache(str(tmp_path / "t.json")))
    hook = Crossover(tuner)
    gpu = FakeCuda()
    fp, mid = tuner.machine(gpu)
    tuner.cache.put_calibration(fp, mid, CAL)
    route = Route("auto", "cuda", gpu, 0, False, "")
    tiny = shapes.make_call("binary", (64,))
    big = shapes.make_call("matmul", (512, 512, 512))
    assert hook(route, tiny) and not hook(route, big)
    cpu_route = Route("auto", "cpu", backend_mod.get_backend("cpu"), 0, False, "")
    assert not hook(cpu_route, tiny)  # no GPU: auto already means cpu
    with config.override(LC_CROSSOVER=False):
        assert not hook(route, tiny)
    tiny.variant = "vec"
    assert not hook(route, tiny)  # an explicit implementation stays where it was asked
    conv = shapes.make_call("conv2d", (1, 3, 16, 16, 16))  # 110,592 MACs
    with config.override(LC_CONV2D_CPU_CROSSOVER_MACS=200_000):
        assert hook(route, conv)
    with config.override(LC_CONV2D_CPU_CROSSOVER_MACS=100_000):
        assert not hook(route, conv)


def test_crossover_calibration_sources(tmp_path, monkeypatch):
    tuner = Tuner(TuneCache(str(tmp_path / "t.json")))
    hook = Crossover(tuner)
    gpu = FakeCuda()
    with config.override(LC_TUNE=0):
        cal = hook.calibration(gpu, "matmul")
    assert cal["families"]["matmul"] == DEFAULT_CALIBRATION["families"]["matmul"]
    assert tuner.cache.calibration(tuner.machine(gpu)[1]) is None  # defaults are not stored
    measured = []

    def fake_calibrate(backend, families, *, base=None):
        measured.append(families)
        fp, mid = tuner.machine(backend)
        tuner.cache.put_calibration(fp, mid, CAL)
        return CAL

    monkeypatch.setattr(hook, "calibrate", fake_calibrate)
    with config.override(LC_TUNE=1):
        assert hook.calibration(gpu, "matmul") == CAL
        assert hook.calibration(gpu, "attention") == CAL
    assert measured == [("matmul",)]  # measured once, then read back
    assert tuner.report([gpu])["calibration"][tuner.machine(gpu)[1]] == CAL
    # A calibration stored by an older format (no "format", or another one) is measured
    # again: its transfer rates came from the Python staging pool.
    fp, mid = tuner.machine(gpu)
    for stale in ({k: v for k, v in CAL.items() if k != "format"},
                  {**CAL, "format": crossover_mod._CAL_FORMAT - 1}):
        tuner.cache.put_calibration(fp, mid, stale)
        hook.forget()
        measured.clear()
        with config.override(LC_TUNE=1):
            assert hook.calibration(gpu, "matmul") == CAL
        assert measured == [("matmul",)]


def test_reset_functions_drop_in_memory_entries(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    cpu = backend_mod.get_backend("cpu")
    fp, mid = tuning.TUNER.machine(cpu)
    with config.override(LC_TUNE_CACHE_FILE=str(blocker / "tune.json")):
        with pytest.warns(tuning.CacheWarning):
            for op in ("matmul", "attention"):
                tuning.CACHE.put(fp, mid, f"{op}|b|float32|fp32|l|oneshot",
                                 {"winner": "x", "timings_us": {"x": 1.0}})
        ops = lambda: sorted(e["op"] for e in lc.tuning_report()["entries"])  # noqa: E731
        assert ops() == ["attention", "matmul"]
        lc.matmul_reset_tuning()
        assert ops() == ["attention"]
        lc.attention_reset_tuning()
        assert ops() == []


def _cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.skipif(CUDA, reason="checks the CPU-only tune path; with a GPU, lc tune times the "
                    "CUDA candidates instead")
def test_cli_cache_and_tune(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")  # rich wraps long cells in a narrow terminal
    path = tmp_path / "tune.json"
    monkeypatch.setitem(shapes.PRETUNE_SHAPES, "matmul", ((16, 8, 4), (70, 20, 9)))
    extra = Impl("cpu", "matmul", "einsum_test",
                 lambda a, b, *, out: np.einsum("ik,kj->ij", a, b, out=out),
                 frozenset({"float32", "float64"}), frozenset({"fp32"}))
    monkeypatch.setitem(backend_mod._IMPLS, ("cpu", "matmul"),
                        [*backend_mod.implementations("cpu", "matmul"), extra])
    with config.override(LC_TUNE_CACHE_FILE=str(path)):
        assert _cli(capsys, "cache", "path")[1].strip() == str(path)
        assert _cli(capsys, "tune", "--ops", "bogus")[0] == 2
        code, out, _ = _cli(capsys, "tune", "--ops", "matmul", "--plain")
        assert code == 0 and "[2/2] matmul m=70,k=20,n=9: tuned" in out
        report = json.loads(_cli(capsys, "cache", "show", "--json")[1])
        assert {e["bucket"] for e in report["entries"]} == {"m=16,k=8,n=4", "m=128,k=20,n=9"}
        assert {e["io"] for e in report["entries"]} == {"oneshot", "resident"}
        code, out, _ = _cli(capsys, "cache", "show", "--plain")
        assert code == 0 and "Tuned buckets" in out and "einsum_test=" in out
        code, out, _ = _cli(capsys, "tune", "--ops", "attention", "--calibrate", "--plain")
        assert code == 0 and "nothing to choose" in out and "no GPU here" in out
        assert _cli(capsys, "cache", "clear")[1].startswith("removed") and not path.exists()
    tuning.reset_tuning()


def _builtin_calls(rng) -> list[Call]:
    """One call per built-in kernel key with a spec, on random host data."""
    def ops(*shapes_):
        return tuple(Operand(rng.standard_normal(s).astype(np.float32), False, False)
                     for s in shapes_)

    f32 = np.dtype(np.float32)
    calls = [shapes.make_call(k, d) for k, d in
             (("matmul", (9, 70, 5)), ("attention", (33, 8)), ("conv2d", (2, 3, 9, 7, 4)),
              ("binary", (100,)))]
    for call in calls:
        call.inputs = ops(*(o.array.shape for o in call.inputs))
    return calls + [
        Call("relu", "relu", ops((4, 5)), (4, 5), f32),
        Call("gelu", "gelu", ops((30,)), (30,), f32, {"approximate": "none"}),
        Call("softmax", "softmax", ops((3, 17)), (3, 17), f32),
        Call("layer_norm", "layer_norm", ops((6, 10), (10,), (10,)), (6, 10), f32,
             {"eps": 1e-5, "has_weight": True, "has_bias": True}),
        Call("linear", "linear", ops((7, 12), (12, 3), (3,)), (7, 3), f32,
             {"activation": "gelu_tanh"}),
    ]


def test_every_builtin_spec_checks_the_cpu_path(tmp_path, rng):
    cpu = backend_mod.get_backend("cpu")
    tuner = Tuner(TuneCache(str(tmp_path / "t.json")), warmup=0, runs=3, budget_s=0.01)
    calls = _builtin_calls(rng)
    assert {c.kernel for c in calls} == set(keys.SPECS)
    for call in calls:
        entry = tuner.search(cpu, backend_mod.implementations("cpu", call.kernel), call,
                             incumbent=None)
        assert entry is not None and entry["rejected"] == {}, call.kernel
        assert entry["timer"] == "host_clock" and "cpu_us" not in entry


def test_cpu_calibration_probes():
    for family in crossover_mod.FAMILIES:
        rates = crossover_mod.measure_cpu(family)
        assert rates["cpu_rate"] > 0 and rates["cpu_overhead_us"] >= 0, family


def test_cpu_rate_survives_one_stalled_measurement(monkeypatch):
    """Each probe is timed until two medians agree and the best kept (``settled_us``): one
    stall (run 11's calibration saw a 192^3 CPU GEMM 60x too slow) must not set the CPU rate."""
    from lightning_core.tuning import measure

    seen = []

    def fake_time_us(self, impl, inputs, out, call, *, warmup, runs, budget_s):
        work = keys.SPECS["matmul"].work(keys.SPECS["matmul"].dims(call))
        seen.append(work)
        steady = 2.0 + work / 1e5  # 2 us fixed, 1e5 flops per us
        return steady * (60.0 if len(seen) == 3 else 1.0)  # the mid probe's first try stalls

    monkeypatch.setattr(measure.HostRunner, "time_us", fake_time_us)
    rates = crossover_mod.measure_cpu("matmul")
    assert len(seen) == 5  # tiny: 2 agreeing runs; mid: the stall, then 2 agreeing runs
    assert rates["cpu_rate"] == pytest.approx(1e5, rel=1e-6)
    assert rates["cpu_overhead_us"] == pytest.approx(2.0, abs=1e-6)


def test_a_variant_marked_default_leads_whatever_the_registration_order(monkeypatch):
    from lightning_core.runtime.backend import implementations

    key = ("cpu", "lc_default_probe")
    monkeypatch.setitem(backend_mod._IMPLS, key, [])
    register(*key, "first")(slow)
    assert [i.variant for i in implementations(*key)] == ["first"]
    register(*key, "marked", default=True)(fast)
    register(*key, "third")(slow)
    assert [i.variant for i in implementations(*key)] == ["marked", "first", "third"]
    register(*key, "marked")(fast)  # re-registered unmarked: back to registration order
    assert [i.variant for i in implementations(*key)] == ["first", "third", "marked"]


def test_cublas_is_the_cuda_matmul_default_whatever_imports_first():
    # The kernel modules import without CuPy; gemm (the tiled kernel) no longer imports blas.
    import importlib

    for name in ("gemm", "blas"):  # the tiled kernel's module first
        importlib.import_module(f"lightning_core.backends.cuda.{name}")

    assert backend_mod._IMPLS[("cuda", "matmul")][0].variant == "cublas"


def test_cpu_model_follows_the_points_above_the_mid_probe():
    """Above the mid probe, a family with probes past the caches is estimated on the line
    through the points; below it (and for calibrations without points) the rate line stays.
    Beyond the last point, at least proportional growth: a nearly flat last segment (more
    threads) does not make every bigger call look as cheap as the last probe."""
    rates = {"cpu_rate": 2e3, "cpu_overhead_us": 3.0}  # 2000 elements per us from cache
    assert crossover_mod.cpu_model_us(rates, 1 << 20) == pytest.approx((1 << 20) / 2e3 + 3.0)
    rates["cpu_points"] = [[1 << 17, 68.5], [1 << 21, 2100.0]]  # memory: ~1000 per us
    assert crossover_mod.cpu_model_us(rates, 1 << 16) == pytest.approx((1 << 16) / 2e3 + 3.0)
    slope = (2100.0 - 68.5) / ((1 << 21) - (1 << 17))
    at_1m = 68.5 + ((1 << 20) - (1 << 17)) * slope
    assert crossover_mod.cpu_model_us(rates, 1 << 20) == pytest.approx(at_1m)
    assert at_1m > (1 << 20) / 2e3 + 3.0  # slower than the cache-rate line predicted
    at_8m = crossover_mod.cpu_model_us(rates, 1 << 23)  # the steeper of slope and proportion
    assert at_8m == pytest.approx(max(2100.0 + ((1 << 23) - (1 << 21)) * slope, 2100.0 * 4))
    flat = dict(rates, cpu_points=[[1 << 17, 68.5], [1 << 21, 10.0]])  # faster: no drop
    assert crossover_mod.cpu_model_us(flat, 1 << 20) == pytest.approx(68.5)
    assert crossover_mod.cpu_model_us(flat, 1 << 22) == pytest.approx(68.5 * 2)


def test_big_pinned_elementwise_call_goes_to_the_gpu_when_the_cpu_runs_from_memory():
    """Run 42's case: a pinned 1024x1024 matrix_sub. With only the cache-rate line the model
    picks the CPU; with the big probe's point it picks the GPU, as measured (289 against
    549 us)."""
    spec = keys.SPECS["binary"]
    call = shapes.make_call("binary", (1 << 20,))
    cal = {"h2d_gbps": {"pinned": 55.2, "pageable": 16.2},
           "d2h_gbps": {"pinned": 54.5, "pageable": 13.5}, "launch_sync_us": 20.0,
           "families": {"elementwise": {"cpu_rate": 6.0e3, "cpu_overhead_us": 3.0,
                                        "gpu_rate": 3.0e5}}}
    pinned = {"pinned_in": (True, True), "pinned_out": True}
    assert crossover_mod.estimate(spec, call, cal, **pinned).use_cpu
    cal["families"]["elementwise"]["cpu_points"] = [[1 << 17, 25.0], [1 << 21, 1100.0]]
    guess = crossover_mod.estimate(spec, call, cal, **pinned)
    assert not guess.use_cpu and 450.0 < guess.cpu_us < 650.0
    # Pageable inputs still go to the CPU: their copies cost more than the CPU's work.
    assert crossover_mod.estimate(spec, call, cal, pinned_in=(False, False),
                                  pinned_out=True).use_cpu


def test_elementwise_calibration_measures_the_probes_past_the_caches():
    rates = crossover_mod.measure_cpu("elementwise")
    points = rates["cpu_points"]
    assert [w for w, _ in points] == [1 << 17, 1 << 20, 1 << 21]
    assert all(t > 0 for _, t in points)
    assert "cpu_points" not in crossover_mod.measure_cpu("attention")


def test_matmul_calibration_measures_bigger_products():
    """The host BLAS gains rate with size: the matmul points at 256^3 and 512^3 carry the
    model above the 192^3 probe."""
    rates = crossover_mod.measure_cpu("matmul")
    works = [w for w, _ in rates["cpu_points"]]
    assert works == [2 * 192 ** 3, 2 * 256 ** 3, 2 * 512 ** 3]
    assert all(t > 0 for _, t in rates["cpu_points"])
    # Between the points the model interpolates their times, not the mid probe's rate line.
    (w0, t0), (w1, t1) = rates["cpu_points"][:2]
    mid = crossover_mod.cpu_model_us(rates, (w0 + w1) / 2)
    assert min(t0, t1) <= mid <= max(t0, t1)


def test_probes_past_the_caches_rotate_through_their_data(monkeypatch):
    """The 1M and 2M elementwise probes draw their (inputs, out) sets in turn from one
    rotation kept across every repeat of the measurement, over enough distinct sets to hold
    128 MB, so no run finds the previous runs' data in the caches."""
    from lightning_core.tuning.measure import HostRunner

    drawn: dict[int, list[int]] = {}

    def rotating(self, impl, next_set, call, *, warmup, runs, budget_s):
        n = math.prod(call.out_shape)
        drawn.setdefault(n, []).extend(id(next_set()[1]) for _ in range(warmup + runs))
        return 100.0

    monkeypatch.setattr(HostRunner, "time_rotating_us", rotating)
    rates = crossover_mod.measure_cpu("elementwise")
    assert sorted(drawn) == [1 << 20, 1 << 21]
    for n, ids in drawn.items():
        distinct = len(set(ids))
        assert distinct >= 2 and distinct * 3 * 4 * n >= 128 << 20  # two inputs and the output
        assert len(set(ids[:distinct])) == distinct  # a new set every run until all are used
    assert [w for w, _ in rates["cpu_points"][1:]] == [1 << 20, 1 << 21]


def test_cpu_model_follows_the_polyline_where_thread_counts_change():
    """Run 44's elementwise calibration: 1M elements (2 host threads) took 527 us and 2M (4
    threads) 549; the polyline gives 1M its own time where one line through the mid and 2M
    probes said 288 us. Between points it interpolates, beyond the last it grows at least in
    proportion, and a point faster than a smaller one counts as the smaller one's time."""
    rates = {"cpu_rate": 2.1e3, "cpu_overhead_us": 3.5,
             "cpu_points": [[1 << 17, 65.7], [1 << 20, 527.0], [1 << 21, 549.0]]}
    model = crossover_mod.cpu_model_us
    assert model(rates, 1 << 20) == pytest.approx(527.0)
    assert model(rates, 1 << 21) == pytest.approx(549.0)
    assert model(rates, 3 << 19) == pytest.approx(538.0)
    # Past the last point (the CPU backend's thread cap comes at 4M): in proportion, not
    # along the nearly flat 1M-2M segment (which would say 593 us at 4M).
    assert model(rates, 1 << 22) == pytest.approx(549.0 * 2)
    assert model(rates, 1 << 16) == pytest.approx((1 << 16) / 2.1e3 + 3.5)
    down = dict(rates, cpu_points=[[1 << 17, 65.7], [1 << 20, 527.0], [1 << 21, 500.0]])
    assert model(down, 3 << 19) == pytest.approx(527.0)
    dip = dict(rates, cpu_points=[[1 << 17, 65.7], [1 << 19, 40.0], [1 << 20, 527.0]])
    assert model(dip, 1 << 19) == pytest.approx(65.7)  # never below a smaller probe's time
    bad = dict(rates, cpu_points=[[1 << 20, 527.0], [1 << 17, 65.7]])
    assert model(bad, 1 << 20) == pytest.approx((1 << 20) / 2.1e3 + 3.5)
