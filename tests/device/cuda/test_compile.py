"""NVRTC compilation through backends/cuda/compile.py: errors, disk cache, cache keys."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import cuda_only

from lightning_core import config
from lightning_core.errors import CompileError

pytestmark = [pytest.mark.cuda, cuda_only]

GOOD = r"""
extern "C" __global__ void lc_test_scale(float* x, float s, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s * SCALE_BY;
}
template <typename T>
__global__ void lc_test_fill(T* x, T v, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = v;
}
"""


@pytest.fixture
def compile_mod(tmp_path):
    """compile.py with its disk cache in a fresh folder and nothing held in memory."""
    from lightning_core.backends.cuda import compile as mod

    mod.clear_memory_cache()
    with config.override(LC_CACHE_DIR=str(tmp_path)):
        yield mod
    mod.clear_memory_cache()


def options(mod, *extra):
    return ("-std=c++17", f"-arch=sm_{mod._arch()}", *extra)


def cache_files(tmp_path, suffix):
    folder = tmp_path / "kernels"
    return sorted(p for p in folder.iterdir() if p.suffix == suffix) if folder.exists() else []


def test_broken_source_raises_compile_error_with_log(compile_mod):
    src = 'extern "C" __global__ void lc_bad(float* x) { x[0] = undefined_name; }'
    with pytest.raises(CompileError, match=r"^\[compile\]") as info:
        compile_mod.compile_source(src, "lc_bad", options(compile_mod), name="bad.cu")
    err = info.value
    assert "undefined_name" in err.log and err.path == "bad.cu"
    assert any(o.startswith("-arch=sm_") for o in err.options)


def test_compiled_kernel_runs_and_second_process_call_hits_disk(compile_mod, tmp_path,
                                                                monkeypatch):
    import cupy

    opts = options(compile_mod, "-DSCALE_BY=2")
    compile_mod.compile_source(GOOD, "lc_test_scale", opts)
    assert len(cache_files(tmp_path, ".cubin")) == 1
    compile_mod.clear_memory_cache()

    def no_nvrtc(*args, **kwargs):
        raise AssertionError("compiled again instead of loading the disk cache")

    monkeypatch.setattr(compile_mod, "_nvrtc_compile", no_nvrtc)
    kernel = compile_mod.compile_source(GOOD, "lc_test_scale", opts)
    x = cupy.arange(5, dtype=cupy.float32)
    kernel((1,), (32,), (x, np.float32(1.5), np.int32(5)))
    np.testing.assert_array_equal(x.get(), np.arange(5) * 3.0)


def test_corrupt_cache_file_is_a_miss(compile_mod, tmp_path):
    opts = options(compile_mod, "-DSCALE_BY=3")
    compile_mod.compile_source(GOOD, "lc_test_scale", opts)
    (cubin,) = cache_files(tmp_path, ".cubin")
    cubin.write_bytes(b"not a cubin")
    compile_mod.clear_memory_cache()
    compile_mod.compile_source(GOOD, "lc_test_scale", opts)  # recompiled, no crash
    meta = json.loads(cubin.with_suffix(".json").read_text())
    assert meta["cubin_sha256"] != "" and cubin.read_bytes() != b"not a cubin"


def test_template_name_expressions(compile_mod):
    import cupy

    kernel = compile_mod.compile_source(GOOD, "lc_test_fill<double>", options(
        compile_mod, "-DSCALE_BY=1"), name_expressions=("lc_test_fill<float>",))
    x = cupy.zeros(3, cupy.float64)
    kernel((1,), (32,), (x, np.float64(2.5), np.int32(3)))
    np.testing.assert_array_equal(x.get(), 2.5)


def test_cache_key_names_every_input(compile_mod):
    key = compile_mod.cache_key
    base = key(GOOD, ("-DA=1",))
    assert base == key(GOOD, ("-DA=1",))
    assert base != key(GOOD, ("-DA=2",))
    assert base != key(GOOD + " ", ("-DA=1",))
    assert base != key(GOOD, ("-DA=1",), ("lc_test_fill<float>",))
    assert base != key(GOOD, ("-DA=1",), headers={"common.cuh": "0" * 64})


def test_get_function_defines_change_the_cached_binary(compile_mod, tmp_path):
    name = "lc_binary<float, 0, true>"
    first = compile_mod.get_function("elementwise.cu", name)
    assert compile_mod.get_function("elementwise.cu", name) is first  # in-memory hit
    compile_mod.get_function("elementwise.cu", name, {"LC_UNUSED": 1})
    compile_mod.get_function("elementwise.cu", name, {"LC_UNUSED": 2})
    metas = [json.loads(p.read_text()) for p in cache_files(tmp_path, ".json")]
    assert len(metas) == 3
    for meta in metas:
        opts = meta["options"]
        assert "-std=c++17" in opts and any(o.startswith("-arch=sm_") for o in opts)
        assert not any("fast_math" in o or "fast-math" in o for o in opts)
        assert any(o.startswith("-I") for o in opts)  # common.cuh resolved from kernels/


@pytest.mark.api_errors
def test_missing_file_and_kernel_raise_compile_error(compile_mod):
    with pytest.raises(CompileError, match=r"^\[compile\] cannot read"):
        compile_mod.get_function("no_such_file.cu", "lc_nothing")
    with pytest.raises(CompileError, match="lc_not_there"):
        compile_mod.compile_source(GOOD, "lc_not_there", options(compile_mod, "-DSCALE_BY=1"))


def test_unwritable_cache_dir_falls_back(compile_mod, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        with config.override(LC_CACHE_DIR=str(ro / "sub")):
            kernel = compile_mod.compile_source(GOOD, "lc_test_scale",
                                                options(compile_mod, "-DSCALE_BY=5"))
        assert kernel is not None
    finally:
        os.chmod(ro, 0o700)
