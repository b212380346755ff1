"""Statistics a reviewer accepts: rates with 95 % intervals, differences with a bootstrap interval,
and the page's verdict vocabulary with its rules.

* A **rate** ``k / n`` (stable, diverged, spiked runs) is reported with its Wilson score interval
  ``(p + z^2/2n -+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n)``, ``z = 1.96``, and, where
  an exact one is wanted, the Clopper-Pearson interval (Beta quantiles).
* A **difference of means** over seeds (``mean(a) - mean(b)``) is reported with a percentile
  bootstrap interval: ``B`` resamples of each group's seeds with replacement, the 2.5 % and 97.5 %
  quantiles of the resampled differences (a fixed generator seed, so a page regenerates exactly).
* **Verdicts** (:data:`VERDICTS`): a difference is a difference only when its interval excludes 0;
  "matches" needs a stated margin and the whole interval inside ``[-margin, margin]``; otherwise
  "no difference detected".
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["VERDICTS", "wilson", "clopper_pearson", "bootstrap_difference", "compare", "Z95"]

Z95 = 1.959963984540054                 # the standard normal's 97.5 % quantile

# the page's vocabulary, each with the rule that earns it
VERDICTS = {
    "reproduced": "the source's claim holds here: its effect is present with an interval that excludes no effect",
    "not reproduced": "the effect the source reports is absent here: its interval includes no effect",
    "contradicted": "the opposite effect, with an interval that excludes no effect",
    "no difference detected": "the interval of the difference includes 0 and is not inside the stated margin",
    "matches": "the whole interval of the difference lies inside the stated margin",
    "not testable here": "the setting the claim needs cannot be run on this machine",
}


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a rate ``k / n`` (``(0, 1)`` for ``n = 0``)."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    lo = 0.0 if k == 0 else max(0.0, (centre - half) / scale)        # exactly 0 and 1 at the ends
    hi = 1.0 if k == n else min(1.0, (centre + half) / scale)
    return lo, hi


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a rate: Beta(k, n - k + 1) and Beta(k + 1, n - k) quantiles."""
    from scipy.stats import beta

    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    alpha = 1 - level
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def bootstrap_difference(a: Sequence[float], b: Sequence[float], *, resamples: int = 10_000,
                         level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(mean(a) - mean(b), lo, hi)``: the difference of the seed means and its percentile bootstrap
    interval (each group's seeds resampled with replacement; deterministic for a given ``seed``)."""
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.size < 2 or xb.size < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 values per group, got {xa.size} and {xb.size}")
    rng = np.random.default_rng(seed)
    da = xa[rng.integers(0, xa.size, (resamples, xa.size))].mean(axis=1)
    db = xb[rng.integers(0, xb.size, (resamples, xb.size))].mean(axis=1)
    lo, hi = np.quantile(da - db, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(xa.mean() - xb.mean()), float(lo), float(hi)


def compare(lo: float, hi: float, margin: float | None = None) -> str:
    """The verdict on a difference with interval ``[lo, hi]``: "differs" when it excludes 0, "matches"
    when a ``margin`` is stated and the interval lies inside ``[-margin, margin]``, else
    "no difference detected"."""
    if lo > 0 or hi < 0:
        return "differs"
    if margin is not None and -margin <= lo and hi <= margin:
        return "matches"
    return "no difference detected"
