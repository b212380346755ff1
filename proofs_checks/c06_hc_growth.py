"""Unconstrained HC: the composite gain of random ``H_res = I + sigma G`` grows exponentially.

Prediction (small-noise expansion of the top Lyapunov exponent of i.i.d. products):
``E log ||(I + sigma G) x|| = sigma^2 (n - 2) / 2 + O(sigma^4)`` for unit ``x`` (``G``
standard normal): with ``u = 2 sigma x^T G x + sigma^2 ||G x||^2``,
``E[u] = sigma^2 n``, ``E[u^2] = 4 sigma^2 + O(sigma^4)`` and ``log(1 + u) = u - u^2/2 + ...``.
The measured rate is the least-squares slope of ``log gain`` vs depth, averaged over seeds.
"""

from __future__ import annotations

import numpy as np

from birkhoff.testing.generators import near_identity
from .result import ClaimResult

STATEMENT = "Unconstrained HC: composite gain of I + sigma G grows exponentially at rate sigma^2 (n-2)/2"


def check(quick: bool = True) -> ClaimResult:
    n, sigma = 8, 0.1
    depth = 400 if quick else 1000
    seeds = 8 if quick else 32
    predicted = sigma ** 2 * (n - 2) / 2
    slopes, finals = [], []
    marks = np.arange(depth // 4, depth + 1, depth // 8)
    for seed in range(seeds):
        Hs = near_identity(np.random.default_rng(600 + seed), n, sigma, depth)
        P = np.eye(n)
        logs, scale = [], 0.0
        for d, H in enumerate(Hs, start=1):
            P = H @ P
            m = np.abs(P).max()
            P /= m
            scale += np.log(m)
            if d in marks:
                logs.append(scale + np.log(np.abs(P).sum(axis=1).max()))   # log Amax gain
        slopes.append(np.polyfit(marks, logs, 1)[0])
        finals.append(logs[-1])
    rate = float(np.mean(slopes))
    err = abs(rate - predicted) / predicted
    passed = err <= 0.15 and min(finals) > np.log(1e3)
    return ClaimResult("6", STATEMENT, passed,
                       f"n = {n}, sigma = {sigma}, depth {depth}, {seeds} seeds (float64, renormalised "
                       f"products): measured log-gain slope {rate:.5f}/layer vs predicted {predicted:.5f} "
                       f"(rel. error {err:.1%}); smallest gain at depth {depth}: e^{min(finals):.1f}")
