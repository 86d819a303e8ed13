"""Auto-tuning with a persisted cache, implementation routing and the CPU crossover (SPEC §4).

``install()`` plugs the process-wide tuner into the dispatcher as its selector hook (which
registered implementation runs a call: tuned > promoted > default) and its crossover hook
(whether a one-shot host call with ``device="auto"`` runs on the CPU). ``lightning_core``
installs them on import. Modules: ``keys`` (buckets, entry keys, machine fingerprints),
``cache`` (the JSON file), ``measure`` (check and time one candidate), ``tuner``,
``crossover`` and ``shapes`` (pre-tuning for ``lc tune``, calibration probes).
"""

from __future__ import annotations

from typing import Any

from ..runtime.backend import Backend, get_backend
from ..runtime.device import best_device
from ..runtime.dispatch import set_crossover, set_selector
from .cache import CacheWarning, TuneCache, default_path
from .crossover import Crossover
from .tuner import Tuner

__all__ = ["CACHE", "TUNER", "CROSSOVER", "CacheWarning", "TuneCache", "Tuner", "Crossover",
           "install", "reset_tuning", "attention_reset_tuning", "tuning_report",
           "active_backends", "default_path"]

CACHE = TuneCache()
TUNER = Tuner(CACHE)
CROSSOVER = Crossover(TUNER)


def install() -> None:
    """Make the dispatcher consult this process's tuner and crossover."""
    set_selector(TUNER.select)
    set_crossover(CROSSOVER)


def reset_tuning(op: str | None = None) -> None:
    """Forget in-memory tuned entries of kernel key ``op`` (all when None; then the crossover
    calibration too) and every routing decision; the cache file is kept and re-read."""
    TUNER.forget(op)
    if op is None:
        CROSSOVER.forget()


def attention_reset_tuning() -> None:
    """Forget in-memory attention tuning (the persisted cache is kept)."""
    reset_tuning("attention")


def active_backends() -> list[Backend]:
    """The backends whose tuning this process reports: the CPU, plus the GPU when present."""
    backends = [get_backend("cpu")]
    if best_device() == "cuda":
        backends.append(get_backend("cuda"))
    return backends


def tuning_report() -> dict[str, Any]:
    """What the tuner chose per bucket on this machine: winner, margin over the runner-up,
    every candidate's time, rejected candidates and why, when; plus the cache file, the
    crossover calibration and searches that found no valid candidate."""
    return TUNER.report(active_backends())
