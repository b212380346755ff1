"""KromHC: Kronecker products of DS factors are DS, but for n = 4 with 2x2 factors the
family ``{U(a) (x) U(b)}`` is a 2-parameter surface in the 9-dimensional Birkhoff polytope.

Distance to the family, ``min_{a,b in [0,1]} ||P - U(a) (x) U(b)||_F`` (a quartic in
``(a, b)``: grid search + bounded refinement), for all 24 permutation matrices and for
random DS matrices. Exactly 4 permutations (``a, b in {0, 1}``) lie in the family.
What it means for expressiveness: KromHC with 2x2 factors can only permute streams
within the tensor modes (e.g. it cannot express the cyclic shift of 4 streams), and
its mixtures are separable; a learnt mHC/mHC-lite ``H_res`` can be far from it.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
from scipy.optimize import minimize

from birkhoff import all_permutations, certify, from_permutations, kron, kromhc_factor, permutation_matrix

from .result import ClaimResult

STATEMENT = "Kron of DS factors is DS; 2x2 KromHC reaches only a 2-dim subset of B_4 (4 of 24 permutations)"


def _member(a: float, b: float) -> np.ndarray:
    """``U(a) (x) U(b)``, the KromHC ``H_res`` with 2x2 factors."""
    return kron(kromhc_factor(a), kromhc_factor(b))


@functools.cache
def _grid() -> tuple[np.ndarray, np.ndarray]:
    """The 41 x 41 grid of ``(a, b)`` in ``[0, 1]^2`` and its members, formed once."""
    pairs = np.array([(a, b) for a in np.linspace(0, 1, 41) for b in np.linspace(0, 1, 41)])
    return pairs, np.stack([_member(a, b) for a, b in pairs])


def distance_to_family(P: np.ndarray) -> float:
    def f(z):
        return float(np.sum((P - _member(*z)) ** 2))
    pairs, members = _grid()
    best = pairs[np.argmin(np.sum((P - members) ** 2, axis=(1, 2)))]
    res = minimize(f, best, bounds=[(0, 1), (0, 1)], method="L-BFGS-B")
    return float(np.sqrt(min(res.fun, f(best))))


def check(quick: bool = True) -> ClaimResult:
    rng = np.random.default_rng(1111)
    exact_ok = all(certify(kron(kromhc_factor(Fraction(int(a), 97)), kromhc_factor(Fraction(int(b), 89)))).exact
                   for a, b in rng.integers(0, 90, size=(20, 2)))
    perm_d = [distance_to_family(permutation_matrix(p).astype(float)) for p in all_permutations(4)]
    reachable = sum(d < 1e-9 for d in perm_d)
    samples = 20 if quick else 200
    rand_d = [distance_to_family(from_permutations(rng.dirichlet(np.full(24, 0.3)), all_permutations(4)))
              for _ in range(samples)]
    shift = distance_to_family(permutation_matrix([1, 2, 3, 0]).astype(float))
    passed = exact_ok and reachable == 4 and min(d for d in perm_d if d > 1e-9) > 0.5
    return ClaimResult("11", STATEMENT, passed,
                       f"Kronecker products of exact rational 2x2 DS factors certify exact: {exact_ok}; "
                       f"{reachable}/24 permutation matrices at distance 0, the other 20 at distance >= "
                       f"{min(d for d in perm_d if d > 1e-9):.3f} (cyclic shift: {shift:.3f}); {samples} random DS "
                       f"matrices (Dirichlet(0.3) over the 24 permutations): median distance "
                       f"{np.median(rand_d):.3f}, max {max(rand_d):.3f} (Frobenius; ||P||_F <= 2)")
