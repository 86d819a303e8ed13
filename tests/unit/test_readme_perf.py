"""``tools/gen_readme_perf.py`` on a real (trimmed) ``lc bench all --device cpu`` run: the
README's performance section is generated from result files, byte for byte reproducibly, and
every value the files lack is rendered as "n/a (reason)"."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lightning_core.bench import summary

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "bench_all_cpu"
README = "# Project\n\nintro\n\n## Performance\n\n<!-- perf:begin -->\nold text\n<!-- perf:end -->\n\n## After\n\ntail\n"


def _tool() -> Any:
    spec = importlib.util.spec_from_file_location("gen_readme_perf",
                                                  ROOT / "tools" / "gen_readme_perf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def tool() -> Any:
    return _tool()


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    """A copy of the fixture at results/2026-11-29-cpu, next to which a README is written."""
    folder = tmp_path / "results" / "2026-11-29-cpu"
    shutil.copytree(FIXTURE, folder)
    (tmp_path / "README.md").write_text(README, encoding="utf-8")
    return folder


def _suites() -> list[str]:
    sources = json.loads((FIXTURE / "cross_suite_summary.json").read_text())["sources"]
    return [s["suite"] for s in sources]


def _table_rows(text: str, header_start: str) -> list[list[str]]:
    """The cells of the Markdown table whose header begins with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def _edit_docs(folder: Path, edit) -> None:
    """Apply ``edit(doc)`` to every suite JSON of ``folder`` and rewrite the cross-suite
    summary as ``lc bench all`` would."""
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text())
        if "rows" in doc:
            edit(doc)
            path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    summary.write_cross_suite(folder)


def test_fixture_is_a_small_lc_bench_all_run():
    size = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert size < 200_000
    assert _suites() == list(summary.SUITE_ORDER)  # every suite of `lc bench all`
    for suite_file in json.loads((FIXTURE / "cross_suite_summary.json").read_text())["sources"]:
        doc = json.loads((FIXTURE / suite_file["file"]).read_text())
        assert doc["rows"] and doc["environment"]["precision"] == "fp32"
        assert doc["settings"]["command"].startswith("lc bench all --device cpu")


def test_generates_every_suite_from_the_cpu_run(tool, run, capsys):
    readme = run.parents[1] / "README.md"
    assert tool.main([str(run), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    head, _, rest = text.partition("<!-- perf:begin -->\n")
    body, _, tail = rest.partition("<!-- perf:end -->")
    assert head == "# Project\n\nintro\n\n## Performance\n\n"
    assert tail == "\n\n## After\n\ntail\n" and "old text" not in body
    # Provenance: the folder, the date, the environment block, precision.
    assert "from `results/2026-11-29-cpu/`" in body
    assert "Measured on a 2-core CPU host (device `cpu`) on 2026-11-29." in body
    assert "- Command: `lc bench all --device cpu --out-dir /tmp/bench_cpu_def`" in body
    assert "- GPU: n/a (no CUDA device visible to the run)" in body
    assert "torch n/a (not installed)" in body and "NumPy 2.4.6" in body
    assert "- Precision: fp32\n" in body
    # One row per suite, in run order; without torch every ratio is n/a with the reason.
    rows = _table_rows(body, "| Suite | Comparison | Cases |")
    assert [r[0] for r in rows] == _suites()
    by_suite = {r[0]: r for r in rows}
    assert by_suite["kernel"][3] == "n/a (torch is not importable (No module named 'torch'))"
    assert by_suite["quick"][3] == "n/a (torch is not importable (No module named 'torch'))"
    assert by_suite["api-overhead"][3].startswith("n/a (no torch peer; lc.api ÷ direct call")
    cases = {s: str(len(json.loads((run / f).read_text())["rows"]))
             for s, f in ((d["suite"], d["file"]) for d in
                          json.loads((run / "cross_suite_summary.json").read_text())["sources"])}
    assert {r[0]: r[2] for r in rows} == cases
    # Links to the full summaries and to the plots that exist, relative to the README.
    assert "[summary](results/2026-11-29-cpu/kernel_bench.md)" in body
    assert "plots: [ratios](results/2026-11-29-cpu/quick_bench_ratios.png)" in body
    assert "[cross-suite summary](results/2026-11-29-cpu/cross_suite_summary.md)" in body
    assert "n/a (no suite has a ratio against torch eager" in body
    assert "wrote the performance section" in capsys.readouterr().out


def test_regenerating_is_byte_for_byte_and_check_catches_one_character(tool, run, capsys):
    readme = run.parents[1] / "README.md"
    args = [str(run), "--readme", str(readme)]
    assert tool.main([*args, "--check"]) == 1  # the placeholder is not what the files give
    capsys.readouterr()
    assert tool.main(args) == 0
    first = readme.read_bytes()
    assert tool.main(args) == 0 and readme.read_bytes() == first
    # The same folder and README elsewhere on disk give the same bytes (paths are relative).
    other = run.parents[2] / "elsewhere"
    shutil.copytree(run.parents[1], other)
    assert tool.main([str(other / "results" / "2026-11-29-cpu"), "--readme",
                      str(other / "README.md")]) == 0
    assert (other / "README.md").read_bytes() == first
    capsys.readouterr()
    assert tool.main([*args, "--check"]) == 0
    assert "matches" in capsys.readouterr().out
    edited = first.decode().replace("| kernel | n/a | 4 |", "| kernel | n/a | 5 |", 1)
    assert edited != first.decode()
    readme.write_text(edited, encoding="utf-8")
    assert tool.main([*args, "--check"]) == 1
    out, err = capsys.readouterr()
    assert "-| kernel | n/a | 5 |" in out and "+| kernel | n/a | 4 |" in out  # the diff
    assert "out of date" in err
    assert readme.read_text(encoding="utf-8") == edited  # --check changes nothing


def test_check_from_the_command_line(tool, run):
    readme = run.parents[1] / "README.md"
    cmd = ["python3", str(ROOT / "tools" / "gen_readme_perf.py"), str(run), "--readme",
           str(readme)]
    assert subprocess.run(cmd, capture_output=True, check=False).returncode == 0
    done = subprocess.run([*cmd, "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    readme.write_text(readme.read_text().replace("Measured on a 2", "Measured on a 3"))
    done = subprocess.run([*cmd, "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "+Measured on a 2-core" in done.stdout


def test_missing_columns_render_na_with_a_reason(tool, run):
    def strip(doc: dict[str, Any]) -> None:
        for key in ("torch", "gpu", "cpu_count", "platform"):
            doc["environment"].pop(key, None)
        doc["settings"].pop("command", None)
        for row in doc["rows"]:
            for column in [c for c in row if c.startswith(("torch", "speedup_"))]:
                del row[column]
            row.pop("torch_over_lc", None)
            row["notes"] = ""

    _edit_docs(run, strip)
    readme = run.parents[1] / "README.md"
    assert tool.main([str(run), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    rows = _table_rows(text, "| Suite | Comparison | Cases |")
    assert [r[0] for r in rows] == _suites()
    for row in rows:
        assert row[1] == "n/a" and row[3].startswith("n/a (") and row[4:7] == ["n/a"] * 3
    assert "- Command: n/a (not recorded)" in text
    assert "- GPU: n/a (no CUDA device visible to the run)" in text
    assert "- Host: CPU cores n/a (not recorded), platform n/a (not recorded)" in text
    assert "torch n/a (not recorded)" in text


def test_torch_ratios_fill_the_suite_and_family_tables(tool, run):
    """The GPU shape of a run: ratios against torch eager, a GPU and driver in the
    environment. Values are made up from the fixture's rows to exercise the tables."""
    def add(doc: dict[str, Any]) -> None:
        doc["environment"]["torch"] = "2.11.0"
        doc["environment"]["gpu"]["device"] = {
            "name": "NVIDIA H200", "cuda_runtime_version": 12080, "compute_capability": "90",
            "sm_count": 132}
        doc["environment"]["gpu"]["nvidia_smi"] = [{
            "name": "NVIDIA H200", "driver_version": "580.159.04", "clocks.sm": "1980 MHz",
            "clocks.max.sm": "1980 MHz"}]
        for i, row in enumerate(doc["rows"]):
            row["device"] = "cuda"
            column = "torch_over_lc" if doc["suite"] == "quick" else "speedup_eager"
            if doc["suite"] != "api-overhead":
                row[column] = [0.5, 2.0, 1.5, 3.0][i % 4]

    _edit_docs(run, add)
    readme = run.parents[1] / "README.md"
    assert tool.main([str(run), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "Measured on NVIDIA H200 (device `cuda`) on 2026-11-29." in text
    assert ("- GPU: NVIDIA H200, driver 580.159.04, CUDA runtime 12.8, compute capability 90, "
            "132 SMs, SM clock 1980 MHz (max 1980 MHz)") in text
    assert "- Precision: fp32 (TF32 off in torch)" in text
    rows = {r[0]: r for r in _table_rows(text, "| Suite | Comparison | Cases |")}
    assert set(rows) == set(_suites())
    assert rows["kernel"][1:7] == [
        "torch eager ÷ LC resident (device-resident, sync each call)", "4", "3 of 4 (75%)",
        "1.75x", "0.50x", "3.00x"]
    assert rows["quick"][1].startswith("torch ÷ LC")
    assert rows["api-overhead"][3].startswith("n/a (no torch peer")
    families = _table_rows(text, "| Suite | Family |")
    assert {f[0] for f in families} == set(_suites()) - {"api-overhead"}
    kernel = {f[1]: f[2:] for f in families if f[0] == "kernel"}
    assert kernel == {"attention": ["2", "1 of 2 (50%)", "1.25x", "0.50x", "2.00x"],
                      "conv_relu": ["2", "2 of 2 (100%)", "2.25x", "1.50x", "3.00x"]}
    assert "No family rows for api-overhead" in text


def test_a_stale_cross_suite_summary_is_an_error(tool, run):
    path = run / "cross_suite_summary.json"
    cross = json.loads(path.read_text())
    cross["comparisons"][0]["median"] *= 1.01
    path.write_text(json.dumps(cross, indent=1))
    with pytest.raises(SystemExit, match="disagrees with the suite file"):
        tool.main([str(run), "--readme", str(run.parents[1] / "README.md")])
    (run / "kernel_bench.json").unlink()
    with pytest.raises(SystemExit, match="lists suite files that are not in"):
        tool.main([str(run), "--readme", str(run.parents[1] / "README.md")])


def test_bad_readme_markers(tool, run):
    readme = run.parents[1] / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="no <!-- perf:begin -->"):
        tool.main([str(run), "--readme", str(readme)])
    readme.write_text("<!-- perf:end -->\n<!-- perf:begin -->\n")
    with pytest.raises(SystemExit, match="no <!-- perf:begin -->"):
        tool.main([str(run), "--readme", str(readme)])
    readme.write_text(README + README)
    with pytest.raises(SystemExit, match="more than one"):
        tool.main([str(run), "--readme", str(readme)])


def test_the_repository_readme_has_one_perf_block():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count("<!-- perf:begin -->") == 1 and text.count("<!-- perf:end -->") == 1
    assert text.index("<!-- perf:begin -->") < text.index("<!-- perf:end -->")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_readme_perf_picks_the_newest_lc_bench_all_folder(tmp_path):
    for name, has_summary in (("2026-01-05-h200", True), ("2026-02-01-h200", True),
                              ("2026-03-01-h200", False)):
        (tmp_path / name).mkdir()
        if has_summary:
            (tmp_path / name / "cross_suite_summary.json").write_text("{}")
    done = subprocess.run(["make", "-s", "-n", "-C", str(ROOT), "readme-perf",
                           f"RESULTS_ROOT={tmp_path}"], capture_output=True, text=True,
                          check=True)
    assert f"tools/gen_readme_perf.py {tmp_path}/2026-02-01-h200\n" in done.stdout
    done = subprocess.run(["make", "-s", "-n", "-C", str(ROOT), "readme-perf",
                           "RESULTS=benchmarks/results/x"], capture_output=True, text=True,
                          check=True)
    assert "tools/gen_readme_perf.py benchmarks/results/x\n" in done.stdout
