"""Certificates at the edge of the float range: never NaN, never a bound that misses the exact truth.

Chains whose products overflow float64 (entries up to 1e308, exact integers past it),
signed and nonnegative, are certified and every interval is checked against the exact
rational product.
"""

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from birkhoff import certify, certify_product, composite_lipschitz_bound, hc_lipschitz_bound
from birkhoff.exact import mul_up

SCALES = st.sampled_from([0.0, 1e-300, 1e-150, 1.0, 3.0, 1e100, 1e200, 1e300, 1.7e308])


@st.composite
def chains(draw, signed: bool):
    n = draw(st.integers(1, 3))
    L = draw(st.integers(1, 4))
    mant = st.floats(-1.0 if signed else 0.0, 1.0, allow_nan=False)
    return np.array([[[draw(mant) * draw(SCALES) for _ in range(n)] for _ in range(n)] for _ in range(L)])


def _exact_product(Ms) -> list[list[Fraction]]:
    P = None
    for M in Ms:
        F = [[Fraction(v) for v in row] for row in M]
        P = F if P is None else [[sum(F[i][k] * P[k][j] for k in range(len(F))) for j in range(len(F))]
                                 for i in range(len(F))]
    return P


def _contains(iv, truth: Fraction) -> bool:
    lo, hi = iv
    return not (math.isnan(lo) or math.isnan(hi)) and lo <= truth <= hi


def _check(cert, P) -> None:
    fields = [cert.row_residual, cert.col_residual, *cert.spectral_radius, *cert.spectral_norm,
              *cert.gain_forward, *cert.gain_backward]
    assert not any(math.isnan(v) for v in fields)
    n = len(P)
    gf = max(sum(abs(v) for v in row) for row in P)
    gb = max(sum(abs(P[i][j]) for i in range(n)) for j in range(n))
    assert _contains(cert.gain_forward, gf) and _contains(cert.gain_backward, gb)
    assert max(abs(sum(row) - 1) for row in P) <= cert.row_residual
    assert max(abs(sum(P[i][j] for i in range(n)) - 1) for j in range(n)) <= cert.col_residual
    d = json.loads(cert.to_json())
    for name in ("spectral_radius", "gain_forward", "row_residual"):     # null only for an infinite end, listed
        values = d[name] if isinstance(d[name], list) else [d[name]]
        assert None not in values or name in d["infinite"], (name, d[name])


@settings(max_examples=150)
@given(chains(signed=False))
def test_nonnegative_chains_near_overflow(Ms):
    _check(certify_product(Ms), _exact_product(Ms))


@settings(max_examples=150)
@given(chains(signed=True))
def test_signed_chains_near_overflow(Ms):
    _check(certify_product(Ms), _exact_product(Ms))
    _check(certify(Ms[0]), _exact_product(Ms[:1]))


@pytest.mark.parametrize("Ms", [np.full((3, 2, 2), 1e200), np.full((1, 2, 2), 1e308), np.stack([3 * np.eye(2)] * 1000),
                                np.stack([1e-200 * np.ones((2, 2))] * 5)])
def test_reported_cases(Ms):
    c = certify_product(Ms)
    assert not any(math.isnan(v) for v in (*c.gain_forward, *c.spectral_radius, c.row_residual))
    if Ms.shape[0] == 1000:                                        # 3^1000 overflows: [.., inf]
        assert c.gain_forward[1] == math.inf and Fraction(c.gain_forward[0]) <= 3 ** 1000


def test_exact_chain_beyond_float_range():
    big = np.array([[Fraction(10 ** 400), Fraction(0)], [Fraction(0), Fraction(1)]], dtype=object)
    c = certify_product(np.stack([big, big]))
    assert c.gain_forward[1] == math.inf and not math.isnan(c.gain_forward[0])
    assert certify(big).gain_forward == (float(np.finfo(float).max), math.inf)


def test_mul_up_and_lipschitz_with_infinite_norms():
    assert mul_up(np.inf, 0.0) == 0.0 and mul_up(0.0, np.inf) == 0.0 and mul_up(np.inf, 2.0) == np.inf
    assert mul_up(np.nan, 2.0) == np.inf
    H = np.full((2, 2), 1e308)
    assert hc_lipschitz_bound(H, [1e308, 1e308], [1, 1], lip_f=0) == math.inf
    assert composite_lipschitz_bound([(H, [1e308, 1e308], [1, 1], 0.0)] * 2) == math.inf


@pytest.mark.parametrize("gap, radius", [(1e200, 2e200), (1e300, 1e300), (1e160, 1e160)])
def test_discs_whose_centre_distance_squares_past_the_float_range_still_touch(gap, radius):
    """Gershgorin discs ``|z - gap| <= 1`` and ``|z| <= radius`` touch (``gap <= 1 + radius``): the disc of the
    larger floor is not isolated, so the radius floor is the smaller one, though ``gap**2`` overflows."""
    from birkhoff.enclose import _component_floor

    centres = np.array([gap, 0.0])
    zeros = np.zeros(2)
    R = np.array([1.0, radius])
    floors = np.array([gap - 1.0, -radius])
    assert _component_floor((centres, centres, zeros, zeros), R, floors) == -radius
