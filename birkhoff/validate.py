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

Exact values written in exponent form (a decimal string, a ``Decimal``, an ``mpf``) can
name numbers far larger than their text: ``1e99999999`` is 24 bytes and 10^99999999.
Their size is checked before they are built: at most :data:`MAX_EXACT_DIGITS` significant
digits and a decimal exponent within +-:data:`MAX_EXACT_EXPONENT` (binary: +-
:data:`MAX_EXACT_BITS`). A float64 needs at most 767 significant digits and exponents
down to -1074, so these bounds refuse no value that a float64 holds exactly.
"""

from __future__ import annotations

import math
import numbers
import re
from decimal import Decimal
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np

from .errors import InvalidArgumentError, InvalidMatrixError

__all__ = ["as_matrix", "as_array", "as_vector", "is_exact", "to_float", "to_fraction", "fraction_of", "parse_exact",
           "real", "count", "option", "flag", "check_entries", "MAX_EXACT_DIGITS", "MAX_EXACT_EXPONENT",
           "MAX_EXACT_BITS", "MAX_ENTRIES", "MAX_ITER"]

MAX_EXACT_DIGITS = 4_300                    # Python's own limit on int <-> str (sys.get_int_max_str_digits)
MAX_EXACT_EXPONENT = 20_000
MAX_EXACT_BITS = 66_440                     # 2^66440 ~ 10^20000
# iteration counts (sweeps, Newton steps): the cost grows with the number asked for
MAX_ITER = 10 ** 6
# entries a routine may allocate for a result formed from a few numbers: 1 GiB of float64,
# ~4M Fractions (the size of a product is checked before it is formed)
MAX_ENTRIES = {"float": 2 ** 27, "exact": 2 ** 22}

_DECIMAL = re.compile(r"^\s*([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$")
_RATIONAL = re.compile(r"^\s*([+-]?\d+)\s*/\s*([+-]?\d+)\s*$")


def _exact_size(digits: int, exponent: int, what: str) -> None:
    """Refuse an exact value of ``digits`` significant digits times ``10**exponent`` beyond the bounds."""
    if digits > MAX_EXACT_DIGITS:
        raise InvalidMatrixError(f"{what} has {digits} significant digits; exact values are limited to "
                                 f"{MAX_EXACT_DIGITS} (a float64 needs at most 767)")
    if abs(exponent) > MAX_EXACT_EXPONENT:
        raise InvalidMatrixError(f"{what} has a decimal exponent of {exponent}; exact values are limited to "
                                 f"|exponent| <= {MAX_EXACT_EXPONENT} (a float64 needs at most 324, or 1074 "
                                 "written out)")


def parse_exact(text: str) -> Fraction:
    """The exact rational value of ``text``: an integer, a decimal (``-1.5e-3``) or ``p/q``.

    Sizes are checked before the number is built (see the module doc); ``InvalidMatrixError``
    for text that is not a number or is too large, ``ZeroDivisionError`` is never raised.
    """
    shown = text if len(text) <= 40 else text[:37] + "..."
    m = _RATIONAL.match(text)
    if m:
        p, q = m.groups()
        for part in (p, q):
            _exact_size(len(part.lstrip("+-").lstrip("0")), 0, f"entry {shown!r}")
        if int(q) == 0:
            raise InvalidMatrixError(f"entry {shown!r} divides by zero")
        try:
            return Fraction(int(p), int(q))
        except ValueError:                                  # a lower sys.set_int_max_str_digits
            raise InvalidMatrixError(f"entry {shown!r} has more digits than this Python converts") from None
    m = _DECIMAL.match(text)
    if not m or not (m.group(2) or m.group(3)):
        raise InvalidMatrixError(f"cannot read {shown!r} as a number")
    sign, whole, frac, exp = m.groups()
    frac = frac or ""
    if exp is not None and len(exp.lstrip("+-").lstrip("0")) > 9:
        raise InvalidMatrixError(f"entry {shown!r} has an exponent of {len(exp)} digits; exact values are limited "
                                 f"to |exponent| <= {MAX_EXACT_EXPONENT}")
    mantissa = (whole + frac).lstrip("0")
    shift = (int(exp) if exp else 0) - len(frac)            # value = mantissa * 10**shift
    if mantissa:
        _exact_size(len(mantissa), shift + len(mantissa) - 1, f"entry {shown!r}")
        try:
            digits = int(mantissa)
        except ValueError:                                  # a lower sys.set_int_max_str_digits
            raise InvalidMatrixError(f"entry {shown!r} has more digits than this Python converts") from None
        value = Fraction(digits * 10 ** shift) if shift >= 0 else Fraction(digits, 10 ** -shift)
    else:
        value = Fraction(0)
    return -value if sign == "-" else value


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
        if x:
            _, digits, exp = x.as_tuple()
            _exact_size(len(digits), int(exp) + len(digits) - 1, f"entry {x!r}")
        return Fraction(x)
    if isinstance(x, mpmath.mpf):
        if not mpmath.isfinite(x):
            raise InvalidMatrixError(f"non-finite entry {x!r}")
        man, exp = x.man_exp
        if man and abs(int(exp) + int(man).bit_length()) > MAX_EXACT_BITS:
            raise InvalidMatrixError(f"entry {mpmath.nstr(x, 5)} has a binary exponent of {int(exp)}; exact values "
                                     f"are limited to |exponent| <= {MAX_EXACT_BITS} bits (10^{MAX_EXACT_EXPONENT})")
        return Fraction(int(man)) * (Fraction(2) ** int(exp))
    if isinstance(x, numbers.Rational):
        return Fraction(int(x.numerator), int(x.denominator))
    raise InvalidMatrixError(f"non-numeric entry {x!r} of type {type(x).__name__}")


_to_fraction_ufunc = np.frompyfunc(fraction_of, 1, 1)


def _from_tensor(A: Any, name: str) -> Any:
    """Accept torch tensors (and anything with ``__array__``) without importing torch.

    Float dtypes numpy lacks (bfloat16, float8) widen exactly to float32; sparse and
    meta tensors are refused (they hold no dense values to check).
    """
    if hasattr(A, "detach") and hasattr(A, "cpu") and hasattr(A, "layout"):
        if str(A.layout) != "torch.strided":
            raise InvalidMatrixError(f"{name} is a {str(A.layout).removeprefix('torch.')} tensor; "
                                     "pass a dense one (.to_dense())")
        if str(A.device).startswith("meta"):
            raise InvalidMatrixError(f"{name} is a meta tensor: it has a shape but no values")
        t = A.detach().cpu()
        if t.is_floating_point() and str(t.dtype) not in ("torch.float16", "torch.float32", "torch.float64"):
            t = t.float()
        if t.is_complex():
            raise InvalidMatrixError(f"{name} has complex dtype {t.dtype}; real entries are required")
        try:
            return t.numpy()
        except TypeError as exc:                                  # a dtype numpy cannot hold
            raise InvalidMatrixError(f"{name} has dtype {t.dtype}, which has no numpy equivalent ({exc})") from None
    if isinstance(A, np.ma.MaskedArray):
        if np.ma.getmaskarray(A).any():
            raise InvalidMatrixError(f"{name} is a masked array with masked entries, which have no value; "
                                     "fill them (A.filled(x)) first")
        return A.data
    if hasattr(A, "toarray") and hasattr(A, "nnz"):                # scipy.sparse
        raise InvalidMatrixError(f"{name} is a scipy sparse matrix; pass a dense one (.toarray())")
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
    A = _from_tensor(A, name)
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
    floats = M.dtype != object
    if floats:
        low, high = M.min(), M.max()                 # NaN propagates: two passes, no temporaries
        if not (np.isfinite(low) and np.isfinite(high)):
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(M))[0])
            raise InvalidMatrixError(f"{name} has a non-finite entry {float(M[idx])!r} at {idx}")
    if nonnegative and (low < 0 if floats else (M < 0).any()):
        idx = tuple(int(i) for i in np.argwhere(M < 0)[0])
        raise InvalidMatrixError(f"{name} must be nonnegative, entry {idx} is {_show(M[idx])}")
    return M


def as_array(A: Any, name: str = "array", *, nonnegative: bool = False, scalar: bool = False) -> np.ndarray:
    """Validate an array of any shape with at least one dimension (or a scalar, with ``scalar``) and
    one entry, as :func:`as_matrix` does (ragged, non-numeric, NaN/Inf, negative with
    ``nonnegative``); float64 or exact."""
    if A is None:
        raise InvalidMatrixError(f"{name} is None")
    v = _coerce(A, name)
    if v.ndim == 0 and not scalar:
        raise InvalidMatrixError(f"{name} must be an array, got the scalar {A!r}")
    flat = v.reshape(1, -1)
    as_matrix(flat, square=False, nonnegative=nonnegative, name=name)
    return v


def as_vector(h: Any, name: str = "vector") -> np.ndarray:
    """Validate ``h`` (``(n,)``, or ``(1, n)`` / ``(n, 1)``) and return it flat, float64 or exact,
    with the checks of :func:`as_matrix` (ragged, non-numeric, NaN/Inf, empty)."""
    v = as_array(h, name)
    if (v.ndim == 2 and 1 not in v.shape) or v.ndim > 2:
        raise InvalidMatrixError(f"{name} must be a vector (n,), got shape {v.shape}")
    return v.reshape(-1)


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
    if type(value) is float and math.isfinite(value) and (value > 0 or value == 0 and not positive):
        return value if value else 0.0   # the common case, a float already (-0.0 reads as 0.0, as below)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, Decimal, mpmath.mpf)):
        raise InvalidArgumentError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    try:
        q = fraction_of(value)
    except InvalidMatrixError as exc:
        raise InvalidArgumentError(f"{name}: {exc}".replace("non-finite entry", "must be finite, got")) from None
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


def flag(value: Any, name: str) -> bool:
    """A boolean option: ``True``/``False`` (or a numpy bool); anything else, ``"no"`` included, is refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{name} must be True or False, got {value!r} of type {type(value).__name__}")
    return bool(value)


def check_entries(shape: tuple[int, ...], name: str, *, exact: bool = False) -> None:
    """Refuse to form an array of ``shape`` beyond :data:`MAX_ENTRIES` (checked before allocating)."""
    kind = "exact" if exact else "float"
    entries = math.prod(int(d) for d in shape)
    if entries > MAX_ENTRIES[kind]:
        raise InvalidArgumentError(f"{name} would have {entries:.3g} {kind} entries (shape {tuple(shape)}); "
                                   f"the limit is {MAX_ENTRIES[kind]}")


def option(value: Any, name: str, options: tuple[str, ...]) -> str:
    """One of ``options``."""
    if not isinstance(value, str) or value not in options:
        raise InvalidArgumentError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value
