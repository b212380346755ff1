"""The sublayers' input normalisation: pre-norm (the default) or none (the ablation).

Pre-norm, ``F(x) = f(RMSNorm(x))``, bounds what each sublayer adds whatever the size of the
residual stream, which hides part of a mixer's instability; the stability study turns it
off (``norm="none"``) to see what the mixer alone keeps stable.
"""

from __future__ import annotations

import torch.nn as nn

NORMS = ("pre", "none")                  # the first is the default


def sublayer_norm(C: int, norm: str) -> nn.Module:
    """``RMSNorm(C)`` for ``"pre"``, the identity for ``"none"``."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose from {NORMS}")
    return nn.RMSNorm(C) if norm == "pre" else nn.Identity()
