"""The exact chain product (birkhoff/exact_chain.py) against Fractions, and what it gives certify_product."""

import math
from fractions import Fraction

import mpmath
import numpy as np
from hypothesis import given, strategies as st

from birkhoff import certify_product, sinkhorn_logits
from birkhoff.exact_chain import (CHAIN_WORK, INVERSE_WORK, adjugate, centred_interval, chain_work, exact_chain, inverse_work,
                                  ratio_interval)
from birkhoff.testing.oracle import dyadic_ds


def fractions(A: np.ndarray) -> np.ndarray:
    return np.vectorize(Fraction, otypes=[object])(A)


def product(A: np.ndarray) -> np.ndarray:
    P = fractions(np.eye(A.shape[-1]))
    for M in A:
        P = fractions(M).dot(P)
    return P


def singular_values(A: np.ndarray, dps: int, centre: bool = False) -> list:
    """The singular values of ``P`` (``centre``: of ``P - J/n``) at ``dps`` digits, ``P`` the chain's product."""
    n = A.shape[-1]
    with mpmath.workdps(dps):
        P = mpmath.eye(n)
        for M in A:
            P = mpmath.matrix(M.tolist()) * P
        return list(mpmath.svd_r(P - mpmath.ones(n, n) / n if centre else P, compute_uv=False))


@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 5), st.integers(1, 6), st.sampled_from([0, 60, 900]),
       st.booleans())
def test_the_chain_is_multiplied_exactly(seed, n, L, spread, thirds):
    """Floats whose exponents spread over ``2**spread`` (zeros and both signs included), or Fractions with
    denominators 3 and 7: ``N / d`` is the product of the factors in rationals, the last factor leftmost."""
    rng = np.random.default_rng(seed)
    if thirds:
        A = np.array([[[Fraction(int(rng.integers(-9, 10)), int(rng.choice([3, 7]))) for _ in range(n)]
                       for _ in range(n)] for _ in range(L)], dtype=object)
    else:
        A = np.ldexp(rng.standard_normal((L, n, n)), rng.integers(-spread // 2, spread // 2 + 1, (L, n, n)))
        A[rng.random((L, n, n)) < 0.2] = 0.0
    N, d = exact_chain(A)
    assert (fractions(N) / d == product(A)).all()


@given(st.integers(-2 ** 1100, 2 ** 1100), st.integers(1, 2 ** 1100))
def test_a_ratio_gets_its_tightest_float_interval(a, b):
    """``lo <= a / b <= hi`` exactly, ``lo == hi`` when ``a / b`` is a float, else adjacent floats; past the
    float range ``[max, inf]``, and below it subnormals or 0."""
    (lo,), (hi,) = ratio_interval(np.array([a], dtype=object), b)
    q = Fraction(a, b)
    if math.isinf(hi) and q > 0:
        assert lo == np.finfo(np.float64).max < q
    elif math.isinf(lo) and q < 0:
        assert -hi == np.finfo(np.float64).max < -q
    else:
        assert Fraction(lo) <= q <= Fraction(hi)
        assert lo == hi if Fraction(lo) == q else math.nextafter(lo, math.inf) == hi


@given(st.integers(0, 2 ** 32 - 1), st.integers(2, 5), st.integers(1, 40))
def test_the_centred_product_is_enclosed_at_its_own_scale(seed, n, L):
    """``(P - J/n) 2**-e`` contains the exact value entry by entry with the largest entry near 1, however far
    below the float range ``P - J/n`` is (dyadic doubly stochastic chains: it decays like ``prod sigma2``)."""
    rng = np.random.default_rng(seed)
    A = np.stack([dyadic_ds(rng, n) for _ in range(L)])
    N, d = exact_chain(A)
    e, lo, hi = centred_interval(N, d)
    D = (product(A) - Fraction(1, n)) * Fraction(2) ** -int(e)
    assert all(Fraction(x) <= q <= Fraction(y) for x, q, y in zip(lo.flat, D.flat, hi.flat))
    assert (D == 0).all() or 0.25 <= max(abs(q) for q in D.flat) <= 4


def test_product_sigma2_is_relative_where_the_interval_product_floored():
    """100 dyadic doubly stochastic 4 x 4 factors: ``sigma2 = ||P - J/4||_2`` is 6.0e-28; the interval product
    gave ``[0, 8.3e-14]`` (its absolute floor). Multiplied exactly, it is within 1e-13 relative and contains
    the 60-digit truth; a float SK_20 chain (not exactly doubly stochastic) likewise."""
    rng = np.random.default_rng(1)
    for A in (np.stack([dyadic_ds(rng, 4) for _ in range(100)]),
              np.stack([sinkhorn_logits(rng.standard_normal((4, 4))) for _ in range(30)])):
        assert chain_work(A) <= CHAIN_WORK
        lo, hi = certify_product(A).sigma2
        truth = max(singular_values(A, 60, centre=True))
        assert mpmath.mpf(lo) <= truth <= mpmath.mpf(hi) and hi - lo <= 1e-13 * hi


def test_long_chains_keep_the_interval_product():
    """Past the work budget (4 x 4 float factors, L = 1000) the balanced interval product is used,
    still sound: the product of SK_20 factors has sigma2 inside its interval."""
    rng = np.random.default_rng(2)
    A = np.stack([sinkhorn_logits(rng.standard_normal((4, 4))) for _ in range(1000)])
    assert chain_work(A) > CHAIN_WORK
    c = certify_product(A)
    P = np.eye(4)
    for M in A:
        P = M @ P
    s2 = np.linalg.norm(P - 0.25, 2)
    assert c.sigma2[0] <= s2 * (1 + 1e-9) and s2 * (1 - 1e-9) <= c.sigma2[1]


@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 6), st.integers(0, 3))
def test_adjugate_and_determinant_are_exact(seed, n, damage):
    """``N adj(N) = det(N) I`` and ``det`` equals the rational elimination's, singular matrices included (a
    zero row, a repeated row, a zero column: ``damage``) and pivots that need a row swap."""
    rng = np.random.default_rng(seed)
    N = rng.integers(-6, 7, (n, n)).astype(object) * (1 << int(rng.integers(0, 80)))
    if damage == 1:
        N[rng.integers(n)] = 0
    elif damage == 2 and n > 1:
        N[0] = N[n - 1]
    elif damage == 3:
        N[:, rng.integers(n)] = 0
    adj, det = adjugate(N)
    M = [[Fraction(int(x)) for x in row] for row in N.tolist()]
    truth = Fraction(1)
    for k in range(n):
        p = next((i for i in range(k, n) if M[i][k]), None)
        if p is None:
            truth = Fraction(0)
            break
        if p != k:
            M[k], M[p], truth = M[p], M[k], -truth
        truth *= M[k][k]
        for i in range(k + 1, n):
            M[i] = [a - M[i][k] / M[k][k] * b for a, b in zip(M[i], M[k])]
    assert det == truth
    if det:
        assert (N.dot(adj) == det * np.eye(n, dtype=np.int64).astype(object)).all()


def test_product_sigma_min_past_one_over_u_is_relative():
    """30 signed 4 x 4 factors, ``kappa(P)`` 4e16: the one-ulp enclosure of ``P`` is not enough past ``1 / u``
    (it gave ``[0, 6.3e-9]``); the exact inverse of the exact product gives 1e-13 relative, containing the
    80-digit truth. A factor that is exactly singular makes it exactly ``[0, 0]``."""
    A = np.random.default_rng(0).standard_normal((30, 4, 4))
    N, _ = exact_chain(A)
    assert inverse_work(N) <= INVERSE_WORK
    lo, hi = certify_product(A).sigma_min
    truth = min(singular_values(A, 80))
    assert mpmath.mpf(lo) <= truth <= mpmath.mpf(hi) and hi - lo <= 1e-13 * hi
    A[7] = [[0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    assert certify_product(A).sigma_min == (0.0, 0.0)


@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 6))
def test_determinant_is_the_adjugates(seed, n):
    """The forward elimination's determinant is the Gauss-Jordan one's (itself checked against Fractions
    above), singular and swapped-pivot matrices included."""
    from birkhoff.exact_chain import determinant

    rng = np.random.default_rng(seed)
    N = rng.integers(-5, 6, (n, n)).astype(object) * (1 << int(rng.integers(0, 70)))
    if rng.random() < 0.3:
        N[rng.integers(n)] = 0
    if rng.random() < 0.3 and n > 1:
        N[0] = N[-1]
    assert determinant(N) == adjugate(N)[1]


def test_exactly_singular_float_matrices_have_sigma_min_zero():
    """A float ``u v^T`` whose roundings keep it exactly singular (checked in Fractions: ``det = 0``) gets
    ``sigma_min = [0, 0]`` from the exact inverse's determinant, where the float bounds say ``[0, ~n^2 u]``."""
    from birkhoff import certify

    M = np.outer([1.0, 2.0, 3.0], [0.5, 0.25, 4.0])              # every product exact: rank one exactly
    assert certify(M).sigma_min == (0.0, 0.0)
