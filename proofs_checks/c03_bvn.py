"""Birkhoff-von Neumann: every DS matrix is a convex combination of at most (n-1)^2 + 1
permutation matrices; our decomposition stays within the bound and reconstructs exactly."""

from __future__ import annotations

import numpy as np

from birkhoff import bvn_decompose, marcus_ree_bound

from birkhoff.testing.generators import exact_ds
from .result import ClaimResult

STATEMENT = "BvN: DS = convex comb. of <= (n-1)^2+1 permutations; ours within bound, exact"


def check(quick: bool = True) -> ClaimResult:
    rng = np.random.default_rng(303)
    per = 4 if quick else 20
    worst = 0.0
    failures = cases = 0
    for n in range(1, 9):
        for _ in range(per):
            P = exact_ds(rng, n, k=int(rng.integers(1, n * n + 1)))
            d = bvn_decompose(P)
            ok = d.exact and sum(d.weights) == 1 and (d.matrix() == P).all()
            ok &= all(w > 0 for w in d.weights) and len(d) <= marcus_ree_bound(n)
            worst = max(worst, len(d) / marcus_ree_bound(n))
            failures += not ok
            cases += 1
    return ClaimResult("3", STATEMENT, failures == 0,
                       f"{cases} exact DS matrices n = 1..8 (up to n^2 random permutations each); exact "
                       f"Fractions, matrix() == P exactly, weights sum to exactly 1; max terms / bound "
                       f"= {worst:.2f}; {failures} failures")
