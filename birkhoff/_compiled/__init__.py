"""Compiled small-matrix kernels (numba), one file per family mirroring the numpy module it speeds up.

Nothing here imports numba until a kernel is needed: ``import birkhoff`` never does. A public
function asks :func:`kernels` for its family with the size of the work it is about to do; the
numpy path (the reference the kernels are tested against) answers until loading pays:

- ``BIRKHOFF_COMPILED=auto`` (default): the family loads once the numpy path has spent, by
  estimate, :data:`AUTO_SECONDS` on its work in this process (loading a cached family takes about
  0.3-0.7 s), so a one-shot call stays on numpy and a training loop or a large batch moves to
  compiled code. The estimate is the work a call names (matrix entries times sweeps or Newton
  steps) times the family's measured numpy cost per unit, :data:`COST`;
- ``BIRKHOFF_COMPILED=1``: from the first call; ``BIRKHOFF_COMPILED=0``: never.

Kernels are compiled with ``fastmath`` off and numpy's error model and cached on disk by numba:
in ``__pycache__`` beside this package, or, where that is read-only, numba's user-wide cache
(``NUMBA_CACHE_DIR`` overrides both). ``birkhoff warmup`` (:func:`warmup`) compiles every family
once. Without numba installed every call takes the numpy path.
"""

from __future__ import annotations

import importlib
import os
import time
from collections import defaultdict
from types import ModuleType
from typing import Any

__all__ = ["FAMILIES", "JIT", "AUTO_SECONDS", "COST", "kernels", "warmup", "mode"]

FAMILIES = ("sweeps", "project", "bvn", "certify")
# every kernel's njit options: cached on disk, IEEE arithmetic as written (no fastmath), numpy's errors
JIT: dict[str, Any] = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)
AUTO_SECONDS = 0.5                    # numpy time (estimated) after which loading a family pays
# numpy seconds per unit of work (an entry of a matrix, one sweep or Newton step), measured on the
# 2-core machine: SK_20 on (100 000, 4, 4) in ~45 ms; project on 10 000 4x4 (~10 steps) in ~66 ms;
# bvn_decompose (work n^3) at n = 32 in ~24 ms; certify_batch (work B n^3) of 100 000 4x4 in ~2.5 s
COST = {"sweeps": 1.4e-9, "project": 4e-8, "bvn": 7e-7, "certify": 4e-7}
_LOADED: dict[str, ModuleType | None] = {}
_SPENT: dict[str, float] = defaultdict(float)


def mode() -> str:
    """``"auto"``, ``"1"`` or ``"0"``: the ``BIRKHOFF_COMPILED`` setting (anything else reads as auto)."""
    value = os.environ.get("BIRKHOFF_COMPILED", "auto")
    return value if value in ("0", "1") else "auto"


def _load(family: str) -> ModuleType | None:
    if family not in _LOADED:
        try:
            _LOADED[family] = importlib.import_module(f"{__name__}.{family}")
        except ImportError:                  # numba (or llvmlite) not installed: the numpy path
            _LOADED[family] = None
    return _LOADED[family]


def kernels(family: str, work: int) -> ModuleType | None:
    """The compiled kernels of ``family`` for a call doing ``work`` units of work (matrix entries
    times sweeps or steps), or None (take the numpy path): see the module doc for when a family loads."""
    setting = mode()
    if setting == "0":
        return None
    if family not in _LOADED and setting == "auto":
        _SPENT[family] += work * COST[family]
        if _SPENT[family] < AUTO_SECONDS:
            return None
    return _load(family)


def warmup(families: tuple[str, ...] | list[str] | None = None) -> dict[str, dict | None]:
    """Load and compile ``families`` (default: all of :data:`FAMILIES`; numba's cache makes later processes
    fast): per family ``{"seconds": ..., "cache": folder or None}``, or None when it cannot load (numba
    not installed)."""
    report: dict[str, dict | None] = {}
    for family in FAMILIES if families is None else families:
        start = time.perf_counter()
        module = _load(family)
        if module is None:
            report[family] = None
            continue
        cache = module.compile_all()
        report[family] = {"seconds": time.perf_counter() - start, "cache": cache}
    return report
