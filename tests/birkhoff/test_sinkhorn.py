import itertools

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from birkhoff import (ConvergenceError, NoTotalSupportError, has_total_support, sinkhorn,
                      sinkhorn_logits, sinkhorn_mp)
from strategies import positive_matrix


def margins(P):
    return np.abs(P.sum(-1) - 1).max(), np.abs(P.sum(-2) - 1).max()


@given(positive_matrix(log10_span=4.0))
def test_output_is_ds_within_tol(A):
    P, info = sinkhorn(A, tol=1e-12, return_info=True)
    r, c = margins(P)
    assert r <= 1e-11 and c <= 1e-11 and info.converged
    assert np.allclose(info.r[:, None] * A * info.c[None, :], P, rtol=1e-12, atol=0)


@given(positive_matrix(), st.integers(0, 2**32 - 1))
def test_diagonal_scaling_invariance(A, seed):
    rng = np.random.default_rng(seed)
    n = A.shape[0]
    d1, d2 = 10.0 ** rng.uniform(-3, 3, n), 10.0 ** rng.uniform(-3, 3, n)
    np.testing.assert_allclose(sinkhorn(d1[:, None] * A * d2[None, :]), sinkhorn(A),
                               rtol=1e-9, atol=1e-12)


@given(positive_matrix(), st.data())
def test_permutation_equivariance(A, data):
    n = A.shape[0]
    p = np.array(data.draw(st.permutations(range(n))))
    q = np.array(data.draw(st.permutations(range(n))))
    np.testing.assert_allclose(sinkhorn(A[p][:, q]), sinkhorn(A)[p][:, q], rtol=1e-9, atol=1e-12)


def test_batched_matches_single_and_is_shape_preserving():
    A = np.random.default_rng(0).random((3, 2, 5, 5)) + 0.01
    P = sinkhorn(A)
    assert P.shape == A.shape
    for idx in itertools.product(range(3), range(2)):
        np.testing.assert_allclose(P[idx], sinkhorn(A[idx]), rtol=1e-10, atol=1e-13)


def test_fixed_iters_is_mhc_sk_t():
    """iters=t is exactly t 'normalise rows, then columns' sweeps."""
    A = np.random.default_rng(1).random((4, 4)) + 0.1
    X = A.copy()
    for _ in range(3):
        X = X / X.sum(1, keepdims=True)
        X = X / X.sum(0, keepdims=True)
    np.testing.assert_allclose(sinkhorn(A, iters=3), X, rtol=1e-13)
    np.testing.assert_allclose(sinkhorn_logits(np.log(A), iters=3), X, rtol=1e-12)


def test_log_and_linear_domain_agree():
    A = np.random.default_rng(2).random((6, 6)) + 1e-3
    np.testing.assert_allclose(sinkhorn(A, log_domain=True), sinkhorn(A, log_domain=False),
                               rtol=1e-10, atol=1e-14)


def test_extreme_dynamic_range_no_overflow():
    rng = np.random.default_rng(3)
    A = 10.0 ** rng.uniform(-300, 300, size=(4, 4))
    A[0, 0], A[1, 1] = 1e-300, 1e300
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        P, info = sinkhorn(A, return_info=True)
    assert info.log_domain and np.isfinite(P).all() and max(margins(P)) <= 1e-11
    assert np.isfinite(info.log_r).all() and np.isfinite(info.log_c).all()


def test_huge_logits():
    L = 1e3 * np.random.default_rng(4).standard_normal((8, 4, 4))
    P = sinkhorn_logits(L, iters=20)
    assert np.isfinite(P).all() and (P >= 0).all()
    assert np.abs(P.sum(-2) - 1).max() < 1e-12   # columns are normalised last
    # shifting logit rows scales exp(L)'s rows, which SK_t's first row step removes
    rng = np.random.default_rng(5)
    shifted = L + 1e3 * rng.standard_normal((8, 4, 1))
    np.testing.assert_allclose(sinkhorn_logits(shifted, iters=20), P, rtol=1e-6, atol=1e-12)


def test_no_total_support_witness():
    with pytest.raises(NoTotalSupportError, match=r"entry \(0, 1\)") as e:
        sinkhorn([[1.0, 1.0], [0.0, 1.0]])
    assert e.value.witness == (0, 1)
    with pytest.raises(NoTotalSupportError, match="row 1 is entirely zero"):
        sinkhorn([[1.0, 1.0], [0.0, 0.0]])
    with pytest.raises(NoTotalSupportError, match="no positive entry"):
        sinkhorn(np.zeros((3, 3)))
    with pytest.raises(NoTotalSupportError) as e:
        sinkhorn([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 1.0]]])
    assert e.value.batch_index == (1,) and e.value.witness == (0, 1)


def test_no_total_support_without_perfect_matching():
    A = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    with pytest.raises(NoTotalSupportError, match="no positive diagonal"):
        sinkhorn(A)


@given(st.integers(1, 5).flatmap(lambda n: st.lists(st.booleans(), min_size=n * n,
                                                    max_size=n * n)))
def test_has_total_support_matches_brute_force(bits):
    n = int(round(len(bits) ** 0.5))
    pat = np.array(bits).reshape(n, n)
    covered = np.zeros_like(pat)
    for p in itertools.permutations(range(n)):
        if all(pat[i, p[i]] for i in range(n)):
            covered[np.arange(n), list(p)] = True
    truth = bool(pat.any()) and bool((covered == pat).all())
    assert has_total_support(pat.astype(float)) == truth


def test_fixed_iters_never_raises_on_valid_input():
    for A in ([[1.0, 1.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]], np.zeros((3, 3)),
              [[1e-300, 1e300], [1.0, 0.0]]):
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            P = sinkhorn(A, iters=20)
        assert np.isfinite(P).all()


def test_convergence_error():
    A = np.random.default_rng(5).random((5, 5))
    with pytest.raises(ConvergenceError, match="did not reach") as e:
        sinkhorn(A, tol=1e-15, max_iter=2, method="sinkhorn")
    assert e.value.info.iterations == 2 and "method='sinkhorn'" in str(e.value)


def test_slow_birkhoff_hopf_rate_newton_takes_over():
    """Cross-ratio ~3e7: contraction tanh(log(3e7)/4) ~ 0.9996, so ~6e4 sweeps to 1e-12;
    sweeps alone run out of budget, ``auto`` measures the rate and finishes with Newton."""
    A = np.array([[3.91681092e+03, 7.33598918e+03], [3.10508198e+03, 2.08221281e-04]])
    with pytest.raises(ConvergenceError):
        sinkhorn(A, method="sinkhorn")
    x = np.sqrt(A[0, 0] * A[1, 1]) / (np.sqrt(A[0, 0] * A[1, 1]) + np.sqrt(A[0, 1] * A[1, 0]))
    for kwargs in ({}, {"method": "newton"}, {"method": "sinkhorn", "max_iter": 200_000}):
        P, info = sinkhorn(A, return_info=True, **kwargs)
        np.testing.assert_allclose(P, [[x, 1 - x], [1 - x, x]], rtol=1e-8, atol=1e-12)
    assert sinkhorn(A, return_info=True)[1].method == "sinkhorn+newton"


def test_sinkhorn_mp_closed_form_2x2():
    """DS limit of [[a, b], [c, d]] is [[x, 1-x], [1-x, x]], x = sqrt(ad)/(sqrt(ad)+sqrt(bc))."""
    a, b, c, d = 1.0, 2.0, 3.0, 4.0
    P = sinkhorn_mp([[a, b], [c, d]], dps=50)
    with mpmath.workdps(60):
        x = mpmath.sqrt(a * d) / (mpmath.sqrt(a * d) + mpmath.sqrt(b * c))
        err = max(abs(P[0, 0] - x), abs(P[0, 1] - (1 - x)), abs(P[1, 0] - (1 - x)),
                  abs(P[1, 1] - x))
    assert err < mpmath.mpf(10) ** -40


def test_sinkhorn_mp_agrees_with_float():
    A = np.random.default_rng(6).random((4, 4)) + 0.05
    P = sinkhorn(A, tol=1e-15)
    Pm = sinkhorn_mp(A, dps=40).astype(float)
    assert np.abs(P - Pm).max() < 5e-15


def test_sinkhorn_mp_exact_input_and_support_check():
    from fractions import Fraction as F
    P = sinkhorn_mp([[F(1), F(2)], [F(3), F(4)]], dps=30)
    assert abs(sum(P[0]) - 1) < mpmath.mpf(10) ** -24
    with pytest.raises(NoTotalSupportError):
        sinkhorn_mp([[1, 1], [0, 1]])


@given(st.integers(1, 6), st.integers(0, 5), st.integers(1, 4), st.integers(0, 2 ** 32 - 1))
def test_batches_mixing_converged_and_unconverged_matrices(n_ds, n_hard, max_iter, seed):
    """Any max_iter on a batch of converged (DS) and unconverged matrices: a result or ConvergenceError."""
    rng = np.random.default_rng(seed)
    n = 4
    ds = np.full((n_ds, n, n), 1.0 / n)
    hard = rng.random((n_hard, n, n)) ** 8 + 1e-3
    A = rng.permutation(np.concatenate([ds, hard]))
    try:
        P, info = sinkhorn(A, max_iter=max_iter, tol=1e-12, return_info=True)
    except ConvergenceError as exc:
        assert not exc.info.converged.all()
        return
    assert info.converged.all() and np.allclose(P.sum(-1), 1, atol=1e-12)


def test_zero_sweeps_is_the_identity_map():
    A = np.random.default_rng(1).random((2, 3, 3)) * 7
    for log_domain in (False, True):
        assert np.array_equal(sinkhorn(A, iters=0, log_domain=log_domain), A)
    np.testing.assert_array_equal(sinkhorn_logits(np.log(A), iters=0), np.exp(np.log(A)))
