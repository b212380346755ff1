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

from .validate import as_array, as_matrix, check_entries, count, is_exact, to_float, to_fraction
from .errors import InvalidArgumentError, InvalidMatrixError

__all__ = ["kron", "kron_apply", "kromhc_factor", "kron_factor_sizes"]


def _factors(factors: Sequence, name: str = "factor") -> list[np.ndarray]:
    if isinstance(factors, np.ndarray) and factors.ndim == 3:
        factors = list(factors)
    elif not isinstance(factors, (list, tuple)):
        try:
            factors = list(factors)                    # a generator of factors
        except TypeError:
            raise InvalidMatrixError(f"factors must be a sequence of square matrices, "
                                     f"got {type(factors).__name__}") from None
    if len(factors) == 0:
        raise InvalidMatrixError("need at least one Kronecker factor")
    mats = [as_matrix(F, name=f"{name} {k}") for k, F in enumerate(factors)]
    if any(is_exact(m) for m in mats) and not all(is_exact(m) for m in mats):
        mats = [to_float(m, f"{name} {k}") for k, m in enumerate(mats)]   # mixed exact/float: float result
    return mats


def _in_range(out: np.ndarray, what: str) -> np.ndarray:
    """``out``, or :class:`InvalidMatrixError` when a float result left the float range (finite
    factors whose products overflow: entries of ``1e154`` and beyond)."""
    if out.dtype != object and not np.isfinite(out).all():
        raise InvalidMatrixError(f"{what} overflows float64 (the factors' products exceed 1.8e308): pass exact "
                                 "(Fraction or int) input for an exact result, or rescale the factors")
    return out


def kron(*factors) -> np.ndarray:
    """``U_1 (x) ... (x) U_K`` (square factors). Exact (Fractions) when every factor is exact.

    The product is formed, so its size is checked first (:data:`birkhoff.validate.MAX_ENTRIES`:
    ``2^27`` float entries, 1 GiB, or ``2^22`` exact ones); use :func:`kron_apply` to apply
    larger products. The result is a new array, also for one factor. A float product that
    overflows (finite factors of ``1e154`` and beyond) raises :class:`InvalidMatrixError`.

    Examples
    --------
    >>> import numpy as np
    >>> kron(np.eye(2), np.full((2, 2), 0.5))
    array([[0.5, 0.5, 0. , 0. ],
           [0.5, 0.5, 0. , 0. ],
           [0. , 0. , 0.5, 0.5],
           [0. , 0. , 0.5, 0.5]])
    """
    mats = _factors(factors)
    n = math.prod(m.shape[0] for m in mats)
    check_entries((n, n), f"the Kronecker product of these {len(mats)} factors (apply it with kron_apply "
                  "instead of forming it)", exact=mats[0].dtype == object)
    out = mats[0].copy()
    with np.errstate(over="ignore", invalid="ignore"):
        for m in mats[1:]:
            out = np.kron(out, m)
    return _in_range(out, "the Kronecker product")


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

    Raises
    ------
    InvalidMatrixError
        Bad shapes, or a float result that overflows (finite inputs of ``1e154`` and beyond).

    Examples
    --------
    >>> import numpy as np
    >>> A, B = np.array([[0.0, 1.0], [1.0, 0.0]]), np.full((2, 2), 0.5)
    >>> x = np.arange(4.0)
    >>> np.allclose(kron_apply([A, B], x), kron(A, B) @ x)
    True
    """
    mats = _factors(factors)
    sizes = [m.shape[0] for m in mats]
    n = int(np.prod(sizes))
    X = as_array(x, "x")
    if is_exact(X) or any(is_exact(m) for m in mats):
        X = to_fraction(X)
        mats = [to_fraction(m) for m in mats]
    if axis is None:
        axis = -2 if X.ndim >= 2 and X.shape[-2] == n else -1
    axis = count(axis, "axis", low=-X.ndim, high=X.ndim - 1)
    if X.shape[axis] != n:
        raise InvalidMatrixError(
            f"x has {X.shape[axis]} entries on its stream axis, the factors need {n} = {' x '.join(map(str, sizes))}")
    y = np.moveaxis(X, axis, -1)
    lead = y.shape[:-1]
    y = y.reshape(lead + tuple(sizes))
    base = len(lead)
    with np.errstate(over="ignore", invalid="ignore"):
        for k, U in enumerate(mats):
            # (U y)_j = sum_i U[j, i] y_i along mode k; tensordot puts the new index last.
            y = np.moveaxis(np.tensordot(y, U, axes=([base + k], [1])), -1, base + k)
    return _in_range(np.moveaxis(y.reshape(lead + (n,)), -1, axis), "kron_apply's result")


def kromhc_factor(a) -> np.ndarray:
    """The 2x2 DS factor ``[[a, 1 - a], [1 - a, a]]`` for ``a`` in ``[0, 1]`` (batched over ``a``).

    Every 2x2 DS matrix has this form (Birkhoff: ``a I + (1 - a) J_swap``). Fraction ``a``
    gives an exact factor.

    Examples
    --------
    >>> kromhc_factor(0.25)
    array([[0.25, 0.75],
           [0.75, 0.25]])
    """
    try:
        A = as_array(a, "a", scalar=True)
    except InvalidMatrixError as exc:
        raise InvalidArgumentError(f"a must be real numbers in [0, 1]: {exc}") from None
    if ((A < 0) | (A > 1)).any():
        raise InvalidArgumentError("a must lie in [0, 1]")
    B = 1 - A
    return np.stack([np.stack([A, B], -1), np.stack([B, A], -1)], -2)


MAX_FACTOR_N = 2 ** 32


def kron_factor_sizes(n: int, max_factor: int | None = None) -> list[int]:
    """Factor sizes ``n_k`` with ``prod n_k = n``: the prime factorisation, ascending.

    Powers of two give 2x2 factors (KromHC's default). With ``max_factor``, primes are
    merged greedily while the product stays ``<= max_factor`` (fewer, larger factors).
    A prime ``n`` has the single factor ``[n]``: no Kronecker structure, so KromHC
    degenerates to one full ``n x n`` DS factor (and ``n = 1`` to ``[1]``). ``n <= 2^32``
    (a stream count; the factorisation then takes at most ~2^15 trial divisions).

    Examples
    --------
    >>> kron_factor_sizes(8)
    [2, 2, 2]
    """
    n = count(n, "n", low=1, high=MAX_FACTOR_N)
    primes, m, p = [], int(n), 2
    while p * p <= m:                      # trial division: at most 2^16 candidates for n <= 2^32
        while m % p == 0:
            primes.append(p)
            m //= p
        p += 1 if p == 2 else 2
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
