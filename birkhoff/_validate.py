"""The one place that turns user input into checked values: matrices and scalar arguments.

Every public entry point calls :func:`as_matrix` for its matrices and :func:`real`,
:func:`count` or :func:`option` for its scalars (the CLI too). :func:`as_matrix`
returns either

* a ``float64`` ndarray (float input of any precision up to 64 bits: the values are
  kept exactly, ``float32``/``float16`` widen losslessly), or
* an ``object`` ndarray of :class:`fractions.Fraction` (exact input: Python ints,
  ``Fraction``, ``Decimal``, integer/bool dtypes, ``longdouble``, mpmath ``mpf``).

Floats are rationals, so both kinds denote exact rational matrices; the kind only
decides which arithmetic the callers use. Bad matrices raise ``InvalidMatrixError``,
bad scalars ``InvalidArgumentError``.
"""

from __future__ import annotations

import numbers
from decimal import Decimal
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np

from .errors import InvalidArgumentError, InvalidMatrixError

__all__ = ["as_matrix", "is_exact", "to_float", "to_fraction", "fraction_of", "real", "count", "option"]


def fraction_of(x: Any) -> Fraction:
    """Exact rational value of one scalar: ``Fraction(x)`` extended to mpf and numpy types."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (bool, np.bool_)):
        return Fraction(int(x))
    if isinstance(x, (numbers.Integral, np.integer)):
        return Fraction(int(x))
    if isinstance(x, np.longdouble) and np.dtype(np.longdouble).itemsize > 8:
        if not np.isfinite(x):
            raise InvalidMatrixError(f"non-finite entry {x!r}")
        return Fraction(*x.as_integer_ratio())
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            raise InvalidMatrixError(f"non-finite entry {float(x)!r}")
        return Fraction(float(x))
    if isinstance(x, Decimal):
        if not x.is_finite():
            raise InvalidMatrixError(f"non-finite entry {x!r}")
        return Fraction(x)
    if isinstance(x, mpmath.mpf):
        if not mpmath.isfinite(x):
            raise InvalidMatrixError(f"non-finite entry {x!r}")
        man, exp = x.man_exp
        return Fraction(int(man)) * (Fraction(2) ** int(exp))
    if isinstance(x, numbers.Rational):
        return Fraction(x.numerator, x.denominator)
    raise InvalidMatrixError(f"non-numeric entry {x!r} of type {type(x).__name__}")


_to_fraction_ufunc = np.frompyfunc(fraction_of, 1, 1)


def _from_tensor(A: Any) -> Any:
    """Accept torch tensors (and anything with ``__array__``) without importing torch."""
    if hasattr(A, "detach") and hasattr(A, "cpu"):
        t = A.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # numpy has no bfloat16; widening is exact
            t = t.float()
        return t.numpy()
    return A


def is_exact(M: np.ndarray) -> bool:
    """True when ``M`` is a validated exact (``Fraction`` object) array."""
    return M.dtype == object


def to_float(M: np.ndarray, name: str = "matrix") -> np.ndarray:
    """Nearest float64 of each entry (exact for float arrays, correctly rounded for Fractions).

    For the float64 algorithms: an exact entry beyond the float range, or a nonzero one
    that would round to 0 (changing the zero pattern), raises ``InvalidMatrixError``.
    """
    if M.dtype != object:
        return M
    try:
        F = M.astype(np.float64)
    except OverflowError:
        raise InvalidMatrixError(f"{name} has an exact entry beyond the float64 range (|x| > 1.8e308); "
                                 "this computation runs in float64 (certify, bvn, quantize and kron stay "
                                 "exact)") from None
    if ((F == 0) & (M != 0)).any():
        raise InvalidMatrixError(f"{name} has a nonzero exact entry below the float64 range (|x| < 5e-324); "
                                 "this computation runs in float64")
    return F


def to_fraction(M: np.ndarray) -> np.ndarray:
    """Exact ``Fraction`` object array with the same values (floats are rationals)."""
    if M.dtype == object:
        return M
    return np.asarray(_to_fraction_ufunc(M), dtype=object).reshape(M.shape)


def _coerce(A: Any, name: str) -> np.ndarray:
    A = _from_tensor(A)
    try:
        arr = np.asarray(A)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise InvalidMatrixError(f"{name} is not a rectangular array: {exc}") from None
    kind = arr.dtype.kind
    if kind == "f":
        if arr.dtype.itemsize > 8:
            return _exact(arr, name)
        return arr.astype(np.float64, copy=False)
    if kind in "iub":
        return _exact(arr, name)
    if kind == "O":
        return _exact(arr, name)
    if kind == "c":
        raise InvalidMatrixError(f"{name} has complex dtype {arr.dtype}; real entries are required")
    raise InvalidMatrixError(f"{name} has non-numeric dtype {arr.dtype}")


def _exact(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.size == 0:
        return arr.astype(object)
    try:
        out = np.asarray(_to_fraction_ufunc(arr), dtype=object).reshape(arr.shape)
    except InvalidMatrixError as exc:
        raise InvalidMatrixError(f"{name}: {exc}") from None
    return out


def as_matrix(A: Any, *, batched: bool = False, nonnegative: bool = False,
              square: bool = True, name: str = "matrix") -> np.ndarray:
    """Validate ``A`` and return it as float64 or exact-``Fraction`` ndarray.

    Parameters
    ----------
    A : array_like
        ``(n, m)`` or, with ``batched=True``, ``(..., n, m)``.
    batched : bool
        Accept leading batch dimensions.
    nonnegative : bool
        Reject negative entries (the message names the first one).
    square : bool
        Require ``n == m``.
    name : str
        How the input is called in error messages.

    Returns
    -------
    numpy.ndarray
        float64 array, or object array of ``Fraction`` for exact input.

    Raises
    ------
    InvalidMatrixError
        For NaN/Inf, empty, wrong ndim, non-square, non-numeric or negative input.
    """
    if A is None:
        raise InvalidMatrixError(f"{name} is None")
    M = _coerce(A, name)
    if M.ndim < 2 or (M.ndim > 2 and not batched):
        want = "(..., n, n)" if batched else "(n, n)"
        raise InvalidMatrixError(f"{name} must have shape {want}, got shape {M.shape}")
    if M.size == 0:
        raise InvalidMatrixError(f"{name} is empty (shape {M.shape})")
    if square and M.shape[-1] != M.shape[-2]:
        raise InvalidMatrixError(f"{name} must be square, got shape {M.shape}")
    if M.dtype != object:
        bad = ~np.isfinite(M)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InvalidMatrixError(f"{name} has a non-finite entry {float(M[idx])!r} at {idx}")
    if nonnegative:
        neg = M < 0
        if neg.any():
            idx = tuple(int(i) for i in np.argwhere(neg)[0])
            raise InvalidMatrixError(
                f"{name} must be nonnegative, entry {idx} is {_show(M[idx])}")
    return M


def _show(x: Any) -> str:
    return str(x) if isinstance(x, Fraction) else repr(float(x))


# ----------------------------------------------------------------------------- scalars

_ROUNDING = {"nearest": 0.0, "down": -np.inf, "up": np.inf}


def real(value: Any, name: str, *, positive: bool = False, rounding: str = "nearest") -> float:
    """A finite real ``>= 0`` (``> 0`` with ``positive``) as a float.

    Accepts Python and numpy ints and floats, ``Fraction``, ``Decimal`` and mpmath ``mpf``;
    rejects ``None``, bools, strings, complex numbers and arrays. An exact value that is
    not a float is rounded ``"down"`` or ``"up"`` when the caller needs a one-sided
    bound (a tolerance that must not grow, a Lipschitz constant that must not shrink).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, Decimal, mpmath.mpf)):
        raise InvalidArgumentError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    try:
        q = fraction_of(value)
    except InvalidMatrixError:
        raise InvalidArgumentError(f"{name} must be finite, got {value!r}") from None
    if q < 0 or (positive and q == 0):
        raise InvalidArgumentError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    x = float(q)
    direction = _ROUNDING[rounding]
    if direction and Fraction(x) != q and (Fraction(x) > q) == (direction < 0):
        x = float(np.nextafter(x, direction))
    if not np.isfinite(x):
        raise InvalidArgumentError(f"{name} is beyond the float range, got {value!r}")
    return x


def count(value: Any, name: str, *, low: int = 0, high: int | None = None) -> int:
    """An integer in ``[low, high]`` (Python or numpy int; bools and floats are rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    v = int(value)
    if v < low or (high is not None and v > high):
        span = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise InvalidArgumentError(f"{name} must be an integer {span}, got {v}")
    return v


def option(value: Any, name: str, options: tuple[str, ...]) -> str:
    """One of ``options``."""
    if not isinstance(value, str) or value not in options:
        raise InvalidArgumentError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value
