#!/usr/bin/env bash
# The small-GEMM probe (tools/probe_gemm_small.py), then Nsight Compute counters (stall
# reasons, FMA pipe use, shared-memory bank conflicts, SM activity) of two of its kernels at
# 256^3. Writes into $OUT. Run on the GPU machine: bash tools/ncu_gemm.sh
export PYTHONPATH=src LC_CACHE_DIR=/tmp/lcc
timeout 150 python3 tools/probe_gemm_small.py $OUT/probe_gemm_small2.txt > /dev/null 2>&1; echo probe rc=$?
grep -E "FAIL|---|us" $OUT/probe_gemm_small2.txt | head -80
M1="regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio"
M2="smsp__inst_executed.sum,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,gpu__time_duration.sum,sm__warps_active.avg.pct_of_peak_sustained_active,sm__cycles_active.avg,gpc__cycles_elapsed.max,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,lts__t_sector_hit_rate.pct,sm__throughput.avg.pct_of_peak_sustained_elapsed"
for v in "tiled4 G=8 P2" "tiled G=8"; do
  echo "=== $v" >> $OUT/ncu_gemm.txt
  timeout 90 ncu --clock-control none -k regex:lc_gemm --launch-skip 2 -c 1 --metrics "$M1,$M2" python3 tools/probe_gemm_small.py --ncu "$v" >> $OUT/ncu_gemm.txt 2>&1 || echo "ncu failed" >> $OUT/ncu_gemm.txt
done
grep -vE "^==PROF==" $OUT/ncu_gemm.txt | grep -E "===|stalled|inst_exec|fma|duration|warps_active|cycles|conflict|hit_rate|throughput" | awk "{print \$1, \$NF}" | head -80
