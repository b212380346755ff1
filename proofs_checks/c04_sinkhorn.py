"""Sinkhorn-Knopp converges iff the zero pattern has total support; on positive matrices
the iterates contract at least at the Birkhoff-Hopf rate.

Rate: the map ``c -> 1 / (A^T (1 / (A c)))`` (one row-then-column sweep) contracts
Hilbert's projective metric ``d_H(x, y) = log max(x/y) - log min(x/y)`` by
``kappa^2``, ``kappa = tanh(Delta / 4)``, ``Delta = max log(A_ij A_kl / (A_il A_kj))`` the
projective diameter of ``A`` (G. Birkhoff, "Extensions of Jentzsch's theorem", Trans.
AMS 85 (1957); Bushell, Arch. Rational Mech. Anal. 52 (1973); Franklin & Lorenz, "On the
scaling of multidimensional matrices", Linear Algebra Appl. 114/115 (1989) 717-735).
Checked at 60 digits (mpmath): ``d_H(c_t, c*) <= kappa^{2t} d_H(c_0, c*)`` for every sweep.
Total support: ``has_total_support`` equals brute force over all permutations, and
``sinkhorn`` raises ``NoTotalSupportError`` exactly on the unsupported patterns.
"""

from __future__ import annotations

import itertools

import mpmath
import numpy as np

from birkhoff import NoTotalSupportError, has_total_support, sinkhorn

from birkhoff.testing.generators import pattern, positive_matrix
from .result import ClaimResult

STATEMENT = "Sinkhorn converges iff total support; sweeps contract d_H at least by tanh(Delta/4)^2"
DPS = 60


def _brute_total_support(P: np.ndarray) -> bool:
    n = P.shape[0]
    covered = np.zeros_like(P, dtype=bool)
    for p in itertools.permutations(range(n)):
        if all(P[i, p[i]] for i in range(n)):
            covered[np.arange(n), list(p)] = True
    return bool(P.any()) and bool((covered == (P != 0)).all())


def _hilbert(x, y):
    r = [a / b for a, b in zip(x, y)]
    return mpmath.log(max(r)) - mpmath.log(min(r))


def _rate_case(A: np.ndarray, sweeps: int) -> float:
    """Worst ratio d_H(c_t, c*) / (kappa^{2t} d_H(c_0, c*)) over the sweeps (<= 1 expected)."""
    n = A.shape[0]
    with mpmath.workdps(DPS):
        M = [[mpmath.mpf(float(v)) for v in row] for row in A]
        delta = max(mpmath.log(M[i][j] * M[k][l] / (M[i][l] * M[k][j]))
                    for i in range(n) for j in range(n) for k in range(n) for l in range(n))
        kappa = mpmath.tanh(delta / 4)

        def sweep(c):
            r = [1 / mpmath.fsum(M[i][j] * c[j] for j in range(n)) for i in range(n)]
            return [1 / mpmath.fsum(M[i][j] * r[i] for i in range(n)) for j in range(n)]

        star = [mpmath.mpf(1)] * n
        for _ in range(4000):                              # fixed point to ~60 digits
            new = sweep(star)
            if _hilbert(new, star) < mpmath.mpf(10) ** (-DPS + 5):
                break
            star = new
        c = [mpmath.mpf(1)] * n
        d0 = _hilbert(c, star)
        worst = mpmath.mpf(0)
        for t in range(1, sweeps + 1):
            c = sweep(c)
            bound = kappa ** (2 * t) * d0
            if bound < mpmath.mpf(10) ** (-DPS + 10):
                break
            worst = max(worst, _hilbert(c, star) / bound)
        return float(worst)


def check(quick: bool = True) -> ClaimResult:
    rng = np.random.default_rng(404)
    patterns = 150 if quick else 1000
    mismatches = 0
    for _ in range(patterns):
        P = pattern(rng, int(rng.integers(1, 6)), density=float(rng.uniform(0.2, 0.9)))
        truth = _brute_total_support(P)
        mismatches += has_total_support(P) != truth
        try:
            sinkhorn(P + 0.0)
            raised = False
        except NoTotalSupportError:
            raised = True
        mismatches += raised == truth
    rate_cases = 6 if quick else 30
    worst = max(_rate_case(positive_matrix(rng, int(rng.integers(2, 5)), 1.5), 25)
                for _ in range(rate_cases))
    passed = mismatches == 0 and worst <= 1.0
    return ClaimResult("4", STATEMENT, passed,
                       f"{patterns} random patterns n <= 5 vs brute force over all permutations "
                       f"({mismatches} mismatches of has_total_support / NoTotalSupportError); "
                       f"{rate_cases} positive matrices n = 2..4, 25 sweeps at {DPS} digits: max "
                       f"d_H(c_t, c*) / (tanh(Delta/4)^(2t) d_H(c_0, c*)) = {worst:.3f} (<= 1)")
