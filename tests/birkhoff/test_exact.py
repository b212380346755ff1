"""The outward-rounded primitives never claim less than the exact rational truth."""

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from birkhoff.exact import (div_down, div_up, fraction_interval, matmul_enclosure, mul_up,
                            neumann_triangular_up, sqrt_down, sqrt_up, sum_enclosure)
from strategies import signed_floats, wide_floats

F = Fraction
finite = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True)


@given(st.lists(signed_floats, min_size=1, max_size=12), st.sampled_from([0.0, -1.0, 1e-300]))
def test_sum_enclosure_contains_exact_sum(xs, offset):
    lo, hi = sum_enclosure(np.array([xs]), -1, offset)
    exact = sum((F(x) for x in xs), F(offset))
    assert F(float(lo[0])) <= exact <= F(float(hi[0]))
    if lo[0] == hi[0]:
        assert F(float(lo[0])) == exact
    if exact == 0:
        assert lo[0] == hi[0] == 0.0


@given(st.lists(st.floats(0, 1), min_size=2, max_size=8))
def test_sum_enclosure_decides_zero_residual(xs):
    """Residuals against 1 are exactly zero iff the rational sum is exactly 1."""
    xs = xs + [float(F(1) - sum(F(x) for x in xs))] if abs(1 - sum(xs)) < 1 else xs
    lo, hi = sum_enclosure(np.array([xs]), -1, -1.0)
    exact = sum((F(x) for x in xs), F(-1))
    assert (lo[0] == hi[0] == 0.0) == (exact == 0)


def test_issue_examples():
    lo, hi = sum_enclosure(np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]]), -1, -1.0)
    assert 0.1 + 0.2 + 0.7 == 1.0            # float64 says 1 ...
    assert hi[0] > 0 or lo[0] < 0            # ... but the stored row does not sum to 1
    assert lo[1] == hi[1] == 0.0             # this one does, exactly


def test_sum_enclosure_fraction_arrays():
    M = np.array([[F(1, 3), F(2, 3)], [F(1, 3), F(1, 3)]], dtype=object)
    lo, hi = sum_enclosure(M, -1, -1.0)
    assert lo[0] == hi[0] == 0.0
    assert F(float(lo[1])) <= F(-1, 3) <= F(float(hi[1])) and lo[1] < hi[1]


def test_sum_enclosure_overflow_is_still_rigorous():
    lo, hi = sum_enclosure(np.array([[1e308, 1e308, -1e308]]), -1)
    assert lo[0] == hi[0] == 1e308


@given(finite, finite)
def test_mul_up_is_upper(a, b):
    u = mul_up(np.float64(a), np.float64(b))
    if np.isfinite(u):
        assert F(float(u)) >= F(a) * F(b)


@given(wide_floats)
def test_sqrt_brackets(x):
    up, down = float(sqrt_up(np.float64(x))), float(sqrt_down(np.float64(x)))
    assert F(down) ** 2 <= F(x) <= F(up) ** 2


@given(finite, st.floats(min_value=1e-300, max_value=1e300))
def test_div_brackets(a, b):
    up, down = float(div_up(np.float64(a), np.float64(b))), float(div_down(np.float64(a), np.float64(b)))
    if np.isfinite(up) and np.isfinite(down):
        assert F(down) * F(b) <= F(a) <= F(up) * F(b)


def test_exact_values_stay_exact():
    assert float(sqrt_up(np.float64(1.0))) == 1.0 and float(sqrt_down(np.float64(4.0))) == 2.0
    assert float(mul_up(np.float64(0.5), np.float64(3.0))) == 1.5
    assert float(div_up(np.float64(1.0), np.float64(4.0))) == 0.25


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.floats(1e-200, 1e200))
def test_matmul_enclosure_contains_exact_product(seed, n, scale):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) * scale
    B = rng.standard_normal((n, n)) / scale
    lo, hi = matmul_enclosure(A, A, B, B)
    Aq = np.vectorize(F, otypes=[object])(A)
    Bq = np.vectorize(F, otypes=[object])(B)
    C = Aq.dot(Bq)
    for (i, j), c in np.ndenumerate(C):
        assert F(float(lo[i, j])) <= c <= F(float(hi[i, j]))


@given(st.integers(0, 2**32 - 1), st.integers(1, 7), st.sampled_from([1e-300, 1.0, 1e30, 1e150]),
       st.floats(0.0, 0.999))
def test_triangular_neumann_bound_is_above_the_exact_series_and_close_to_it(seed, n, scale, top):
    """``(I - A)^-1 B`` in exact rationals (back substitution) against the float bound: above it, and within
    ``1e-12`` relative plus the underflow slack, ``inf`` only past the float range; ``A``'s strict upper
    part large (the series grows)."""
    rng = np.random.default_rng(seed)
    A = np.triu(rng.random((n, n)) * scale, 1) + np.diag(rng.random(n) * top)
    B = rng.random((n, n)) / scale
    Z = neumann_triangular_up(A, B)
    Aq, Bq = (np.vectorize(F, otypes=[object])(X) for X in (A, B))
    exact = np.zeros((n, n), dtype=object)
    for i in range(n - 1, -1, -1):
        exact[i] = (Bq[i] + Aq[i, i + 1:].dot(exact[i + 1:])) / (1 - Aq[i, i])
    for (i, j), z in np.ndenumerate(exact):
        if np.isinf(Z[i, j]):                             # an overflow: only past the float range
            assert z > F(10) ** 300
        else:
            assert z <= F(float(Z[i, j])) <= z * (1 + F(1, 10 ** 12)) + F(2) ** -1000


def test_matmul_enclosure_with_interval_inputs():
    Q = np.array([[F(1, 3), F(2, 3)], [F(2, 3), F(1, 3)]], dtype=object)
    lo, hi = fraction_interval(Q)
    P_lo, P_hi = matmul_enclosure(lo, hi, lo, hi)
    exact = Q.dot(Q)
    for (i, j), c in np.ndenumerate(exact):
        assert F(float(P_lo[i, j])) <= c <= F(float(P_hi[i, j]))


@given(st.lists(st.lists(signed_floats, min_size=1, max_size=6), min_size=1, max_size=24),
       st.sampled_from([0.0, -1.0]))
def test_sum_enclosure_of_many_rows_that_nearly_cancel(rows, offset):
    """Rows whose sum is within rounding of zero go to the vectorised error-free distillation (and
    the exact per-row sum only when it cannot decide): every row still encloses its rational sum, a
    point interval is the exact sum, and an exactly zero sum is the point 0."""
    width = max(len(r) for r in rows) + 1
    M = np.zeros((len(rows), width))
    for i, xs in enumerate(rows):
        rest = -(sum((F(x) for x in xs), F(offset)))
        closing = float(rest) if abs(rest) < F(1.7e308) else 0.0      # the float nearest the sum's negation
        M[i, :len(xs) + 1] = xs + [closing]
    lo, hi = sum_enclosure(M, -1, offset)
    for i in range(len(rows)):
        exact = sum((F(float(x)) for x in M[i]), F(offset))
        assert F(float(lo[i])) <= exact <= F(float(hi[i]))
        if lo[i] == hi[i]:
            assert F(float(lo[i])) == exact
        if exact == 0:
            assert lo[i] == hi[i] == 0.0
