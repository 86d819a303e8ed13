"""The variance gate: repeat the quick suite and fail if its total time is not stable.

``lc bench quick --gate [--repeats 5] [--threshold-pct 2.0] [--trim-runs 1]`` runs the quick
suite ``repeats`` times with the same seed (the same inputs each run). Each run's suite total
is the sum of Lightning Core's median ms over its cases (the column each row compares:
resident on CUDA, one-shot on the CPU). The ``trim`` fastest and slowest runs are dropped, as
the seed's gate did, and the coefficient of variation of the remaining totals is the gate: it
passes when that CV is at most the threshold. Per-case CVs are reported but not enforced.

Writes ``quick_bench_variance_gate.{json,md}`` and ``quick_bench_variance_runs.csv``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from .env import environment
from .report import NA, flatten, print_table, write_csv, write_text_atomic

__all__ = ["add_arguments", "lc_ms", "evaluate", "gate_markdown", "run_gate"]

NAME = "quick_bench_variance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The gate's options (on ``lc bench quick``)."""
    parser.add_argument("--gate", action="store_true",
                        help="repeat the suite and fail if the suite-total CV exceeds "
                             "--threshold-pct")
    parser.add_argument("--repeats", type=int, default=5, help="runs of the suite (gate)")
    parser.add_argument("--threshold-pct", type=float, default=2.0,
                        help="largest suite-total CV that passes, in percent (gate)")
    parser.add_argument("--trim-runs", type=int, default=1,
                        help="fastest and slowest runs dropped before the CV (gate)")


def lc_ms(row: dict[str, Any]) -> float | None:
    """Lightning Core's median ms of a flattened quick row (the column it is compared by)."""
    value = row.get(f"lc_{row.get('compared', 'oneshot')}_ms")
    return float(value) if isinstance(value, (int, float)) else None


def _cv_pct(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = statistics.fmean(values)
    return 100.0 * statistics.stdev(values) / mean if mean > 0 else 0.0


def evaluate(runs: Sequence[Sequence[dict[str, Any]]], threshold_pct: float,
             trim: int = 1) -> dict[str, Any]:
    """The gate's verdict on flattened rows of repeated runs (same cases in each run)."""
    if not runs:
        raise ValueError("[bench gate] need at least one run")
    totals = [sum(v for v in (lc_ms(r) for r in run) if v is not None) for run in runs]
    trim = max(0, min(int(trim), (len(totals) - 2) // 2))
    kept = sorted(totals)[trim:len(totals) - trim] if trim else list(totals)
    cases: dict[str, list[float]] = {}
    for run in runs:
        for row in run:
            value = lc_ms(row)
            if value is not None:
                cases.setdefault(f"{row.get('bench')}/{row.get('shape')}", []).append(value)
    per_case = []
    for ident, values in cases.items():
        median = statistics.median(values)
        cv = _cv_pct(values)
        per_case.append({"case": ident, "runs": len(values), "median_ms": median,
                         "cv_pct": cv,
                         "spread_pct": 100.0 * (max(values) - min(values)) / median
                         if median > 0 else 0.0,
                         "threshold_exceeded": cv > threshold_pct})
    trimmed_cv = _cv_pct(kept)
    return {"gate_mode": "suite_total_trimmed_cv", "repeats": len(runs), "trim_runs": trim,
            "threshold_pct": threshold_pct, "suite_totals_ms": totals,
            "suite_total_cv_pct": _cv_pct(totals), "suite_total_trimmed_cv_pct": trimmed_cv,
            "max_case_cv_pct": max((c["cv_pct"] for c in per_case), default=0.0),
            "per_case": per_case, "passed": trimmed_cv <= threshold_pct}


def gate_markdown(result: dict[str, Any]) -> str:
    """A short Markdown report of a gate result."""
    verdict = "PASSED" if result["passed"] else "FAILED"
    lines = [f"# Quick-suite variance gate: {verdict}", "",
             f"Suite-total CV over {result['repeats']} runs (trimmed {result['trim_runs']} "
             f"fastest and slowest): {result['suite_total_trimmed_cv_pct']:.2f}% (threshold "
             f"{result['threshold_pct']:.2f}%; untrimmed "
             f"{result['suite_total_cv_pct']:.2f}%).", "",
             "| Case | Runs | Median ms | CV % | Spread % | Over threshold |",
             "|---|---|---|---|---|---|"]
    for case in result["per_case"]:
        lines.append(f"| {case['case']} | {case['runs']} | {case['median_ms']:.4g} | "
                     f"{case['cv_pct']:.2f} | {case['spread_pct']:.2f} | "
                     f"{'yes' if case['threshold_exceeded'] else 'no'} |")
    return "\n".join(lines) + "\n"


def _runs_csv(path: Path, runs: Sequence[Sequence[dict[str, Any]]]) -> None:
    rows = [{"run_idx": i, "suite": row.get("suite"), "bench": row.get("bench"),
             "shape": row.get("shape"), "lightning_core_ms": lc_ms(row) or NA,
             "torch_ms": row.get("torch_ms", NA), "speedup_torch_over_lc":
             row.get("torch_over_lc", NA), "status": row.get("status")}
            for i, run in enumerate(runs) for row in run]
    write_csv(path, rows)


def run_gate(args: argparse.Namespace, suite: ModuleType, command: str) -> int:
    """Run ``suite`` ``args.repeats`` times and apply the gate; the exit status."""
    if args.repeats < 1 or not args.threshold_pct >= 0:
        print("[bench gate] need --repeats >= 1 and --threshold-pct >= 0", file=sys.stderr)
        return 2
    runs: list[list[dict[str, Any]]] = []
    for index in range(args.repeats):
        print(f"[bench gate] run {index + 1} of {args.repeats}", flush=True)
        rows = suite.run(args)
        if not rows:
            print(f"[bench gate] no case of the quick suite matches {args.cases}",
                  file=sys.stderr)
            return 2
        runs.append([flatten(row) for row in rows])
    result = evaluate(runs, args.threshold_pct, args.trim_runs)
    failed = sum(row.get("status") != "ok" for run in runs for row in run)
    document = {"gate": result, "failed_rows": failed,
                "environment": environment(precision=runs[0][0].get("precision")),
                "settings": {**vars(args), "out_dir": str(args.out_dir), "command": command}}
    out = Path(args.out_dir)
    write_text_atomic(out / f"{NAME}_gate.json",
                      json.dumps(document, indent=1, allow_nan=False, default=str) + "\n")
    write_text_atomic(out / f"{NAME}_gate.md", gate_markdown(result))
    _runs_csv(out / f"{NAME}_runs.csv", runs)
    print_table(result["per_case"], ("case", "runs", "median_ms", "cv_pct", "spread_pct",
                                     "threshold_exceeded"), title="quick suite, per-case CV")
    verdict = "passed" if result["passed"] else "FAILED"
    print(f"variance gate {verdict}: suite-total trimmed CV "
          f"{result['suite_total_trimmed_cv_pct']:.2f}% (threshold {args.threshold_pct}%); "
          f"wrote {out / (NAME + '_gate.json')}")
    if failed:
        print(f"[bench gate] {failed} rows FAILED their correctness check", file=sys.stderr)
    return 0 if result["passed"] and not failed else 1
