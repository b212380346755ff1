from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from birkhoff import (InvalidArgumentError, InvalidMatrixError, certify, kron, kron_apply, kron_factor_sizes,
                      kromhc_factor, sinkhorn)
from strategies import exact_ds


@given(st.lists(exact_ds(n_max=3, k_max=3), min_size=1, max_size=3))
def test_kron_of_exact_ds_is_exact_ds(factors):
    H = kron(*factors)
    c = certify(H)
    assert H.dtype == object and c.exact and c.doubly_stochastic
    assert c.spectral_norm == (1.0, 1.0)


@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 4), min_size=1, max_size=3),
       st.integers(1, 5))
def test_kron_apply_matches_dense(seed, sizes, C):
    rng = np.random.default_rng(seed)
    U = [sinkhorn(rng.random((k, k)) + 0.1) for k in sizes]
    H = kron(*U)
    n = H.shape[0]
    x = rng.standard_normal((3, n, C))
    np.testing.assert_allclose(kron_apply(U, x), np.einsum("ij,bjc->bic", H, x), atol=1e-12)
    v = rng.standard_normal((2, n))
    np.testing.assert_allclose(kron_apply(U, v, axis=-1), v @ H.T, atol=1e-12)


def test_kron_apply_exact_and_axis():
    U = [kromhc_factor(F(1, 3)), kromhc_factor(F(1, 4))]
    x = np.arange(8).reshape(4, 2)              # streams x in R^{4 x 2}
    y = kron_apply(U, x)
    assert (y == kron(*U).dot(x.astype(object))).all()
    assert (kron_apply(U, np.arange(4)) == kron(*U).dot(np.arange(4).astype(object))).all()
    with pytest.raises(InvalidMatrixError, match="stream axis"):
        kron_apply(U, np.ones((3, 5)))


def test_kromhc_factor():
    A = kromhc_factor(np.array([0.0, 0.25, 1.0]))
    assert A.shape == (3, 2, 2) and np.allclose(A.sum(-1), 1) and np.allclose(A.sum(-2), 1)
    assert certify(kromhc_factor(F(2, 7))).exact
    for bad in (-0.1, 1.5, np.nan, [0.5, [0.5]], "0.5"):
        with pytest.raises(InvalidArgumentError):
            kromhc_factor(bad)


def test_factor_sizes():
    assert kron_factor_sizes(16) == [2, 2, 2, 2]
    assert kron_factor_sizes(12) == [2, 2, 3] and kron_factor_sizes(12, max_factor=4) == [3, 4]
    assert kron_factor_sizes(7) == [7] and kron_factor_sizes(1) == [1]
    for n in range(1, 200):
        assert int(np.prod(kron_factor_sizes(n))) == n
    with pytest.raises(InvalidArgumentError):
        kron_factor_sizes(0)


def test_kron_refuses_products_too_large_to_form():
    with pytest.raises(InvalidArgumentError, match="kron_apply"):
        kron(*[np.full((2, 2), 0.5)] * 40)
    with pytest.raises(InvalidArgumentError, match="exact"):
        kron(*[np.array([[F(1, 2)] * 2] * 2, dtype=object)] * 40)


@pytest.mark.parametrize("x", [1e155, 1e200, 1e300])
def test_an_overflowing_float_product_is_an_error_not_inf(x):
    """Finite factors whose products leave the float range used to give inf/NaN silently."""
    U, V = np.array([[x, 0.0], [0.0, x]]), np.array([[x, 1.0], [1.0, x]])
    with pytest.raises(InvalidMatrixError, match="overflows"):
        kron(U, V)
    with pytest.raises(InvalidMatrixError, match="overflows"):
        kron_apply([U, V], np.full(4, x))
    with pytest.raises(InvalidMatrixError, match="overflows"):     # 1e154^3 > 1.8e308
        kron_apply([U / x * 1e154, V / x * 1e154], np.full(4, 1e154))
    exact = kron([[F(x), 0], [0, F(x)]], [[F(x), 1], [1, F(x)]])
    assert exact[0, 0] == F(x) ** 2                     # exact input: the exact product
