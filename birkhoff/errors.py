"""Typed errors of the ``birkhoff`` package.

Every error a user can trigger with bad input derives from :class:`BirkhoffError`;
the ones about the *value* of the input are also ``ValueError`` so that generic
``except ValueError`` code keeps working.
"""

from __future__ import annotations


class BirkhoffError(Exception):
    """Base class of every error raised on purpose by ``birkhoff``."""


class InvalidMatrixError(BirkhoffError, ValueError):
    """Input is not a usable matrix: NaN/Inf, non-square, empty, wrong ndim or dtype,
    negative where nonnegative is required, or an unreadable/malformed file."""


class InvalidArgumentError(BirkhoffError, ValueError):
    """A scalar argument or option is invalid: ``tol``, ``iters``, ``scale``, ``lip_f``, ``dps``,
    ``n``, ... of the wrong type (``None``, a string, a bool) or out of its range."""


class NoTotalSupportError(BirkhoffError, ValueError):
    """Sinkhorn scaling cannot converge: the zero pattern has no total support.

    Attributes
    ----------
    witness : tuple[int, int] | None
        A positive entry ``(i, j)`` that lies on no positive diagonal (no permutation
        inside the support uses it), or ``None`` when the support has no positive
        entry at all.
    batch_index : tuple[int, ...]
        Index of the offending matrix in a batched input (``()`` when unbatched).
    """

    def __init__(self, message: str, witness: tuple[int, int] | None = None,
                 batch_index: tuple[int, ...] = ()):
        super().__init__(message)
        self.witness = witness
        self.batch_index = batch_index


class ConvergenceError(BirkhoffError, RuntimeError):
    """An iteration did not reach its tolerance within ``max_iter`` steps.

    Attributes
    ----------
    info : object
        The solver's info object at the last iterate (e.g. ``SinkhornInfo``).
    """

    def __init__(self, message: str, info: object = None):
        super().__init__(message)
        self.info = info


class NotDoublyStochasticError(BirkhoffError, ValueError):
    """Input to a routine that needs a doubly stochastic matrix is not DS within ``tol``."""


__all__ = [
    "BirkhoffError",
    "InvalidMatrixError",
    "InvalidArgumentError",
    "NoTotalSupportError",
    "ConvergenceError",
    "NotDoublyStochasticError",
]
