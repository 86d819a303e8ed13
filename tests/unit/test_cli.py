"""The ``lc`` command line: ``lc info`` (tables and JSON), ``lc bench`` pass-through, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import lightning_core as lc
from lightning_core import cli, config

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_info_tables(capsys):
    code, out, _ = _run(capsys, "info", "--plain")
    assert code == 0
    for text in ("Backend capabilities", "Machine", "Configuration", "LC_STRICT_DEVICE",
                 "CJ_MATMUL_MPS_HYST_PCT", "memory_model", "host-managed-compat"):
        assert text in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["capability"][1:] == ["cpu", "cuda", "metal"]
    assert rows["built"][1] == rows["available"][1] == "yes"
    assert rows["query"][1:] == ["ok", "ok", "ok"]
    if "metal" not in lc.runtime.backend.backend_names():
        assert rows["built"][3] == rows["available"][3] == "no"


def test_info_without_rich_prints_plain(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    code, out, _ = _run(capsys, "info")
    assert code == 0 and "Backend capabilities\n" in out and "------" in out


def test_info_with_rich(capsys, monkeypatch):
    pytest.importorskip("rich")
    monkeypatch.setenv("COLUMNS", "240")  # rich wraps long names in a narrow terminal
    code, out, _ = _run(capsys, "info")
    assert code == 0 and "Backend capabilities" in out and "LC_TRACE_CAPACITY" in out


def test_info_json(capsys):
    code, out, _ = _run(capsys, "info", "--json")
    assert code == 0
    report = json.loads(out)
    assert {"lightning_core", "active_backend", "memory_model", "capabilities", "machine",
            "trace", "sync_policy", "config"} <= set(report)
    assert report["lightning_core"] == lc.__version__
    assert report["active_backend"] == lc.backend_name()
    assert set(report["capabilities"]) == {"cpu", "cuda", "metal"}
    for device, caps in report["capabilities"].items():
        assert caps["query"] == "ok" and caps["device"] == device
        assert {"built", "available", "compute_surface", "memory_model"} <= set(caps)
    assert report["capabilities"]["cuda"]["available"] is lc.cuda_available()
    assert report["machine"]["python"].count(".") == 2 and report["machine"]["numpy"]
    assert ("gpu" in report["machine"]) is lc.cuda_available()
    assert {k["name"] for k in report["config"]} == set(config.KNOBS)


def test_info_survives_a_broken_backend(capsys, monkeypatch):
    def broken(device):
        if device == "cuda":
            raise RuntimeError("driver exploded")
        return real(device)

    real = lc.runtime_backend_capabilities
    monkeypatch.setattr(lc, "runtime_backend_capabilities", broken)
    code, out, _ = _run(capsys, "info", "--json")
    assert code == 0
    assert json.loads(out)["capabilities"]["cuda"]["query"] == "error: driver exploded"


def test_info_reports_a_bad_knob(capsys, monkeypatch):
    monkeypatch.setenv("LC_TUNE", "lots")
    config.reload()
    try:
        code, _, err = _run(capsys, "info")
    finally:
        monkeypatch.undo()
        config.reload()
    assert code == 1 and err.startswith("lc: [config] LC_TUNE='lots'")


def test_bench_passes_arguments_through(capsys, monkeypatch):
    seen = []
    fake = types.ModuleType("lightning_core.bench.cli")
    fake.main = lambda argv: seen.append(list(argv)) or 3
    monkeypatch.setitem(sys.modules, "lightning_core.bench.cli", fake)
    assert cli.main(["bench", "quick", "--device", "cpu", "--help"]) == 3
    assert seen == [["quick", "--device", "cpu", "--help"]]


def test_bench_missing_module(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning_core.bench.cli", None)
    code, _, err = _run(capsys, "bench", "quick")
    assert code == 2 and "not part of this build" in err


@pytest.mark.parametrize("argv,code", [([], 2), (["nope"], 2), (["info", "--bogus"], 2),
                                       (["--help"], 0), (["--version"], 0)])
def test_exit_codes(capsys, argv, code):
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    if argv == ["--version"]:
        assert lc.__version__ in captured.out


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_python_dash_m(extra):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "COLUMNS": "240"}
    proc = subprocess.run([sys.executable, "-m", "lightning_core", "info", *extra],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if extra:
        assert set(json.loads(proc.stdout)["capabilities"]) == {"cpu", "cuda", "metal"}
    else:
        assert "LC_STRICT_DEVICE" in proc.stdout
