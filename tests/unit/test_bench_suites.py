"""The comparison suites of ``lc bench`` on the CPU: every suite writes its files, every side is
checked before it is timed, n/a cells carry their reason, floors and ratios are like for like."""

from __future__ import annotations

import csv
import json
import math
import sys

import numpy as np
import pytest
from conftest import cuda_only

import lightning_core as lc
from lightning_core.bench.cli import SUITES, main
from lightning_core.bench.harness import NotMeasured, Sample
from lightning_core.bench.suites import (
    api_overhead,
    gemm_sweep,
    kernel,
    ml,
    pipeline,
    scaling,
)
from lightning_core.bench.suites.ceilings import PERF_MD_H200, Ceilings, Floor, Work, ceilings
from lightning_core.bench.suites.common import ratio, selected
from lightning_core.bench.suites.timers import pipeline_batch, pipelined

FAST = ["--device", "cpu", "--iters", "2", "--warmup", "0", "--min-time-s", "0",
        "--max-time-s", "0.02"]
# A few cheap cases of each suite (filters match "bench/shape").
PICKS = {
    "kernel": ["attention/seq=8,head_dim=16", "h=16,w=16,out_ch=16"],
    "gemm-sweep": ["m=256,"],
    "pipeline": ["batch=512,", "batch=1024,d_model=1024", "seq=48,"],
    "ml": ["batch=1024,in", "rows=512", "n=65536"],
    "api-overhead": ["seq=256", "batch=1,in_ch=3", "seq=48"],
    "scaling": ["gemm/m=64,", "attention/seq=64,", "vector_add/n=1024", "vector_add/n=4096"],
}
MODULES = {"kernel": kernel, "gemm-sweep": gemm_sweep, "pipeline": pipeline, "ml": ml,
           "api-overhead": api_overhead, "scaling": scaling}


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def no_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)


@pytest.mark.parametrize("suite", sorted(PICKS))
def test_each_suite_runs_on_cpu_and_writes_its_files(suite, tmp_path, no_torch):
    rc = main([suite, *FAST, "--ceilings", "perf-md", "--out-dir", str(tmp_path),
               "--cases", *PICKS[suite]])
    assert rc == 0
    name = MODULES[suite].RESULT_NAME
    rows = _rows(tmp_path / f"{name}.csv")
    assert rows and all(r["status"] == "ok" and r["device"] == "cpu" for r in rows)
    assert all(r["precision"] == "fp32" and float(r["max_rel_err"]) < 5e-5 for r in rows)
    doc = json.loads((tmp_path / f"{name}.json").read_text())
    assert doc["suite"] == suite and len(doc["rows"]) == len(rows)
    markdown = (tmp_path / f"{name}.md").read_text()
    assert "## Suite summary" in markdown and "## Cases" in markdown
    if suite == "api-overhead":
        assert all(float(r["direct_oneshot_ms"]) > 0 and float(r["api_oneshot_ms"]) > 0
                   for r in rows)
        assert all(r["direct_resident_ms"] == "n/a" for r in rows)
    else:
        for row in rows:
            assert "torch is not importable" in row["notes"]
            assert float(row["lc_oneshot_ms"]) > 0 and float(row["lc_resident_ms"]) > 0
            assert row["lc_kernel_ms"] == "n/a" and row["torch_eager_ms"] == "n/a"
            assert row["floor_source"] == PERF_MD_H200.source
            assert float(row["floor_resident_ms"]) > float(row["floor_kernel_ms"]) > 0
            assert row["speedup_eager"] == "n/a"  # no torch: no ratio, never a made-up one
            assert row["torch_tf32"] == "n/a (no torch)"
        assert doc["settings"]["ceilings"]["source"] == PERF_MD_H200.source
    if suite == "scaling":
        assert {r["bench"] for r in rows} == {"gemm", "attention", "vector_add"}
    pytest.importorskip("matplotlib")
    assert (tmp_path / f"{name}_ratios.png").is_file()
    if suite == "scaling":
        assert (tmp_path / f"{name}_vector_add.png").is_file()


def test_every_seed_case_is_covered():
    idents = {c.ident for c in kernel.cases()}
    assert "attention/seq=12,head_dim=12" in idents and len(idents) == 16
    assert "conv_relu/batch=16,in_ch=16,h=32,w=32,out_ch=32,k=3" in idents
    assert [c.shape for c in gemm_sweep.cases()][-1] == "m=4096,k=1024,n=4096"
    assert [c.bench for c in pipeline.cases()] == ["ffn_gelu"] * 2 + ["ln_proj"] * 2 + [
        "conv_attn"] * 4
    assert len(ml.cases()) == 10 and len(api_overhead.cases()) == 6
    sizes = [c.size for c in scaling.cases("cuda")]
    assert min(sizes) == 64 and 8192 in sizes and max(sizes) == 2 ** 26
    assert max(c.size for c in scaling.cases("cpu") if c.bench == "gemm") == 1024
    assert set(SUITES) >= {"quick", "kernel", "gemm-sweep", "pipeline", "ml", "api-overhead",
                           "scaling"}


def test_a_wrong_lc_result_fails_the_row_and_the_run(tmp_path, no_torch, monkeypatch, capsys):
    monkeypatch.setattr(lc, "matmul2d", lambda a, b, device="auto": np.zeros((a.shape[0],
                                                                             b.shape[1])))
    rc = main(["gemm-sweep", *FAST, "--ceilings", "perf-md", "--out-dir", str(tmp_path),
               "--cases", "m=256,"])
    assert rc == 1
    (row,) = _rows(tmp_path / "large_gemm_auto_sweep.csv")
    assert row["status"] == "FAILED" and row["lc_oneshot_ms"] == "n/a"
    assert "lc_oneshot: wrong result: max relative error 1 > 5e-05" in row["notes"]
    assert float(row["lc_resident_ms"]) > 0  # the session path was still right
    assert "FAILED their correctness check" in capsys.readouterr().err


def test_torch_on_the_cpu_fills_its_columns(tmp_path):
    pytest.importorskip("torch")
    rc = main(["ml", *FAST, "--out-dir", str(tmp_path), "--cases", "n=65536"])
    assert rc == 0
    (row,) = _rows(tmp_path / "ml_all_bench.csv")
    assert float(row["torch_eager_ms"]) > 0 and float(row["torch_oneshot_ms"]) > 0
    assert float(row["speedup_eager"]) > 0 and float(row["speedup_oneshot"]) > 0
    assert row["torch_graph_ms"] == "n/a" and "CUDA graphs need a CUDA device" in row["notes"]
    assert row["torch_tf32"] == "n/a (cpu)"
    assert "torch.compile is opt-in (--compile)" in row["notes"]


def test_all_writes_every_suite_and_the_cross_suite_summary(tmp_path, no_torch):
    rc = main(["all", *FAST, "--ceilings", "perf-md", "--out-dir", str(tmp_path),
               "--cases", "m=256,", "attention/seq=8,head_dim=16"])
    assert rc == 0
    for name in ("quick_bench", "kernel_bench", "large_gemm_auto_sweep", "scaling_bench"):
        assert (tmp_path / f"{name}.json").is_file() and (tmp_path / f"{name}.md").is_file()
    assert not (tmp_path / "pipeline_bench.json").exists()  # no pipeline case matched
    summary = json.loads((tmp_path / "cross_suite_summary.json").read_text())
    assert [s["file"] for s in summary["sources"]] == [
        "quick_bench.json", "kernel_bench.json", "large_gemm_auto_sweep.json",
        "scaling_bench.json"]
    assert "# Cross-suite summary" in (tmp_path / "cross_suite_summary.md").read_text()


def test_no_matching_case_anywhere_is_misuse(tmp_path):
    assert main(["all", *FAST, "--out-dir", str(tmp_path), "--cases", "nothing"]) == 2
    assert main(["kernel", *FAST, "--out-dir", str(tmp_path), "--cases", "nothing"]) == 2


# ---- floors, ratios, timers ----------------------------------------------------------------

def test_floor_of_a_compute_bound_and_a_launch_bound_case():
    ceil = Ceilings("test", "cuda", mem_bw=1e12, fp32_flops=1e13, launch_sync_s=1e-5,
                    h2d_bw=1e10, d2h_bw=5e9)
    big = Floor.of(Work(flops=1e11, device_bytes=1e9, host_in_bytes=1e9, host_out_bytes=5e8),
                   ceil)
    assert big.bound == "compute"
    assert big.kernel_ms == pytest.approx(10.0)  # 1e11 / 1e13 s
    assert big.resident_ms == pytest.approx(10.01)
    assert big.oneshot_ms == pytest.approx(10.01 + 100 + 100)
    tiny = Floor.of(Work(flops=1e3, device_bytes=1e3, host_in_bytes=0, host_out_bytes=0), ceil)
    assert tiny.bound == "launch" and tiny.resident_ms == pytest.approx(0.01, rel=1e-3)
    mem = Floor.of(Work(flops=1e9, device_bytes=1e11, host_in_bytes=0, host_out_bytes=0), ceil)
    assert mem.bound == "memory" and mem.kernel_ms == pytest.approx(100.0)


def test_cpu_ceilings_are_measured_once_and_json_ready():
    ceil = ceilings("cpu")
    assert ceil is ceilings("cpu") and ceil.source == "measured in this run"
    assert ceil.mem_bw > 1e8 and ceil.fp32_flops > 1e8 and 0 < ceil.launch_sync_s < 1e-2
    as_dict = ceil.as_dict()
    assert as_dict["h2d_bw"] is None and json.dumps(as_dict)
    assert ceilings("cpu", "perf-md") is PERF_MD_H200


def test_ratio_needs_two_measurements():
    a, b = Sample.from_ns([200, 200]), Sample.from_ns([100, 100])
    assert ratio(a, b) == 2.0
    assert math.isnan(ratio(a, NotMeasured("no")))
    assert math.isnan(ratio(NotMeasured("no"), b))


def test_pipelined_reports_the_cost_per_call():
    calls = []
    got = pipelined(lambda: calls.append(1), lambda: None, batch=10, warmup=1, iters=3)
    assert len(calls) == 40 and got.n == 3 and got.median_ns >= 0
    assert pipeline_batch(1e5) == 20 and pipeline_batch(1e9) == 1 and pipeline_batch(0) == 64


def test_selected_keeps_each_case_index():
    chosen = selected(kernel.cases(), ["seq=96", "out_ch=32"])
    assert [(i, c.ident) for i, c in chosen] == [
        (3, "attention/seq=96,head_dim=48"),
        (15, "conv_relu/batch=16,in_ch=16,h=32,w=32,out_ch=32,k=3")]
    assert len(selected(kernel.cases(), None)) == 16


def test_progress_falls_back_to_plain_lines_without_rich(monkeypatch, capsys):
    from lightning_core.bench.suites.common import progress

    monkeypatch.setitem(sys.modules, "rich.progress", None)
    with progress("kernel", 2) as advance:
        advance("a/1")
        advance("b/2")
    assert capsys.readouterr().err.splitlines() == ["[bench kernel] 1/2 a/1",
                                                    "[bench kernel] 2/2 b/2"]


# ---- on the GPU (run by the lead with make test-gpu) ------------------------------------

def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.cuda
@cuda_only
@pytest.mark.parametrize("suite", sorted(PICKS))
def test_each_suite_on_cuda(suite, tmp_path):
    rc = main([suite, "--device", "cuda", "--iters", "3", "--warmup", "1", "--min-time-s", "0",
               "--max-time-s", "0.05", "--out-dir", str(tmp_path), "--cases", *PICKS[suite]])
    assert rc == 0
    rows = _rows(tmp_path / f"{MODULES[suite].RESULT_NAME}.csv")
    assert rows and all(r["status"] == "ok" and r["device"] == "cuda" for r in rows)
    if suite == "api-overhead":
        assert all(float(r["api_over_direct_resident"]) > 0 for r in rows)
        return
    kernel_timed = suite in ("kernel", "gemm-sweep", "scaling")
    for row in rows:
        assert float(row["lc_resident_ms"]) > 0 and float(row["lc_oneshot_ms"]) > 0
        assert row["floor_source"] == "measured in this run"
        if kernel_timed:
            assert float(row["lc_kernel_ms"]) > 0
        if _torch_cuda():
            assert row["torch_tf32"] == "off"
            for column in ("torch_eager_ms", "torch_pipelined_ms", "torch_graph_ms",
                           "torch_oneshot_ms", "speedup_eager", "speedup_graph"):
                assert float(row[column]) > 0, column
            if kernel_timed:
                assert float(row["torch_kernel_ms"]) > 0 and float(row["speedup_kernel"]) > 0


@pytest.mark.cuda
@pytest.mark.slow
@cuda_only
def test_torch_compile_on_cuda(tmp_path):
    if not _torch_cuda():
        pytest.skip("torch with CUDA is not importable")
    rc = main(["ml", "--device", "cuda", "--compile", "--iters", "3", "--warmup", "1",
               "--min-time-s", "0", "--max-time-s", "0.05", "--out-dir", str(tmp_path),
               "--cases", "n=65536"])
    assert rc == 0
    (row,) = _rows(tmp_path / "ml_all_bench.csv")
    assert float(row["torch_compile_ms"]) > 0 and float(row["torch_compile_s"]) > 0


def test_host_times_counts_warmup_and_syncs_each_call():
    from lightning_core.bench.suites.timers import host_median_us, host_times

    calls, syncs = [], []
    samples = host_times(lambda: calls.append(1), lambda: syncs.append(1), warmup=3, iters=20,
                         budget_s=0.0)
    assert len(samples) == 15  # the floor when the budget is spent
    assert len(calls) == len(syncs) == 3 + 15
    assert all(s >= 0 for s in samples)
    assert host_median_us(lambda: None, iters=40, budget_s=10.0) >= 0


def test_interleaved_timer_alternates_which_side_runs_first():
    from lightning_core.bench.suites.timers import host_times_interleaved

    order: list[str] = []
    times = host_times_interleaved({"a": lambda: order.append("a"),
                                    "b": lambda: order.append("b")},
                                   warmup=2, rounds=4, per_round=3, round_warmup=1,
                                   budget_s=10.0)
    assert [len(times["a"]), len(times["b"])] == [12, 12]
    rounds = order[4:]  # after 2 + 2 warm-up calls: 4 rounds of (1 + 3) calls per side
    assert len(rounds) == 4 * 2 * 4
    firsts = [rounds[i] for i in range(0, len(rounds), 8)]
    assert firsts == ["a", "b", "a", "b"]  # each round starts with the other side
    assert all(t >= 0 for t in times["a"] + times["b"])
    # a spent budget still gives two rounds
    short = host_times_interleaved({"a": lambda: None}, warmup=0, rounds=8, per_round=2,
                                   round_warmup=0, budget_s=0.0)
    assert len(short["a"]) == 4


def test_paired_ratio_cancels_a_drift_between_rounds():
    from lightning_core.bench import targets

    # Both sides slow down together from round to round; ours is always 10% faster.
    lc_us, ref_us = [], []
    for level in (10.0, 30.0, 12.0, 40.0):
        lc_us += [level] * 5
        ref_us += [level * 1.1] * 5
    assert abs(targets._paired_ratio(lc_us, ref_us, 5) - 1.1) < 1e-12
    rows: list = []
    targets._row(rows, "fam", "case", 1.05, lc_us, ref_us, "ref", turn=5)
    assert rows[0]["pass"] and rows[0]["paired_turn"] == 5
    assert abs(rows[0]["ratio_ref_over_lc"] - 1.1) < 1e-12
    assert rows[0]["ratio_of_medians"] > 0
    targets._row(rows, "fam", "case", 1.05, lc_us, ref_us, "ref")  # unpaired: medians
    assert rows[1]["ratio_ref_over_lc"] == rows[1]["ratio_of_medians"]
    assert targets._paired_ratio([], [1.0], 5) != targets._paired_ratio([], [1.0], 5)  # NaN
