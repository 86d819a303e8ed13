"""The ``lc`` command line: ``lc info`` (what this machine and build can do), ``lc bench ...``.

``lc info`` prints the backend capability matrix, the machine (Python, NumPy, CuPy/torch
versions, the GPU) and every configuration knob; ``--json`` prints the same as JSON. Tables use
``rich`` when it is installed and plain text otherwise.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys
from collections.abc import Sequence
from typing import Any

from . import config
from ._version import __version__
from .errors import LCError

__all__ = ["main", "info"]

DEVICES = ("cpu", "cuda", "metal")
CAPABILITY_KEYS = ("built", "available", "compute_surface", "memory_surface", "sync_surface",
                   "profiling_surface", "runtime_trace_surface", "sync_policy_surface",
                   "memory_model", "graphs", "tuning")
# Keys of a capability dict that are not machine details.
_CONTRACT_KEYS = {"device", "dtypes", "precisions", *CAPABILITY_KEYS}


def _dist_version(module: str) -> str | None:
    """The installed version of the distribution providing ``module`` (None if absent).

    Read from package metadata so that ``lc info`` never imports torch or CuPy.
    """
    for dist in importlib.metadata.packages_distributions().get(module, []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def info() -> dict[str, Any]:
    """Everything ``lc info`` reports, as a JSON-friendly dict."""
    import lightning_core as lc  # noqa: PLC0415 - the CLI sits on top of the whole package

    matrix: dict[str, dict[str, Any]] = {}
    for device in DEVICES:
        try:
            caps = lc.runtime_backend_capabilities(device)
            matrix[device] = {**caps, "query": "ok"}
        except Exception as exc:  # noqa: BLE001 - a broken driver must not break `lc info`
            matrix[device] = {"device": device, "query": f"error: {exc}"}
    machine: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": _dist_version("numpy"),
        "cupy": _dist_version("cupy"),
        "torch": _dist_version("torch"),
        "rich": _dist_version("rich"),
    }
    cuda = matrix["cuda"]
    if cuda.get("available"):
        machine["gpu"] = {k: v for k, v in cuda.items() if k not in _CONTRACT_KEYS
                          and k != "query"}
    return {
        "lightning_core": __version__,
        "active_backend": lc.backend_name(),
        "memory_model": lc.memory_model_name(),
        "capabilities": matrix,
        "machine": machine,
        "trace": {"enabled": lc.runtime_trace_enabled(),
                  "capacity": lc.runtime_trace_capacity()},
        "sync_policy": lc.runtime_sync_policy_get(),
        "config": config.describe(),
    }


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def _tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table ``lc info`` prints."""
    caps = report["capabilities"]
    matrix = [[k, *(_cell(caps[d].get(k)) for d in DEVICES)] for k in (*CAPABILITY_KEYS, "query")]
    machine = [[k, _cell(v)] for k, v in report["machine"].items() if k != "gpu"]
    machine += [[f"gpu.{k}", _cell(v)] for k, v in report["machine"].get("gpu", {}).items()]
    runtime = [["lightning_core", report["lightning_core"]],
               ["active backend", report["active_backend"]],
               ["memory model", report["memory_model"]],
               ["trace", f"{'on' if report['trace']['enabled'] else 'off'}, capacity "
                         f"{report['trace']['capacity']}"],
               ["sync policy", f"{report['sync_policy']['mode']}, trace_sync_boundary="
                               f"{report['sync_policy']['trace_sync_boundary']}"]]
    knobs = [[k["name"], _cell(k["value"]), _cell(k["default"]), _cell(k["aliases"]), k["doc"]]
             for k in report["config"]]
    return [
        ("Runtime", ["item", "value"], runtime),
        ("Backend capabilities", ["capability", *DEVICES], matrix),
        ("Machine", ["item", "value"], machine),
        ("Configuration (LC_* environment variables; CJ_* aliases)",
         ["knob", "value", "default", "aliases", "doc"], knobs),
    ]


def _print_plain(tables: list[tuple[str, list[str], list[list[str]]]]) -> None:
    for title, header, rows in tables:
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        print(title)
        for row in [header, ["-" * w for w in widths], *rows]:
            print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        print()


def _print_rich(tables: list[tuple[str, list[str], list[list[str]]]]) -> bool:
    """Print with rich; False when rich is not installed."""
    try:
        from rich.console import Console  # noqa: PLC0415 - optional dependency
        from rich.table import Table  # noqa: PLC0415
    except ImportError:
        return False
    console = Console()
    for title, header, rows in tables:
        table = Table(title=title, title_justify="left")
        for name in header:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    return True


def _cmd_info(args: argparse.Namespace) -> int:
    report = info()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
        return 0
    tables = _tables(report)
    if args.plain or not _print_rich(tables):
        _print_plain(tables)
    return 0


def _cmd_bench(argv: list[str]) -> int:
    try:
        from .bench.cli import main as bench_main  # noqa: PLC0415 - heavy, and optional
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("lightning_core.bench"):
            print(f"lc bench: the benchmark suite is not part of this build ({exc.name})",
                  file=sys.stderr)
            return 2
        raise
    return int(bench_main(argv) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lc", description="Lightning Core command line.")
    parser.add_argument("--version", action="version", version=f"lightning_core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{info,bench}")
    info_p = sub.add_parser("info", help="backend capabilities, machine and configuration")
    info_p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    info_p.add_argument("--plain", action="store_true", help="plain-text tables, even with rich")
    sub.add_parser("bench", add_help=False,
                   help="run benchmarks (arguments go to the benchmark CLI; lc bench --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lc`` command line; return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:
        # Everything after "bench" belongs to the benchmark CLI, options included.
        return _cmd_bench(args_list[1:])
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if args.command != "info":
        parser.print_help(sys.stderr)
        return 2
    try:
        return _cmd_info(args)
    except LCError as exc:  # e.g. an unparsable LC_* knob: say which, without a traceback
        print(f"lc: {exc}", file=sys.stderr)
        return 1
