"""Kronecker constructions (KromHC): ``H_res = U_1 (x) U_2 (x) ... (x) U_K`` with small DS factors.

The Kronecker product of doubly stochastic matrices is doubly stochastic (its row
sums are products of the factors' row sums), so ``H_res`` is exactly DS whenever the
factors are, with ``O(sum n_k^2)`` parameters instead of ``O(n^2)``.

Index convention is numpy's: ``kron(A, B)[i1 * nB + i2, j1 * nB + j2] = A[i1, j1] B[i2, j2]``,
i.e. the stream index ``i`` of ``n = n_1 ... n_K`` is the row-major multi-index
``(i_1, ..., i_K)``. ``kron_apply`` uses exactly this reshaping (the "tensorised
residual stream" of KromHC) and applies ``U_k`` as a mode-``k`` product.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._validate import as_matrix, count, fraction_of
from .errors import InvalidArgumentError, InvalidMatrixError

__all__ = ["kron", "kron_apply", "kromhc_factor", "kron_factor_sizes"]


def _factors(factors: Sequence, name: str = "factor") -> list[np.ndarray]:
    if len(factors) == 0:
        raise InvalidMatrixError("need at least one Kronecker factor")
    mats = [as_matrix(F, name=f"{name} {k}") for k, F in enumerate(factors)]
    if any(m.dtype == object for m in mats) and not all(m.dtype == object for m in mats):
        mats = [m.astype(np.float64) for m in mats]   # mixed exact/float: float result
    return mats


MAX_KRON_ENTRIES = {"float": 2 ** 27, "exact": 2 ** 22}   # 1 GiB of float64; ~4M Fractions


def kron(*factors) -> np.ndarray:
    """``U_1 (x) ... (x) U_K`` (square factors). Exact (Fractions) when every factor is exact.

    The product is formed, so its size is checked first: at most ``2^27`` float entries
    (1 GiB) or ``2^22`` exact ones; use :func:`kron_apply` to apply larger products.
    """
    mats = _factors(factors)
    kind = "exact" if mats[0].dtype == object else "float"
    entries = math.prod(m.size for m in mats)
    if entries > MAX_KRON_ENTRIES[kind]:
        raise InvalidArgumentError(
            f"the Kronecker product of these {len(mats)} factors has {entries:.3g} {kind} entries "
            f"(limit {MAX_KRON_ENTRIES[kind]}); apply it with kron_apply instead of forming it")
    out = mats[0]
    for m in mats[1:]:
        out = np.kron(out, m)
    return out


def kron_apply(factors: Sequence, x, *, axis: int | None = None) -> np.ndarray:
    """Apply ``(U_1 (x) ... (x) U_K)`` to ``x`` along its stream axis, never forming the matrix.

    Parameters
    ----------
    factors : sequence of ``(n_k, n_k)`` arrays, ``n = prod n_k``
    x : array_like
        ``(..., n)`` vectors or ``(..., n, C)`` residual streams.
    axis : int, optional
        The stream axis. Default: ``-2`` if ``x.ndim >= 2`` and ``x.shape[-2] == n``
        (streams ``x in R^{n x C}``), else ``-1``.

    Returns
    -------
    ndarray, same shape as ``x``: ``y_i = sum_j H_ij x_j`` along the stream axis.
    Cost ``O(size(x) * sum_k n_k)`` instead of ``O(size(x) * n)``.
    """
    mats = _factors(factors)
    sizes = [m.shape[0] for m in mats]
    n = int(np.prod(sizes))
    X = np.asarray(x)
    if X.dtype == object or any(m.dtype == object for m in mats):
        X = np.vectorize(fraction_of, otypes=[object])(X) if X.size else X.astype(object)
        mats = [m.astype(object) for m in mats]
    elif not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise InvalidMatrixError(f"x must be real numeric, got dtype {X.dtype}")
    if X.ndim == 0:
        raise InvalidMatrixError("x must have a stream axis of length n")
    if axis is None:
        axis = -2 if X.ndim >= 2 and X.shape[-2] == n else -1
    if X.shape[axis] != n:
        raise InvalidMatrixError(
            f"x has {X.shape[axis]} entries on its stream axis, the factors need {n} = {' x '.join(map(str, sizes))}")
    y = np.moveaxis(X, axis, -1)
    lead = y.shape[:-1]
    y = y.reshape(lead + tuple(sizes))
    base = len(lead)
    for k, U in enumerate(mats):
        # (U y)_j = sum_i U[j, i] y_i along mode k; tensordot puts the new index last.
        y = np.moveaxis(np.tensordot(y, U, axes=([base + k], [1])), -1, base + k)
    return np.moveaxis(y.reshape(lead + (n,)), -1, axis)


def kromhc_factor(a) -> np.ndarray:
    """The 2x2 DS factor ``[[a, 1 - a], [1 - a, a]]`` for ``a`` in ``[0, 1]`` (batched over ``a``).

    Every 2x2 DS matrix has this form (Birkhoff: ``a I + (1 - a) J_swap``). Fraction ``a``
    gives an exact factor.
    """
    A = np.asarray(a)
    if A.dtype.kind not in "fiubO":
        raise InvalidArgumentError(f"a must be real numbers in [0, 1], got {a!r}")
    exact = A.dtype == object or A.dtype.kind in "iub"
    if exact:
        A = np.vectorize(fraction_of, otypes=[object])(A) if A.size else A.astype(object)
    else:
        A = A.astype(np.float64)
        if not np.isfinite(A).all():
            raise InvalidMatrixError("a must be finite")
    if ((A < 0) | (A > 1)).any():
        raise InvalidMatrixError("a must lie in [0, 1]")
    B = 1 - A
    return np.stack([np.stack([A, B], -1), np.stack([B, A], -1)], -2)


def kron_factor_sizes(n: int, max_factor: int | None = None) -> list[int]:
    """Factor sizes ``n_k`` with ``prod n_k = n``: the prime factorisation, ascending.

    Powers of two give 2x2 factors (KromHC's default). With ``max_factor``, primes are
    merged greedily while the product stays ``<= max_factor`` (fewer, larger factors).
    A prime ``n`` has the single factor ``[n]``: no Kronecker structure, so KromHC
    degenerates to one full ``n x n`` DS factor (and ``n = 1`` to ``[1]``).
    """
    n = count(n, "n", low=1)
    primes, m, p = [], int(n), 2
    while p * p <= m:
        while m % p == 0:
            primes.append(p)
            m //= p
        p += 1
    if m > 1 or not primes:
        primes.append(m)
    if max_factor is None:
        return primes
    max_factor = count(max_factor, "max_factor", low=1)
    sizes: list[int] = []
    for q in primes:
        if sizes and sizes[-1] * q <= max_factor:
            sizes[-1] *= q
        else:
            sizes.append(q)
    return sorted(sizes)
