"""The largest stable learning rate as a bracket: walk a factor-3 grid, then bisect in log lr.

``bracket(stable, start)`` asks ``stable(lr)`` (True / False, e.g. a majority over seeds)
at ``start``, walks up (while stable) or down (while unstable) by factors of 3, the last
step clamped to ``high`` or ``low``, then bisects the last stable / first unstable pair geometrically until
``hi / lo <= ratio`` (default 1.5). Learning rates are rounded to 4 significant digits, so
that a study asking twice gets the same runs back. It assumes one boundary (stable
below, unstable above): a setting that is unstable at some lr below a stable one is not
detected (``tried`` lists every point asked, for the report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Bracket", "bracket", "round_lr"]


def round_lr(lr: float) -> float:
    """``lr`` to 4 significant digits (the learning rates a study names its runs by)."""
    return float(f"{lr:.4g}")


@dataclass
class Bracket:
    """``lo``: the largest learning rate found stable (None: none was); ``hi``: the smallest one
    above it found unstable (None: every one tried up to ``high`` was stable)."""

    lo: float | None
    hi: float | None
    tried: dict[float, bool] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.lo is None:
            return f"< {self.hi:.3g}" if self.hi is not None else "-"
        if self.hi is None:
            return f">= {self.lo:.3g}"
        return f"[{self.lo:.3g}, {self.hi:.3g})"


def bracket(stable: Callable[[float], bool], start: float, *, low: float = 1e-4, high: float = 3.0,
            ratio: float = 1.5, factor: float = 3.0) -> Bracket:
    """Bracket the largest stable learning rate to within ``ratio`` (see the module doc)."""
    tried: dict[float, bool] = {}

    def ask(lr: float) -> bool:
        lr = round_lr(lr)
        if lr not in tried:
            tried[lr] = bool(stable(lr))
        return tried[lr]

    lr = round_lr(start)
    if ask(lr):
        lo, hi = lr, None
        while lo < high:                                       # up by factor, the last step clamped to high
            nxt = round_lr(min(lo * factor, high))
            if ask(nxt):
                lo = nxt
            else:
                hi = nxt
                break
    else:
        lo, hi = None, lr
        while hi > low:                                        # down by factor, the last step clamped to low
            nxt = round_lr(max(hi / factor, low))
            if ask(nxt):
                lo = nxt
                break
            hi = nxt
    if lo is not None and hi is not None:
        while hi / lo > ratio:
            mid = round_lr(math.sqrt(lo * hi))
            if mid in (lo, hi):
                break
            if ask(mid):
                lo = mid
            else:
                hi = mid
    return Bracket(lo, hi, dict(sorted(tried.items())))
