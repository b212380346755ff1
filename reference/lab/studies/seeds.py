"""Several seeds per point: the mean, the spread, and when two settings differ.

A study runs each configuration with seeds ``0 .. K-1``. A value over the seeds is
reported as ``mean +- spread`` with ``spread = (max - min) / 2``, so ``mean +- spread`` is the
range the seeds covered. **Rule:** two settings *differ* only when their seed ranges do
not overlap (the smallest value of one is above the largest of the other); otherwise the
difference is within the seed spread and is reported as such. A learning rate is
*stable* for a setting when at least two thirds of its seeds are stable (2 of 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

__all__ = ["Spread", "spread", "differs", "majority", "fmt_spread", "RULE"]

RULE = ("Values are mean +- spread over the seeds, spread = (max - min) / 2. Two settings differ only "
        "when each has at least two finished seeds and their seed ranges do not overlap.")


@dataclass(frozen=True)
class Spread:
    """A value over seeds: ``mean``, ``lo`` = min, ``hi`` = max, ``n`` seeds (``None`` values left out)."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half_range(self) -> float:
        """``(max - min) / 2``: the ``+-`` of ``mean +- spread``."""
        return (self.hi - self.lo) / 2


def spread(values: Iterable[float | None]) -> Spread | None:
    """The :class:`Spread` of the finite values among ``values`` (None if there is none)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None
    return Spread(mean=sum(xs) / len(xs), lo=min(xs), hi=max(xs), n=len(xs))


def differs(a: Spread | None, b: Spread | None) -> bool:
    """True when ``a`` and ``b`` each have two or more seeds and their ranges do not overlap (the rule
    of the module doc): one seed has no spread to be beyond."""
    return a is not None and b is not None and min(a.n, b.n) >= 2 and (a.hi < b.lo or b.hi < a.lo)


def majority(flags: Iterable[bool]) -> bool:
    """At least two thirds of ``flags`` are true (2 of 3 seeds; 1 of 1)."""
    flags = list(flags)
    return bool(flags) and 3 * sum(flags) >= 2 * len(flags)


def fmt_spread(s: Spread | None, spec: str = ".3f") -> str:
    """``"2.694 +- 0.012 (3)"``; ``"-"`` for no value; no ``+-`` for one seed."""
    if s is None:
        return "-"
    if s.n == 1:
        return f"{s.mean:{spec}}"
    return f"{s.mean:{spec}} +- {s.half_range:{spec}} ({s.n})"
