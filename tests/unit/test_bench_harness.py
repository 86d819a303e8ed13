"""The benchmark harness (statistics, adaptive sampling), result files and ``lc bench quick``."""

from __future__ import annotations

import csv
import json
import math
import os
import sys

import numpy as np
import pytest
from conftest import CUDA, cuda_only
from hypothesis import given
from hypothesis import strategies as st

import lightning_core as lc
from lightning_core.bench import report
from lightning_core.bench.cli import main
from lightning_core.bench.harness import NotMeasured, Sample, device_event_timer, measure
from lightning_core.bench.quick import cases


class FakeClock:
    """A nanosecond clock that only moves when a fake workload says so."""

    def __init__(self) -> None:
        self.now = 0
        self.calls = 0

    def __call__(self) -> int:
        return self.now

    def work(self, durations):
        """A function whose n-th call takes ``durations[n % len]`` nanoseconds."""

        def fn():
            self.now += durations[self.calls % len(durations)]
            self.calls += 1

        return fn


# ---- harness ----------------------------------------------------------------------------

def test_measure_records_each_call_and_skips_warmup():
    clock = FakeClock()
    fn = clock.work([100, 300, 200, 400, 500])
    got = measure(fn, warmup=2, iters=5, max_time_s=10, clock=clock)
    # The two warm-up calls took 100 and 300; the timed ones continue the cycle.
    assert got.raw_ns == (200, 400, 500, 100, 300)
    assert clock.calls == 7
    assert got.n == 5
    assert got.median_ns == 300
    assert got.mean_ns == 300
    assert got.p10_ns == pytest.approx(np.percentile(got.raw_ns, 10))
    assert got.p90_ns == pytest.approx(np.percentile(got.raw_ns, 90))
    assert got.cv == pytest.approx(np.std(got.raw_ns, ddof=1) / 300)
    assert got.median_ms == pytest.approx(0.0003)


def test_sync_is_inside_the_timed_region():
    clock = FakeClock()

    def sync():
        clock.now += 7

    got = measure(clock.work([1000]), warmup=0, iters=3, sync=sync, clock=clock)
    assert got.raw_ns == (1007, 1007, 1007)


def test_min_time_extends_fast_cases():
    clock = FakeClock()
    got = measure(clock.work([1_000_000]), warmup=0, iters=3, min_time_s=0.01, clock=clock)
    assert got.n == 10


def test_max_time_bounds_slow_cases_and_their_warmup():
    clock = FakeClock()
    got = measure(clock.work([300_000_000]), warmup=10, iters=100, max_time_s=1.0, clock=clock)
    # Warm-up stops at half the budget (two calls of 0.3 s); sampling stops past 1 s.
    assert got.n == 4
    assert clock.calls == 6


def test_one_warmup_call_always_runs():
    clock = FakeClock()
    measure(clock.work([5_000_000_000]), warmup=3, iters=1, max_time_s=1.0, clock=clock)
    assert clock.calls == 2


@pytest.mark.parametrize("kwargs", [
    {"warmup": -1, "iters": 1}, {"warmup": 0, "iters": 0},
    {"warmup": 0, "iters": 1, "max_time_s": 0}, {"warmup": 0, "iters": 1, "min_time_s": -1},
    {"warmup": 0, "iters": 1, "max_time_s": math.inf},
])
def test_bad_counts_are_rejected(kwargs):
    with pytest.raises(ValueError, match=r"^\[bench\]"):
        measure(lambda: None, **kwargs)


@given(st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=60))
def test_sample_statistics(raw):
    got = Sample.from_ns(raw)
    assert got.n == len(raw) and got.raw_ns == tuple(raw)
    assert min(raw) <= got.p10_ns <= got.median_ns <= got.p90_ns <= max(raw)
    assert got.median_ns == pytest.approx(float(np.median(raw)))
    assert got.mean_ns == pytest.approx(float(np.mean(raw)))
    assert got.cv >= 0 and (len(raw) > 1 or got.cv == 0)
    assert got.as_dict()["raw_ns"] == list(raw)


def test_empty_sample_is_an_error():
    with pytest.raises(ValueError, match=r"^\[bench\]"):
        Sample.from_ns([])


def test_measure_on_the_real_clock():
    got = measure(lambda: sum(range(100)), warmup=1, iters=5)
    assert got.n >= 5 and all(v > 0 for v in got.raw_ns)


@pytest.mark.cuda
@cuda_only
def test_device_event_timer_returns_a_sample():
    import cupy

    x = cupy.ones((512, 512), dtype=cupy.float32)
    got = device_event_timer(lambda: x @ x, warmup=2, iters=5)
    assert got.n >= 5 and got.median_ns > 0


# ---- result files -----------------------------------------------------------------------

def _rows():
    return [
        {"suite": "t", "bench": "op", "shape": "n=3", "ratio": 1.5,
         "fast": Sample.from_ns([1_000_000, 2_000_000, 3_000_000]),
         "slow": NotMeasured("no GPU here"), "err": float("nan"), "notes": ""},
        {"suite": "t", "bench": "op", "shape": "n=5", "ratio": 2.0,
         "fast": Sample.from_ns([4_000_000]), "slow": Sample.from_ns([8_000_000]),
         "err": 0.0, "notes": "first"},
    ]


def test_flatten_expands_timings_and_collects_reasons():
    flat = report.flatten(_rows()[0])
    assert flat["fast_ms"] == 2.0 and flat["fast_p10_ms"] == pytest.approx(1.2)
    assert flat["fast_p90_ms"] == pytest.approx(2.8) and flat["fast_n"] == 3
    assert flat["slow_ms"] == "n/a" and flat["slow_cv"] == "n/a"
    assert flat["err"] == "n/a"
    assert flat["notes"] == "slow: no GPU here"
    assert report.flatten(_rows()[1])["notes"] == "first"


def test_csv_and_json_are_written_and_traceable(tmp_path):
    out = tmp_path / "deep" / "dir"
    csv_path, json_path = report.write_results(out, "r", "t", _rows(), {"python": "3"},
                                               {"iters": 2})
    with open(csv_path, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["shape"] for r in table] == ["n=3", "n=5"]
    assert table[0]["slow_ms"] == "n/a" and float(table[1]["slow_ms"]) == 8.0
    doc = json.loads(json_path.read_text())
    assert doc["schema_version"] == report.SCHEMA_VERSION and doc["suite"] == "t"
    assert doc["environment"] == {"python": "3"} and doc["settings"] == {"iters": 2}
    first = doc["rows"][0]
    assert first["samples"]["fast"]["raw_ns"] == [1_000_000, 2_000_000, 3_000_000]
    assert "slow" not in first["samples"] and first["err"] == "n/a"
    assert sorted(p.name for p in out.iterdir()) == ["r.csv", "r.json"]


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    report.write_text_atomic(target, "old")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        report.write_text_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_plain_table_without_rich(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    report.print_table(_rows(), ["bench", "shape", "fast_ms", "slow_ms"], title="T")
    text = capsys.readouterr().out
    lines = text.strip().splitlines()
    assert lines[0] == "T" and lines[1].split() == ["bench", "shape", "fast_ms", "slow_ms"]
    assert lines[3].split() == ["op", "n=3", "2", "n/a"]


# ---- lc bench quick ---------------------------------------------------------------------

FAST = ["--iters", "2", "--warmup", "1", "--min-time-s", "0", "--max-time-s", "0.05"]


def _read(tmp_path):
    with open(tmp_path / "quick_bench.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_quick_runs_every_seed_case_on_cpu(tmp_path):
    rc = main(["quick", "--device", "cpu", "--iters", "2", "--warmup", "1",
               "--out-dir", str(tmp_path)])
    assert rc == 0
    rows = _read(tmp_path)
    assert [f"{r['bench']}/{r['shape']}" for r in rows] == [c.ident for c in cases()]
    for row in rows:
        assert row["status"] == "ok" and row["device"] == "cpu" and row["precision"] == "fp32"
        assert row["compared"] == "oneshot" and row["lc_resident_ms"] == "n/a"
        assert math.isfinite(float(row["lc_oneshot_ms"])) and float(row["numpy_ms"]) > 0
        assert float(row["max_rel_err"]) < 5e-5
    doc = json.loads((tmp_path / "quick_bench.json").read_text())
    assert doc["environment"]["lightning_core"] == lc.__version__
    assert doc["rows"][0]["samples"]["lc_oneshot"]["n"] >= 2


def test_quick_case_filter_and_missing_torch(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    rc = main(["quick", "--device", "cpu", *FAST, "--out-dir", str(tmp_path),
               "--cases", "m=256", "seq=8,"])
    assert rc == 0
    rows = _read(tmp_path)
    assert [r["bench"] for r in rows] == ["attention2d", "matmul2d"]
    assert all(r["torch_ms"] == "n/a" and "torch is not importable" in r["notes"]
               for r in rows)


def test_a_wrong_result_fails_the_row_loudly(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lc, "matmul2d", lambda a, b, device: np.zeros((a.shape[0], b.shape[1])))
    rc = main(["quick", "--device", "cpu", *FAST, "--out-dir", str(tmp_path),
               "--cases", "m=256"])
    assert rc == 1
    (row,) = _read(tmp_path)
    assert row["status"] == "FAILED" and row["lc_oneshot_ms"] == "n/a"
    assert row["notes"].startswith("lc_oneshot: wrong result: max relative error 1 > ")
    assert "m=256,k=256,n=256 on cpu: lc_oneshot: wrong result" in capsys.readouterr().err


def test_an_error_in_lc_fails_the_row(tmp_path, monkeypatch):
    def broken(*args):
        raise lc.NotSupportedError("[matmul2d] not here")

    monkeypatch.setattr(lc, "matmul2d", broken)
    assert main(["quick", "--device", "cpu", *FAST, "--out-dir", str(tmp_path),
                 "--cases", "m=256"]) == 1
    (row,) = _read(tmp_path)
    assert row["notes"].startswith("lc_oneshot: raised NotSupportedError: [matmul2d] not here")


def test_no_matching_case_is_misuse(tmp_path):
    assert main(["quick", "--device", "cpu", "--out-dir", str(tmp_path),
                 "--cases", "nothing"]) == 2


@pytest.mark.skipif(CUDA, reason="this machine has a GPU")
def test_cuda_requested_without_a_gpu_is_misuse(tmp_path, capsys):
    assert main(["quick", "--device", "cuda", "--out-dir", str(tmp_path)]) == 2
    assert "not available" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["quick", "--iters", "0"], ["quick", "--device", "metal"],
                                  ["nosuch"], []])
def test_bad_command_lines_exit_with_usage(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


@pytest.mark.cuda
@cuda_only
def test_quick_on_cuda_times_resident_calls(tmp_path):
    rc = main(["quick", "--device", "cuda", *FAST, "--out-dir", str(tmp_path),
               "--cases", "m=256", "seq=8,", "h=16"])
    assert rc == 0
    for row in _read(tmp_path):
        assert row["compared"] == "resident" and float(row["lc_resident_ms"]) > 0
