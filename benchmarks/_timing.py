"""Shared timing helpers for the benchmark scripts."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager


def best_time(fn, repeat: int):
    """Best wall-clock time of ``repeat`` calls of ``fn`` and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


@contextmanager
def compiled_path(setting: str):
    """``BIRKHOFF_COMPILED=setting`` for the block (0: birkhoff's numpy path; 1: its numba kernels)."""
    saved = os.environ.get("BIRKHOFF_COMPILED")
    os.environ["BIRKHOFF_COMPILED"] = setting
    try:
        yield
    finally:
        if saved is None:
            del os.environ["BIRKHOFF_COMPILED"]
        else:
            os.environ["BIRKHOFF_COMPILED"] = saved


def on_both_paths(fn, repeat: int) -> list[tuple[float, object]]:
    """:func:`best_time` of ``fn`` on birkhoff's numpy path, then on its compiled kernels: ``[(t, out), (t, out)]``."""
    out = []
    for setting in ("0", "1"):
        with compiled_path(setting):
            out.append(best_time(fn, repeat))
    return out


def warm(family: str) -> None:
    """Compile (or load from numba's cache) birkhoff's kernel ``family`` before timing, and print what it took."""
    from birkhoff import _compiled

    r = _compiled.warmup([family])[family]
    print(f"compiled kernels `{family}`: " + ("numba not installed" if r is None else
          f"ready in {r['seconds']:.2f} s (compile or cached load; cache: {r['cache']})"))
