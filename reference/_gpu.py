"""This distribution's ``gpu`` package, for ``reference``, whatever else on ``sys.path`` is called ``gpu``.

A user's own file named ``gpu.py`` next to their script comes first on ``sys.path`` and
would shadow the package (``from reference.hyper import ...`` then fails with
``ModuleNotFoundError: No module named 'gpu.backend'``). So ``reference`` never imports
``gpu`` by name: it imports it from this package's sibling folder, as ``gpu`` when that
name is free or already ours, else under the private name ``_birkhoff_hc_gpu`` (its
modules import each other relatively, so they work under either name).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["Backend", "BACKENDS", "STREAM_LIMITS", "backend", "kron", "power_of_two_shifts", "token_mix", "package"]

_HOME = (Path(__file__).resolve().parent.parent / "gpu" / "__init__.py").resolve()
_PRIVATE = "_birkhoff_hc_gpu"


def _ours(module: ModuleType | None) -> bool:
    return module is not None and Path(getattr(module, "__file__", "") or "").resolve() == _HOME


def _load() -> ModuleType:
    """The ``gpu`` package of this distribution (see the module doc)."""
    for name in ("gpu", _PRIVATE):
        if _ours(sys.modules.get(name)):
            return sys.modules[name]
    if "gpu" not in sys.modules:
        spec = importlib.util.find_spec("gpu")
        if spec is not None and spec.origin and Path(spec.origin).resolve() == _HOME:
            return importlib.import_module("gpu")
    spec = importlib.util.spec_from_file_location(_PRIVATE, _HOME, submodule_search_locations=[str(_HOME.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PRIVATE] = module
    spec.loader.exec_module(module)
    return module


package = _load()
_backend = importlib.import_module(f"{package.__name__}.backend")
_eager = importlib.import_module(f"{package.__name__}.eager")
Backend, BACKENDS, STREAM_LIMITS = _backend.Backend, _backend.BACKENDS, _backend.STREAM_LIMITS
backend = _backend.backend
kron, power_of_two_shifts, token_mix = _eager.kron, _eager.power_of_two_shifts, _eager.token_mix
