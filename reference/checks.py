"""The membership check every option of ``reference`` goes through, with one message: ``unknown
<name> <value>; choose from <options>``. Integer settings go through :func:`birkhoff.validate.count`."""

from __future__ import annotations

__all__ = ["check_choice"]


def check_choice(name: str, value, options: tuple) -> None:
    """``ValueError`` unless ``value`` is one of ``options``."""
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; choose from {options}")
