"""Seeded generators of the cases, shared by the claims and the tests (``tests/strategies.py``)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from birkhoff import from_permutations


def exact_ds(rng: np.random.Generator, n: int, k: int | None = None, dyadic: bool = False) -> np.ndarray:
    """An exactly DS Fraction matrix: ``k`` random permutations with random rational weights.

    ``dyadic`` weights have power-of-two denominators (products then stay small).
    """
    k = k or n
    if dyadic:                       # k - 1 draws in [1, D/k], the rest to the last weight
        D = 2 ** 8
        raw = list(rng.integers(1, D // k + 1, size=k - 1)) + [0]
        raw[-1] = D - sum(int(r) for r in raw)
        w = [Fraction(int(r), D) for r in raw]
    else:
        draws = rng.integers(1, 64, size=k)
        total = int(draws.sum())
        w = [Fraction(int(r), total) for r in draws]
    perms = np.array([rng.permutation(n) for _ in range(k)])
    return from_permutations(np.array(w, dtype=object), perms)


def positive_matrix(rng: np.random.Generator, n: int, log10_span: float = 2.0) -> np.ndarray:
    """Strictly positive float matrix with entries ``10**U(-span/2, span/2)``."""
    return 10.0 ** rng.uniform(-log10_span / 2, log10_span / 2, size=(n, n))


def pattern(rng: np.random.Generator, n: int, density: float = 0.5) -> np.ndarray:
    """Random 0/1 zero pattern."""
    return (rng.random((n, n)) < density).astype(float)


def near_identity(rng: np.random.Generator, n: int, sigma: float, depth: int) -> np.ndarray:
    """``depth`` unconstrained ``H_res = I + sigma G`` (G standard normal)."""
    return np.eye(n) + sigma * rng.standard_normal((depth, n, n))
