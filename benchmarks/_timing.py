"""Shared timing helper for the benchmark scripts."""

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
