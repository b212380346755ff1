"""Controlled rounding: every DS matrix scaled by an integer ``s`` has an integer rounding with
exact margins ``s`` and ``|Q - s P| < 1``; ``quantize`` finds it every time, naive rounding
does not. (Existence: ``sP - floor(sP)`` lies in a transportation polytope with integer
margins, whose vertices are integral.) All comparisons in exact rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from birkhoff import quantize, sinkhorn

from birkhoff.testing.generators import exact_ds
from .result import ClaimResult

STATEMENT = "Every DS sP has an integer rounding with exact margins; quantize finds it, naive rounding doesn't"


def _ok(Q: np.ndarray, P: np.ndarray, s: int) -> bool:
    Pq = P if P.dtype == object else np.vectorize(Fraction, otypes=[object])(P)
    return bool((Q.sum(0) == s).all() and (Q.sum(1) == s).all() and (Q >= 0).all()
                and all(abs(q - s * p) < 1 for q, p in zip(Q.flat, Pq.flat)))


def check(quick: bool = True) -> ClaimResult:
    rng = np.random.default_rng(909)
    per = 10 if quick else 60
    cases = failures = naive_broken = 0
    for s in (1, 2, 7, 127, 255, 1000):
        for i in range(per):
            n = int(rng.integers(2, 9))
            P = exact_ds(rng, n) if i % 2 else sinkhorn(rng.random((n, n)) + 1e-3, tol=1e-14)
            Q, _ = quantize(P, s)
            failures += not _ok(Q, P, s)
            naive = np.array([[round(float(x) * s) for x in row] for row in P])
            naive_broken += not ((naive.sum(0) == s).all() and (naive.sum(1) == s).all())
            cases += 1
    return ClaimResult("9", STATEMENT, failures == 0,
                       f"{cases} DS matrices (half exact Fractions, half Sinkhorn floats), n = 2..8, "
                       f"s in (1, 2, 7, 127, 255, 1000): quantize failed {failures}; naive round(sP) broke "
                       f"the margins in {naive_broken}/{cases} ({naive_broken / cases:.0%}); exact checks")
