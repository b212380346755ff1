"""Parameter counts of the reference mixers equal their closed forms.

Written here independently of ``reference.mixers.mixing_params``:
mHC ``nC(n^2 + 2n) + n^2 + 2n + 3`` (``O(n^3 C)``), mHC-lite ``nC(n! + 2n) + n! + 2n + 3``
(``O(nC n!)``), KromHC with 2x2 factors (``n = 2^K``) ``nC(2K + 2n) + 2K + 2n + 3``
(``O(n^2 C)``), BE-HC with the ``n`` cyclic shifts ``3n^2 C + 3n + 3``; each plus ``nC`` for
the learnable gain of the RMSNorm of the flattened stream (the sources' norm, the mixers'
default ``mixer_norm="source"``).
"""

from __future__ import annotations

import math

from reference.mixers import make_mixer

from .result import ClaimResult

STATEMENT = ("Mixing parameters: mHC nC(n^2+2n)+.., mHC-lite nC(n!+2n)+.., KromHC nC(2log2 n+2n)+.., "
             "BE-HC 3n^2C+.. (+nC norm gain)")

FORMULAS = {
    "mhc": lambda n, C: n * C * (n * n + 2 * n) + n * n + 2 * n + 3 + n * C,
    "mhc_lite": lambda n, C: n * C * (math.factorial(n) + 2 * n) + math.factorial(n) + 2 * n + 3 + n * C,
    "kromhc": lambda n, C: n * C * (2 * int(math.log2(n)) + 2 * n) + 2 * int(math.log2(n)) + 2 * n + 3 + n * C,
    "behc": lambda n, C: 3 * n * n * C + 3 * n + 3 + n * C,
}


def check(quick: bool = True) -> ClaimResult:
    widths = (8, 32) if quick else (8, 32, 128)
    mismatches, cases = [], 0
    for name, formula in FORMULAS.items():
        for n in (2, 4, 8):
            for C in widths:
                got = sum(p.numel() for p in make_mixer(name, n, C).parameters())
                cases += 1
                if got != formula(n, C):
                    mismatches.append(f"{name} n={n} C={C}: {got} != {formula(n, C)}")
    at = {name: FORMULAS[name](8, 128) for name in FORMULAS}
    return ClaimResult("7", STATEMENT, not mismatches,
                       f"{cases} (mixer, n, C) cases, n in (2, 4, 8), C in {widths}; at n = 8, C = 128: "
                       + ", ".join(f"{k} {v:,}" for k, v in at.items())
                       + (f"; mismatches: {mismatches}" if mismatches else "; all equal"))
