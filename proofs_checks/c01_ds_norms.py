"""A DS matrix has spectral radius exactly 1 and l1, l2, linf operator norms exactly 1.

Proof checked in exact rational arithmetic: unit row sums give ``M 1 = 1`` (so 1 is an
eigenvalue) and ``||M||_inf = 1`` (nonnegative, so abs row sums = row sums); unit column
sums give ``||M||_1 = 1``; ``rho <= ||M||_inf`` closes ``rho = 1``. For l2, ``M^T M`` is
again DS (checked exactly) and symmetric PSD, so ``||M||_2^2 = rho(M^T M) = 1``. The
rigorous ``birkhoff.certify`` must then report the point intervals ``[1, 1]``.
"""

from __future__ import annotations

import numpy as np

from birkhoff import certify

from birkhoff.testing.generators import exact_ds
from .result import ClaimResult

STATEMENT = "DS => spectral radius = ||.||_1 = ||.||_2 = ||.||_inf = 1 exactly"


def _exactly_ds(M: np.ndarray) -> bool:
    return bool((M >= 0).all() and (M.sum(0) == 1).all() and (M.sum(1) == 1).all())


def check(quick: bool = True) -> ClaimResult:
    rng = np.random.default_rng(101)
    sizes = range(1, 9 if quick else 17)
    per = 5 if quick else 20
    cases = failures = 0
    for n in sizes:
        for _ in range(per):
            M = exact_ds(rng, n, k=int(rng.integers(1, 2 * n + 1)))
            ok = _exactly_ds(M)                                  # => rho = ||.||_1 = ||.||_inf = 1
            ok &= (M.dot(np.ones(n, dtype=object)) == 1).all()   # eigenvector 1, eigenvalue 1
            ok &= _exactly_ds(M.T.dot(M))                        # => ||M||_2 = 1
            c = certify(M)
            ok &= c.spectral_radius == (1.0, 1.0) and c.spectral_norm == (1.0, 1.0)
            ok &= c.gain_forward == (1.0, 1.0) and c.gain_backward == (1.0, 1.0)
            cases += 1
            failures += not ok
    return ClaimResult("1", STATEMENT, failures == 0,
                       f"{cases} random exact DS matrices, n = 1..{max(sizes)}; exact Fractions "
                       f"(M 1 = 1, M^T M DS) and certify() point intervals [1, 1]; {failures} failures")
