"""``lc bench <suite>``: run a benchmark suite, write its CSV + JSON, print its table.

A suite is one module in this package with ``run(args) -> list[row]``, ``DESCRIPTION``,
``RESULT_NAME`` and ``TABLE_COLUMNS`` (and optionally ``add_arguments(parser)`` for options of
its own); adding a suite is one module plus one line in ``SUITES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import lightning_core as lc

from ..runtime.backend import get_backend
from .env import environment
from .report import print_table, write_results

__all__ = ["SUITES", "build_parser", "main"]

SUITES: dict[str, str] = {
    "quick": "lightning_core.bench.quick",
}


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
                        help="folder for <suite>.csv and <suite>.json")
    parser.add_argument("--seed", type=int, default=20260401, help="seed of the random inputs")
    parser.add_argument("--cases", nargs="+", metavar="TEXT",
                        help="run only cases whose 'bench/shape' contains one of these texts")


def build_parser() -> argparse.ArgumentParser:
    """The ``lc bench`` parser with one subcommand per suite."""
    parser = argparse.ArgumentParser(
        prog="lc bench", description="Run a benchmark suite: check correctness, time it against "
        "its peers, write CSV + JSON and print a table.")
    subparsers = parser.add_subparsers(dest="suite", required=True, metavar="SUITE")
    for name in SUITES:
        module = _suite(name)
        sub = subparsers.add_parser(name, help=module.DESCRIPTION,
                                    description=module.DESCRIPTION)
        _add_common(sub)
        add_arguments = getattr(module, "add_arguments", None)
        if add_arguments is not None:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lc bench SUITE [options]``; 0 when every row is correct, 1 if not, 2 on misuse."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    device = _resolve_device(args.device)
    if device is None:
        return 2
    args.device = device
    module = _suite(args.suite)
    started = time.perf_counter()
    rows = module.run(args)
    if not rows:
        print(f"[bench] no case of {args.suite!r} matches {args.cases}", file=sys.stderr)
        return 2
    settings = {**vars(args), "out_dir": str(args.out_dir),
                "command": " ".join(["lc", "bench", *argv])}
    env = environment(precision=rows[0].get("precision"))
    csv_path, json_path = write_results(args.out_dir, module.RESULT_NAME, args.suite, rows,
                                        env, settings)
    print_table(rows, module.TABLE_COLUMNS,
                title=f"lc bench {args.suite} on {device} (median ms; ratio > 1: lc faster)")
    failed = [row for row in rows if row.get("status") != "ok"]
    print(f"wrote {csv_path} and {json_path} in {time.perf_counter() - started:.1f} s")
    if failed:
        print(f"[bench] {len(failed)} of {len(rows)} rows FAILED their correctness check; "
              "see the notes column", file=sys.stderr)
        return 1
    return 0
