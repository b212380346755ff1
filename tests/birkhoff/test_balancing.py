"""Balancing that converges on every matrix with total support: the hard classes of Sinkhorn.

Each class is one where sweeps converge slowly (rate near 1, or a 1/k tail); ``method="auto"``
must reach the default tolerance, each result certified by ``birkhoff.certify`` (a rigorous
bound on the marginal residuals of the float matrix returned).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from birkhoff import ConvergenceError, certify, sinkhorn, sinkhorn_mp
from birkhoff.errors import InvalidArgumentError
from birkhoff.newton import newton_balance

TOL = 1e-10


def certified(P: np.ndarray, tol: float = TOL) -> None:
    """Every matrix of ``P`` is certified doubly stochastic within ``tol`` (and zeros kept)."""
    for M in P.reshape(-1, P.shape[-1], P.shape[-1]):
        cert = certify(M, tol=tol)
        assert cert.doubly_stochastic, (cert.row_residual, cert.col_residual)


def closed_form_2x2(A: np.ndarray) -> np.ndarray:
    """The DS limit of ``[[a, b], [c, d]]``: ``x = sqrt(ad) / (sqrt(ad) + sqrt(bc))`` on the diagonal."""
    ad, bc = np.sqrt(A[0, 0] * A[1, 1]), np.sqrt(A[0, 1] * A[1, 0])
    x = ad / (ad + bc)
    return np.array([[x, 1 - x], [1 - x, x]])


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 8), st.integers(0, 2 ** 32 - 1))
def test_entries_spanning_600_orders_of_magnitude(n, seed):
    """``A = exp(U(-690, 690))``: sweeps fall like 1/k here; auto converges to tol."""
    A = np.exp(np.random.default_rng(seed).uniform(-690, 690, (n, n)))
    P, info = sinkhorn(A, tol=TOL, return_info=True)
    certified(P)
    assert info.converged and info.newton_steps < 100


def test_extreme_batch_of_100_converges_where_sweeps_give_up():
    A = np.exp(np.random.default_rng(0).uniform(-690, 690, (100, 6, 6)))
    with pytest.raises(ConvergenceError, match="method='sinkhorn'"):
        sinkhorn(A, tol=TOL, method="sinkhorn")
    P, info = sinkhorn(A, tol=TOL, return_info=True)
    assert info.converged.all() and info.method == "sinkhorn+newton"
    certified(P)


@settings(max_examples=30, deadline=None)
@given(st.floats(3, 12), st.integers(0, 2 ** 32 - 1))
def test_nearly_decomposable_2x2_matches_its_closed_form(log10_cross_ratio, seed):
    rng = np.random.default_rng(seed)
    A = rng.uniform(0.5, 2, (2, 2))
    A[0, 1] *= 10.0 ** -log10_cross_ratio                 # cross-ratio ad / bc ~ 10**k
    P, info = sinkhorn(A, return_info=True)
    np.testing.assert_allclose(P, closed_form_2x2(A), rtol=1e-9, atol=1e-12)
    certified(P, 1e-12)
    if log10_cross_ratio >= 7:
        assert info.method == "sinkhorn+newton"


@pytest.mark.parametrize("n", [4, 8, 16, 32])
def test_block_diagonal_plus_epsilon(n):
    """Two dense blocks coupled by 1e-7: the sweeps' rate is ~1 - 1e-7."""
    rng = np.random.default_rng(n)
    A = np.kron(np.eye(2), rng.uniform(0.1, 1, (n // 2, n // 2))) + 1e-7 * rng.random((n, n))
    with pytest.raises(ConvergenceError):
        sinkhorn(A, method="sinkhorn")
    P, info = sinkhorn(A, return_info=True)
    certified(P, 1e-12)
    assert info.method == "sinkhorn+newton"
    np.testing.assert_allclose(P, sinkhorn(A, method="newton"), atol=1e-11)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.integers(0, 2 ** 32 - 1), st.floats(0, 40))
def test_sparse_patterns_with_total_support_keep_their_zeros(n, seed, spread):
    """A union of random permutations (total support by construction) with weights over
    ``spread`` orders of magnitude: zeros stay exactly zero; every method agrees."""
    rng = np.random.default_rng(seed)
    A = np.zeros((n, n))
    for _ in range(rng.integers(1, 4)):
        A[np.arange(n), rng.permutation(n)] += 10.0 ** rng.uniform(-spread, spread, n)
    results = [sinkhorn(A, method=m) for m in ("auto", "newton")]
    for P in results:
        assert np.array_equal(P == 0, A == 0)
        certified(P, 1e-12)
    np.testing.assert_allclose(results[0], results[1], atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 4), st.integers(1, 4), st.integers(0, 2 ** 32 - 1))
def test_batches_mixing_easy_and_hard(n_easy, n_hard, seed):
    rng = np.random.default_rng(seed)
    easy = rng.random((n_easy, 4, 4)) + 0.1
    hard = np.exp(rng.uniform(-600, 600, (n_hard, 4, 4)))
    order = rng.permutation(n_easy + n_hard)
    A = np.concatenate([easy, hard])[order]
    P, info = sinkhorn(A, return_info=True)
    certified(P, 1e-12)
    alone = np.concatenate([sinkhorn(easy, method="sinkhorn") if n_easy else easy, sinkhorn(hard)])[order]
    np.testing.assert_allclose(P, alone, atol=1e-11)


def test_easy_inputs_do_not_use_newton():
    A = np.random.default_rng(3).random((50, 8, 8)) + 0.01
    P, info = sinkhorn(A, return_info=True)
    assert info.method == "sinkhorn" and info.newton_steps == 0
    np.testing.assert_array_equal(P, sinkhorn(A, method="sinkhorn"))


def test_method_argument():
    A = np.eye(3) + 0.5
    with pytest.raises(InvalidArgumentError, match="method"):
        sinkhorn(A, method="knopp")
    with pytest.raises(InvalidArgumentError, match="tolerance mode"):
        sinkhorn(A, iters=5, method="newton")
    np.testing.assert_allclose(sinkhorn(A, iters=5, method="sinkhorn"), sinkhorn(A, iters=5))


def test_newton_potentials_are_a_minimiser_of_the_dual():
    """At the returned potentials the gradient of phi is the marginal error: <= target."""
    rng = np.random.default_rng(9)
    logA = rng.normal(0, 30, (3, 5, 5))
    f, g, steps, ok = newton_balance(logA, np.zeros((3, 5)), np.zeros((3, 5)), 1e-13)
    P = np.exp(logA + f[..., :, None] + g[..., None, :])
    assert ok.all() and np.abs(P.sum(-1) - 1).max() <= 1e-13 and np.abs(P.sum(-2) - 1).max() <= 1e-13


def test_sinkhorn_mp_newton_reaches_50_digits_on_a_nearly_decomposable_matrix():
    A = [[1.0, 1e-9], [1.0, 1.0]]
    for method in ("auto", "newton"):
        P = sinkhorn_mp(A, dps=50, method=method)
        with mpmath.workdps(60):
            s = mpmath.sqrt(mpmath.mpf(1) / mpmath.mpf(1e-9))
            x = s / (1 + s)
            assert abs(P[0, 0] - x) < mpmath.mpf(10) ** -44 and abs(P[0, 1] - (1 - x)) < mpmath.mpf(10) ** -44
    with pytest.raises(ConvergenceError, match="method='sinkhorn'"):
        sinkhorn_mp(A, dps=50, method="sinkhorn", max_iter=1000)
