"""Hypothesis strategies shared by the tests: DS matrices, permutations, adversarial scales.

Where a case family also appears in ``proofs_checks``, the strategy draws a seed and
calls the same seeded generator (``birkhoff.testing.generators``).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import strategies as st

from birkhoff import from_permutations
from birkhoff.testing import generators


@st.composite
def permutations(draw, n: int):
    return np.array(draw(st.permutations(list(range(n)))), dtype=np.int64)


@st.composite
def fraction_weights(draw, k: int):
    """k positive Fractions summing to exactly 1."""
    raw = draw(st.lists(st.integers(1, 1000), min_size=k, max_size=k))
    total = sum(raw)
    return np.array([Fraction(r, total) for r in raw], dtype=object)


@st.composite
def exact_ds(draw, n_min: int = 1, n_max: int = 6, k_max: int = 6):
    """An exactly doubly stochastic Fraction matrix: convex combination of permutations."""
    n = draw(st.integers(n_min, n_max))
    k = draw(st.integers(1, k_max))
    perms = np.stack([draw(permutations(n)) for _ in range(k)])
    return from_permutations(draw(fraction_weights(k)), perms)


# floats spanning many binades, including subnormals and the extremes of float64
wide_floats = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False,
                        allow_subnormal=True)
signed_floats = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False,
                          allow_infinity=False, allow_subnormal=True)


@st.composite
def square(draw, elements=st.floats(0.0, 10.0), n_min: int = 1, n_max: int = 6):
    n = draw(st.integers(n_min, n_max))
    vals = draw(st.lists(elements, min_size=n * n, max_size=n * n))
    return np.array(vals, dtype=np.float64).reshape(n, n)


@st.composite
def positive_matrix(draw, n_min: int = 1, n_max: int = 6, log10_span: float = 3.0):
    """Strictly positive float matrix with entries 10**U(-span/2, span/2)."""
    n = draw(st.integers(n_min, n_max))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return generators.positive_matrix(rng, n, log10_span)


@st.composite
def seeded_exact_ds(draw, n_max: int = 8, dyadic: bool = False):
    """The claims' generator of exact DS matrices, under hypothesis."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return generators.exact_ds(rng, draw(st.integers(1, n_max)), dyadic=dyadic)


ILL_SCALED_KINDS = ("span", "dominant", "signed", "rank-one")


@st.composite
def ill_scaled(draw, n_min: int = 1, n_max: int = 8, kinds: tuple[str, ...] = ILL_SCALED_KINDS):
    """Finite matrices that float arithmetic finds hard: entries spanning 1e-300..1e300 ("span"), one
    entry 1e10..1e300 above O(1) ones ("dominant"), N(0, 1) at a scale 1e-300..1e300 ("signed"),
    an outer product at 1e-150..1e150 ("rank-one")."""
    kind = draw(st.sampled_from(kinds))
    n = draw(st.integers(n_min, n_max))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "span":
        return 10.0 ** rng.uniform(-300, 300, (n, n)) * rng.choice([-1.0, 1.0], (n, n))
    if kind == "dominant":
        A = rng.standard_normal((n, n))
        A[rng.integers(n), rng.integers(n)] = 10.0 ** rng.uniform(10, 300)
        return A
    if kind == "signed":
        return rng.standard_normal((n, n)) * 10.0 ** rng.uniform(-300, 300)
    return np.outer(rng.standard_normal(n), rng.standard_normal(n)) * 10.0 ** rng.uniform(-150, 150)
