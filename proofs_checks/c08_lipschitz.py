"""The HC-layer Lipschitz bound is never below the measured Jacobian norm of a reference layer.

Layers: every multi-stream reference mixer (``hc``, ``mhc``, ``mhc_lite``, ``kromhc``, ``behc``) with random
parameters, their ``H_pre, H_post, H_res`` evaluated at a random input and frozen
(the bound is for static maps), ``F(z) = tanh(W z)`` with ``lip_f`` the rigorous upper
bound of ``||W||_2`` from ``birkhoff.certify``. Layer ``x -> H_res x + H_post^T F(H_pre x)``
on ``R^{n x C}``; Jacobians by float64 autograd at random points, ``||J||_2`` by SVD.
"""

from __future__ import annotations

import numpy as np
import torch

from birkhoff import certify, hc_lipschitz_bound
from reference.mixers import make_mixer, stream_mixers

from .result import ClaimResult

STATEMENT = "HC Lipschitz bound ||H_res||_2 + ||H_post|| lip_f ||H_pre|| >= measured ||Jacobian||_2"


def _frozen_coefficients(name: str, n: int, C: int, seed: int):
    torch.manual_seed(seed)
    mixer = make_mixer(name, n, C).double()
    with torch.no_grad():
        for p in mixer.parameters():
            p.add_(0.5 * torch.randn_like(p))
    x = torch.randn(1, n, C, dtype=torch.float64)
    with torch.no_grad():
        H_pre, H_post, H_res = mixer.coefficients(x)
    return H_res[0].numpy(), H_pre[0].numpy(), H_post[0].numpy()


def check(quick: bool = True) -> ClaimResult:
    rng = np.random.default_rng(808)
    names = stream_mixers()
    per = 2 if quick else 8
    n, C = 4, 6
    violations, ratios = 0, []
    for k, name in enumerate(names):
        for rep in range(per):
            H_res, h_pre, h_post = _frozen_coefficients(name, n, C, 10 * k + rep)
            W = rng.standard_normal((C, C)) / np.sqrt(C)
            lip_f = certify(W).spectral_norm[1]
            bound = hc_lipschitz_bound(H_res, h_pre, h_post, lip_f=lip_f)
            Wt, Hr = torch.tensor(W), torch.tensor(H_res)
            hp, hq = torch.tensor(h_pre), torch.tensor(h_post)

            def layer(x):
                return Hr @ x + hq[:, None] * torch.tanh(Wt @ (hp @ x))[None, :]

            for _ in range(3):
                x = torch.tensor(rng.standard_normal((n, C)) * 0.3)
                J = torch.autograd.functional.jacobian(layer, x).reshape(n * C, n * C)
                measured = float(torch.linalg.matrix_norm(J, 2))
                violations += measured > bound * (1 + 1e-12)
                ratios.append(measured / bound)
    return ClaimResult("8", STATEMENT, violations == 0,
                       f"{len(ratios)} Jacobians ({len(names)} mixers x {per} random layers x 3 points, n = {n}, C = {C}, "
                       f"float64 autograd): {violations} above the bound; tightness measured/bound in "
                       f"[{min(ratios):.3f}, {max(ratios):.3f}]")
