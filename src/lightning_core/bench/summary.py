"""Markdown and JSON summaries of benchmark result files, in the seed's layout.

Per suite: a suite summary (rows, win rate, median / average / geometric mean / min / max of
each ratio), a family summary of the headline ratio and the full case table. Across suites
(``generate_cross_suite_summary``): the same tables for every suite side by side, plus the
seed's gap statistics. Everything is computed from the JSON files the suites wrote, so each
number can be traced to its raw samples; output depends on nothing but those files.

A ratio is always peer ÷ Lightning Core of two medians measured in the same process, so > 1
means Lightning Core is faster; one-shot and resident columns never meet in one ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .report import NA, write_text_atomic

__all__ = ["COMPARISONS", "SUITE_ORDER", "stats", "load_docs", "folder_docs", "headline",
           "comparison_stats", "family_stats", "suite_markdown", "cross_suite",
           "write_cross_suite", "main"]

# (ratio column, numerator column, denominator column, label). Numerator and denominator are
# timing columns of the same kind; None for ratios a suite computes itself.
COMPARISONS: tuple[tuple[str, str | None, str | None, str], ...] = (
    ("speedup_eager", "torch_eager", "lc_resident",
     "torch eager ÷ LC resident (device-resident, sync each call)"),
    ("speedup_graph", "torch_graph", "lc_resident",
     "torch CUDA graph ÷ LC resident (sync each call)"),
    ("speedup_compile", "torch_compile", "lc_resident",
     "torch.compile ÷ LC resident (sync each call)"),
    ("speedup_kernel", "torch_kernel", "lc_kernel",
     "torch ÷ LC device time (CUDA events, L2 flushed)"),
    ("speedup_oneshot", "torch_oneshot", "lc_oneshot",
     "torch one-shot ÷ LC one-shot (NumPy in/out)"),
    ("numpy_over_lc", "numpy", "lc_oneshot", "host NumPy ÷ LC one-shot (NumPy in/out)"),
    ("torch_over_lc", None, None, "torch ÷ LC (quick: resident on cuda, one-shot on cpu)"),
    ("api_over_direct_resident", "api_resident", "direct_resident",
     "lc.api ÷ direct call (device-resident, sync each call; > 1: the API costs more)"),
    ("api_over_direct_oneshot", "api_oneshot", "direct_oneshot",
     "lc.api ÷ direct call (one-shot, NumPy in/out; > 1: the API costs more)"),
)
SUITE_ORDER = ("quick", "kernel", "gemm-sweep", "pipeline", "ml", "api-overhead", "scaling")
_LABELS = {name: label for name, _, _, label in COMPARISONS}
_PAIRS = {name: (num, den) for name, num, den, _ in COMPARISONS}
# The ratio a suite is judged by: the first of these its rows have.
_HEADLINE_ORDER = ("speedup_eager", "torch_over_lc", "api_over_direct_resident",
                   "api_over_direct_oneshot", "speedup_oneshot")
_CASE_COLUMNS = (
    ("lc_oneshot_ms", "LC one-shot"), ("lc_resident_ms", "LC resident"),
    ("lc_kernel_ms", "LC kernel"), ("direct_oneshot_ms", "direct one-shot"),
    ("api_oneshot_ms", "api one-shot"), ("direct_resident_ms", "direct resident"),
    ("api_resident_ms", "api resident"), ("torch_eager_ms", "torch eager"),
    ("torch_pipelined_ms", "torch pipelined"), ("torch_graph_ms", "torch graph"),
    ("torch_compile_ms", "torch.compile"), ("torch_kernel_ms", "torch kernel"),
    ("torch_oneshot_ms", "torch one-shot"), ("torch_ms", "torch"), ("numpy_ms", "NumPy"),
    ("floor_resident_ms", "floor"),
)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def stats(values: Iterable[Any]) -> dict[str, Any]:
    """Count, wins (> 1), win rate and median / avg / geomean / min / max of the finite
    values."""
    vals = [v for v in (_num(x) for x in values) if v is not None]
    if not vals:
        return {"rows": 0, "wins": 0, "win_rate": None, "median": None, "avg": None,
                "geomean": None, "min": None, "max": None}
    wins = sum(v > 1.0 for v in vals)
    positive = [v for v in vals if v > 0]
    geo = math.exp(statistics.fmean(math.log(v) for v in positive)) if positive else None
    return {"rows": len(vals), "wins": wins, "win_rate": wins / len(vals),
            "median": statistics.median(vals), "avg": statistics.fmean(vals), "geomean": geo,
            "min": min(vals), "max": max(vals)}


def load_docs(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The result documents (suite JSON files) among ``paths``, in the order given."""
    docs = []
    for path in paths:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "suite" in doc and "rows" in doc:
            doc["file"] = Path(path).name
            docs.append(doc)
    return docs


def _has(rows: Sequence[dict[str, Any]], column: str) -> bool:
    return any(_num(r.get(column)) is not None for r in rows)


def headline(rows: Sequence[dict[str, Any]]) -> str | None:
    """The ratio column a suite's rows are judged by (None when they have none)."""
    return next((c for c in _HEADLINE_ORDER if _has(rows, c)), None)


def _ratio_text(value: Any) -> str:
    v = _num(value)
    return NA if v is None else f"{v:.2f}x"


def _ms_text(value: Any) -> str:
    v = _num(value)
    if v is None:
        return NA
    return f"{v:.4g}" if v < 1e4 else f"{v:.0f}"


def _pct(value: Any) -> str:
    v = _num(value)
    return NA if v is None else f"{100 * v:.0f}%"


def _table(header: Sequence[str], lines: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return out


def _stat_cells(s: dict[str, Any], *, geomean: bool = True) -> list[str]:
    cells = [str(s["rows"]), _pct(s["win_rate"]), _ratio_text(s["median"]),
             _ratio_text(s["avg"])]
    if geomean:
        cells.append(_ratio_text(s["geomean"]))
    return cells + [_ratio_text(s["min"]), _ratio_text(s["max"])]


def comparison_stats(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statistics of every ratio column the rows have."""
    return [{"comparison": name, "label": _LABELS[name], **stats(r.get(name) for r in rows)}
            for name, _, _, _ in COMPARISONS if _has(rows, name)]


def family_stats(rows: Sequence[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    """Statistics of ``column`` per bench family, in first-seen order."""
    families: dict[str, list[Any]] = {}
    for row in rows:
        families.setdefault(str(row.get("bench")), []).append(row.get(column))
    return [{"family": fam, **stats(vals)} for fam, vals in families.items()]


def _environment_line(doc: dict[str, Any]) -> str:
    env = doc.get("environment", {})
    gpu = env.get("gpu", {}).get("device", {}).get("name") or "no GPU"
    rows = doc.get("rows", [])
    device = rows[0].get("device", NA) if rows else NA
    return (f"Device `{device}` · GPU {gpu} · {env.get('cpu_count', {}).get('usable', '?')} "
            f"usable CPU cores · Lightning Core {env.get('lightning_core')} · torch "
            f"{env.get('torch')} · CuPy {env.get('cupy')} · NumPy {env.get('numpy')} · "
            f"precision {env.get('precision')} (TF32 off in torch) · {env.get('date')}")


def _ceilings_line(doc: dict[str, Any]) -> str | None:
    ceil = doc.get("settings", {}).get("ceilings")
    if not isinstance(ceil, dict):
        return None
    return (f"Floors use: {ceil['source']} — memory {ceil['mem_bw'] / 1e9:.0f} GB/s, fp32 "
            f"{ceil['fp32_flops'] / 1e12:.2f} TFLOP/s, one call + sync "
            f"{ceil['launch_sync_s'] * 1e6:.1f} µs. The memory term assumes DRAM/HBM traffic; "
            "data that stays in a cache can beat it.")


def _case_lines(rows: Sequence[dict[str, Any]], ratio_cols: Sequence[str]) -> list[str]:
    cols = [(c, label) for c, label in _CASE_COLUMNS if _has(rows, c)]
    header = ["Case", "Shape", *(f"{label} ms" for _, label in cols),
              *(_short(c) for c in ratio_cols), "Status"]
    body = [[str(r.get("bench")), str(r.get("shape")), *(_ms_text(r.get(c)) for c, _ in cols),
             *(_ratio_text(r.get(c)) for c in ratio_cols), str(r.get("status"))]
            for r in rows]
    return _table(header, body)


def _short(column: str) -> str:
    num, den = _PAIRS[column]
    if num is None:
        return column
    return f"{num} ÷ {den}"


def _notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Each distinct n/a reason once, with how many rows it applies to."""
    counts: dict[str, int] = {}
    for row in rows:
        for part in str(row.get("notes") or "").split("; "):
            if part:
                counts[part] = counts.get(part, 0) + 1
    return [f"- {text} ({n} of {len(rows)} rows)" for text, n in counts.items()]


def suite_markdown(doc: dict[str, Any]) -> str:
    """The Markdown summary of one suite's result document."""
    rows = doc.get("rows", [])
    lines = [f"# Benchmark `{doc['suite']}`", "", _environment_line(doc), ""]
    ceil = _ceilings_line(doc)
    if ceil:
        lines += [ceil, ""]
    lines += ["Ratios are peer ÷ Lightning Core medians from the same process (> 1: Lightning "
              "Core is faster). Times are medians in ms; p10, p90 and CV are in the CSV, raw "
              "samples in the JSON.", "", "## Suite summary", ""]
    comps = comparison_stats(rows)
    lines += _table(["Comparison", "Rows", "Win rate", "Median", "Avg", "Geomean", "Min", "Max"],
                    ([c["label"], *_stat_cells(c)] for c in comps))
    head = headline(rows)
    if head is not None:
        lines += ["", "## Family summary", "", f"Ratio: {_LABELS[head]}.", ""]
        lines += _table(["Family", "Rows", "Win rate", "Median", "Avg", "Min", "Max"],
                        ([f["family"], *_stat_cells(f, geomean=False)]
                         for f in family_stats(rows, head)))
    ratio_cols = [c["comparison"] for c in comps]
    lines += ["", "## Cases", ""] + _case_lines(rows, ratio_cols)
    notes = _notes(rows)
    if notes:
        lines += ["", "## Why a cell is n/a", ""] + notes
    return "\n".join(lines) + "\n"


def _gaps(rows: Sequence[dict[str, Any]], column: str) -> dict[str, Any] | None:
    """The seed's gap statistics (peer ms - LC ms) of one comparison."""
    num, den = _PAIRS[column]
    if num is None:
        return None
    pairs = [(r, _num(r.get(f"{num}_ms")), _num(r.get(f"{den}_ms"))) for r in rows]
    pairs = [(r, a, b) for r, a, b in pairs if a is not None and b is not None]
    if not pairs:
        return None
    gaps = [a - b for _, a, b in pairs]
    worst = max(pairs, key=lambda p: abs(p[1] - p[2]))[0]
    return {"gap_ms": {k: stats(gaps)[k] for k in ("median", "avg", "min", "max")},
            "abs_gap_ms": {k: stats(abs(g) for g in gaps)[k]
                           for k in ("median", "avg", "min", "max")},
            "max_abs_gap_case": f"{worst.get('bench')}/{worst.get('shape')}"}


def cross_suite(docs: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """(JSON summary, Markdown) of several suites' result documents."""
    suites, every, families = [], [], []
    for doc in docs:
        rows = doc.get("rows", [])
        head = headline(rows)
        base = {"suite": doc["suite"], "file": doc.get("file")}
        for comp in comparison_stats(rows):
            every.append({**base, **comp, "gaps": _gaps(rows, comp["comparison"])})
            if comp["comparison"] == head:
                suites.append(every[-1])
        if head is not None:
            families += [{**base, "comparison": head, **f} for f in family_stats(rows, head)]
    summary = {"suites": suites, "comparisons": every, "families": families,
               "sources": [{"file": d.get("file"), "suite": d["suite"],
                            "date": d.get("environment", {}).get("date")} for d in docs]}
    lines = ["# Cross-suite summary", ""]
    if docs:
        lines += [_environment_line(docs[0]), ""]
    lines += ["Ratios are peer ÷ Lightning Core medians (> 1: Lightning Core is faster).", "",
              "## Suite summary", ""]
    lines += _table(["Suite", "Comparison", "Rows", "Win rate", "Median", "Avg", "Min", "Max"],
                    ([s["suite"], s["label"], *_stat_cells(s, geomean=False)] for s in suites))
    lines += ["", "## Every comparison", ""]
    lines += _table(["Suite", "Comparison", "Rows", "Win rate", "Median", "Avg", "Geomean",
                     "Min", "Max"], ([c["suite"], c["label"], *_stat_cells(c)] for c in every))
    lines += ["", "## Family summary (each suite's headline ratio)", ""]
    lines += _table(["Suite", "Family", "Rows", "Win rate", "Median", "Avg", "Min", "Max"],
                    ([f["suite"], f["family"], *_stat_cells(f, geomean=False)]
                     for f in families))
    lines += ["", "Sources: " + ", ".join(f"`{s['file']}`" for s in summary["sources"])]
    return summary, "\n".join(lines) + "\n"


def folder_docs(folder: Path) -> list[dict[str, Any]]:
    """The suite result documents of a run folder, in the order ``lc bench all`` runs them."""
    docs = load_docs(sorted(folder.glob("*.json")))
    rank = {name: i for i, name in enumerate(SUITE_ORDER)}
    return sorted(docs, key=lambda d: (rank.get(d["suite"], len(rank)), d["file"]))


def write_cross_suite(folder: Path) -> tuple[Path, Path]:
    """Summarise every suite JSON in ``folder`` into ``cross_suite_summary.{json,md}``."""
    docs = folder_docs(folder)
    summary, markdown = cross_suite(docs)
    json_path, md_path = folder / "cross_suite_summary.json", folder / "cross_suite_summary.md"
    write_text_atomic(json_path, json.dumps(summary, indent=1, allow_nan=False) + "\n")
    write_text_atomic(md_path, markdown)
    return json_path, md_path


def main(argv: Sequence[str] | None = None) -> int:
    """``generate_cross_suite_summary FOLDER``: write the cross-suite summary of a run."""
    parser = argparse.ArgumentParser(description="Summarise a folder of benchmark results.")
    parser.add_argument("folder", type=Path, help="a folder of suite JSON files")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"[bench summary] {args.folder} is not a folder", file=sys.stderr)
        return 2
    json_path, md_path = write_cross_suite(args.folder)
    print(f"wrote {json_path} and {md_path}")
    return 0
