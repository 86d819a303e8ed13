#!/usr/bin/env bash
# One batch on the GPU machine: GPU test suite (TESTS=0 skips it), CUDA acceptance targets
# (TARGETS=0 skips them),
# memcheck on the CUDA kernel tests (SANITIZE=1), racecheck on the tests of every kernel that
# shares memory between threads (RACECHECK=1), a host profile (PROFILE=0 skips it),
# `lc bench all` (BENCH_ALL=1, packed as $OUT/bench_all.tar: the device tool returns a limited
# number of files).
# Results land in $OUT (logs, JSON, CSV).
set -u
export PYTHONPATH=src:tests PYTHONUNBUFFERED=1 LC_CACHE_DIR=/tmp/lc_cache
OUT=${OUT:-/tmp/lc_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt" 2>&1
# The suite tunes and calibrates under its own load (e.g. two processes tuning at once); its
# tuning cache must not become the targets' (run 26: a CPU GEMM rate calibrated during the
# suite at 7 GFLOP/s sent matmul 256^3 one-shots to the GPU).
if [ "${TESTS:-1}" = 1 ]; then
  LC_TUNE_CACHE_FILE=/tmp/lc_tune_pytest.json timeout ${TEST_S:-240} python3 -m pytest -q \
      -p no:cacheprovider --tb=short --timeout 60 -rf tests \
      > "$OUT/test_gpu.log" 2>&1; echo "pytest rc=$?" >> "$OUT/test_gpu.log"
  tail -3 "$OUT/test_gpu.log"
fi
if [ "${TARGETS:-1}" = 1 ]; then
  timeout ${TARGET_S:-200} python3 -m lightning_core.bench.targets --out "$OUT/cuda_targets.json" \
      > "$OUT/targets.log" 2>&1; echo "targets rc=$?" >> "$OUT/targets.log"
  # What the auto rows decided from: the calibration and the tuned entries (cpu_us, kernels).
  cp "$LC_CACHE_DIR/tune_cache.json" "$OUT/tune_cache_targets.json" 2>/dev/null
  tail -60 "$OUT/targets.log"
fi
if [ "${SANITIZE:-0}" = 1 ]; then
  # No -x: one test failing under the sanitizer must not hide the rest from it.
  timeout ${SANITIZE_S:-150} compute-sanitizer --tool memcheck --error-exitcode 1 python3 -m \
      pytest -q -p no:cacheprovider -rf -m "not api_errors and not frame_refs" tests/device/cuda \
      tests/backend/test_cuda_attention_conv.py \
      > "$OUT/memcheck.log" 2>&1; echo "memcheck rc=$?" >> "$OUT/memcheck.log"
  tail -3 "$OUT/memcheck.log"
fi
if [ "${RACECHECK:-0}" = 1 ]; then
  # The kernels that share tiles through shared memory between warps (flash, tensor-core,
  # rows); the whole suite under racecheck is `make sanitize-gpu`.
  timeout 150 compute-sanitizer --tool racecheck --error-exitcode 1 python3 -m pytest -q \
      -p no:cacheprovider -k "tensor_core or packed or causal_rows or rows_kernel" \
      tests/backend/test_cuda_attention_conv.py > "$OUT/racecheck.log" 2>&1
  echo "racecheck rc=$?" >> "$OUT/racecheck.log"
  tail -3 "$OUT/racecheck.log"
  # The other kernels that share memory between threads: the tiled GEMM (warps summed through
  # shared memory), the row reductions (softmax, layer_norm) and the conv kernels.
  timeout ${RACECHECK_S:-150} compute-sanitizer --tool racecheck --error-exitcode 1 python3 -m \
      pytest -q -p no:cacheprovider -rf -k cuda tests/device/cuda/test_cuda_gemm_tiled.py \
      tests/backend/test_nn_ops.py tests/backend/test_conv.py > "$OUT/racecheck_shared.log" 2>&1
  echo "racecheck rc=$?" >> "$OUT/racecheck_shared.log"
  tail -3 "$OUT/racecheck_shared.log"
fi
if [ "${PROFILE:-1}" = 1 ]; then
  timeout 60 python3 tools/profile_overhead.py "$OUT/profile.txt" > /dev/null 2>&1 || echo "profile failed"
fi
if [ "${BENCH_ALL:-0}" = 1 ]; then
  timeout ${BENCH_S:-150} python3 -m lightning_core bench all --device cuda \
      --out-dir "$OUT/bench_all" > "$OUT/bench_all.log" 2>&1; echo "bench all rc=$?"
  mv "$OUT/bench_all.log" "$OUT/bench_all/" 2>/dev/null
  tar -C "$OUT" -cf "$OUT/bench_all.tar" bench_all && rm -rf "$OUT/bench_all"
fi
