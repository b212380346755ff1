from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from birkhoff import (InvalidArgumentError, NotDoublyStochasticError, certify, certify_product,
                      from_permutations, permutation_matrix, quantize, sinkhorn)
from strategies import exact_ds


def check(Q, scale, P):
    Pq = P.astype(object) * F(1) if P.dtype != object else P
    assert Q.dtype == np.int64 and (Q >= 0).all() and (Q <= scale).all()
    assert (Q.sum(0) == scale).all() and (Q.sum(1) == scale).all()
    assert all(abs(q - scale * p) < 1 for q, p in zip(Q.flat, Pq.flat))   # exact comparison
    assert certify(Q.astype(object) * F(1, scale)).exact


@given(st.integers(0, 2**32 - 1), st.integers(1, 16), st.sampled_from([1, 2, 7, 127, 255, 1000]))
def test_random_float_ds(seed, n, scale):
    P = sinkhorn(np.random.default_rng(seed).random((n, n)) + 1e-3, tol=1e-14)
    check(*quantize(P, scale), P)


@given(exact_ds(n_max=8, k_max=8), st.integers(1, 300))
def test_exact_ds(P, scale):
    check(*quantize(P, scale), P)


def test_adversarial():
    half = np.full((2, 2), 0.5)                           # every entry exactly at .5
    check(*quantize(half, 1), half)
    check(*quantize(half, 3), half)
    eye = permutation_matrix([2, 0, 1]).astype(float)     # integral already
    Q, _ = quantize(eye, 127)
    assert (Q == 127 * eye).all()
    third = np.array([[F(1, 3)] * 3] * 3, dtype=object)   # scale 1: a permutation matrix
    Q, _ = quantize(third, 1)
    assert sorted(Q.sum(0)) == [1, 1, 1] and set(Q.flat) == {0, 1}
    tiny = np.array([[1 - 1e-300, 1e-300], [1e-300, 1 - 1e-300]])  # underflowing products
    check(*quantize(tiny, 127, tol=1e-9), tiny)


def test_naive_rounding_breaks_margins_ours_never():
    rng = np.random.default_rng(0)
    broken = 0
    for _ in range(50):
        P = sinkhorn(rng.random((8, 8)), tol=1e-14)
        naive = np.round(127 * P)
        broken += not ((naive.sum(0) == 127).all() and (naive.sum(1) == 127).all())
        check(*quantize(P, 127), P)
    assert broken >= 40      # naive rounding fails on most random matrices


def test_deep_product_of_quantized_stays_gain_one():
    rng = np.random.default_rng(1)
    chain = [quantize(sinkhorn(rng.random((4, 4))), 127)[0].astype(object) * F(1, 127)
             for _ in range(30)]
    c = certify_product(np.stack(chain))
    assert c.exact and c.gain_forward == (1.0, 1.0) and c.gain_backward == (1.0, 1.0)


def test_errors():
    with pytest.raises(NotDoublyStochasticError, match="tol"):
        quantize([[0.5, 0.5], [0.5, 0.4]])
    for bad in (0, -3, 1.5, True):
        with pytest.raises(InvalidArgumentError):
            quantize(np.eye(2), bad)


@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.sampled_from([1, 2, 7, 127]))
def test_closest_is_l1_optimal_by_brute_force(seed, n, scale):
    """closest=True minimises sum |Q - scale P| over every rounding with exact margins."""
    import itertools
    P = sinkhorn(np.random.default_rng(seed).random((n, n)) + 1e-3, tol=1e-14)
    Q, _ = quantize(P, scale, closest=True)
    check(Q, scale, P)
    F0 = np.floor(scale * P).astype(np.int64)
    best = min(np.abs(F0 + np.array(bits).reshape(n, n) - scale * P).sum()
               for bits in itertools.product((0, 1), repeat=n * n)
               if ((F0 + np.array(bits).reshape(n, n)).sum(0) == scale).all()
               and ((F0 + np.array(bits).reshape(n, n)).sum(1) == scale).all())
    assert np.abs(Q - scale * P).sum() <= best + 1e-9
    assert np.abs(Q - scale * P).sum() <= np.abs(quantize(P, scale)[0] - scale * P).sum() + 1e-9


def test_closest_picks_the_nearest_rounding():
    P = np.array([[0.9, 0.1, 0.0], [0.1, 0.0, 0.9], [0.0, 0.9, 0.1]])
    Q, _ = quantize(P, 1, closest=True)
    assert (Q == np.round(P)).all()
    exact = np.array([[F(2, 3), F(1, 3)], [F(1, 3), F(2, 3)]], dtype=object)
    assert (quantize(exact, 1, closest=True)[0] == np.eye(2)).all()


@pytest.mark.parametrize("scale", [2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 70, 10 ** 30])
def test_scales_past_int64_and_float_precision(scale):
    """Big scales round in exact arithmetic; past 2^63 the integers are Python ints."""
    w = np.array([F(3, 7), F(2, 7), F(1, 7), F(1, 7)], dtype=object)
    P = from_permutations(w, [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1]])
    for closest in (False, True):
        Q, s = quantize(P, scale, closest=closest)
        assert s == scale and Q.dtype == (np.int64 if scale < 2 ** 63 else object)
        assert all(sum(int(q) for q in row) == scale for row in Q)
        assert all(sum(int(Q[i, j]) for i in range(3)) == scale for j in range(3))
        assert all(abs(int(Q[i, j]) - P[i, j] * scale) < 1 for i in range(3) for j in range(3))
