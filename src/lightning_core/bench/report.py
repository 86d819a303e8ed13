"""Benchmark result files (CSV + JSON, written atomically) and the table printed at the end.

A suite returns rows as dicts. A value that is a ``Sample`` or ``NotMeasured`` is a timing: in
the CSV it becomes ``<name>_ms`` (the median), ``<name>_p10_ms``, ``<name>_p90_ms``,
``<name>_cv`` and ``<name>_n`` ("n/a" when not measured, with the reason in ``notes``); the JSON
keeps the same columns plus every raw sample, so each ratio in the CSV can be recomputed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .harness import NotMeasured, Sample

__all__ = ["NA", "SCHEMA_VERSION", "flatten", "write_text_atomic", "write_csv", "write_json",
           "write_results", "format_table", "print_table"]

NA = "n/a"
SCHEMA_VERSION = 1
_STAT_COLUMNS = (("_ms", "median_ns"), ("_p10_ms", "p10_ns"), ("_p90_ms", "p90_ns"))


def _cell(value: Any) -> Any:
    """A CSV/JSON-ready scalar: non-finite floats become "n/a", floats keep 6 significant
    digits."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else NA
    return value


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    """Expand the timings of one row into their columns; collect the n/a reasons in notes."""
    flat: dict[str, Any] = {}
    notes = [row["notes"]] if row.get("notes") else []
    for key, value in row.items():
        if key == "notes":
            continue
        if isinstance(value, Sample):
            for suffix, stat in _STAT_COLUMNS:
                flat[key + suffix] = round(getattr(value, stat) / 1e6, 6)
            flat[key + "_cv"] = round(value.cv, 4)
            flat[key + "_n"] = value.n
        elif isinstance(value, NotMeasured):
            for suffix in ("_ms", "_p10_ms", "_p90_ms", "_cv", "_n"):
                flat[key + suffix] = NA
            notes.append(f"{key}: {value.reason}")
        else:
            flat[key] = _cell(value)
    flat["notes"] = "; ".join(notes)
    return flat


def _raw_samples(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value.as_dict() for key, value in row.items() if isinstance(value, Sample)}


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so readers never see
    half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique sibling name (not mkstemp) so the file gets the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _columns(flat_rows: Sequence[dict[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for flat in flat_rows:
        columns.update(dict.fromkeys(flat))
    return list(columns)


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write the flattened rows as CSV (columns in first-seen order)."""
    flat_rows = [flatten(row) for row in rows]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(flat_rows), restval=NA)
    writer.writeheader()
    writer.writerows(flat_rows)
    write_text_atomic(path, buffer.getvalue())


def write_json(path: Path, suite: str, rows: Sequence[dict[str, Any]],
               environment: dict[str, Any], settings: dict[str, Any] | None = None) -> None:
    """Write rows, raw samples, environment and settings as one versioned JSON document."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "suite": suite,
        "environment": environment,
        "settings": settings or {},
        "rows": [{**flatten(row), "samples": _raw_samples(row)} for row in rows],
    }
    write_text_atomic(path, json.dumps(document, indent=1, allow_nan=False, default=str) + "\n")


def write_results(out_dir: Path, name: str, suite: str, rows: Sequence[dict[str, Any]],
                  environment: dict[str, Any],
                  settings: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.csv`` and ``<name>.json``; return their paths."""
    csv_path, json_path = out_dir / f"{name}.csv", out_dir / f"{name}.json"
    write_csv(csv_path, rows)
    write_json(json_path, suite, rows, environment, settings)
    return csv_path, json_path


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_table(rows: Sequence[dict[str, Any]], columns: Iterable[str]) -> str:
    """A plain-text table of the chosen flattened columns (numbers right-aligned)."""
    columns = list(columns)
    cells = [[flatten(row).get(c, NA) for c in columns] for row in rows]
    body = [[_text(v) for v in line] for line in cells]
    widths = [max([len(c)] + [len(line[i]) for line in body]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for raw, line in zip(cells, body, strict=True):
        lines.append("  ".join(
            text.rjust(w) if _is_number(value) or value == NA else text.ljust(w)
            for value, text, w in zip(raw, line, widths, strict=True)).rstrip())
    return "\n".join(lines)


def print_table(rows: Sequence[dict[str, Any]], columns: Iterable[str], title: str) -> None:
    """Print the table with rich when it is installed, else as plain text."""
    columns = list(columns)
    try:
        from rich.console import Console  # noqa: PLC0415 - optional pretty printing
        from rich.table import Table  # noqa: PLC0415
    except ImportError:
        print(f"\n{title}\n{format_table(rows, columns)}")
        return
    flat_rows = [flatten(row) for row in rows]
    # Rich squeezes columns to the terminal (80 wide when piped); keep every cell whole.
    needed = 1 + sum(3 + max([len(c)] + [len(_text(f.get(c, NA))) for f in flat_rows])
                     for c in columns)
    console = Console(width=max(Console().width, needed))
    table = Table(title=title)
    for column in columns:
        numeric = any(_is_number(flat.get(column)) for flat in flat_rows)
        table.add_column(column, justify="right" if numeric else "left")
    for flat in flat_rows:
        table.add_row(*(_text(flat.get(c, NA)) for c in columns))
    console.print(table)
