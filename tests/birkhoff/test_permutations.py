import math
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from birkhoff import (InvalidArgumentError, InvalidMatrixError, all_permutations, certify, cyclic_permutations,
                      from_permutations, permutation_matrix)
from strategies import fraction_weights, permutations


@given(st.integers(1, 7).flatmap(permutations))
def test_permutation_matrix_convention(p):
    P = permutation_matrix(p)
    x = np.arange(p.size) * 10
    assert np.array_equal(P @ x, x[p]) and certify(P).exact


def test_all_permutations_order_and_count():
    for n in range(1, 6):
        A = all_permutations(n)
        assert A.shape == (math.factorial(n), n) and np.array_equal(A[0], np.arange(n))
        assert len({tuple(r) for r in A}) == len(A)
        assert [tuple(r) for r in A] == sorted(tuple(r) for r in A)   # lexicographic
    with pytest.raises(InvalidArgumentError):
        all_permutations(9)


def test_cyclic():
    C = cyclic_permutations(4)
    assert np.array_equal(C[0], np.arange(4)) and np.array_equal(C[1], [1, 2, 3, 0])


@given(st.integers(1, 4).flatmap(lambda n: st.tuples(st.just(n), fraction_weights(math.factorial(n)))))
def test_from_permutations_exact_ds(nw):
    n, w = nw
    H = from_permutations(w, all_permutations(n))
    assert H.dtype == object and certify(H).exact


def test_from_permutations_batched_float():
    w = np.random.default_rng(0).dirichlet(np.ones(4), size=(2, 3))
    H = from_permutations(w, cyclic_permutations(4))
    assert H.shape == (2, 3, 4, 4) and np.allclose(H.sum(-1), 1) and np.allclose(H.sum(-2), 1)
    for idx in np.ndindex(2, 3):                  # one weight vector takes its own path: the same sums, bit for bit
        assert np.array_equal(from_permutations(w[idx], cyclic_permutations(4)), H[idx])


@given(st.integers(1, 12), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_one_weight_vector_sums_as_a_batch_of_one(n, K, seed):
    """``from_permutations`` of ``(K,)`` weights (``weighted_sum``, what BvN's check uses) gives the bits of the
    batched path, weights from 1e-180 to 1e180 included."""
    rng = np.random.default_rng(seed)
    perms = np.array([rng.permutation(n) for _ in range(K)])
    w = np.ldexp(rng.random(K), rng.integers(-600, 600, K))
    assert np.array_equal(from_permutations(w, perms), from_permutations(w[None], perms)[0])


def test_from_permutations_errors():
    with pytest.raises(InvalidMatrixError, match="not a permutation"):
        from_permutations([1.0], [[0, 0]])
    with pytest.raises(InvalidMatrixError, match="shape"):
        from_permutations([0.5, 0.5], [[0, 1]])
    with pytest.raises(InvalidMatrixError, match="nonnegative"):
        from_permutations([F(-1)], [[0, 1]])
