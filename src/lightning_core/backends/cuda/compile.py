"""The only NVRTC caller: compile kernel files to cubin, cache them in memory and on disk.

``get_function("elementwise.cu", "lc_relu_vec", {"LC_DTYPE": 1})`` reads the file from the
package's ``kernels/`` folder (``importlib.resources``), compiles it for the device's arch with
``-std=c++17`` and the ``-D`` defines (no ``--use_fast_math``: accuracy first), and returns a
``cupy.RawKernel``. The disk key is the sha256 of everything that can change the binary: the
source digest, the digests of every header it includes, the options, the arch, the NVRTC
version and our version. Cache files are written atomically (temp file + ``os.replace``) and a
corrupt or foreign file is a miss, never an error. A failed compile raises ``CompileError``
with the path, the options and the compiler log; it never kills the process.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from ... import config
from ..._version import __version__
from ...errors import CompileError

__all__ = ["get_function", "compile_source", "kernels_dir", "cache_key", "clear_memory_cache",
           "sm_count", "grid_for"]

_SCHEMA = 1
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)

_lock = threading.RLock()
_functions: dict[tuple[Any, ...], Any] = {}  # (file, kernel, defines, exprs) -> RawKernel
_modules: dict[str, tuple[Any, dict[str, str]]] = {}  # disk key -> (RawModule, lowered names)
_kernels_path: Path | None = None
_exit_stack = contextlib.ExitStack()
_fallback_cache: str | None = None
_sm_count = 0


def kernels_dir() -> Path:
    """The package's ``kernels/`` folder on the file system (passed to NVRTC as ``-I``)."""
    global _kernels_path
    if _kernels_path is None:
        res = importlib.resources.files("lightning_core.backends.cuda") / "kernels"
        _kernels_path = Path(_exit_stack.enter_context(importlib.resources.as_file(res)))
    return _kernels_path


def _digest(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def _header_digests(source: str, folder: Path) -> dict[str, str]:
    """Digests of every quoted ``#include`` reachable from ``source`` inside ``folder``."""
    found: dict[str, str] = {}
    pending = list(_INCLUDE.findall(source))
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = folder / name
        if not path.is_file():
            found[name] = "missing"  # NVRTC reports it; the key still differs from a hit
            continue
        text = path.read_text()
        found[name] = _digest(text)
        pending.extend(_INCLUDE.findall(text))
    return dict(sorted(found.items()))


def _arch() -> str:
    import cupy  # noqa: PLC0415 - only reached once the CUDA backend exists

    return cupy.cuda.Device().compute_capability  # e.g. "90"


def _nvrtc_version() -> tuple[int, int]:
    from cupy_backends.cuda.libs import nvrtc  # noqa: PLC0415

    return tuple(nvrtc.getVersion())  # type: ignore[return-value]


def cache_key(source: str, options: tuple[str, ...], name_expressions: tuple[str, ...] = (),
              headers: dict[str, str] | None = None) -> str:
    """sha256 of source, headers, options, arch, NVRTC version and lightning_core version."""
    blob = json.dumps({
        "schema": _SCHEMA, "source": _digest(source), "headers": headers or {},
        "options": list(options), "name_expressions": list(name_expressions),
        "arch": _arch(), "nvrtc": list(_nvrtc_version()), "lightning_core": __version__,
    }, sort_keys=True)
    return _digest(blob)


def _cache_folder() -> str:
    """``config.cache_dir()/kernels``, or a private temp folder when that is not writable."""
    global _fallback_cache
    folder = os.path.join(config.cache_dir(), "kernels")
    try:
        os.makedirs(folder, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    if _fallback_cache is None:
        _fallback_cache = tempfile.mkdtemp(prefix="lightning_core_kernels_")
    return _fallback_cache


def _write_atomic(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_cached(folder: str, key: str) -> dict[str, str] | None:
    """Lowered names of a valid cached cubin, or None (missing, corrupt or foreign)."""
    try:
        with open(os.path.join(folder, key + ".json"), encoding="utf-8") as fh:
            meta = json.load(fh)
        with open(os.path.join(folder, key + ".cubin"), "rb") as fh:
            cubin = fh.read()
    except (OSError, ValueError):
        return None
    if (not isinstance(meta, dict) or meta.get("schema") != _SCHEMA or meta.get("key") != key
            or meta.get("cubin_sha256") != _digest(cubin)
            or not isinstance(meta.get("lowered"), dict)):
        return None
    return meta["lowered"]


def _nvrtc_compile(source: str, name: str, options: tuple[str, ...],
                   name_expressions: tuple[str, ...]) -> tuple[bytes, dict[str, str]]:
    from cupy_backends.cuda.libs import nvrtc  # noqa: PLC0415

    prog = nvrtc.createProgram(source, name, (), ())
    try:
        for expr in name_expressions:
            nvrtc.addNameExpression(prog, expr)
        try:
            nvrtc.compileProgram(prog, list(options))
        except nvrtc.NVRTCError as exc:
            log = nvrtc.getProgramLog(prog)
            raise CompileError(f"[compile] NVRTC could not compile {name}: {exc}", path=name,
                               options=options, log=log) from None
        lowered = {expr: nvrtc.getLoweredName(prog, expr) for expr in name_expressions}
        return bytes(nvrtc.getCUBIN(prog)), lowered
    finally:
        nvrtc.destroyProgram(prog)


def _module(source: str, name: str, options: tuple[str, ...], name_expressions: tuple[str, ...],
            headers: dict[str, str]) -> tuple[Any, dict[str, str]]:
    import cupy  # noqa: PLC0415

    key = cache_key(source, options, name_expressions, headers)
    hit = _modules.get(key)
    if hit is not None:
        return hit
    folder = _cache_folder()
    lowered = _read_cached(folder, key)
    cubin_path = os.path.join(folder, key + ".cubin")
    if lowered is None:
        cubin, lowered = _nvrtc_compile(source, name, options, name_expressions)
        meta = {"schema": _SCHEMA, "key": key, "cubin_sha256": _digest(cubin), "source": name,
                "options": list(options), "lowered": lowered}
        _write_atomic(cubin_path, cubin)
        _write_atomic(os.path.join(folder, key + ".json"), json.dumps(meta).encode())
    entry = (cupy.RawModule(path=cubin_path), lowered)
    _modules[key] = entry
    return entry


def compile_source(source: str, kernel: str, options: tuple[str, ...] = (), *,
                   name_expressions: tuple[str, ...] = (), name: str = "<source>",
                   headers: dict[str, str] | None = None) -> Any:
    """Compile CUDA C++ ``source`` (cached) and return ``kernel`` as a ``cupy.RawKernel``.

    ``options`` are passed to NVRTC as given; ``kernel`` is an ``extern "C"`` name or one of
    ``name_expressions`` (template instantiations). ``headers`` maps included file names to
    their digests so that editing a header changes the cache key.
    """
    import cupy  # noqa: PLC0415

    exprs = tuple(name_expressions)
    if "<" in kernel and kernel not in exprs:
        exprs = (*exprs, kernel)
    with _lock:
        module, lowered = _module(source, name, tuple(options), exprs, headers or {})
        try:
            return module.get_function(lowered.get(kernel, kernel))
        except cupy.cuda.driver.CUDADriverError as exc:
            raise CompileError(f"[compile] kernel {kernel!r} is not in {name} ({exc})",
                               path=name, options=tuple(options)) from None


def _freeze(defines: dict[str, int | str] | None) -> tuple[tuple[str, int | str], ...]:
    return tuple(sorted(defines.items())) if defines else ()


def get_function(filename: str, kernel: str, defines: dict[str, int | str] | None = None, *,
                 name_expressions: tuple[str, ...] = ()) -> Any:
    """The ``cupy.RawKernel`` ``kernel`` of ``kernels/<filename>``, specialised by ``-D`` defines.

    Compiled once per (file, kernel, defines, name expressions) and process; callers on a hot
    path keep the returned kernel instead of calling this on every launch.
    """
    frozen = _freeze(defines)
    fkey = (filename, kernel, frozen, tuple(name_expressions))
    fn = _functions.get(fkey)
    if fn is not None:
        return fn
    with _lock:
        fn = _functions.get(fkey)
        if fn is not None:
            return fn
        folder = kernels_dir()
        path = folder / filename
        try:
            source = path.read_text()
        except OSError as exc:
            raise CompileError(f"[compile] cannot read kernel file {filename}: {exc}",
                               path=str(path)) from None
        options = ("-std=c++17", f"-arch=sm_{_arch()}", f"-I{folder}",
                   *(f"-D{k}={v}" for k, v in frozen))
        fn = compile_source(source, kernel, options, name_expressions=tuple(name_expressions),
                            name=str(path), headers=_header_digests(source, folder))
        _functions[fkey] = fn
        return fn


def clear_memory_cache() -> None:
    """Forget compiled modules held in memory (the disk cache is kept); tests use this."""
    with _lock:
        _functions.clear()
        _modules.clear()


def sm_count() -> int:
    """Streaming multiprocessors of device 0 (read once; grids are sized from it)."""
    global _sm_count
    if not _sm_count:
        import cupy  # noqa: PLC0415

        _sm_count = int(cupy.cuda.Device(0).attributes["MultiProcessorCount"])
    return _sm_count


def grid_for(blocks: int, threads: int) -> int:
    """Blocks for a grid-stride kernel: the work's blocks, capped at one full wave.

    A wave is 2048 resident threads per SM on Hopper (and every arch since Volta), so more
    blocks than that only add scheduling overhead to a grid-stride loop.
    """
    return max(1, min(blocks, sm_count() * max(1, 2048 // threads)))
