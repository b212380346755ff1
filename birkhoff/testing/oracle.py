"""An independent high-precision oracle for the certificates, and the matrix classes it is run on.

The truth is mpmath at ``DPS`` digits, plus the decimal span of the nonzero entries' magnitudes,
from the exact rationals the float entries denote; it shares no code with ``birkhoff.certify``.
The extra digits matter: mpmath's ``eig`` and ``svd_r`` are accurate relative to ``||M||``, so a
matrix whose entries span 1e+-150 (a diagonal similarity of a modest one) needs about 300 more
digits for its radius to 50 (at 60 digits the "truth" of such a matrix was off by a factor 300). Used by ``tests/birkhoff/test_certify_oracle.py`` and
``benchmarks/bench_certify.py``.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

from birkhoff.sinkhorn import sinkhorn_logits

DPS = 60
SLACK = mpmath.mpf(10) ** -50      # the oracle's own error at DPS digits (relative)


def span_digits(M: np.ndarray) -> int:
    """Decimal digits between the largest and the smallest nonzero magnitude of ``M`` (0 without any)."""
    mags = np.abs(np.asarray(M, dtype=np.float64)[np.asarray(M) != 0])
    return 0 if not mags.size else int(np.ceil(np.log10(mags.max()) - np.log10(mags.min())))


def truth(M: np.ndarray, dps: int = DPS) -> dict[str, mpmath.mpf]:
    """``spectral_radius``, ``spectral_norm``, ``sigma_min`` and ``sigma2 = ||M - J/n||_2`` of ``M``, at
    ``dps`` digits plus :func:`span_digits`."""
    with mpmath.workdps(dps + span_digits(M)):
        n = M.shape[0]
        A = mpmath.matrix([[mpmath.mpf(float(x)) for x in row] for row in M])
        ev = mpmath.eig(A)[0]           # (left=False, right=False is ignored for 1 x 1)
        s = mpmath.svd_r(A, compute_uv=False)
        s2 = mpmath.svd_r(A - mpmath.ones(n, n) / n, compute_uv=False)
        return {"spectral_radius": max(abs(x) for x in ev), "spectral_norm": max(s),
                "sigma_min": mpmath.mpf(0) if min(s) <= max(s) * mpmath.mpf(10) ** -(dps - 10) and _singular(M)
                else min(s), "sigma2": max(s2)}


def _singular(M: np.ndarray) -> bool:
    """Whether ``M``'s determinant is exactly 0 (Gaussian elimination in Fractions): its ``sigma_min`` is then
    0, where mpmath's SVD gives noise of order ``10**-dps ||M||`` (a float ``u v^T`` can be exactly singular;
    asked only where the SVD's ``sigma_min`` is that small)."""
    A = [[Fraction(x) for x in row] for row in np.asarray(M, dtype=object).tolist()]
    n = len(A)
    for k in range(n):
        p = next((i for i in range(k, n) if A[i][k]), None)
        if p is None:
            return True
        A[k], A[p] = A[p], A[k]
        for i in range(k + 1, n):
            f = A[i][k] / A[k][k]
            A[i] = [a - f * b for a, b in zip(A[i], A[k])]
    return False


def contains(lo: float, hi: float, t: mpmath.mpf) -> bool:
    """``lo <= t <= hi`` up to the oracle's own relative error ``SLACK``."""
    return mpmath.mpf(lo) <= t * (1 + SLACK) and t * (1 - SLACK) <= mpmath.mpf(hi)


def signed(rng: np.random.Generator, n: int) -> np.ndarray:
    """Standard normal entries."""
    return rng.standard_normal((n, n))


def nonnormal(rng: np.random.Generator, n: int) -> np.ndarray:
    """A strong strictly upper part over a diagonal of moduli 1-2: far from normal, eigenvectors apart."""
    return np.triu(rng.standard_normal((n, n)), 1) * 3 + np.diag(rng.uniform(1, 2, n) * rng.choice([-1, 1], n))


def reducible(rng: np.random.Generator, n: int) -> np.ndarray:
    """A nonnegative block upper-triangular matrix, one block 400x the other: a Perron vector with zeros."""
    M = rng.random((n, n))
    k = max(1, n // 2)
    M[k:, :k] = 0.0
    M[:k, :k] *= 400
    return M


def sk20(rng: np.random.Generator, n: int) -> np.ndarray:
    """mHC's ``SK_20`` of large logits (scale 8): doubly stochastic to about 1e-3, entries near 0 and 1."""
    return sinkhorn_logits(rng.standard_normal((n, n)) * 8)


def dyadic_ds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Exactly doubly stochastic: a convex combination of ``n`` random permutations with weights ``k / 2**m``
    (every sum exact in float64), so ``sigma2`` and the margins are decided exactly."""
    w = rng.integers(1, 9, n).astype(float)
    w[-1] += 2.0 ** int(np.ceil(np.log2(w.sum()))) - w.sum()        # the weights sum to a power of two
    return np.einsum("k,kij->ij", w / w.sum(), np.eye(n)[np.array([rng.permutation(n) for _ in range(n)])])


def sk20_tiny(rng: np.random.Generator, n: int) -> np.ndarray:
    """The ``sk20 large logits`` class times ``2**-1000``: entries down to the subnormal range."""
    return np.ldexp(sk20(rng, n), -1000)


def rank_one(rng: np.random.Generator, n: int) -> np.ndarray:
    """``u v^T`` with small signed integers: ``n - 1`` eigenvalues at 0 (a singular eigenvector basis), the
    other ``v . u`` (0 too when ``v`` and ``u`` are orthogonal: a nilpotent matrix)."""
    return np.outer(rng.integers(-3, 4, n), rng.integers(-3, 4, n)).astype(float)


def jordan_corner(rng: np.random.Generator, n: int) -> np.ndarray:
    """A Jordan block of 1 with ``10**-k`` (``k`` in 10..60) in its lower left corner: eigenvalues
    ``1 + 10**(-k / n)`` times the n-th roots of unity, a nearly defective nonnegative matrix."""
    J = np.eye(n) + np.eye(n, k=1)
    J[-1, 0] += 10.0 ** -float(rng.integers(10, 61))
    return J


def scaled(exponent: int):
    """The ``signed`` class times ``10**exponent``."""
    return lambda rng, n: signed(rng, n) * 10.0 ** exponent


def mixed(rng: np.random.Generator, n: int) -> np.ndarray:
    """A diagonal similarity ``D S D^-1`` of the ``signed`` class by powers of two spanning ``2**+-250``:
    entries from about 1e-150 to 1e150, the radius of a modest matrix (computed exactly: no entry leaves
    the normal range)."""
    e = rng.integers(-125, 126, n)
    return np.ldexp(signed(rng, n), e[:, None] - e[None, :])


CLASSES = {"signed": signed, "nonnormal": nonnormal, "reducible": reducible, "sk20 large logits": sk20,
           "dyadic doubly stochastic": dyadic_ds, "sk20 x 2**-1000": sk20_tiny, "rank one": rank_one,
           "jordan corner": jordan_corner,
           "signed x 1e-300": scaled(-300), "signed x 1e300": scaled(300), "mixed 1e+-150": mixed}
