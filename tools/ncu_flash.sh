#!/usr/bin/env bash
# Nsight Compute counters (stall reasons, shared-memory wavefronts, FMA pipe use) of the flash
# attention kernel for a few forced settings, then tools/flash_sweep.py. Writes into $OUT.
export PYTHONPATH=src:tests:tools LC_CACHE_DIR=/tmp/lc_cache
M1="regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio"
M2="l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum,smsp__inst_executed_op_shared_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,smsp__inst_executed.sum,smsp__sass_thread_inst_executed_op_ffma_pred_on.sum,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,gpu__time_duration.sum,sm__warps_active.avg.pct_of_peak_sustained_active"
for cfg in "4,8,8,4 4096" "8,8,8,1 4096" "1,8,8,1 512"; do set -- $cfg
  echo "=== config $1 seq $2" >> $OUT/ncu_metrics.txt
  timeout 60 ncu --clock-control none -k regex:lc_attention_flash -c 1 --launch-skip 1 --metrics "$M1,$M2" python3 tools/flash_sweep.py --force $1 $2 >> $OUT/ncu_metrics.txt 2>&1 || echo "ncu failed $1" >> $OUT/ncu_metrics.txt
done
grep -E "===|stalled_(short|mio|barrier|long|math|wait|not_sel)|wavefronts|inst_executed|ffma|fma_cycles|duration|warps_active|ERR|rror" $OUT/ncu_metrics.txt | cut -c1-120 | head -60
timeout 300 python3 tools/flash_sweep.py $OUT/flash_sweep.txt 4096 2048 1024 512 > $OUT/sweep.log 2>&1; echo sweep rc=$?
grep -E "BEST|auto" $OUT/sweep.log
grep -E "rows 8" $OUT/sweep.log | sort -t: -k2 -n | head -12
