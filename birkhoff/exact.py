"""Exact and outward-rounded arithmetic used by the certificates.

Nothing here relies on the FPU rounding mode. Directed rounding is obtained from
round-to-nearest results in one of two ways:

* **error-free transformations** (Knuth's TwoSum, Dekker's TwoProduct): the rounding
  error of ``a + b`` / ``a * b`` is itself a float, so we know the exact result and
  move one ulp outward only when it is not representable. This keeps exact values
  exact (a doubly stochastic matrix certifies ``[1, 1]``, not ``[1 - ulp, 1 + ulp]``).
* **a priori bounds** (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd
  ed., Lemma 3.1 and §3.1): a length-``k`` dot product or sum computed in any order
  has error at most ``gamma_k = k u / (1 - k u)`` times the sum of absolute values,
  ``u = 2**-53``; underflow adds at most ``eta = 2**-1074`` per operation.

Sums of floats use Ogita-Rump-Oishi ``Sum2`` (SIAM J. Sci. Comput. 26(6), 2005,
Prop. 4.5: ``|res - s| <= u|s| + gamma_{n-1}^2 sum|p_i|``), vectorised over all other
axes, with an exact fallback (``math.fsum``, then ``Fraction``) for the rare rows it
cannot decide.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = [
    "U", "ETA", "gamma", "two_sum", "two_prod", "inflate", "deflate",
    "mul_up", "sqrt_up", "sqrt_down", "sqrt_interval", "div_down", "div_up",
    "fraction_interval", "entry_interval", "sum_enclosure", "matmul_enclosure",
    "residual_bound", "margin_residuals", "add_down", "add_up", "scale_exponent", "scale_down",
    "scale_up", "magnitude", "mid_rad", "sum_squares_up", "sum_squares_down", "norm_inf_up",
    "neumann_triangular_up",
]

# The directed-rounding helpers take arrays or scalars alike (numpy broadcasts) and return what numpy
# returns for them: an array, or a numpy scalar.
Real = np.ndarray | float
U = 2.0 ** -53            # unit roundoff of float64
ETA = 2.0 ** -1074        # smallest positive subnormal
_INF = np.inf
_SPLIT = 134217729.0      # 2**27 + 1, Veltkamp splitter


@functools.lru_cache(maxsize=None)
def gamma(k: int) -> float:
    """Upper bound (as a float) of ``gamma_k = k u / (1 - k u)``."""
    ku = k * U
    return math.nextafter(ku / (1.0 - ku) * (1.0 + 4 * U), _INF)


def inflate(x: np.ndarray, rel: float, absolute: float = 0.0) -> np.ndarray:
    """Rigorous upper bound of ``x (1 + rel) + absolute`` for ``x >= 0`` (one more ulp)."""
    return np.nextafter(np.asarray(x) * (1.0 + rel) + absolute, _INF)


def deflate(x: np.ndarray, rel: float, absolute: float = 0.0) -> np.ndarray:
    """Rigorous lower bound of ``x (1 - rel) - absolute`` for ``x >= 0``, clipped at 0."""
    return np.maximum(np.nextafter(np.asarray(x) * (1.0 - rel) - absolute, -_INF), 0.0)


def magnitude(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Enclosure of ``|x|`` for ``x`` in ``[lo, hi]``: (mignitude, magnitude)."""
    mig = np.where(lo > 0, lo, np.where(hi < 0, -hi, 0.0))
    return mig, np.maximum(np.abs(lo), np.abs(hi))


def add_down(a: Real, b: Real) -> Any:
    """Float ``<= a + b`` (one ulp below the rounded sum; ``-inf`` where it is undefined)."""
    with np.errstate(over="ignore", invalid="ignore"):
        s = np.nextafter(np.asarray(a) + b, -_INF)
    return np.where(np.isnan(s), -_INF, s)


def add_up(a: Real, b: Real) -> Any:
    """Float ``>= a + b`` (one ulp above the rounded sum; ``inf`` where it is undefined)."""
    with np.errstate(over="ignore", invalid="ignore"):
        s = np.nextafter(np.asarray(a) + b, _INF)
    return np.where(np.isnan(s), _INF, s)


def scale_exponent(mag: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Per-element ``e`` with ``max |x| 2**-e`` in ``[0.5, 1)`` over ``axes`` (0 where that max is 0 or
    not finite): scaling by ``2**-e`` is exact (bar underflow) and keeps squares and sums in range."""
    top = np.max(np.where(np.isfinite(mag), mag, 0.0), axis=axes)
    return np.frexp(top)[1].astype(np.int64)


def _scale(x: Real, e: Real, toward: float) -> Any:
    x = np.asarray(x, dtype=np.float64)
    if not np.any(e):                                  # 2**0: nothing to round
        return np.broadcast_to(x, np.broadcast_shapes(x.shape, np.shape(e))).copy()
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        y = np.ldexp(x, e)
        exact = (np.ldexp(y, -e) == x) | np.isnan(x)
    return y if exact.all() else np.where(exact, y, np.nextafter(y, toward))


def scale_down(x: Real, e: Real) -> Any:
    """Float ``<= x 2**e`` (exact unless the result under- or overflows)."""
    return _scale(x, e, -_INF)


def scale_up(x: Real, e: Real) -> Any:
    """Float ``>= x 2**e`` (exact unless the result under- or overflows)."""
    return _scale(x, e, _INF)


def two_sum(a: Real, b: Real) -> tuple[Any, Any]:
    """Knuth's TwoSum: ``s = fl(a + b)`` and ``e`` with ``a + b = s + e`` exactly (no overflow)."""
    s = a + b
    bv = s - a
    e = (a - (s - bv)) + (b - bv)
    return s, e


def _split(a: Real) -> tuple[Any, Any]:
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a: Real, b: Real) -> tuple[Any, Any, Any]:
    """Dekker's TwoProduct: ``p = fl(a b)``, ``e`` with ``a b = p + e``; ``valid`` where that holds.

    Exactness needs no overflow in the splitting (``|a|, |b| < 2**995``) and no
    underflow of the error term (``|p| >= 2**-969`` or an exact zero factor).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        p = a * b
        ah, al = _split(a)
        bh, bl = _split(b)
        e = al * bl - (((p - ah * bh) - al * bh) - ah * bl)
    big = 2.0 ** 995
    valid = (np.abs(a) < big) & (np.abs(b) < big) & np.isfinite(p) & (
        (np.abs(p) >= 2.0 ** -969) | (a == 0) | (b == 0))
    return p, np.where(valid, e, 0.0), valid


def mul_up(a: Real, b: Real) -> Any:
    """Smallest-known float ``>= a b`` (exact when the product is representable).

    An exact zero factor gives 0 even against ``inf`` (an unbounded bound times an exact 0
    is 0); any other undefined product (NaN input) gives ``inf``.
    """
    p, e, valid = two_prod(a, b)
    step_up = ~valid | (e > 0)
    with np.errstate(over="ignore", invalid="ignore"):  # past the largest float: inf, still an upper bound
        up = np.where(step_up, np.nextafter(p, _INF), p)
    zero = (np.asarray(a) == 0) | (np.asarray(b) == 0)
    return np.where(zero, 0.0, np.where(np.isnan(up), _INF, up))


def _sqrt_exact(x: Real) -> tuple[Any, Any]:
    """``s = fl(sqrt(x))`` and where ``s`` is exact: ``s`` of at most 26 significant bits (Veltkamp split) in
    the normal range squares exactly, so ``s * s == x`` decides it (a longer ``s`` is called inexact:
    one ulp wider at worst, never wrong)."""
    s = np.sqrt(np.maximum(x, 0.0))
    with np.errstate(over="ignore", invalid="ignore"):
        c = _SPLIT * s
        short = (c - (c - s) == s) & ((s >= 2.0 ** -500) | (s == 0))
        return s, short & (s * s == x)


def sqrt_up(x: Real) -> Any:
    """Float ``>= sqrt(x)`` for ``x >= 0`` (exact when ``sqrt(x)`` is a float)."""
    s, exact = _sqrt_exact(np.asarray(x, dtype=np.float64))
    return np.where(exact, s, np.nextafter(s, _INF))


def sqrt_down(x: Real) -> Any:
    """Float ``<= sqrt(x)`` for ``x >= 0`` (exact when ``sqrt(x)`` is a float)."""
    s, exact = _sqrt_exact(np.asarray(x, dtype=np.float64))
    return np.where(exact, s, np.maximum(np.nextafter(s, -_INF), 0.0))


def _div_exact(a: Real, b: Real) -> tuple[Any, Any]:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = np.asarray(a, dtype=np.float64) / np.asarray(b, dtype=np.float64)
    p, e, valid = two_prod(q, b)
    return q, valid & (p == a) & (e == 0)


def div_up(a: Real, b: Real) -> Any:
    """Float ``>= a / b`` for ``b > 0``."""
    q, exact = _div_exact(a, b)
    return np.where(exact, q, np.nextafter(q, _INF))


def div_down(a: Real, b: Real) -> Any:
    """Float ``<= a / b`` for ``b > 0``."""
    q, exact = _div_exact(a, b)
    return np.where(exact, q, np.nextafter(q, -_INF))


def _frac_interval(q: Fraction) -> tuple[float, float]:
    try:
        f = float(q)  # int / int true division: correctly rounded
    except OverflowError:
        big = float(np.finfo(np.float64).max)
        return (big, _INF) if q > 0 else (-_INF, -big)
    fq = Fraction(f)
    if fq == q:
        return f, f
    if fq < q:
        return f, float(np.nextafter(f, _INF))
    return float(np.nextafter(f, -_INF)), f


def sqrt_interval(q: Fraction) -> tuple[float, float]:
    """Floats ``lo <= sqrt(q) <= hi`` for a rational ``q >= 0``, in integer arithmetic (``q``
    may lie far outside the float range; only ``sqrt(q)`` has to fit).

    ``sqrt(a / b) = sqrt(a b 4^k) / (b 2^k)``, with ``k`` giving the integer root at least 64
    bits, so ``isqrt`` brackets it within one unit of the 64th bit before the outward rounding.
    """
    a, b = q.numerator, q.denominator
    if a <= 0:
        return 0.0, 0.0
    k = max(0, (130 - (a * b).bit_length()) // 2 + 1)
    m = (a * b) << (2 * k)
    r = math.isqrt(m)
    lo = _frac_interval(Fraction(r, b << k))[0]
    hi = _frac_interval(Fraction(r if r * r == m else r + 1, b << k))[1]
    return lo, hi


def fraction_interval(Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tightest float interval ``[lo, hi]`` around each Fraction in an object array."""
    Q = np.asarray(Q, dtype=object)
    lo = np.empty(Q.shape, dtype=np.float64)
    hi = np.empty(Q.shape, dtype=np.float64)
    for idx, q in np.ndenumerate(Q):
        lo[idx], hi[idx] = _frac_interval(q)
    return lo, hi


def entry_interval(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float interval matrix containing the validated matrix ``M`` (a point for float input)."""
    if M.dtype == object:
        return fraction_interval(M)
    return M, M


def _exact_row_interval(row: np.ndarray, offset: float) -> tuple[float, float]:
    vals = [float(v) for v in row] + [offset]
    if not all(math.isfinite(v) for v in vals):      # an unbounded endpoint: nothing finite to say
        return -_INF, _INF
    try:
        d = math.fsum(vals)          # correctly rounded exact sum
        if math.fsum(vals + [-d]) == 0.0:
            return d, d
        return float(np.nextafter(d, -_INF)), float(np.nextafter(d, _INF))
    except OverflowError:
        return _frac_interval(sum((Fraction(v) for v in vals), Fraction(0)))


def sum_enclosure(x: np.ndarray, axis: int = -1, offset: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rigorous float interval ``[lo, hi]`` of the exact ``sum(x, axis) + offset``.

    ``lo == hi`` exactly when that float is the exact value; in particular
    ``lo == hi == 0`` certifies an exactly zero sum. Works on float64 arrays
    (Sum2 + a priori bound, exact fallback where undecided) and on ``Fraction``
    object arrays (exact rational sums).

    Parameters
    ----------
    x : ndarray
        Float64 or Fraction object array.
    axis : int
        Axis to sum over.
    offset : float
        A float added exactly to each sum (``-1.0`` turns sums into residuals).
    """
    x = np.moveaxis(np.asarray(x), axis, -1)
    if x.dtype == object:
        sums = np.add.reduce(x, axis=-1, initial=Fraction(0)) + Fraction(offset)
        return fraction_interval(np.asarray(sums, dtype=object).reshape(x.shape[:-1]))
    m = x.shape[-1] + 1
    with np.errstate(over="ignore", invalid="ignore"):
        s = np.full(x.shape[:-1], float(offset))
        err = np.zeros_like(s)
        no_error = np.ones(s.shape, dtype=bool)
        for k in range(x.shape[-1]):
            s, e = two_sum(s, x[..., k])
            err = err + e
            no_error &= (e == 0)
        res = s + err
        S = np.sum(np.abs(x), axis=-1) + abs(offset)
        g = gamma(m)
        S_up = inflate(S, 2 * g)
        delta = inflate(U * np.abs(res) + g * g * S_up, 8 * U, 4 * m * ETA)
        lo = np.nextafter(res - delta, -_INF)
        hi = np.nextafter(res + delta, _INF)
    exact = no_error & np.isfinite(s)
    lo = np.where(exact, s, lo)
    hi = np.where(exact, s, hi)
    undecided = ~np.isfinite(lo) | ~np.isfinite(hi) | (~exact & (lo <= 0) & (hi >= 0))
    if undecided.any():
        rows = np.nonzero(undecided)
        terms = np.concatenate([x[rows], np.full((len(rows[0]), 1), float(offset))], axis=-1)
        d_lo, d_hi = _distil(terms)
        lo[rows], hi[rows] = d_lo, d_hi
        for member in np.flatnonzero(np.isnan(d_lo)):     # still undecided: one exact sum each
            idx = tuple(r[member] for r in rows)
            lo[idx], hi[idx] = _exact_row_interval(x[idx], float(offset))
    return lo, hi


def _distil(terms: np.ndarray, passes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Interval of each row's exact sum by error-free transformation, NaN where it is not decided.

    Each pass is Ogita-Rump-Oishi's VecSum (a TwoSum cascade: the row keeps its exact sum, the
    last entry takes the rounded sum, the others the errors). When the errors left are all zero,
    the last entry is the exact sum (``lo == hi``); when they are smaller than it, ``last -+ sum |errors|``
    rounded outward encloses it with its sign decided. Rows that overflow, or stay undecided, get NaN.
    """
    t = terms.astype(np.float64, copy=True)
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(t).all(axis=-1)
        for _ in range(passes):
            for j in range(1, t.shape[-1]):
                t[:, j], t[:, j - 1] = two_sum(t[:, j - 1], t[:, j])
            finite &= np.isfinite(t[:, -1])
        last = t[:, -1]
        zero = (t[:, :-1] == 0).all(axis=-1)
        rest = inflate(np.abs(t[:, :-1]).sum(axis=-1), gamma(t.shape[-1]), 2 * ETA)
        lo = np.where(zero, last, np.nextafter(last - rest, -_INF))
        hi = np.where(zero, last, np.nextafter(last + rest, _INF))
    decided = finite & (zero | (lo > 0) | (hi < 0))
    return np.where(decided, lo, np.nan), np.where(decided, hi, np.nan)


def matmul_enclosure(A_lo: np.ndarray, A_hi: np.ndarray, B_lo: np.ndarray, B_hi: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Interval enclosure of ``A @ B`` for interval matrices (batched, ``matmul`` semantics).

    Midpoint-radius form: ``C_mid = fl(A_m B_m)``,
    ``C_rad >= gamma_k |A_m||B_m| + |A_m| B_r + A_r (|B_m| + B_r)`` with every float
    evaluation inflated by its own a priori error, plus underflow slack.
    """
    k = A_lo.shape[-1]
    A_m, A_r = mid_rad(A_lo, A_hi)
    B_m, B_r = mid_rad(B_lo, B_hi)
    with np.errstate(over="ignore", invalid="ignore"):
        C_m = A_m @ B_m
        aA, aB = np.abs(A_m), np.abs(B_m)
        g = gamma(k + 2)
        rad = g * (aA @ aB)
        if B_r is not None:                      # a point operand has no radius terms
            rad = rad + aA @ B_r
        if A_r is not None:
            rad = rad + A_r @ (aB if B_r is None else aB + B_r)
        C_r = inflate(rad, 2 * g + 8 * U, 8 * (k + 2) * ETA)
        lo = np.nextafter(C_m - C_r, -_INF)
        hi = np.nextafter(C_m + C_r, _INF)
    # an overflowed midpoint (partial sums may overflow whatever the true value) or an
    # undefined radius (inf * 0) leaves nothing finite to claim: the trivial enclosure
    unknown = ~np.isfinite(C_m) | np.isnan(C_r)
    return np.where(unknown, -_INF, lo), np.where(unknown, _INF, hi)


def mid_rad(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Midpoint and radius with ``[mid - rad, mid + rad]`` containing ``[lo, hi]``; an unbounded
    interval gets midpoint 0 and radius ``inf``; a finite point (``lo is hi``) radius ``None``."""
    if lo is hi:
        bounded = np.isfinite(lo)
        if bounded.all():
            return lo, None
        return np.where(bounded, lo, 0.0), np.where(bounded, 0.0, _INF)
    with np.errstate(over="ignore", invalid="ignore"):
        mid = lo + 0.5 * (hi - lo)
        rad = np.nextafter(np.maximum(mid - lo, hi - mid), _INF)
    bounded = np.isfinite(mid) & np.isfinite(rad)
    return np.where(bounded, mid, 0.0), np.where(bounded, rad, _INF)


def sum_squares_up(mag: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Upper bound of ``sum mag**2`` over ``axes`` (a priori error of ``k`` products and sums, underflow included;
    ``inf`` where a square or the sum overflows)."""
    k = int(np.prod([mag.shape[a] for a in axes]))
    with np.errstate(over="ignore"):
        return inflate(np.sum(mag * mag, axis=axes), 2 * gamma(k + 1), 4 * k * ETA)


def norm_inf_up(mag: np.ndarray) -> np.ndarray:
    """Upper bound of ``|| X ||_inf`` (the largest row sum) for every ``|X| <= mag (..., n, n)``."""
    n = mag.shape[-1]
    return inflate(np.sum(mag, -1), gamma(n), n * ETA).max(-1)


def neumann_triangular_up(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Upper bound of ``Z = (I - A)^-1 B = sum_k A^k B`` for ``A >= 0`` upper triangular with diagonal below 1
    (the series converges: ``rho(A) = max A_ii``) and ``B >= 0``, batched ``(..., n, n)``.

    Back substitution ``z_i = (b_i + sum_{j > i} A_ij z_j) / (1 - A_ii)``: every term is nonnegative, so
    each step rounded up from upper bounds of the ``z_j`` bounds ``z_i`` (no cancellation, no wrapping);
    ``inf`` or NaN where it overflows."""
    n = A.shape[-1]
    Z = np.zeros(np.broadcast_shapes(A.shape[:-2], B.shape[:-2]) + B.shape[-2:])
    den = add_down(1.0, -np.diagonal(A, axis1=-2, axis2=-1))
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(n - 1, -1, -1):
            m = n - 1 - i
            s = inflate((A[..., i, None, i + 1:] @ Z[..., i + 1:, :])[..., 0, :], gamma(m + 1), (m + 1) * ETA)
            Z[..., i, :] = div_up(add_up(B[..., i, :], s), den[..., i, None])
    return Z


def sum_squares_down(mig: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Lower bound of ``sum mig**2`` over ``axes`` (the error of :func:`sum_squares_up`, the other way; the
    largest float where a square or the sum overflows)."""
    k = int(np.prod([mig.shape[a] for a in axes]))
    with np.errstate(over="ignore"):
        return deflate(np.sum(mig * mig, axis=axes), 2 * gamma(k + 1), 4 * k * ETA)


def residual_bound(enc: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``max |x|`` over the last axis for an enclosure ``(lo, hi)`` of ``x``: an upper bound."""
    lo, hi = enc
    bound = np.maximum(np.abs(lo), np.abs(hi))
    return np.max(np.where(np.isnan(bound), _INF, bound), axis=-1)


def margin_residuals(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigorous upper bounds of ``max |row sum - 1|`` and ``max |column sum - 1|``.

    ``M`` is a validated ``(..., n, n)`` array (float64 or Fraction); the results
    have the batch shape (0-d for one matrix) and are exactly 0 for exact margins.
    """
    return (residual_bound(sum_enclosure(M, -1, offset=-1.0)),
            residual_bound(sum_enclosure(M, -2, offset=-1.0)))
