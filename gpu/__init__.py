"""GPU ops: Triton kernels (:mod:`gpu.ops`), their torch twins (:mod:`gpu.eager`) and the
backend switch (:mod:`gpu.backend`). Imports ``birkhoff`` only, never ``reference``.

``import gpu`` works on a machine without a GPU (and without triton); the kernels load
on first use of ``gpu.ops``. On a CPU they run under ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import importlib

__all__ = ["ops", "eager"]


def __getattr__(name: str):
    if name in ("ops", "eager"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(name)
