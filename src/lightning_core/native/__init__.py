"""The native fast lane: ``lane.c`` built into the extension module ``_lane`` on first use.

``load()`` returns the module, or None when it is turned off (``LC_NATIVE_LANE=0``) or cannot
be built here (no C compiler, no Python headers); ``status()`` says which, and why. Nothing
requires the module: every object it provides has a Python twin that runs without it.

The build is keyed by the source's digest and the interpreter's extension suffix (its ABI),
compiled with the compiler Python itself was built with (``sysconfig``'s ``CC``, else ``cc``;
``LC_NATIVE_CC`` overrides it)
into the on-disk cache folder, and moved into place atomically, so processes share one build
and a half-written file is never loaded. A failed build is remembered for the process; the
compiler's output is kept in ``status()``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from types import ModuleType

from .. import config

__all__ = ["load", "status", "source_paths", "compile_command", "build", "reset"]

_lock = threading.Lock()
_state: dict[str, object] = {}  # "module": ModuleType | None, "status": str


def source_paths() -> list[Path]:
    """Every C file of the module inside the installed package: ``lane.c`` (the fast lane and
    the module's init) and ``hostcopy.c`` (the parallel host copy)."""
    here = Path(__file__)
    return [here.with_name("lane.c"), here.with_name("hostcopy.c")]


def compile_command(sources: list[Path], target: str, *warnings: str) -> list[str]:
    """The compiler command line that builds ``sources`` into the extension ``target``
    (``warnings``: extra flags, e.g. CI's ``-Werror``)."""
    include = sysconfig.get_paths()["include"]
    cmd = [*_compiler(), "-O2", "-shared", "-fPIC", "-pthread", "-Wall", *warnings,
           f"-I{include}", *map(str, sources), "-o", target]
    if sys.platform == "darwin":
        cmd[1:1] = ["-undefined", "dynamic_lookup"]
    else:
        cmd.append("-ldl")
    return cmd


def _compiler() -> list[str]:
    return shlex.split(config.get("LC_NATIVE_CC") or sysconfig.get_config_var("CC") or "cc")


def _build_dir() -> Path:
    """The cache folder's ``native`` subfolder, or one under the temp folder when the cache
    folder cannot be written."""
    for base in (config.cache_dir(), os.path.join(tempfile.gettempdir(),
                                                  f"lightning_core-{os.getuid()}")):
        path = Path(base) / "native"
        try:
            path.mkdir(parents=True, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
        except OSError:
            continue
    raise OSError("no writable folder for the native lane's build")


def build(target: Path | None = None, *, timeout: float = 120.0) -> Path:
    """Compile ``lane.c`` into an extension module file (``target``, else the cache) and return
    its path; an existing build of the same source and ABI is reused. Raises ``OSError`` or
    ``subprocess.CalledProcessError`` (with the compiler's output) when it cannot."""
    sources = source_paths()
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    if target is None:
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)
                                + suffix.encode()).hexdigest()[:16]
        target = _build_dir() / f"_lane-{digest}{suffix}"
        if target.exists():
            return target
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        raise OSError(f"no Python headers (Python.h) under {include}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=target.parent)
    os.close(fd)
    cmd = compile_command(sources, tmp)
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("lightning_core._lane", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load() -> ModuleType | None:
    """The ``_lane`` module (built on first use), or None: turned off by ``LC_NATIVE_LANE=0``
    (read on every call) or not buildable here (remembered; ``status()`` says why)."""
    if not config.get("LC_NATIVE_LANE"):
        return None
    if "status" in _state:
        return _state["module"]  # type: ignore[return-value]
    with _lock:
        if "status" not in _state:
            module = None
            try:
                path = build()
                module = _import(path)
                text = f"loaded from {path}"
            except subprocess.CalledProcessError as exc:
                text = f"unavailable: the C build failed: {(exc.stderr or exc.stdout).strip()}"
            except subprocess.TimeoutExpired:
                text = "unavailable: the C build timed out"
            except (OSError, ImportError) as exc:
                text = f"unavailable: {exc}"
            _state["module"], _state["status"] = module, text
        return _state["module"]  # type: ignore[return-value]


def status() -> str:
    """How the native lane stands in this process: loaded (and from where), off, or
    unavailable with the reason."""
    if load() is None and not config.get("LC_NATIVE_LANE"):
        return "off (LC_NATIVE_LANE=0)"
    return str(_state["status"])


def reset() -> None:
    """Forget this process's load decision (tests; after changing ``LC_NATIVE_LANE``)."""
    with _lock:
        _state.clear()
