"""Where the host time of a device-resident lc call goes (cProfile over many calls)."""

from __future__ import annotations

import cProfile
import io
import pstats
import sys

import cupy as cp
import numpy as np

import lightning_core as lc


def profile_text(name: str, fn, calls: int, top: int) -> str:
    """cProfile of ``calls`` calls of ``fn`` (device work drained after), as text."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    cp.cuda.Device(0).synchronize()
    out = io.StringIO()
    out.write(f"=== {name} x{calls} ===\n")
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def report(text: str, path: str | None, *, echo: bool = True) -> None:
    """Print a probe's text (unless ``echo`` is off) and write it to ``path`` when given."""
    if echo:
        print(text)
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


def main(path: str) -> None:
    a, b, c = (cp.ones(1024, cp.float32) for _ in range(3))
    q = cp.ones((96, 48), cp.float32)
    for _ in range(200):
        lc.vector_add_into(a, b, c)
        lc.attention2d(q, q, q, False)
    cp.cuda.Device(0).synchronize()
    out = io.StringIO()
    hq = np.ones((8, 16), np.float32)
    for _ in range(50):
        lc.attention2d(hq, hq, hq, False, "cuda")
    for name, fn in (("vector_add_into", lambda: lc.vector_add_into(a, b, c)),
                     ("vector_add", lambda: lc.vector_add(a, b)),
                     ("attention2d", lambda: lc.attention2d(q, q, q, False)),
                     ("attention2d one-shot NumPy 8x16 on cuda",
                      lambda: lc.attention2d(hq, hq, hq, False, "cuda"))):
        out.write(profile_text(name, fn, 3000, 30))
    report(out.getvalue().rstrip("\n"), path, echo=False)


if __name__ == "__main__":
    main(sys.argv[1])
