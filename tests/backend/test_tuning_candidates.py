"""Tuning on CUDA: every registered CUDA variant of each key matches the float64 reference and
passes the tuner's own check; searches, the selector, calibration and the crossover on a GPU."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, cuda_only, rand

import lightning_core as lc
from lightning_core import config, tuning
from lightning_core.ops.attention import attention_reference
from lightning_core.runtime.backend import get_backend, implementations
from lightning_core.runtime.dispatch import Call, clear_decisions, execute
from lightning_core.tuning import keys, shapes
from lightning_core.tuning.cache import TuneCache
from lightning_core.tuning.crossover import FAMILIES, Crossover
from lightning_core.tuning.tuner import Tuner

pytestmark = cuda_only

# Odd sizes, 1s and primes next to the seed's shapes; shapes as shapes.make_call takes them.
CASES = {
    "matmul": [(1, 1, 1), (7, 13, 5), (64, 64, 64), (129, 67, 31), (256, 512, 128)],
    "attention": [(1, 8), (8, 16), (13, 12), (96, 48), (129, 64), (300, 80)],
    "conv2d": [(1, 3, 8, 8, 16), (2, 5, 11, 13, 7), (1, 16, 32, 32, 32)],
    "binary": [(1,), (1000,), (65537,)],
}
PARAMS = [(key, dims) for key, all_dims in CASES.items() for dims in all_dims]


def _random_call(rng, key: str, dims: tuple[int, ...], dtype) -> Call:
    call = shapes.make_call(key, dims, dtype)
    for operand in call.inputs:
        operand.array = rand(rng, *operand.array.shape, dtype=dtype)
    return call


def _reference(call: Call) -> np.ndarray:
    spec = keys.SPECS[call.kernel]
    return spec.reference(tuple(o.array for o in call.inputs), call.params)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("key,dims", PARAMS)
def test_every_cuda_variant_matches_the_reference(rng, key, dims, dtype):
    call = _random_call(rng, key, dims, dtype)
    ref = _reference(call)
    variants = [i.variant for i in implementations("cuda", key)
                if np.dtype(dtype).name in i.dtypes]
    assert variants, f"no CUDA {key} for {np.dtype(dtype).name}"
    for variant in variants:
        call.variant = variant
        try:
            assert_close(execute(call, "cuda"), ref, dtype)
        except AssertionError as exc:
            raise AssertionError(f"cuda.{key}.{variant} at {dims}: {exc}") from None


@pytest.mark.parametrize("key,dims", PARAMS)
def test_search_rejects_no_registered_variant(tmp_path, rng, key, dims):
    backend = get_backend("cuda")
    tuner = Tuner(TuneCache(str(tmp_path / "tune.json")), warmup=1, runs=3, budget_s=0.05)
    call = _random_call(rng, key, dims, np.float32)
    impls = [i for i in implementations("cuda", key)
             if "float32" in i.dtypes and "fp32" in i.precisions]
    entry = tuner.search(backend, impls, call, incumbent=impls[0].variant)
    assert entry is not None and entry["rejected"] == {}
    assert set(entry["timings_us"]) == {i.variant for i in impls}
    assert all(t > 0 for t in entry["timings_us"].values())
    assert entry["timer"] == "cuda_events" and isinstance(entry["cpu_us"], float)
    assert tuner.lookup(backend, keys.SPECS[key], call)["winner"] == entry["winner"]


def test_tune_2_picks_a_tuned_variant_through_the_api(tmp_path, rng):
    q, k, v = (rand(rng, 96, 48) for _ in range(3))
    try:
        with config.override(LC_TUNE=2, LC_TUNE_CACHE_FILE=str(tmp_path / "tune.json")):
            tuning.reset_tuning()
            lc.runtime_trace_enable(True)
            lc.runtime_trace_clear()
            out = lc.attention2d(q, k, v, False, "cuda")
            (ev,) = lc.runtime_trace_events()
            report = lc.tuning_report()
    finally:
        lc.runtime_trace_enable(False)
        tuning.reset_tuning()
    assert_close(out, attention_reference(q, k, v, False))
    assert ev["impl_reason"].startswith("tuned") and ev["selected_device"] == "cuda"
    (row,) = [e for e in report["entries"] if e["op"] == "attention"]
    assert row["winner"] == ev["impl"].split(".")[-1] and row["bucket"] == "s=128,d=48,causal=0"


def test_calibration_is_fast_and_sane(tmp_path):
    backend = get_backend("cuda")
    hook = Crossover(Tuner(TuneCache(str(tmp_path / "tune.json"))))
    hook.calibrate(backend)  # the first run may compile kernels
    cal = hook.calibrate(backend)
    assert cal["measure_s"] < 1.0
    for direction in ("h2d_gbps", "d2h_gbps"):
        assert all(0.5 < cal[direction][kind] < 1000 for kind in ("pinned", "pageable"))
    assert 1.0 < cal["launch_sync_us"] < 5000
    for family in FAMILIES:
        rates = cal["families"][family]
        assert rates["cpu_rate"] > 0 and rates["gpu_rate"] > 0 and rates["cpu_overhead_us"] >= 0


def test_crossover_routes_tiny_host_calls_to_the_cpu(tmp_path, rng):
    import cupy

    a, b = rand(rng, 16), rand(rng, 16)
    big = rand(rng, 2048, 2048)
    try:
        with config.override(LC_TUNE=1, LC_TUNE_CACHE_FILE=str(tmp_path / "tune.json")):
            tuning.reset_tuning()
            lc.runtime_trace_enable(True)
            lc.runtime_trace_clear()
            lc.vector_add(a, b)
            lc.matmul2d(big, big)
            lc.vector_add(cupy.asarray(a), cupy.asarray(b))  # resident: never crosses over
            tiny, large, resident = lc.runtime_trace_events()
            with config.override(LC_CROSSOVER=False):
                clear_decisions()
                lc.runtime_trace_clear()
                lc.vector_add(a, b)
                (off,) = lc.runtime_trace_events()
    finally:
        lc.runtime_trace_enable(False)
        tuning.reset_tuning()
    assert (tiny["selected_device"], tiny["impl_reason"]) == ("cpu", "crossover")
    assert large["selected_device"] == "cuda" and resident["selected_device"] == "cuda"
    assert off["selected_device"] == "cuda"


@pytest.mark.parametrize("op", shapes.OPS)
def test_pretune_one_shape_per_op(tmp_path, op):
    backend = get_backend("cuda")
    tuner = Tuner(TuneCache(str(tmp_path / "tune.json")), warmup=1, runs=3, budget_s=0.05)
    row = shapes.tune_shape(tuner, backend, op, shapes.PRETUNE_SHAPES[op][1], "fp32")
    assert row["status"] == "tuned" and row["winner"] in row["candidates"]
    assert isinstance(row["cpu_us"], float) and row["rejected"] == {}
