"""Every environment knob of Lightning Core: its type, default and one-line doc.

This is the only module that reads ``os.environ``. Values are parsed once and cached;
``reload()`` re-reads the environment and ``override(...)`` changes values for a ``with``
block (per context, so threads and tasks do not see each other's overrides).
The seed's ``CJ_*`` names are accepted as aliases of the ``LC_*`` names.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Knob", "KNOBS", "get", "reload", "override", "describe", "generation"]

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected a boolean (1/0, true/false, on/off), got {text!r}")


def _parse_sync_mode(text: str) -> str:
    low = text.strip().lower()
    if low not in ("auto", "always", "never"):
        raise ValueError(f"expected auto, always or never, got {text!r}")
    return low


def _parse_precision(text: str) -> str:
    low = text.strip().lower()
    if low not in ("fp32", "tf32", "bf16", "fp16"):
        raise ValueError(f"expected fp32, tf32, bf16 or fp16, got {text!r}")
    return low


@dataclass(frozen=True)
class Knob:
    """One configuration value: where it comes from and how it is parsed."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    aliases: tuple[str, ...] = ()


_KNOB_LIST = (
    Knob("LC_STRICT_DEVICE", _parse_bool, False,
         "Raise instead of falling back when a requested device is unavailable."),
    Knob("LC_TRACE", _parse_bool, False, "Start with the runtime trace enabled."),
    Knob("LC_TRACE_CAPACITY", int, 4096, "Ring-buffer size of the runtime trace (events)."),
    Knob("LC_SYNC_MODE", _parse_sync_mode, "auto", "Default runtime sync policy mode."),
    Knob("LC_PRECISION", _parse_precision, "fp32",
         "Default matmul precision policy: fp32 (true IEEE), tf32, bf16 or fp16."),
    Knob("LC_CACHE_DIR", str, "",
         "Folder for on-disk caches (compiled kernels, tuning); default ~/.cache/lightning_core."),
    Knob("LC_TUNE", int, 1, "Tuning: 0 off, 1 use the cache, 2 search on a miss."),
    Knob("LC_TUNE_CACHE_FILE", str, "", "Path of the tuning cache JSON file.",
         aliases=("CJ_MATMUL_TUNE_CACHE_FILE",)),
    Knob("LC_MATMUL_DISABLE_PROMOTED_BUCKETS", _parse_bool, False,
         "Ignore the promoted default buckets before tuning data exists.",
         aliases=("CJ_MATMUL_DISABLE_PROMOTED_BUCKETS",)),
    Knob("LC_MATMUL_PREFER_CUBLAS_ON_LARGE", _parse_bool, True,
         "Measure cuBLAS first on large GEMMs.", aliases=("CJ_MATMUL_PREFER_MPS_ON_LARGE",)),
    Knob("LC_MATMUL_TRY_KERNEL_ON_LARGE", _parse_bool, True,
         "Also time our own kernels on large GEMMs.", aliases=("CJ_MATMUL_TRY_KERNEL_ON_LARGE",)),
    Knob("LC_MATMUL_CUBLAS_HYST_PCT", float, 0.0,
         "Keep cuBLAS unless a kernel beats it by more than this percentage.",
         aliases=("CJ_MATMUL_MPS_HYST_PCT",)),
    Knob("LC_CONV2D_CPU_CROSSOVER_MACS", int, -1,
         "One-shot conv with at most this many MACs runs on the CPU (-1: calibrated).",
         aliases=("CJ_CONV2D_CPU_CROSSOVER_MACS",)),
    Knob("LC_CONV2D_CPU_CROSSOVER_DYNAMIC", _parse_bool, False,
         "Re-read the conv crossover threshold on every call.",
         aliases=("CJ_CONV2D_CPU_CROSSOVER_DYNAMIC",)),
    Knob("LC_CROSSOVER", _parse_bool, True,
         "Allow one-shot host calls with device='auto' to run on the CPU when that is faster."),
    Knob("LC_HOST_THREADS", int, 0,
         "Most host threads for staging copies and large CPU elementwise ops (0: min(8, cores))."),
    Knob("LC_ATTENTION_SPLIT_TF32", _parse_bool, True,
         "Long float32 attention on CUDA multiplies on tensor cores from split operands (three "
         "TF32 products per pair, float32 sums: float32-class error, ~5x the SIMT kernel's); "
         "0: SIMT kernels only."),
    Knob("LC_PIPELINE_CHUNK_BYTES", int, 1 << 20,
         "Result bytes per chunk when a one-shot elementwise call on page-locked host arrays "
         "overlaps its uploads, kernels and downloads (0: no overlap)."),
    Knob("LC_NATIVE_LANE", _parse_bool, True,
         "Steady-state calls take the native (C) fast lane and pageable host arrays are staged "
         "by its C thread pool, built on first use with the C compiler Python was built with; "
         "0: the Python lane and the Python host pool only."),
    Knob("LC_NATIVE_CC", str, "",
         "C compiler command for the native lane's build (default: the one Python was built "
         "with, sysconfig's CC)."),
    Knob("LC_TUNE_HYST_PCT", float, 3.0,
         "A new tuned winner must beat the incumbent by more than this percentage."),
)

KNOBS: dict[str, Knob] = {k.name: k for k in _KNOB_LIST}
_ALIAS_TO_NAME: dict[str, str] = {a: k.name for k in _KNOB_LIST for a in k.aliases}

_cache: dict[str, Any] = {}
_generation = [0]  # bumped whenever values may change; caches of derived decisions key on it
_overrides: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "lc_config_overrides", default=None
)


def _canonical(name: str) -> str:
    if name in KNOBS:
        return name
    if name in _ALIAS_TO_NAME:
        return _ALIAS_TO_NAME[name]
    raise KeyError(f"[config] unknown knob {name!r}; known: {', '.join(sorted(KNOBS))}")


def _read_env(knob: Knob) -> Any:
    for env_name in (knob.name, *knob.aliases):
        raw = os.environ.get(env_name)
        if raw is None:
            continue
        try:
            return knob.parse(raw)
        except ValueError as exc:
            from .errors import ConfigError

            raise ConfigError(f"[config] {env_name}={raw!r}: {exc}") from None
    return knob.default


def get(name: str, *, fresh: bool = False) -> Any:
    """Return the value of a knob (override > environment > default)."""
    scoped = _overrides.get()
    if not scoped and not fresh and name in _cache:  # the hot path: a canonical name, no
        return _cache[name]  # override in this context (aliases are never cache keys)
    name = _canonical(name)
    if scoped and name in scoped:
        return scoped[name]
    if fresh or name not in _cache:
        _cache[name] = _read_env(KNOBS[name])
    return _cache[name]


def reload() -> None:
    """Forget cached values so the next ``get`` re-reads the environment."""
    _cache.clear()
    _generation[0] += 1


def generation() -> int:
    """A number that changes whenever knob values may have changed (reload or override)."""
    return _generation[0]


@contextlib.contextmanager
def override(**values: Any) -> Iterator[None]:
    """Set knob values for the duration of a ``with`` block (names or aliases)."""
    current = dict(_overrides.get() or {})
    for key, value in values.items():
        current[_canonical(key)] = value
    token = _overrides.set(current)
    _generation[0] += 1
    try:
        yield
    finally:
        _overrides.reset(token)
        _generation[0] += 1


def describe() -> list[dict[str, Any]]:
    """All knobs with their current value, for ``lc info`` and the docs."""
    return [
        {"name": k.name, "aliases": list(k.aliases), "default": k.default,
         "value": get(k.name), "doc": k.doc}
        for k in _KNOB_LIST
    ]


def cache_dir() -> str:
    """The folder for on-disk caches (created on demand by the caller)."""
    configured = get("LC_CACHE_DIR")
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lightning_core")
