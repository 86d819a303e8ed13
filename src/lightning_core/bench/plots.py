"""PNG plots of a suite's result document: ratio bars per case, scaling curves on log-log axes.

matplotlib is optional: without it ``plot_suite`` writes nothing and returns a note saying so.
Figures are drawn with matplotlib's object API (no pyplot), so plotting never changes the
caller's matplotlib backend or global state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .summary import COMPARISONS

__all__ = ["plot_suite", "ratio_bars", "scaling_curves"]

_BAR_RATIOS = ("speedup_eager", "speedup_graph", "speedup_kernel", "speedup_oneshot",
               "numpy_over_lc", "torch_over_lc", "api_over_direct_resident",
               "api_over_direct_oneshot")
# Scaling curves: (column, legend, style); floors are drawn dashed in black.
_CURVES = (
    ("lc_resident_ms", "LC resident (sync each call)", "-o"),
    ("lc_kernel_ms", "LC device time", "-s"),
    ("lc_oneshot_ms", "LC one-shot (NumPy in/out)", "-^"),
    ("torch_eager_ms", "torch eager (sync each call)", "--o"),
    ("torch_graph_ms", "torch CUDA graph", "--d"),
    ("torch_kernel_ms", "torch device time", "--s"),
    ("torch_oneshot_ms", "torch one-shot", "--^"),
    ("numpy_ms", "NumPy (host)", ":x"),
)
_FLOORS = (("floor_resident_ms", "floor: work + launch/sync", (6, 3)),
           ("floor_kernel_ms", "floor: work (FLOPs or bytes)", (1, 2)))
_LABELS = {name: label for name, _, _, label in COMPARISONS}


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - optional
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # "tight" keeps a legend placed below the axes inside the image.
    fig.savefig(path, metadata={"Software": None}, bbox_inches="tight")
    return path


def ratio_bars(rows: Sequence[dict[str, Any]], title: str, path: Path) -> Path | None:
    """Grouped horizontal bars of every ratio per case (log x axis, a line at 1)."""
    ratios = [c for c in _BAR_RATIOS if any(_finite(r.get(c)) for r in rows)]
    if not ratios:
        return None
    n = len(rows)
    height = 0.8 / len(ratios)
    fig = _figure(9.0, max(3.0, 0.35 * n * max(1, len(ratios)) ** 0.5 + 1.5))
    ax = fig.add_subplot()
    for j, column in enumerate(ratios):
        ys = [i + (j - (len(ratios) - 1) / 2) * height for i in range(n)]
        vals = [_finite(r.get(column)) or 0.0 for r in rows]
        ax.barh(ys, vals, height=height, label=_LABELS[column])
    ax.set_yticks(range(n), [f"{r.get('bench')} {r.get('shape')}" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("peer time ÷ Lightning Core time (log scale; > 1: Lightning Core faster)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.tight_layout()
    return _save(fig, path)


def scaling_curves(rows: Sequence[dict[str, Any]], title: str, path: Path) -> Path | None:
    """Median time against size on log-log axes, one line per side, the floors dashed."""
    points = sorted((r for r in rows if _finite(r.get("size"))), key=lambda r: r["size"])
    if len(points) < 2:
        return None
    fig = _figure(8.0, 5.5)
    ax = fig.add_subplot()
    drawn = 0
    for column, label, style in _CURVES:
        xy = [(r["size"], _finite(r.get(column))) for r in points]
        xy = [(x, y) for x, y in xy if y is not None]
        if xy:
            ax.plot(*zip(*xy, strict=True), style, label=label, markersize=4)
            drawn += 1
    for column, label, dashes in _FLOORS:
        xy = [(r["size"], _finite(r.get(column))) for r in points]
        xy = [(x, y) for x, y in xy if y is not None]
        if xy:
            ax.plot(*zip(*xy, strict=True), color="black", dashes=dashes, label=label)
    if not drawn:
        return None
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(str(points[0].get("sweep") or "size"))
    ax.set_ylabel("median time per call (ms, log scale)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def plot_suite(doc: dict[str, Any], out_dir: Path, name: str) -> tuple[list[Path], str | None]:
    """Every plot of one result document as ``<name>_*.png``; (paths, note when skipped)."""
    try:
        import matplotlib  # noqa: F401, PLC0415 - optional
    except ImportError:
        return [], "matplotlib is not installed: no plots (pip install matplotlib)"
    rows = doc.get("rows", [])
    suite = doc.get("suite", name)
    device = rows[0].get("device", "?") if rows else "?"
    paths = [ratio_bars(rows, f"{suite} on {device}: peer ÷ Lightning Core",
                        out_dir / f"{name}_ratios.png")]
    families: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if _finite(row.get("size")):
            families.setdefault(str(row.get("bench")), []).append(row)
    for bench, members in families.items():
        paths.append(scaling_curves(members, f"{suite} on {device}: {bench}, time against size",
                                    out_dir / f"{name}_{bench}.png"))
    return [p for p in paths if p is not None], None
