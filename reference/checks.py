"""The two checks every configuration value of ``reference`` goes through: one message for each."""

from __future__ import annotations

import numbers

__all__ = ["check_int", "check_choice"]


def check_int(name: str, value, low: int = 1) -> None:
    """``ValueError`` unless ``value`` is an integer (not a bool) ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def check_choice(name: str, value, options: tuple) -> None:
    """``ValueError`` unless ``value`` is one of ``options``."""
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; choose from {options}")
