"""Accurate products and Rump's inverse (birkhoff/accurate.py), checked in exact rational arithmetic."""

import itertools
import sys
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, strategies as st

from birkhoff import certify, certify_batch
from birkhoff.accurate import distil, product_terms, refined_inverse, split
from birkhoff.exact import gamma, inflate
from birkhoff.testing.oracle import nonnormal


def exact(A: np.ndarray) -> np.ndarray:
    return np.vectorize(Fraction, otypes=[object])(A)


@st.composite
def mixed_matrices(draw, rows: int, cols: int) -> np.ndarray:
    """Entries of both signs, zeros, 53-bit mantissas and magnitudes 2**-113 .. 2**60 in one matrix (no
    product underflows: the exactness of a slice product is what is tested)."""
    mant = draw(st.lists(st.integers(-2 ** 53, 2 ** 53), min_size=rows * cols, max_size=rows * cols))
    exps = draw(st.lists(st.integers(-113, 7), min_size=rows * cols, max_size=rows * cols))
    return np.ldexp(np.array(mant, dtype=np.float64), np.array(exps)).reshape(rows, cols)


@given(st.integers(1, 6).flatmap(lambda n: st.tuples(mixed_matrices(n, n), mixed_matrices(n, n))))
def test_slices_are_exact_and_so_are_their_products(AB):
    A, B = AB
    slices, rest = split(A, -1, 31, 0.0)
    assert (sum(exact(s) for s in slices) + exact(rest) == exact(A)).all() and not rest.any()
    terms, tail = product_terms([A], [B], 2.0 ** -80)
    for a in split(A, -1, 31, 0.0)[0][:2]:
        for b in split(B, -2, 31, 0.0)[0][:2]:
            assert (exact(a @ b) == exact(a) @ exact(b)).all()             # one float matmul, no rounding
    gap = exact(A) @ exact(B) - sum(exact(t) for t in terms)
    assert (np.abs(gap) <= exact(tail)).all()


@given(st.integers(1, 12).flatmap(lambda k: st.lists(mixed_matrices(2, 3), min_size=k, max_size=k)),
       st.integers(1, 3))
def test_distil_keeps_the_exact_sum(terms, keep):
    terms = terms + [-terms[0]]                                              # cancellation
    leading, rest = distil(terms, keep)
    gap = sum(exact(t) for t in terms) - sum(exact(x) for x in leading)
    assert len(leading) == keep and (np.abs(gap) <= exact(rest)).all()


def test_an_exact_split_keeps_small_entries_beside_large_ones():
    """Columns spanning 2**0 .. 2**200 (an inverse of a triangular matrix has them): sliced until nothing
    is left, the terms sum to the product exactly. A floor relative to each column's largest entry
    dropped the small ones, and Rump's next inverse had zero rows."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((6, 6))
    B = np.ldexp(rng.standard_normal((6, 6)), rng.integers(0, 200, (6, 6)))
    terms, tail = product_terms([A], [B, np.ldexp(B, -60)])
    assert (sum(exact(t) for t in terms) == exact(A) @ (exact(B) + exact(np.ldexp(B, -60)))).all()
    assert tail.max() < 1e-300                                      # the underflow slack only


@given(st.integers(2, 8), st.integers(0, 2 ** 32 - 1), st.sampled_from([3.0, 30.0, 300.0]), st.booleans())
def test_rump_residual_bound_holds_exactly(n, seed, strength, dense):
    """Whatever Rump's inverse returns, ``|I - (sum R) M| <= E`` holds entry by entry in exact arithmetic:
    triangular matrices with a strong upper part (kappa up to about 1e20 at n = 8) and the same mixed by
    random orthogonal factors (dense, no structure)."""
    rng = np.random.default_rng(seed)
    M = np.triu(rng.standard_normal((n, n)), 1) * strength + np.diag(rng.uniform(1, 2, n))
    if dense:
        Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
        M = Q @ M @ Q.T
    found = refined_inverse(M)
    if found is None:
        return
    R, E = found
    residual = exact(np.eye(n)) - sum(exact(r) for r in R) @ exact(M)
    assert (np.abs(residual) <= exact(E)).all()


def test_rump_inverse_past_one_over_u():
    """A triangular 64 x 64 with kappa 3.5e19: the float inverse's residual is far above 1 (the premise);
    Rump's inverse, two float matrices, has ``|I - R M| <= E`` (checked exactly on 8 rows) with
    ``|| E ||_inf`` below 2**-30."""
    M = nonnormal(np.random.default_rng(0), 64)
    R1 = np.linalg.inv(M)
    assert np.abs(np.eye(64) - R1 @ M).sum(axis=1).max() > 1
    R, E = refined_inverse(M)
    assert len(R) >= 2 and inflate(E.sum(axis=1), gamma(64)).max() <= 2.0 ** -27
    rows = np.random.default_rng(1).choice(64, 8, replace=False)
    RM = sum(exact(r[rows]) for r in R) @ exact(M)
    residual = exact(np.eye(64)[rows]) - RM
    assert (np.abs(residual) <= exact(E[rows])).all()


def triangular(n: int, strength: float) -> np.ndarray:
    """The oracle's ``nonnormal`` with another strength of the strict upper part (kappa grows faster)."""
    rng = np.random.default_rng(0)
    return np.triu(rng.standard_normal((n, n)), 1) * strength + np.diag(rng.uniform(1, 2, n) * rng.choice([-1, 1], n))


def truth_sigma_min(M: np.ndarray, dps: int = 40) -> mpmath.mpf:
    """mpmath's SVD is accurate to ``||M|| 10**-dps``, far below these truths."""
    with mpmath.workdps(dps):
        return min(mpmath.svd_r(mpmath.matrix(M.tolist()), compute_uv=False))


@pytest.mark.parametrize("n, strength, before", [(24, 10.0, 1.6e-4), (32, 6.0, 1.0)])
def test_sigma_min_near_and_past_one_over_u_is_relative(n, strength, before, monkeypatch):
    """kappa 5e14 and 2e17, mixed by an orthogonal similarity (no structure left: a triangular matrix takes
    its own path, below): through Rump's inverse (the float inverse's residual, 0.04 and 0.94 for the
    triangular ones, gave relative widths 1.6e-4 and 1), within 1e-9 relative, containing the truth."""
    cert = sys.modules["birkhoff.certify"]
    used = []
    monkeypatch.setattr(cert, "refined_inverse", lambda *a: used.append(1) or refined_inverse(*a))
    Q = np.linalg.qr(np.random.default_rng(1).standard_normal((n, n)))[0]
    M = Q @ triangular(n, strength) @ Q.T
    lo, hi = certify(M).sigma_min
    assert used and mpmath.mpf(lo) <= truth_sigma_min(M) <= mpmath.mpf(hi) and hi - lo <= 1e-9 * hi < before * hi


@pytest.mark.parametrize("n, strength", [(24, 10.0), (32, 6.0), (12, 300.0)])
@pytest.mark.parametrize("form", ["upper", "lower", "rows and columns shuffled"])
def test_sigma_min_of_a_triangular_matrix_from_its_own_neumann_series(n, strength, form, monkeypatch):
    """The same triangular matrices (and their transposes, their rows and columns permuted, and kappa 1e27
    at n = 12) without Rump's inverse: the Neumann series of the triangular residual gives a relative width
    below 1e-11 containing the 40-digit truth."""
    cert = sys.modules["birkhoff.certify"]
    monkeypatch.setattr(cert, "refined_inverse", lambda *a: pytest.fail("Rump's inverse was not needed"))
    M = triangular(n, strength)
    rng = np.random.default_rng(2)
    M = {"upper": M, "lower": M.T.copy(), "rows and columns shuffled": M[rng.permutation(n)][:, rng.permutation(n)]}[form]
    lo, hi = certify(M).sigma_min
    assert mpmath.mpf(lo) <= truth_sigma_min(M) <= mpmath.mpf(hi) and hi - lo <= 1e-11 * hi


@given(st.integers(2, 10), st.integers(0, 2 ** 32 - 1), st.sampled_from([1.0, 30.0, 1000.0]),
       st.booleans(), st.integers(-600, 600))
def test_triangular_sigma_min_contains_the_truth(n, seed, strength, lower, exponent):
    """Random triangular matrices, either triangle, some diagonal entries tiny, scaled by ``2**exponent``:
    the interval contains the truth (kappa up to about 1e60: mpmath at 150 digits; 50 were not enough)."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(1, 2, n) * rng.choice([-1, 1], n) * np.where(rng.random(n) < 0.2, 1e-9, 1.0)
    M = np.ldexp(np.triu(rng.standard_normal((n, n)), 1) * strength + np.diag(d), exponent)
    M = M.T.copy() if lower else M
    lo, hi = certify(M).sigma_min
    truth = truth_sigma_min(np.ldexp(M, -exponent), 150)
    assert mpmath.ldexp(mpmath.mpf(lo), -exponent) <= truth <= mpmath.ldexp(mpmath.mpf(hi), -exponent)


@given(st.integers(1, 4), st.integers(0, 2 ** 32 - 1), st.booleans())
def test_triangular_order_finds_every_permuted_triangle(n, seed, extra):
    """``_triangular_order`` says ok exactly when some row and column order makes the pattern upper
    triangular with a nonzero diagonal (all orders tried), and its order does; a batch at once."""
    rng = np.random.default_rng(seed)
    T = np.triu(rng.random((n, n)) < 0.5) | np.eye(n, dtype=bool)
    patterns = np.stack([T[rng.permutation(n)][:, rng.permutation(n)] | (extra & (rng.random((n, n)) < 0.2))
                         for _ in range(3)])
    p, q, ok = sys.modules["birkhoff.certify"]._triangular_order(patterns)
    for P, pb, qb, found in zip(patterns, p, q, ok):
        exists = any(not np.tril(P[list(a)][:, list(b)], -1).any() and P[list(a)][:, list(b)].diagonal().all()
                     for a in itertools.permutations(range(n)) for b in itertools.permutations(range(n)))
        assert found == exists
        if found:
            assert sorted(pb) == sorted(qb) == list(range(n)) and not np.tril(P[pb][:, qb], -1).any()


def test_sigma_min_of_a_triangular_128_that_needs_four_matrices():
    """kappa about 1e35: relative width below 1e-6 (it was [0, 4.4e-11] before the exact split)."""
    lo, hi = certify(nonnormal(np.random.default_rng(1), 128)).sigma_min
    assert 0 < lo and hi - lo <= 1e-6 * hi


def test_sigma_min_past_the_size_rumps_inverse_is_tried_at():
    """n = 320 > ``RUMP_MAX_N``, kappa about 1e85: ``[0, hi]`` before the triangular Neumann bound, now
    relative (the n = 512 cell, 5.2796883786e-134 .. 5.2796884113e-134, contains arb's 5.2796883950e-134:
    docs/BENCHMARKS.md)."""
    n = 320
    assert n > sys.modules["birkhoff.certify"].RUMP_MAX_N
    lo, hi = certify(nonnormal(np.random.default_rng(0), n)).sigma_min
    assert 0 < lo and hi - lo <= 1e-8 * hi


def test_a_singular_member_does_not_cost_the_batch_its_inverses():
    """LAPACK refuses a batch with one singular pivot: the other members are inverted one by one (the
    triangular 64 x 64 keeps its relative interval beside an all-ones matrix, whose interval holds 0)."""
    M = nonnormal(np.random.default_rng(0), 64)
    batch = certify_batch(np.stack([M, np.ones((64, 64))]))
    (lo, hi), (lo1, hi1) = batch[0].sigma_min, batch[1].sigma_min
    assert (lo, hi) == certify(M).sigma_min and 0 < lo and hi - lo <= 1e-10 * hi and lo1 == 0 < hi1


@given(st.integers(2, 6), st.integers(0, 2 ** 32 - 1), st.floats(0.05, 0.6))
def test_triangular_radius_bounds_a_poor_inverse_exactly(n, seed, noise):
    """``|S^-1 - R| <= G`` in exact rationals for a triangular ``S`` and a deliberately poor triangular ``R``
    (``S^-1`` perturbed by up to ``noise`` relative: ``E``'s diagonal up to about 0.6, where the whole
    Neumann series counts, not only its first term)."""
    from birkhoff.exact import add_down, add_up, magnitude, matmul_enclosure

    cert = sys.modules["birkhoff.certify"]
    rng = np.random.default_rng(seed)
    S = np.triu(rng.standard_normal((n, n)), 1) * 3 + np.diag(rng.uniform(1, 2, n))
    R = np.triu(np.linalg.inv(S) * (1 + noise * rng.uniform(-1, 1, (n, n))))
    P_lo, P_hi = matmul_enclosure(R, R, S, S)
    eye = np.eye(n, dtype=bool)
    E = np.triu(magnitude(np.where(eye, add_down(P_lo, -1.0), P_lo), np.where(eye, add_up(P_hi, -1.0), P_hi))[1])
    G, valid = cert._triangular_radius(R[None], E[None], S[None], S[None], np.array([True]))
    if not valid[0]:
        return
    S_inv = np.array([[Fraction(x) for x in row] for row in S.tolist()], dtype=object)
    inv = np.zeros((n, n), dtype=object)                  # back substitution in rationals
    for j in range(n):
        for i in range(j, -1, -1):
            inv[i, j] = (Fraction(int(i == j)) - S_inv[i, i + 1:].dot(inv[i + 1:, j])) / S_inv[i, i]
    assert all(abs(inv[i, j] - Fraction(R[i, j])) <= Fraction(G[0, i, j]) for i in range(n) for j in range(n))
