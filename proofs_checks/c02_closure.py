"""DS matrices are closed under products and Kronecker products (exactly); so any depth-L
product of exactly DS ``H_res`` has composite gain exactly 1.

Checked by exact Fraction multiplication (dyadic weights keep denominators small) of
chains up to depth L and Kronecker products of random factors; the rigorous
``certify_product`` must report gains ``[1, 1]`` for the chains.
"""

from __future__ import annotations

import numpy as np

from birkhoff import certify_product, kron

from .c01_ds_norms import _exactly_ds
from birkhoff.testing.generators import exact_ds
from .result import ClaimResult

STATEMENT = "DS closed under products and Kronecker products; depth-L products have gain exactly 1"


def check(quick: bool = True) -> ClaimResult:
    rng = np.random.default_rng(202)
    depth = 100 if quick else 1000
    failures, gains = 0, []
    for n in (2, 3, 4):
        chain = [exact_ds(rng, n, k=3, dyadic=True) for _ in range(depth)]
        P = chain[0]
        for M in chain[1:]:
            P = M.dot(P)
        failures += not _exactly_ds(P)
        gain = max(sum(abs(x) for x in row) for row in P)
        gains.append(gain)
        failures += gain != 1
        c = certify_product(np.stack(chain))
        failures += not (c.exact and c.gain_forward == (1.0, 1.0) and c.gain_backward == (1.0, 1.0))
    kron_cases = 30 if quick else 200
    for _ in range(kron_cases):
        factors = [exact_ds(rng, int(rng.integers(1, 4))) for _ in range(int(rng.integers(2, 4)))]
        failures += not _exactly_ds(kron(*factors))
    return ClaimResult("2", STATEMENT, failures == 0,
                       f"exact chains of depth {depth} for n = 2, 3, 4 (max abs row sum of the product "
                       f"= {max(gains)} exactly; certify_product [1, 1]); {kron_cases} Kronecker products "
                       f"of 2-3 random DS factors; exact Fractions; {failures} failures")
