from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from birkhoff import (InvalidMatrixError, NotDoublyStochasticError, bvn_decompose, certify,
                      from_permutations, marcus_ree_bound, permutation_matrix, sinkhorn)
from strategies import exact_ds, permutations


@given(exact_ds(n_max=8, k_max=12))
def test_exact_round_trip_and_bound(P):
    d = bvn_decompose(P)
    n = P.shape[0]
    assert d.exact and sum(d.weights) == 1 and d.residual == 0.0
    assert (from_permutations(d.weights, d.perms) == P).all()
    assert (d.matrix() == P).all()
    assert len(d) <= marcus_ree_bound(n)
    assert all(w > 0 for w in d.weights)


@given(st.integers(0, 2**32 - 1), st.integers(1, 24))
def test_float_reconstruction_and_bound(seed, n):
    P = sinkhorn(np.random.default_rng(seed).random((n, n)) + 1e-3, tol=1e-14)
    d = bvn_decompose(P)
    assert len(d) <= marcus_ree_bound(n)
    assert d.residual <= 1e-12 and np.abs(d.matrix() - P).max() <= 1e-12
    assert abs(d.weights.sum() - 1) <= 1e-12 and (d.weights > 0).all()


def test_sinkhorn_64_reconstructs_to_1e_12():
    P = sinkhorn(np.random.default_rng(0).random((64, 64)), tol=1e-14)
    d = bvn_decompose(P)
    assert np.abs(d.matrix() - P).max() <= 1e-12 and len(d) <= marcus_ree_bound(64)


@given(st.integers(1, 8).flatmap(permutations))
def test_permutation_is_one_term(p):
    d = bvn_decompose(permutation_matrix(p))
    assert len(d) == 1 and np.array_equal(d.perms[0], p) and d.weights[0] == 1


def test_bottleneck_recovers_sparse_combinations():
    """Few, well separated terms are found back, not smeared into many small ones."""
    perms = np.array([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0], [4, 3, 2, 1, 0]])
    w = np.array([F(1, 2), F(1, 3), F(1, 6)], dtype=object)
    d = bvn_decompose(from_permutations(w, perms))
    assert len(d) == 3 and sorted(d.weights) == sorted(w)


def test_exact_true_on_float_input():
    P = np.full((4, 4), 0.25)
    d = bvn_decompose(P, exact=True)
    assert d.exact and (d.matrix() == P.astype(object) * F(1)).all()
    with pytest.raises(NotDoublyStochasticError, match="exactly"):
        bvn_decompose(np.full((3, 3), 1 / 3), exact=True)   # floats of 1/3 are not exact


def test_not_ds_message_has_residual():
    with pytest.raises(NotDoublyStochasticError, match=r"column sum - 1\| <= 1\.000e\+00"):
        bvn_decompose([[1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(NotDoublyStochasticError):
        bvn_decompose([[F(1, 2), F(1, 2)], [F(1, 2), F(1, 3)]])
    with pytest.raises(InvalidMatrixError):
        bvn_decompose([[0.5, -0.5], [0.5, 1.5]])


def test_max_terms_truncates():
    P = sinkhorn(np.random.default_rng(1).random((6, 6)))
    d = bvn_decompose(P, max_terms=3)
    assert len(d) == 3 and d.residual > 1e-6
    assert certify(d.matrix(), tol=1.0).nonnegative


@given(st.integers(2, 5), st.lists(st.integers(300, 400), min_size=1, max_size=4), st.integers(0, 2 ** 32 - 1))
def test_exact_mode_below_the_float_range(n, exponents, seed):
    """Weights like 1/10^350 underflow float64; exact mode must decompose them exactly all the same."""
    rng = np.random.default_rng(seed)
    tiny = [F(1, 10 ** e) for e in exponents]
    w = tiny + [1 - sum(tiny, F(0))]
    perms = np.array([rng.permutation(n) for _ in w])
    P = from_permutations(np.array(w, dtype=object), perms)
    d = bvn_decompose(P)
    assert d.exact and (d.matrix() == P).all() and sum(d.weights, F(0)) == 1
