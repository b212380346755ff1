"""The statistics behind DEPTH.md's intervals, against known values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.lab.studies.stats import bootstrap_difference, clopper_pearson, compare, wilson


def test_wilson_known_values():
    """Wilson (1927) score interval, z = 1.96: 0 of 10 -> [0, 0.2775]; 5 of 10 -> [0.2366, 0.7634]."""
    lo, hi = wilson(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_clopper_pearson_known_values():
    """Exact interval: 0 of 10 -> [0, 1 - 0.025^(1/10)] = [0, 0.3085]; 10 of 10 -> [0.025^(1/10), 1]."""
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025 ** 0.1, abs=1e-9))
    assert clopper_pearson(10, 10) == (pytest.approx(0.025 ** 0.1, abs=1e-9), 1.0)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 60), st.data())
def test_intervals_contain_the_rate(n, data):
    k = data.draw(st.integers(0, n))
    w, cp = wilson(k, n), clopper_pearson(k, n)
    assert 0 <= w[0] <= k / n <= w[1] <= 1 and 0 <= cp[0] <= k / n <= cp[1] <= 1


def test_bootstrap_is_deterministic_and_covers_a_known_shift():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 0.1, 10), rng.normal(0.0, 0.1, 10)
    d, lo, hi = bootstrap_difference(a, b)
    assert (d, lo, hi) == bootstrap_difference(a, b) and lo < d < hi
    assert lo > 0.8 and hi < 1.2 and compare(lo, hi) == "differs"
    tight = rng.normal(1.0, 0.01, 10)
    same = bootstrap_difference(tight, tight + rng.normal(0, 1e-3, 10))
    assert compare(same[1], same[2], margin=0.05) == "matches"
    assert compare(same[1], same[2]) == "no difference detected"      # no margin stated: no "matches"
    with pytest.raises(ValueError):
        bootstrap_difference([1.0], [1.0, 2.0])


def test_overlapping_three_seed_ranges_are_no_difference_detected_not_a_match():
    """The overclaim the issue names: overlapping 3-seed ranges are not equivalence."""
    kromhc, mhc = [2.29, 2.34, 2.38], [2.27, 2.33, 2.38]
    _, lo, hi = bootstrap_difference(kromhc, mhc)
    assert compare(lo, hi, margin=0.01) == "no difference detected" and not math.isclose(lo, hi)
