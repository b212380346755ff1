"""Accurate products and Rump's inverse (birkhoff/accurate.py), checked in exact rational arithmetic."""

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, strategies as st

from birkhoff import certify
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


@pytest.mark.parametrize("n, strength, before", [(24, 10.0, 1.6e-4), (32, 6.0, 1.0)])
def test_sigma_min_near_and_past_one_over_u_is_relative(n, strength, before):
    """kappa 5e14 (the float inverse's residual 0.04: it gave a relative width of 1.6e-4) and 2e17
    (residual 0.94): within 1e-12 relative, containing the 40-digit truth (mpmath's SVD is accurate
    to ``||M|| 10**-40``, 1e-22 of these truths)."""
    M = triangular(n, strength)
    lo, hi = certify(M).sigma_min
    with mpmath.workdps(40):
        truth = min(mpmath.svd_r(mpmath.matrix(M.tolist()), compute_uv=False))
    assert mpmath.mpf(lo) <= truth <= mpmath.mpf(hi) and hi - lo <= 1e-12 * hi < before * hi


def test_sigma_min_of_a_triangular_128_that_needs_four_matrices():
    """kappa about 1e35: relative width below 1e-6 (it was [0, 4.4e-11] before the exact split)."""
    lo, hi = certify(nonnormal(np.random.default_rng(1), 128)).sigma_min
    assert 0 < lo and hi - lo <= 1e-6 * hi
