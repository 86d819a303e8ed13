"""Regenerate the README's performance section from a committed ``lc bench all`` run.

    python3 tools/gen_readme_perf.py benchmarks/results/<date>-<machine>/
    python3 tools/gen_readme_perf.py benchmarks/results/<date>-<machine>/ --check

The text between ``<!-- perf:begin -->`` and ``<!-- perf:end -->`` in the README is rebuilt
from the run folder that ``lc bench all --out-dir FOLDER`` wrote:

- ``cross_suite_summary.json``: which suite files belong to the run (``sources``) and the
  per-suite statistics of every comparison (``comparisons``). Each statistic quoted is checked
  against the suite file it came from; a summary that disagrees is an error, so a README number
  can always be traced to the raw samples. Without this file (a folder of single-suite runs)
  every ``*.json`` suite file of the folder is used and the statistics are computed from it.
- ``<suite>.json`` (one per suite): the rows (for the case counts, the family table and the
  reason of each n/a), the ``environment`` block (date, GPU, driver, versions, precision) and
  the ``settings`` block (the command line).
- ``<suite>.md``, ``<suite>_*.png`` and ``cross_suite_summary.md`` are linked, not read.

The output depends only on those files and on where the folder lies relative to the README
(no clock, no hostname, fixed number formats), so running the script twice gives the same
bytes. ``--check`` changes nothing: it prints a diff and exits 1 when the README differs from
what would be generated, 0 when it matches.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
try:
    from lightning_core.bench import summary
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(ROOT / "src"))
    from lightning_core.bench import summary

BEGIN, END = "<!-- perf:begin -->", "<!-- perf:end -->"
SUMMARY_JSON, SUMMARY_MD = "cross_suite_summary.json", "cross_suite_summary.md"
# The ratio against torch eager a suite is judged by in the README: the first of these with a
# value (resident when the device allows it, else one-shot; quick's own column in between).
TORCH_RATIOS = ("speedup_eager", "torch_over_lc", "speedup_oneshot")
# Timing columns whose n/a reason explains a missing ratio (quick's peer column is "torch").
_RATIO_INPUTS = {"speedup_eager": ("torch_eager", "lc_resident"),
                 "torch_over_lc": ("torch", "lc_resident", "lc_oneshot"),
                 "speedup_oneshot": ("torch_oneshot", "lc_oneshot")}
_LABELS = {name: label for name, _, _, label in summary.COMPARISONS}
_STAT_KEYS = ("rows", "wins", "median", "min", "max")


def _fail(message: str) -> SystemExit:
    return SystemExit(f"gen_readme_perf: {message}")


# ---- reading the run -------------------------------------------------------------------------

def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {path}: {exc}") from exc


def load_run(folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(suite documents in run order, the cross-suite summary or None when there is none)."""
    summary_path = folder / SUMMARY_JSON
    if not summary_path.is_file():
        docs = summary.folder_docs(folder)
        if not docs:
            raise _fail(f"no suite result files (*.json) in {folder}")
        return docs, None
    cross = _load_json(summary_path)
    if not isinstance(cross, dict) or not isinstance(cross.get("sources"), list):
        raise _fail(f"{summary_path} is not a cross-suite summary (no 'sources' list)")
    files = [str(source.get("file")) for source in cross["sources"]]
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        raise _fail(f"{summary_path} lists suite files that are not in {folder}: "
                    + ", ".join(missing))
    docs = summary.load_docs(folder / name for name in files)
    if not docs:
        raise _fail(f"no suite result files (*.json) in {folder}")
    return docs, cross


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0))
    return a == b


def suite_comparisons(docs: Sequence[dict[str, Any]],
                      cross: dict[str, Any] | None) -> dict[str, dict[str, dict[str, Any]]]:
    """{suite: {comparison: statistics}}, from the summary when there is one (after checking
    each entry against the suite file it names), else computed from the suite files."""
    computed = {doc["suite"]: {c["comparison"]: c for c in
                               summary.comparison_stats(doc.get("rows", []))} for doc in docs}
    if cross is None:
        return computed
    quoted: dict[str, dict[str, dict[str, Any]]] = {doc["suite"]: {} for doc in docs}
    for entry in cross.get("comparisons", []):
        quoted.setdefault(str(entry.get("suite")), {})[str(entry.get("comparison"))] = entry
    for suite in sorted(set(quoted) | set(computed)):
        mine, theirs = computed.get(suite, {}), quoted.get(suite, {})
        for name in sorted(set(mine) | set(theirs)):
            a, b = mine.get(name), theirs.get(name)
            if a is None or b is None or not all(_close(a[k], b.get(k)) for k in _STAT_KEYS):
                raise _fail(f"{SUMMARY_JSON} disagrees with the suite file of {suite!r} on "
                            f"{name!r}; rewrite it with python3 benchmarks/"
                            "generate_cross_suite_summary.py FOLDER")
    return quoted


# ---- formatting ------------------------------------------------------------------------------

def _cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    return [_row(header), "|" + "---|" * len(header), *(_row(r) for r in rows)]


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _ratio(value: Any) -> str:
    v = _num(value)
    return "n/a" if v is None else f"{v:.2f}x"


def _wins(stats: dict[str, Any]) -> str:
    rows, wins = int(stats.get("rows") or 0), int(stats.get("wins") or 0)
    return f"{wins} of {rows} ({100 * wins / rows:.0f}%)" if rows else "n/a"


def _version(env: dict[str, Any], key: str) -> str:
    if key not in env:
        return "n/a (not recorded)"
    return "n/a (not installed)" if env[key] is None else str(env[key])


def _link(rel: str, name: str, text: str | None = None) -> str:
    return f"[{text or name}]({rel}/{name})"


# ---- the pieces of the section ---------------------------------------------------------------

def _dates(docs: Sequence[dict[str, Any]]) -> str:
    days = sorted({str(d.get("environment", {}).get("date"))[:10] for d in docs
                   if d.get("environment", {}).get("date")})
    if not days:
        return "n/a (no date recorded)"
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"


def _gpu(env: dict[str, Any]) -> tuple[str, str] | None:
    """(name, "name, driver, CUDA, clocks") of the first GPU; None when the run saw none."""
    gpu = env.get("gpu") if isinstance(env.get("gpu"), dict) else {}
    device = gpu.get("device") if isinstance(gpu.get("device"), dict) else {}
    smi = gpu.get("nvidia_smi") if isinstance(gpu.get("nvidia_smi"), list) else []
    smi0 = smi[0] if smi and isinstance(smi[0], dict) else {}
    name = device.get("name") or smi0.get("name")
    if not name:
        return None
    facts = [str(name), f"driver {smi0.get('driver_version') or 'n/a (not recorded)'}"]
    runtime = device.get("cuda_runtime_version")
    if isinstance(runtime, int) and runtime > 0:
        facts.append(f"CUDA runtime {runtime // 1000}.{runtime % 1000 // 10}")
    if device.get("compute_capability"):
        facts.append(f"compute capability {device['compute_capability']}")
    if device.get("sm_count"):
        facts.append(f"{device['sm_count']} SMs")
    if smi0.get("clocks.sm") and smi0.get("clocks.max.sm"):
        facts.append(f"SM clock {smi0['clocks.sm']} (max {smi0['clocks.max.sm']})")
    if len(smi) > 1:
        facts.append(f"{len(smi)} GPUs visible, the run used one")
    return str(name), ", ".join(facts)


def _cores(cpus: dict[str, Any]) -> str:
    usable, logical = cpus.get("usable"), cpus.get("logical")
    if usable is None:
        return "CPU cores n/a (not recorded)"
    if logical is None or logical == usable:
        return f"{usable} CPU cores"
    return f"{usable} usable of {logical} CPU cores"


def _provenance(docs: Sequence[dict[str, Any]], cross: dict[str, Any] | None,
                rel: str) -> list[str]:
    env = docs[0].get("environment", {})
    rows = docs[0].get("rows", [])
    device = rows[0].get("device", "n/a") if rows else "n/a"
    gpu = _gpu(env)
    cpus = env.get("cpu_count", {}) if isinstance(env.get("cpu_count"), dict) else {}
    where = gpu[0] if gpu else f"a {cpus.get('usable', '?')}-core CPU host"
    commands = sorted({str(d.get("settings", {}).get("command")) for d in docs
                       if d.get("settings", {}).get("command")})
    precisions = sorted({str(d.get("environment", {}).get("precision")) for d in docs})
    tf32 = " (TF32 off in torch)" if env.get("torch") else ""
    source = (f"`{SUMMARY_JSON}` and the suite files it lists" if cross is not None
              else f"the suite `.json` files (there is no `{SUMMARY_JSON}`)")
    return [
        f"Measured on {where} (device `{device}`) on {_dates(docs)}.",
        "",
        f"- Results: `{rel}/`, from {source}.",
        "- Command: " + (", ".join(f"`{c}`" for c in commands) or "n/a (not recorded)"),
        f"- GPU: {gpu[1] if gpu else 'n/a (no CUDA device visible to the run)'}",
        f"- Host: {_cores(cpus)}, {env.get('platform', 'platform n/a (not recorded)')}",
        f"- Software: Lightning Core {_version(env, 'lightning_core')}, Python "
        f"{_version(env, 'python')}, NumPy {_version(env, 'numpy')}, CuPy "
        f"{_version(env, 'cupy')}, torch {_version(env, 'torch')}",
        f"- Precision: {', '.join(precisions)}{tf32}",
    ]


def _reason(rows: Sequence[dict[str, Any]], comparisons: dict[str, dict[str, Any]]) -> str:
    """Why a suite has no ratio against torch eager, from the n/a notes of its rows."""
    present = [c for c in TORCH_RATIOS if any(c in row for row in rows)]
    notes: dict[str, dict[str, int]] = {}  # timing column -> reason -> rows
    for row in rows:
        for part in str(row.get("notes") or "").split("; "):
            key, _, text = part.partition(": ")
            if text:
                counts = notes.setdefault(key, {})
                counts[text] = counts.get(text, 0) + 1
    # The peer's reason first (torch missing explains more than one side being n/a).
    for column in present:
        for key in _RATIO_INPUTS[column]:
            if key in notes:
                return max(notes[key], key=lambda t: notes[key][t])  # first of the commonest
    if present:
        return "no row has a value"
    other = next(iter(comparisons.values()), None)
    if other is None:
        return "no torch peer and no ratio in this suite"
    return (f"no torch peer; {other['label']}: median {_ratio(other.get('median'))} "
            f"over {other.get('rows')} cases")


def _suite_files(doc: dict[str, Any], folder: Path, rel: str) -> tuple[str, set[str]]:
    stem = Path(str(doc.get("file"))).stem
    md = f"{stem}.md"
    parts = [_link(rel, md, "summary") if (folder / md).is_file() else "n/a (no .md file)"]
    plots = sorted(p.name for p in folder.glob(f"{stem}_*.png"))
    if plots:
        parts.append("plots: " + ", ".join(_link(rel, p, p[len(stem) + 1:-4]) for p in plots))
    return "; ".join(parts), set(plots)


def section(folder: Path, readme: Path) -> str:
    """The generated Markdown between the markers (markers excluded)."""
    docs, cross = load_run(folder)
    comparisons = suite_comparisons(docs, cross)
    rel = Path(os.path.relpath(folder.resolve(), readme.resolve().parent)).as_posix()
    lines = ["", f"_Generated by `tools/gen_readme_perf.py` from `{rel}/`; do not edit by "
             "hand (`make readme-perf` rewrites it)._", ""]
    lines += _provenance(docs, cross, rel)
    lines += ["", "A ratio is torch's median time divided by Lightning Core's for the same case, "
              "both timed in one process on the same inputs at the same precision; above 1 "
              "Lightning Core is faster, and a win is a case above 1. Device-resident calls "
              "are compared when the device allows them, otherwise one-shot calls (NumPy in, "
              "NumPy out).", ""]
    suite_rows, family_rows, linked, skipped = [], [], set(), []
    for doc in docs:
        suite, rows = doc["suite"], doc.get("rows", [])
        comps = comparisons.get(suite, {})
        failed = sum(row.get("status") != "ok" for row in rows)
        cases = f"{len(rows)} ({failed} FAILED)" if failed else str(len(rows))
        files, plots = _suite_files(doc, folder, rel)
        linked |= plots
        column = next((c for c in TORCH_RATIOS if comps.get(c, {}).get("rows")), None)
        if column is None:
            suite_rows.append([suite, "n/a", cases, f"n/a ({_reason(rows, comps)})", "n/a",
                               "n/a", "n/a", files])
            skipped.append(suite)
            continue
        s = comps[column]
        suite_rows.append([suite, _LABELS.get(column, column), cases, _wins(s),
                           _ratio(s.get("median")), _ratio(s.get("min")),
                           _ratio(s.get("max")), files])
        for fam in summary.family_stats(rows, column):
            if fam["rows"]:
                family_rows.append([suite, fam["family"], fam["rows"], _wins(fam),
                                    _ratio(fam["median"]), _ratio(fam["min"]),
                                    _ratio(fam["max"])])
    lines += _table(["Suite", "Comparison", "Cases", "Wins", "Median", "Min", "Max", "Files"],
                    suite_rows)
    lines += ["", "Per family (the same ratio as the suite's row):", ""]
    if family_rows:
        lines += _table(["Suite", "Family", "Cases", "Wins", "Median", "Min", "Max"],
                        family_rows)
    else:
        lines += ["n/a (no suite has a ratio against torch eager; see the reasons above)"]
    if family_rows and skipped:
        lines += ["", "No family rows for " + ", ".join(skipped) + " (no ratio against torch "
                  "eager; the reason is in the suite table)."]
    every = (_link(rel, SUMMARY_MD, "cross-suite summary") if (folder / SUMMARY_MD).is_file()
             else "n/a (no cross-suite summary)")
    lines += ["", f"Every comparison (CUDA graph, torch.compile, device time, one-shot, NumPy) "
              f"with p10/p90/CV and the reason for each n/a: {every} and the per-suite "
              "summaries linked above; the raw samples are in the `.json` files."]
    others = sorted(p.name for p in folder.glob("*.png") if p.name not in linked)
    if others:
        lines += ["", "Other plots: " + ", ".join(_link(rel, p) for p in others)]
    return "\n".join(lines) + "\n"


# ---- the README ------------------------------------------------------------------------------

def render(text: str, generated: str) -> str:
    """``text`` with the part between the markers replaced by ``generated``."""
    start = text.find(BEGIN)
    end = text.find(END, start + len(BEGIN)) if start >= 0 else -1
    if start < 0 or end < 0:
        raise _fail(f"the README has no {BEGIN} ... {END} block")
    if text.find(BEGIN, start + 1) >= 0:
        raise _fail(f"the README has more than one {BEGIN} marker")
    return text[:start + len(BEGIN)] + generated + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a run folder written by lc bench all")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; print a diff and exit 1 when the README is not "
                             "what the folder's files give")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"gen_readme_perf: {args.folder} is not a folder", file=sys.stderr)
        return 2
    # Bytes in, bytes out: line endings and everything outside the markers stay as they are.
    current = args.readme.read_bytes().decode("utf-8")
    updated = render(current, section(args.folder, args.readme))
    if args.check:
        if updated != current:
            sys.stdout.writelines(difflib.unified_diff(
                current.splitlines(keepends=True), updated.splitlines(keepends=True),
                f"{args.readme} (committed)", f"{args.readme} (from {args.folder})"))
            print(f"gen_readme_perf: {args.readme} is out of date with {args.folder}; run "
                  f"python3 tools/gen_readme_perf.py {args.folder}", file=sys.stderr)
            return 1
        print(f"gen_readme_perf: {args.readme} matches {args.folder}")
        return 0
    if updated != current:
        args.readme.write_bytes(updated.encode("utf-8"))
    print(f"gen_readme_perf: wrote the performance section of {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
