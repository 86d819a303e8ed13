"""Benchmark reports: summary statistics, Markdown tables, plots, the variance gate and the
README's generated performance section, all on synthetic result files."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_core.bench import gate, summary
from lightning_core.bench.cli import main
from lightning_core.bench.harness import NotMeasured, Sample
from lightning_core.bench.plots import plot_suite
from lightning_core.bench.report import flatten, write_results

ROOT = Path(__file__).resolve().parents[2]


def _row(suite: str, bench: str, shape: str, lc_ms: float, torch_ms: float) -> dict:
    lc, peer = Sample.from_ns([lc_ms * 1e6] * 3), Sample.from_ns([torch_ms * 1e6] * 3)
    return {"suite": suite, "bench": bench, "shape": shape, "device": "cuda",
            "precision": "fp32", "status": "ok", "lc_resident": lc, "torch_eager": peer,
            "torch_graph": NotMeasured("torch could not capture a CUDA graph"),
            "speedup_eager": torch_ms / lc_ms, "speedup_graph": float("nan"),
            "floor_resident_ms": lc_ms / 2}


ENV = {"date": "2026-11-29T12:00:00+00:00", "lightning_core": "0.2.0", "torch": "2.11",
       "cupy": "14.2", "numpy": "2.5", "precision": "fp32", "cpu_count": {"usable": 16},
       "gpu": {"device": {"name": "NVIDIA H200"}}}


def _write_run(folder: Path) -> None:
    kernel = [_row("kernel", "attention", "seq=8", 0.01, 0.03),
              _row("kernel", "attention", "seq=96", 0.02, 0.03),
              _row("kernel", "conv_relu", "batch=1", 0.04, 0.02)]
    ml = [_row("ml", "vector_add", "n=65536", 0.01, 0.015)]
    write_results(folder, "ml_all_bench", "ml", ml, ENV, {"command": "lc bench ml"})
    write_results(folder, "kernel_bench", "kernel", kernel, ENV, {"command": "lc bench kernel"})
    (folder / "quick_bench_variance_gate.json").write_text(json.dumps({"gate": {}}))


# ---- statistics and Markdown ---------------------------------------------------------------

def test_stats_of_ratios():
    got = summary.stats([0.5, 1.0, 2.0, 4.0, float("nan"), "n/a", None, True])
    assert got["rows"] == 4 and got["wins"] == 2 and got["win_rate"] == 0.5
    assert got["median"] == 1.5 and got["avg"] == 1.875
    assert got["geomean"] == pytest.approx(math.sqrt(2))
    assert (got["min"], got["max"]) == (0.5, 4.0)
    assert summary.stats([])["rows"] == 0 and summary.stats(["n/a"])["median"] is None


def test_headline_family_and_comparison_tables():
    rows = [flatten(r) for r in (_row("k", "a", "1", 1.0, 2.0), _row("k", "a", "2", 1.0, 0.5),
                                 _row("k", "b", "3", 1.0, 3.0))]
    assert summary.headline(rows) == "speedup_eager"
    assert summary.headline([{"torch_over_lc": 1.2}]) == "torch_over_lc"
    assert summary.headline([{"bench": "x"}]) is None
    comps = summary.comparison_stats(rows)
    assert [c["comparison"] for c in comps] == ["speedup_eager"]  # graph is all n/a
    fams = summary.family_stats(rows, "speedup_eager")
    assert [(f["family"], f["rows"], f["median"]) for f in fams] == [("a", 2, 1.25),
                                                                      ("b", 1, 3.0)]


def test_suite_markdown_has_the_seed_layout(tmp_path):
    _write_run(tmp_path)
    (doc,) = summary.load_docs([tmp_path / "kernel_bench.json"])
    text = summary.suite_markdown(doc)
    assert text.startswith("# Benchmark `kernel`\n")
    assert "NVIDIA H200" in text and "2026-11-29T12:00:00+00:00" in text
    assert ("| torch eager ÷ LC resident (device-resident, sync each call) | 3 | 67% | 1.50x "
            "| 1.67x | 1.31x | 0.50x | 3.00x |") in text
    assert "| attention | 2 | 100% | 2.25x | 2.25x | 1.50x | 3.00x |" in text
    assert "| conv_relu | batch=1 | 0.04 | 0.02 | 0.02 | 0.50x | ok |" in text
    assert "- torch_graph: torch could not capture a CUDA graph (3 of 3 rows)" in text
    assert "torch graph ms" not in text  # a column with no measurement is left out


def test_cross_suite_summary_orders_suites_and_ignores_other_json(tmp_path):
    _write_run(tmp_path)
    json_path, md_path = summary.write_cross_suite(tmp_path)
    data = json.loads(json_path.read_text())
    assert [s["suite"] for s in data["suites"]] == ["kernel", "ml"]
    kernel = data["suites"][0]
    assert kernel["rows"] == 3 and kernel["gaps"]["max_abs_gap_case"] == "conv_relu/batch=1"
    assert kernel["gaps"]["gap_ms"]["max"] == pytest.approx(0.02)
    assert [f["family"] for f in data["families"]] == ["attention", "conv_relu", "vector_add"]
    text = md_path.read_text()
    assert "| kernel | torch eager ÷ LC resident" in text and "`ml_all_bench.json`" in text
    before = (json_path.read_bytes(), md_path.read_bytes())
    summary.write_cross_suite(tmp_path)
    assert (json_path.read_bytes(), md_path.read_bytes()) == before


def test_cross_suite_script_and_bad_folder(tmp_path, capsys):
    _write_run(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/generate_cross_suite_summary.py"),
                           str(tmp_path)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and (tmp_path / "cross_suite_summary.md").is_file()
    assert summary.main([str(tmp_path / "missing")]) == 2


# ---- plots ---------------------------------------------------------------------------------

def test_plots_of_ratios_and_scaling(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{**flatten(_row("scaling", "gemm", f"n={n}", n / 100, n / 50)), "size": n,
             "sweep": "m = k = n", "floor_kernel_ms": n / 400} for n in (64, 128, 256)]
    paths, note = plot_suite({"suite": "scaling", "rows": rows}, tmp_path, "scaling_bench")
    assert note is None
    assert [p.name for p in paths] == ["scaling_bench_ratios.png", "scaling_bench_gemm.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_plots_are_skipped_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    paths, note = plot_suite({"suite": "k", "rows": []}, tmp_path, "k")
    assert paths == [] and "matplotlib is not installed" in note


# ---- variance gate -------------------------------------------------------------------------

def _runs(totals_ms):
    """Flattened quick rows: two cases per run, splitting each run's total 1:3."""
    return [[{"suite": "quick", "bench": "b", "shape": s, "compared": "oneshot",
              "lc_oneshot_ms": t * share, "status": "ok"}
             for s, share in (("x", 0.25), ("y", 0.75))] for t in totals_ms]


def test_gate_trims_the_extreme_runs():
    steady = gate.evaluate(_runs([10.0, 10.02, 9.98, 10.01, 50.0]), 2.0, trim=1)
    assert steady["suite_totals_ms"][4] == 50.0 and steady["trim_runs"] == 1
    assert steady["suite_total_trimmed_cv_pct"] < 0.5 < steady["suite_total_cv_pct"]
    assert steady["passed"]
    assert [c["case"] for c in steady["per_case"]] == ["b/x", "b/y"]
    noisy = gate.evaluate(_runs([10.0, 12.0, 8.0, 15.0, 5.0]), 2.0, trim=1)
    assert noisy["suite_total_trimmed_cv_pct"] > 2.0 and not noisy["passed"]
    assert gate.evaluate(_runs([10.0, 11.0]), 2.0, trim=1)["trim_runs"] == 0
    assert "FAILED" in gate.gate_markdown(noisy)


@pytest.mark.parametrize(("totals", "expected"), [([10.0, 10.01, 9.99, 10.02, 9.98], 0),
                                                  ([10.0, 12.0, 8.0, 15.0, 5.0], 1)])
def test_gate_exit_status_through_the_cli(totals, expected, tmp_path, monkeypatch, capsys):
    from lightning_core.bench import quick

    runs = iter(totals)

    def fake_run(args):
        total = next(runs)
        return [{"suite": "quick", "bench": "b", "shape": s, "device": "cpu",
                 "precision": "fp32", "status": "ok", "compared": "oneshot",
                 "lc_oneshot": Sample.from_ns([total * share * 1e6])}
                for s, share in (("x", 0.5), ("y", 0.5))]

    monkeypatch.setattr(quick, "run", fake_run)
    rc = main(["quick", "--gate", "--device", "cpu", "--repeats", "5", "--threshold-pct", "2",
               "--out-dir", str(tmp_path)])
    assert rc == expected
    result = json.loads((tmp_path / "quick_bench_variance_gate.json").read_text())
    assert result["gate"]["passed"] is (expected == 0)
    assert len((tmp_path / "quick_bench_variance_runs.csv").read_text().splitlines()) == 11
    assert "variance gate" in capsys.readouterr().out


# ---- README performance section ------------------------------------------------------------

def _tool():
    spec = importlib.util.spec_from_file_location("gen_readme_perf",
                                                  ROOT / "tools/gen_readme_perf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gen_readme_perf_round_trip_and_check(tmp_path, capsys):
    tool = _tool()
    run = tmp_path / "results" / "2026-11-29-h200"
    run.mkdir(parents=True)
    _write_run(run)
    readme = tmp_path / "README.md"
    readme.write_text("# X\n\nintro\n\n<!-- perf:begin -->\nold\n<!-- perf:end -->\n\ntail\n")
    args = [str(run), "--readme", str(readme)]
    assert tool.main([*args, "--check"]) == 1
    assert tool.main(args) == 0
    first = readme.read_bytes()
    text = first.decode()
    assert text.startswith("# X\n\nintro\n\n<!-- perf:begin -->\n") and text.endswith("tail\n")
    assert "old" not in text and "from `results/2026-11-29-h200/`" in text
    assert "Measured on NVIDIA H200 (device `cuda`) on 2026-11-29" in text
    assert "| kernel | torch eager ÷ LC resident (device-resident, sync each call) | 3 |" in text
    assert tool.main(args) == 0 and readme.read_bytes() == first  # byte for byte the same
    assert tool.main([*args, "--check"]) == 0
    readme.write_text(text.replace("| 3 |", "| 4 |", 1))
    assert tool.main([*args, "--check"]) == 1
    assert "out of date" in capsys.readouterr().err


def test_gen_readme_perf_needs_markers_and_results(tmp_path):
    tool = _tool()
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    _write_run(tmp_path)
    with pytest.raises(SystemExit, match="no <!-- perf:begin -->"):
        tool.main([str(tmp_path), "--readme", str(readme)])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no suite result files"):
        tool.main([str(empty), "--readme", str(readme)])
    assert tool.main([str(tmp_path / "nope"), "--readme", str(readme)]) == 2
    assert "<!-- perf:begin -->" in (ROOT / "README.md").read_text()
