"""Training metrics: composite Amax gain of prod H_res, DS residuals, per-layer gradient norms.

The composite residual map of a depth-L stack is ``P = H_res^(L) ... H_res^(1)``
(per token, for dynamic mixers). DeepSeek's "Amax gain" pair is its max absolute row
sum (forward signal gain) and max absolute column sum (backward gradient gain). We
form ``P`` in float64 for a few probe tokens and report the max over them; the chain
``(L, probe, n, n)`` comes from a :class:`reference.tap.HResProbe` passed to the forward.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from birkhoff import certify_product


def composite_gains(chain: torch.Tensor) -> tuple[float, float]:
    """Max over probe tokens of the forward/backward Amax gains of ``H_L ... H_1``."""
    P = chain[0]
    for H in chain[1:]:
        P = H @ P
    fwd = P.abs().sum(-1).amax(-1).max()
    bwd = P.abs().sum(-2).amax(-1).max()
    return float(fwd), float(bwd)


def max_ds_residual(chain: torch.Tensor) -> float:
    """Largest ``|row sum - 1|`` or ``|column sum - 1|`` of any ``H_res`` in the chain."""
    rows = (chain.sum(-1) - 1).abs().max()
    cols = (chain.sum(-2) - 1).abs().max()
    return float(torch.maximum(rows, cols))


def off_identity_mass(chain: torch.Tensor) -> float:
    """Mean over layers and probe tokens of ``1 - tr(H_res) / n``: how far ``H_res`` has moved from
    ``I`` (0 at the identity; for a DS matrix, the mass each stream sends to the others)."""
    n = chain.shape[-1]
    return float(1.0 - chain.diagonal(dim1=-2, dim2=-1).sum(-1).mean() / n)


def layer_grad_norms(layers) -> list[float]:
    """l2 norm of the gradients of each layer's parameters (0 where none)."""
    out = []
    for layer in layers:
        sq = sum(float(p.grad.detach().to(torch.float64).pow(2).sum())
                 for p in layer.parameters() if p.grad is not None)
        out.append(math.sqrt(sq))
    return out


def summarize(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max()),
            "first": float(v[0]), "last": float(v[-1])}


def composite_certificate(chain: torch.Tensor) -> dict:
    """``birkhoff.certify_product`` of probe token 0's chain (rigorous, as stored in float64)."""
    return certify_product(chain[:, 0].cpu().numpy()).to_dict()
