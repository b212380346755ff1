"""birkhoff: doubly stochastic matrices for residual mixing, exact and certified.

numpy / scipy / mpmath only; importing this package never imports torch or triton.
"""

from importlib import metadata as _metadata

from .bvn import Decomposition, bvn_decompose, marcus_ree_bound
from .certify import (BatchCertificate, Certificate, ProductCertificate, certify,
                      certify_batch, certify_product, certify_projection, composite_lipschitz_bound,
                      hc_lipschitz_bound)
from .errors import (BirkhoffError, ConvergenceError, InvalidArgumentError, InvalidMatrixError,
                     NoTotalSupportError, NotDoublyStochasticError)
from .kron import kron, kron_apply, kron_factor_sizes, kromhc_factor
from .permutations import (all_permutations, cyclic_permutations, from_permutations,
                           permutation_matrix)
from .project import Projection, project, project_cvxpy
from .quantize import quantize
from .sinkhorn import SinkhornInfo, sinkhorn, sinkhorn_logits
from .sinkhorn_mpmath import sinkhorn_mp
from .support import has_total_support

try:
    __version__ = _metadata.version("birkhoff-hc")
except _metadata.PackageNotFoundError:          # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "BirkhoffError", "InvalidMatrixError", "InvalidArgumentError", "NoTotalSupportError", "ConvergenceError",
    "NotDoublyStochasticError",
    "sinkhorn", "sinkhorn_logits", "sinkhorn_mp", "has_total_support", "SinkhornInfo",
    "permutation_matrix", "from_permutations", "all_permutations", "cyclic_permutations",
    "certify", "certify_batch", "certify_product", "hc_lipschitz_bound",
    "composite_lipschitz_bound", "Certificate", "ProductCertificate", "BatchCertificate",
    "bvn_decompose", "Decomposition", "marcus_ree_bound",
    "kron", "kron_apply", "kromhc_factor", "kron_factor_sizes", "quantize",
    "project", "project_cvxpy", "certify_projection", "Projection",
]
