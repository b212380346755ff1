"""Exact rational arithmetic on small matrices, in integers: chain products, inverses, determinants.

``P = M_L ... M_1`` of float (dyadic) or Fraction factors is ``N / d`` with an integer matrix ``N`` and
an integer ``d``: each factor is its numerators over one common denominator, and Python's integers
multiply exactly. An interval product's width grows like ``L u`` times the factors' magnitudes, so
``P - J/n`` (``sigma2``, which decays like ``prod sigma2_l``) and a small ``sigma_min`` drown in it; the
exact product's float enclosure is one ulp wide, entry by entry, and so is ``P - J/n``'s. Its cost grows
with the bits of ``P``, about ``L`` times a factor's (53 plus the spread of its exponents): it is taken
below :data:`CHAIN_WORK`. The same integers give a matrix's exact inverse (:func:`adjugate`) and
determinant (:func:`determinant`), which ``certify`` uses where float enclosures stay wide (entries whose
exponents spread independently over hundreds of binades), below :data:`INVERSE_WORK`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CHAIN_WORK", "INVERSE_WORK", "EXACT_MEMBER_WORK", "chain_work", "inverse_work", "matrix_work",
           "exact_chain", "ratio_interval", "scaled_interval", "centred_interval", "adjugate", "determinant"]

CHAIN_WORK = 1e9     # n^3 sum_l bits(P_l) at most: about 0.15-0.3 s (4 x 4 float factors: L up to about 740)
INVERSE_WORK = 5e7   # n^3 (n bits(P) / 64)^2 at most for adjugate (its divisions are quadratic): about 0.15 s
EXACT_MEMBER_WORK = 3e5  # ... plus this per matrix for the rest (its interval SVD proof: about 1 ms)


def _factor_bits(A: np.ndarray) -> np.ndarray:
    """Upper bound of each factor's numerator bits over its common denominator, plus ``log2 n`` (a sum of
    ``n`` products): 53 and the spread of its binary exponents for floats, counted for Fractions."""
    n = A.shape[-1]
    if A.dtype == object:
        bits = [max((abs(num) * (d // den)).bit_length() for num, den in ratios) for ratios, d in map(_ratios, A)]
        return np.array(bits, dtype=np.float64) + math.ceil(math.log2(n)) + 1
    with np.errstate(invalid="ignore"):
        e = np.frexp(A)[1].astype(np.float64)
    nonzero = A != 0
    top = np.max(np.where(nonzero, e, -np.inf), axis=(-2, -1))
    low = np.min(np.where(nonzero, e, np.inf), axis=(-2, -1))
    spread = np.where(np.isfinite(top), top - low, 0.0)
    return 53 + spread + math.ceil(math.log2(n)) + 1


def chain_work(A: np.ndarray) -> float:
    """Estimated cost of :func:`exact_chain` for the chain ``A (L, n, n)``: ``n^3 sum_l bits(P_l)``."""
    n = A.shape[-1]
    return float(n ** 3 * np.sum(np.cumsum(_factor_bits(A))))


def _ratios(M: np.ndarray) -> tuple[list[tuple[int, int]], int]:
    """Each entry of ``M`` as ``(numerator, denominator)`` and their least common denominator."""
    ratios = [x.as_integer_ratio() for x in M.reshape(-1).tolist()]
    return ratios, math.lcm(*(den for _, den in ratios))


def exact_chain(A: np.ndarray) -> tuple[np.ndarray, int]:
    """``(N, d)`` with ``M[L-1] @ ... @ M[0] = N / d`` exactly, ``N`` an ``(n, n)`` object array of integers,
    for a validated chain ``A (L, n, n)`` of finite floats or Fractions."""
    n = A.shape[-1]
    N = np.eye(n, dtype=np.int64).astype(object)
    d = 1
    for M in A:
        ratios, den = _ratios(M)
        F = np.array([num * (den // q) for num, q in ratios], dtype=object).reshape(n, n)
        N, d = F.dot(N), d * den
    return N, d


def _ratio_interval(a: int, b: int) -> tuple[float, float]:
    """The tightest float interval around ``a / b`` (``b > 0``): Python's ``int / int`` rounds correctly,
    and one comparison of integers says on which side the rounded value fell."""
    try:
        f = a / b
    except OverflowError:
        big = float(np.finfo(np.float64).max)
        return (big, np.inf) if a > 0 else (-np.inf, -big)
    p, q = f.as_integer_ratio()
    c = p * b - a * q                      # sign of f - a / b
    if c == 0:
        return f, f
    return (f, math.nextafter(f, math.inf)) if c < 0 else (math.nextafter(f, -math.inf), f)


def ratio_interval(N: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Float ``(lo, hi)`` around ``N / d`` entry by entry (each interval at most one ulp wide)."""
    pairs = [_ratio_interval(int(a), d) for a in N.reshape(-1).tolist()]
    lo = np.array([p[0] for p in pairs]).reshape(N.shape)
    hi = np.array([p[1] for p in pairs]).reshape(N.shape)
    return lo, hi


def scaled_interval(N: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(e, lo, hi)``: ``N / d`` times ``2**-e`` enclosed entry by entry, ``e`` such that the largest entry is
    near 1 (``N / d`` itself may lie far outside the float range: it is scaled exactly, then rounded)."""
    top = max(abs(int(x)).bit_length() for x in N.reshape(-1).tolist())
    e = top - d.bit_length() if top else 0
    num, den = (N, d << e) if e >= 0 else (N * (1 << -e), d)
    lo, hi = ratio_interval(num, den)
    return np.array(e, dtype=np.int64), lo, hi


def centred_interval(N: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`scaled_interval` of ``D = N / d - J/n = (n N - d J) / (n d)``: ``P - J/n`` formed exactly, however
    far below the float range it is."""
    n = N.shape[-1]
    return scaled_interval(n * N - d, n * d)


def _adjugate_cost(n: int, bits: float | np.ndarray) -> float | np.ndarray:
    """``n^3`` updates of integers the size of the minors, about ``n`` times the entries' ``bits``, each a
    product and an exact division quadratic in their words."""
    return n ** 3 * (n * (bits + n) / 64) ** 2


def inverse_work(N: np.ndarray) -> float:
    """Estimated cost of :func:`adjugate` for the integer matrix ``N``."""
    return float(_adjugate_cost(N.shape[-1], max(abs(int(x)).bit_length() for x in N.reshape(-1).tolist())))


def matrix_work(A: np.ndarray) -> np.ndarray:
    """:func:`inverse_work` of each matrix of a batch ``(..., n, n)`` estimated before any integer is built
    (from the floats' exponents: :func:`_factor_bits`), so that a call past the budget costs nothing."""
    n = A.shape[-1]
    return np.asarray(_adjugate_cost(n, _factor_bits(A.reshape((-1, n, n))).reshape(A.shape[:-2])))


def adjugate(N: np.ndarray) -> tuple[np.ndarray, int]:
    """``(adj, det)`` of a square integer matrix, ``N^-1 = adj / det`` (``det == 0``: singular, ``adj`` unused),
    by fraction-free Gauss-Jordan elimination (Bareiss): every division is exact, so the integers stay
    the size of ``N``'s minors."""
    n = N.shape[-1]
    rows = [[int(x) for x in row] + [int(i == j) for j in range(n)] for i, row in enumerate(N.tolist())]
    prev, sign = 1, 1
    for k in range(n):
        pivot = next((i for i in range(k, n) if rows[i][k]), None)
        if pivot is None:
            return np.zeros((n, n), dtype=object), 0
        if pivot != k:
            rows[k], rows[pivot], sign = rows[pivot], rows[k], -sign
        rk, akk = rows[k], rows[k][k]
        for i in range(n):
            if i != k:
                ri, aik = rows[i], rows[i][k]
                rows[i] = [(akk * x - aik * y) // prev for x, y in zip(ri, rk)]
        prev = akk
    # every diagonal entry is now det(N) up to the swaps' sign, the right half det(N) N^-1 likewise
    det = sign * prev
    adj = np.array([[sign * x for x in row[n:]] for row in rows], dtype=object)
    return adj, det


def determinant(N: np.ndarray) -> int:
    """``det(N)`` of a square integer matrix by fraction-free elimination (Bareiss): every division exact."""
    n = N.shape[-1]
    rows = [[int(x) for x in row] for row in N.tolist()]
    prev, sign = 1, 1
    for k in range(n):
        pivot = next((i for i in range(k, n) if rows[i][k]), None)
        if pivot is None:
            return 0
        if pivot != k:
            rows[k], rows[pivot], sign = rows[pivot], rows[k], -sign
        rk, akk = rows[k], rows[k][k]
        for i in range(k + 1, n):
            ri, aik = rows[i], rows[i][k]
            rows[i] = ri[:k + 1] + [(akk * x - aik * y) // prev for x, y in zip(ri[k + 1:], rk[k + 1:])]
        prev = akk
    return sign * prev
