"""The persisted tuning cache: one versioned, human-readable JSON file shared by processes.

Layout::

    {"kind": "lightning_core.tune_cache", "schema_version": 1,
     "machines": {"<machine id>": {"fingerprint": {...},
                                    "entries": {"<entry key>": {"winner": ..., ...}},
                                    "calibration": {...}}}}

Writes take an exclusive ``fcntl.flock`` on ``<file>.lock``, re-read the file, merge this
process's new entries into it and replace it atomically (temporary file in the same folder,
fsync, ``os.replace``), so concurrent tuners never lose each other's entries and a reader (or a
process killed mid-write) sees the old file or the new one, never a partial one.

Temporary files left by a writer that was killed are removed by the next writer.
A file that cannot be trusted (not JSON, truncated, another schema or kind, malformed entries)
is set aside as ``<file>.corrupt-<timestamp>`` with one warning and rebuilt. A folder that
cannot be written gives one warning; tuning then lives in memory for the rest of the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

from .. import config

__all__ = ["SCHEMA_VERSION", "KIND", "CacheWarning", "TuneCache", "default_path"]

SCHEMA_VERSION = 1
KIND = "lightning_core.tune_cache"


class CacheWarning(UserWarning):
    """The tuning cache file was unusable or could not be written."""


class _Untrusted(Exception):
    """The cache file's content cannot be used (the message says why)."""


def default_path() -> str:
    """``LC_TUNE_CACHE_FILE`` (alias ``CJ_MATMUL_TUNE_CACHE_FILE``) or
    ``<cache dir>/tune_cache.json``."""
    return config.get("LC_TUNE_CACHE_FILE") or os.path.join(config.cache_dir(), "tune_cache.json")


def _empty() -> dict[str, Any]:
    return {"kind": KIND, "schema_version": SCHEMA_VERSION, "machines": {}}


def _check_section(mid: Any, section: Any) -> None:
    if not isinstance(mid, str) or not isinstance(section, dict):
        raise _Untrusted("a machine section is not an object")
    if not isinstance(section.get("fingerprint"), dict):
        raise _Untrusted(f"machine {mid} has no fingerprint")
    entries = section.get("entries", {})
    if not isinstance(entries, dict):
        raise _Untrusted(f"machine {mid} has malformed entries")
    for key, entry in entries.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("winner"), str)
                and isinstance(entry.get("timings_us"), dict)):
            raise _Untrusted(f"entry {key!r} is malformed")
    if not isinstance(section.get("calibration", {}), dict):
        raise _Untrusted(f"machine {mid} has a malformed calibration")


def _parse(data: bytes) -> dict[str, Any]:
    """The document in ``data``, or ``_Untrusted`` saying why it cannot be used."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise _Untrusted(f"not valid JSON (corrupt or truncated: {exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise _Untrusted("not a lightning_core tuning cache")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise _Untrusted(f"schema_version {doc.get('schema_version')!r}, this build reads "
                         f"{SCHEMA_VERSION}")
    machines = doc.get("machines")
    if not isinstance(machines, dict):
        raise _Untrusted("no machines object")
    for mid, section in machines.items():
        _check_section(mid, section)
    return doc


def _load(path: str) -> bytes | None:
    """The file's bytes, or None when there is no file (nor a folder for it)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Hold the exclusive lock of ``path`` (a sidecar ``.lock`` file, never deleted)."""
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _aside_name(path: str) -> str:
    return f"{path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"


def _write_atomic(path: str, doc: dict[str, Any]) -> None:
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class TuneCache:
    """This process's view of the cache file plus the entries it has not persisted yet.

    ``path=None`` follows ``default_path()`` (re-resolved on every access, so a test or a
    sweep that points ``LC_TUNE_CACHE_FILE`` elsewhere gets a fresh view).
    """

    def __init__(self, path: str | None = None) -> None:
        self._fixed_path = path
        self._lock = threading.RLock()
        self._loaded_path: str | None = None
        self._doc: dict[str, Any] = _empty()
        self._pending: dict[str, dict[str, Any]] = {}  # mid -> {fingerprint, entries, cal}
        self._memory_only: set[str] = set()
        self._warned: set[tuple[str, str]] = set()

    @property
    def path(self) -> str:
        return self._fixed_path or default_path()

    @property
    def persistent(self) -> bool:
        """False once the file could not be written (tuning then stays in memory)."""
        return self.path not in self._memory_only

    # -- reading -----------------------------------------------------------------------------
    def _warn(self, path: str, what: str, text: str) -> None:
        if (path, what) not in self._warned:
            self._warned.add((path, what))
            warnings.warn(f"[tuning] {text}", CacheWarning, stacklevel=2)

    def _read(self, path: str) -> dict[str, Any]:
        """The file's document; an untrusted file is set aside (one warning) and read empty."""
        try:
            data = _load(path)
        except OSError as exc:
            self._warn(path, "unreadable", f"cannot read the cache {path} ({exc}); "
                                           "tuning starts from an empty cache")
            return _empty()
        if data is None:
            return _empty()
        try:
            return _parse(data)
        except _Untrusted as exc:
            self._set_aside(path, str(exc))
            return _empty()

    def _set_aside(self, path: str, reason: str) -> None:
        aside = _aside_name(path)
        try:
            with _locked(path):
                data = _load(path)
                if data is None:
                    return
                try:
                    _parse(data)
                    return  # another process already rebuilt it
                except _Untrusted:
                    os.replace(path, aside)
        except OSError as exc:
            self._warn(path, "untrusted", f"the cache {path} is unusable ({reason}) and could "
                                          f"not be set aside ({exc}); it is ignored")
            return
        self._warn(path, "untrusted", f"the cache {path} is unusable ({reason}); it was moved "
                                      f"to {aside} and will be rebuilt")

    def _view(self) -> dict[str, Any]:
        """The loaded document for the current path (loading it on first use)."""
        path = self.path
        if self._loaded_path != path:
            self._doc = self._read(path)
            self._loaded_path = path
            self._merge_into(self._doc)
        return self._doc

    def _merge_into(self, doc: dict[str, Any]) -> None:
        for mid, new in self._pending.items():
            section = doc["machines"].setdefault(mid, {"fingerprint": new["fingerprint"],
                                                       "entries": {}})
            section["fingerprint"] = new["fingerprint"]
            section.setdefault("entries", {}).update(new["entries"])
            if new.get("calibration") is not None:
                section["calibration"] = new["calibration"]

    def entry(self, mid: str, key: str) -> dict[str, Any] | None:
        """The tuned entry ``key`` of machine ``mid``, or None."""
        with self._lock:
            section = self._view()["machines"].get(mid)
            return None if section is None else section.get("entries", {}).get(key)

    def calibration(self, mid: str) -> dict[str, Any] | None:
        """The crossover calibration stored for machine ``mid``, or None."""
        with self._lock:
            section = self._view()["machines"].get(mid)
            return None if section is None else section.get("calibration")

    def machines(self) -> dict[str, Any]:
        """A copy of every machine section (this machine's and foreign ones)."""
        with self._lock:
            return json.loads(json.dumps(self._view()["machines"]))

    # -- writing -----------------------------------------------------------------------------
    def put(self, fingerprint: dict[str, Any], mid: str, key: str, entry: dict[str, Any]) -> bool:
        """Store one entry; True when it reached the file."""
        with self._lock:
            pending = self._pending.setdefault(mid, {"fingerprint": fingerprint, "entries": {}})
            pending["entries"][key] = entry
            return self._commit()

    def put_calibration(self, fingerprint: dict[str, Any], mid: str,
                        calibration: dict[str, Any]) -> bool:
        """Store machine ``mid``'s crossover calibration; True when it reached the file."""
        with self._lock:
            pending = self._pending.setdefault(mid, {"fingerprint": fingerprint, "entries": {}})
            pending["calibration"] = calibration
            return self._commit()

    def _commit(self) -> bool:
        path = self.path
        self._merge_into(self._view())
        if path in self._memory_only:
            return False
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with _locked(path):
                # Writers hold this lock, so a temporary file now is a killed writer's.
                for stale in glob.glob(glob.escape(path) + ".*.tmp"):
                    with contextlib.suppress(OSError):
                        os.unlink(stale)
                data = _load(path)
                try:
                    doc = _empty() if data is None else _parse(data)
                except _Untrusted as exc:
                    # Under the lock already: set it aside here, then write a fresh file.
                    aside = _aside_name(path)
                    os.replace(path, aside)
                    self._warn(path, "untrusted", f"the cache {path} is unusable ({exc}); it "
                                                  f"was moved to {aside} and rebuilt")
                    doc = _empty()
                self._merge_into(doc)
                _write_atomic(path, doc)
        except OSError as exc:
            self._memory_only.add(path)
            self._warn(path, "readonly", f"cannot write the cache {path} ({exc}); tuning "
                                         "results stay in memory for this process")
            return False
        self._pending.clear()
        self._doc, self._loaded_path = doc, path
        return True

    def forget(self, op: str | None = None) -> None:
        """Drop in-memory entries (of kernel key ``op``, or all); the file is kept and re-read
        on the next lookup."""
        with self._lock:
            for new in self._pending.values():
                if op is None:
                    new["entries"].clear()
                else:
                    for key in [k for k in new["entries"] if k.split("|", 1)[0] == op]:
                        del new["entries"][key]
            self._loaded_path = None

    def clear(self) -> bool:
        """Delete the cache file and every in-memory entry; True when a file was removed."""
        with self._lock:
            path = self.path
            self._pending.clear()
            self._loaded_path = None
            try:
                with _locked(path):
                    os.unlink(path)
            except FileNotFoundError:
                return False
            return True
