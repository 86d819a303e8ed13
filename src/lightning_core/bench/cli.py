"""``lc bench <suite>``: run a benchmark suite, write its CSV, JSON, Markdown and plots.

A suite is one module with ``run(args) -> list[row]``, ``DESCRIPTION``, ``RESULT_NAME`` and
``TABLE_COLUMNS`` (and optionally ``add_arguments(parser)`` for options of its own); adding a
suite is one module plus one line in ``SUITES``. ``lc bench all`` runs every suite into one
folder and adds the cross-suite summary; ``lc bench quick --gate`` is the variance gate.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import lightning_core as lc

from ..runtime.backend import get_backend
from . import gate
from .env import environment
from .plots import plot_suite
from .report import print_table, write_results, write_text_atomic
from .summary import suite_markdown, write_cross_suite

__all__ = ["SUITES", "build_parser", "main"]

SUITES: dict[str, str] = {
    "quick": "lightning_core.bench.quick",
    "kernel": "lightning_core.bench.suites.kernel",
    "gemm-sweep": "lightning_core.bench.suites.gemm_sweep",
    "pipeline": "lightning_core.bench.suites.pipeline",
    "ml": "lightning_core.bench.suites.ml",
    "api-overhead": "lightning_core.bench.suites.api_overhead",
    "scaling": "lightning_core.bench.suites.scaling",
}
ALL = "all"


def _suite(name: str) -> ModuleType:
    return importlib.import_module(SUITES[name])


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where Lightning Core runs (auto: lc.backend_name())")
    parser.add_argument("--iters", type=_positive_int, default=50,
                        help="timed calls wanted per measurement (fewer if --max-time-s ends "
                             "it first)")
    parser.add_argument("--warmup", type=_non_negative_int, default=5,
                        help="untimed calls before each measurement")
    parser.add_argument("--min-time-s", type=_non_negative_float, default=0.05,
                        help="keep sampling fast cases until this much time was timed")
    parser.add_argument("--max-time-s", type=_positive_float, default=1.0,
                        help="time budget of one measurement (warm-up gets half of it)")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmark_results"),
                        help="folder for the results: <name>.csv, .json, .md and .png files")
    parser.add_argument("--seed", type=int, default=20260401, help="seed of the random inputs")
    parser.add_argument("--cases", nargs="+", metavar="TEXT",
                        help="run only cases whose 'bench/shape' contains one of these texts")


def build_parser() -> argparse.ArgumentParser:
    """The ``lc bench`` parser with one subcommand per suite."""
    parser = argparse.ArgumentParser(
        prog="lc bench", description="Run a benchmark suite: check correctness, time it against "
        "its peers, write CSV, JSON, a Markdown summary and plots, and print a table.")
    subparsers = parser.add_subparsers(dest="suite", required=True, metavar="SUITE")
    suite_options: dict[Any, None] = {}  # each distinct add_arguments, for "all"
    for name in SUITES:
        module = _suite(name)
        sub = subparsers.add_parser(name, help=module.DESCRIPTION,
                                    description=module.DESCRIPTION)
        _add_common(sub)
        add_arguments = getattr(module, "add_arguments", None)
        if add_arguments is not None:
            add_arguments(sub)
            suite_options[add_arguments] = None
        if name == "quick":
            gate.add_arguments(sub)
    text = ("every suite, one after the other, into --out-dir (e.g. benchmarks/results/"
            "<date>-<machine>/), then the cross-suite summary")
    sub = subparsers.add_parser(ALL, help=text, description=text)
    _add_common(sub)
    # A tighter budget per measurement keeps a whole run on an H200 within minutes and its
    # raw samples (kept in the JSON) within a few MB.
    sub.set_defaults(min_time_s=0.02, max_time_s=0.5)
    for add_arguments in suite_options:
        add_arguments(sub)
    return parser


def _resolve_device(requested: str) -> str | None:
    """The device to run on, or None (after saying why) when ``requested`` is missing."""
    if requested == "auto":
        return lc.backend_name()
    try:
        available = get_backend(requested).is_available()
    except Exception as exc:  # noqa: BLE001 - a backend that cannot start is reported, once
        print(f"[bench] the {requested} backend failed to start: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return None
    if not available:
        print(f"[bench] device {requested!r} is not available on this machine "
              "(use --device auto or cpu)", file=sys.stderr)
        return None
    return requested


def _settings(args: argparse.Namespace, name: str, rows: list[dict[str, Any]],
              command: str) -> dict[str, Any]:
    settings = {**vars(args), "suite": name, "out_dir": str(args.out_dir), "command": command}
    if "floor_source" in rows[0]:
        from .suites.ceilings import ceilings  # noqa: PLC0415 - measured once, then cached

        settings["ceilings"] = ceilings(args.device, args.ceilings).as_dict()
    return settings


def _run_suite(name: str, args: argparse.Namespace, command: str) -> int:
    """Run one suite and write its files; 0 ok, 1 a row failed, 2 no case matched."""
    module = _suite(name)
    started = time.perf_counter()
    rows = module.run(args)
    if not rows:
        print(f"[bench] no case of {name!r} matches {args.cases}", file=sys.stderr)
        return 2
    env = environment(precision=rows[0].get("precision"))
    out, result = args.out_dir, module.RESULT_NAME
    csv_path, json_path = write_results(out, result, name, rows, env,
                                        _settings(args, name, rows, command))
    # The summary and the plots are drawn from the file just written, as a reader would.
    doc = {**json.loads(json_path.read_text(encoding="utf-8")), "file": json_path.name}
    write_text_atomic(out / f"{result}.md", suite_markdown(doc))
    plots, note = plot_suite(doc, out, result)
    print_table(rows, module.TABLE_COLUMNS,
                title=f"lc bench {name} on {args.device} (median ms; ratio > 1: lc faster)")
    failed = [row for row in rows if row.get("status") != "ok"]
    print(f"wrote {csv_path}, {json_path}, {result}.md and {len(plots)} plots in "
          f"{time.perf_counter() - started:.1f} s")
    if note:
        print(f"[bench] {note}", file=sys.stderr)
    if failed:
        print(f"[bench] {len(failed)} of {len(rows)} rows FAILED their correctness check; "
              "see the notes column", file=sys.stderr)
        return 1
    return 0


def _run_all(args: argparse.Namespace, command: str) -> int:
    """Every suite into one folder, then the cross-suite summary."""
    started = time.perf_counter()
    codes = {}
    for name in SUITES:
        print(f"\n=== lc bench {name} ===", flush=True)
        codes[name] = _run_suite(name, args, command)
    if all(code == 2 for code in codes.values()):
        return 2
    json_path, md_path = write_cross_suite(args.out_dir)
    print(f"\nwrote {json_path} and {md_path}; all suites took "
          f"{time.perf_counter() - started:.0f} s")
    return 1 if 1 in codes.values() else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lc bench SUITE [options]``; 0 when every row is correct, 1 if not, 2 on misuse."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    device = _resolve_device(args.device)
    if device is None:
        return 2
    args.device = device
    command = " ".join(["lc", "bench", *argv])
    if args.suite == ALL:
        return _run_all(args, command)
    if getattr(args, "gate", False):
        return gate.run_gate(args, _suite(args.suite), command)
    return _run_suite(args.suite, args, command)
