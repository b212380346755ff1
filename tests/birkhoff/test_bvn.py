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
    assert d.residual <= 1e-12 and d.residual == np.abs(d.matrix() - P).max()    # the reconstruction's own bits
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


def assert_bottleneck_steps(P: np.ndarray) -> None:
    """Every term's weight is the max over all n! permutations inside the remainder's support of the
    smallest entry along it (brute force), the remainder zeroed at bvn's noise level as it goes."""
    from itertools import permutations as all_perms

    n = P.shape[0]
    noise = 4 * n * np.finfo(float).eps * P.max()
    R = np.where(P <= noise, 0.0, P)
    rows = np.arange(n)
    d = bvn_decompose(P)
    for weight, sigma in zip(d.weights, d.perms):
        assert weight == max(R[rows, list(p)].min() for p in all_perms(range(n)))
        R[rows, sigma] -= weight
        R[R <= noise] = 0.0
    assert not R.any()


def random_combination(rng: np.random.Generator, n: int, k: int, levels: int | None) -> np.ndarray:
    w = rng.random(k) if levels is None else rng.integers(1, levels + 1, k).astype(float)
    return from_permutations(w / w.sum(), np.array([rng.permutation(n) for _ in range(k)]))


@given(st.integers(1, 6), st.integers(1, 12), st.integers(0, 2**32 - 1), st.sampled_from([None, 3]))
def test_each_term_is_the_bottleneck_permutation(n, k, seed, levels):
    """Whichever path found it (the matching at the top candidate, the lexicographic assignment, the
    gallop upward); ties (few weight levels) included."""
    assert_bottleneck_steps(random_combination(np.random.default_rng(seed), n, k, levels))


def test_gallop_repairs_a_poor_lexicographic_answer(monkeypatch):
    """If the weighted assignment returns a feasible but poor permutation (its window too short, say),
    the gallop upward still ends at the bottleneck."""
    from itertools import permutations as all_perms

    import birkhoff.bvn as bvn

    def worst_feasible(Rf, high, window):
        rows = np.arange(Rf.shape[0])
        feasible = [p for p in all_perms(range(Rf.shape[0])) if (Rf[rows, list(p)] > 0).all()]
        return np.array(min(feasible, key=lambda p: Rf[rows, list(p)].min())) if feasible else None

    monkeypatch.setattr(bvn, "_lexicographic", worst_feasible)
    monkeypatch.setenv("BIRKHOFF_COMPILED", "0")      # the numpy path's steps (a loaded compiled twin would skip them)
    rng = np.random.default_rng(7)
    for _ in range(30):
        assert_bottleneck_steps(random_combination(rng, int(rng.integers(3, 7)), int(rng.integers(4, 13)), None))


def test_a_decomposition_that_fails_its_reconstruction_check_is_refused(monkeypatch):
    """The full float decomposition is checked before it is returned: a bottleneck search that
    gives up early (here: after one term) leaves a remainder that the margins do not allow."""
    import importlib

    from birkhoff import ConvergenceError

    mod = importlib.import_module("birkhoff.bvn")
    real_bottleneck, calls = mod._bottleneck, []

    def one_term(*args):
        calls.append(1)
        return real_bottleneck(*args) if len(calls) == 1 else None

    monkeypatch.setattr(mod, "_bottleneck", one_term)
    monkeypatch.setenv("BIRKHOFF_COMPILED", "0")      # the numpy path's steps (a loaded compiled twin would skip them)
    P = np.full((3, 3), 1 / 3)
    P[0] += [0.1, -0.1, 0.0]
    P[1] += [-0.1, 0.1, 0.0]
    with pytest.raises(ConvergenceError, match="reconstruction error"):
        bvn_decompose(P)
