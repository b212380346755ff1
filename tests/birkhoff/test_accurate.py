"""Accurate products and Rump's inverse (birkhoff/accurate.py), checked in exact rational arithmetic."""

from fractions import Fraction

import mpmath
import numpy as np
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


def test_rump_inverse_past_one_over_u():
    """A triangular 64 x 64 with kappa 3.5e19: the float inverse's residual is far above 1 (the premise);
    Rump's inverse, two float matrices, has ``|I - R M| <= E`` (checked exactly on 8 rows) with
    ``|| E ||_inf`` below 2**-30."""
    M = nonnormal(np.random.default_rng(0), 64)
    R1 = np.linalg.inv(M)
    assert np.abs(np.eye(64) - R1 @ M).sum(axis=1).max() > 1
    R, E = refined_inverse(M)
    assert len(R) >= 2 and inflate(E.sum(axis=1), gamma(64)).max() <= 2.0 ** -30
    rows = np.random.default_rng(1).choice(64, 8, replace=False)
    RM = sum(exact(r[rows]) for r in R) @ exact(M)
    residual = exact(np.eye(64)[rows]) - RM
    assert (np.abs(residual) <= exact(E[rows])).all()


def test_sigma_min_past_one_over_u_is_relative():
    """``certify``'s sigma_min of that matrix: [0, 4e-11] before, now within 1e-12 relative and
    containing the 40-digit truth (mpmath's SVD is accurate to ``||M|| 10**-40``, 1e-21 of the truth)."""
    M = nonnormal(np.random.default_rng(0), 64)
    lo, hi = certify(M).sigma_min
    with mpmath.workdps(40):
        truth = min(mpmath.svd_r(mpmath.matrix(M.tolist()), compute_uv=False))
    assert mpmath.mpf(lo) <= truth <= mpmath.mpf(hi) and hi - lo <= 1e-12 * hi
