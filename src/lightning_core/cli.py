"""The ``lc`` command line: ``lc info`` (what this machine and build can do), ``lc bench ...``,
``lc tune`` (pre-tune the seed's shape lists) and ``lc cache show|clear|path``.

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

from . import config, native
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
        "native_lane": native.status(),
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
                               f"{report['sync_policy']['trace_sync_boundary']}"],
               ["native lane", report["native_lane"]]]
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
    _print_tables(_tables(report), args.plain)
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


def _print_tables(tables: list[tuple[str, list[str], list[list[str]]]], plain: bool) -> None:
    if plain or not _print_rich(tables):
        _print_plain(tables)


def _margin(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:+.1f}%"


def _us(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.1f}"


def _run_pretune(backend: Any, ops: list[str], plain: bool) -> list[dict[str, Any]]:
    """Pre-tune with a rich progress bar, or one line per shape without rich."""
    from .tuning import TUNER  # noqa: PLC0415
    from .tuning.shapes import plan, pretune  # noqa: PLC0415

    total = len(plan(ops))
    try:
        if plain:
            raise ImportError("plain output requested")
        from rich.progress import Progress  # noqa: PLC0415 - optional dependency
    except ImportError:
        done = [0]

        def line(row: dict[str, Any]) -> None:
            done[0] += 1
            print(f"[{done[0]}/{total}] {row['op']} {row['shape']}: {row['status']} "
                  f"{row['winner'] or ''} {_margin(row['margin_pct'])}".rstrip(), flush=True)

        return pretune(TUNER, backend, ops, progress=line)
    with Progress() as bar:
        task = bar.add_task(f"tuning on {backend.name}", total=total)
        return pretune(TUNER, backend, ops, progress=lambda row: bar.update(
            task, advance=1, description=f"{row['op']} {row['shape']}"))


def _cmd_tune(args: argparse.Namespace) -> int:
    from .tuning import CACHE, CROSSOVER, active_backends  # noqa: PLC0415
    from .tuning.shapes import OPS  # noqa: PLC0415

    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    unknown = sorted(set(ops) - set(OPS))
    if unknown:
        print(f"lc tune: unknown op(s) {', '.join(unknown)}; choose from {', '.join(OPS)}",
              file=sys.stderr)
        return 2
    backend = active_backends()[-1]
    if args.calibrate:
        if backend.name == "cuda":
            cal = CROSSOVER.calibrate(backend)
            print(f"calibrated the CPU crossover in {cal['measure_s']} s")
        else:
            print("no GPU here: the CPU crossover needs no calibration")
    if int(config.get("LC_TUNE")) == 0:
        print("note: LC_TUNE=0, so calls will not use these results until LC_TUNE >= 1")
    rows = _run_pretune(backend, ops, args.plain)
    table = [[r["op"], r["shape"], r["status"], r["winner"] or "-", _margin(r["margin_pct"]),
              _us(r.get("timings_us", {}).get(r["winner"])), _us(r["cpu_us"])] for r in rows]
    _print_tables([(f"Tuned on {backend.name} (cache: {CACHE.path})",
                    ["op", "shape", "status", "winner", "margin", "winner µs", "cpu µs"],
                    table)], args.plain)
    return 1 if any(r["status"].startswith("failed") for r in rows) else 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from .tuning import CACHE, reset_tuning, tuning_report  # noqa: PLC0415

    if args.action == "path":
        print(CACHE.path)
        return 0
    if args.action == "clear":
        removed = CACHE.clear()
        reset_tuning()
        print(f"removed {CACHE.path}" if removed else f"no cache file at {CACHE.path}")
        return 0
    report = tuning_report()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
        return 0
    summary = [["file", report["cache_file"]], ["persistent", _cell(report["persistent"])],
               ["LC_TUNE", str(report["tune_mode"])],
               ["this machine", ", ".join(report["machines"])],
               ["other machines (never matched)", str(len(report["foreign_machines"]))],
               ["entries here", str(len(report["entries"]))]]
    entries = [[e["op"], e["bucket"], e["dtype"], e["precision"], e["io"], e["winner"],
                e["reason"], ", ".join(f"{v}={_us(t)}" for v, t in e["candidates"].items()),
                e["tuned_at"] or "-"] for e in report["entries"]]
    _print_tables([("Tuning cache", ["item", "value"], summary),
                   ("Tuned buckets (µs per candidate)",
                    ["op", "bucket", "dtype", "precision", "io", "winner", "reason",
                     "candidates", "tuned at"], entries)], args.plain)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lc", description="Lightning Core command line.")
    parser.add_argument("--version", action="version", version=f"lightning_core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{info,bench,tune,cache}")
    info_p = sub.add_parser("info", help="backend capabilities, machine and configuration")
    info_p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    info_p.add_argument("--plain", action="store_true", help="plain-text tables, even with rich")
    sub.add_parser("bench", add_help=False,
                   help="run benchmarks (arguments go to the benchmark CLI; lc bench --help)")
    tune_p = sub.add_parser("tune", help="pre-tune the seed's shape lists on this machine")
    tune_p.add_argument("--ops", default="matmul,attention,conv2d",
                        help="comma-separated ops to tune (default: matmul,attention,conv2d)")
    tune_p.add_argument("--calibrate", action="store_true",
                        help="also (re)measure the CPU crossover costs of this machine")
    tune_p.add_argument("--plain", action="store_true", help="plain progress and tables")
    cache_p = sub.add_parser("cache", help="show, clear or locate the tuning cache")
    cache_p.add_argument("action", choices=("show", "clear", "path"))
    cache_p.add_argument("--json", action="store_true", help="show: print the report as JSON")
    cache_p.add_argument("--plain", action="store_true", help="plain-text tables, even with rich")
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
    commands = {"info": _cmd_info, "tune": _cmd_tune, "cache": _cmd_cache}
    if args.command not in commands:
        parser.print_help(sys.stderr)
        return 2
    try:
        return commands[args.command](args)
    except (LCError, OSError) as exc:  # a bad LC_* knob, an unwritable cache: no traceback
        print(f"lc: {exc}", file=sys.stderr)
        return 1
