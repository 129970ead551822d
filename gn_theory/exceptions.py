"""Exceptions and warnings raised by gn_theory.

Every error gn_theory raises derives from :class:`GnTheoryError`; the specific
errors also derive from the matching built-in (``ValueError``, ``TypeError``,
``MemoryError``, ``FloatingPointError``) so that ``except ValueError`` keeps
working in user code. Warnings derive from :class:`GnTheoryWarning`, so that
``warnings.filterwarnings("ignore", category=GnTheoryWarning)`` silences them
all at once (the statsmodels ``ModelWarning`` idea).
"""

from __future__ import annotations

__all__ = [
    "GnTheoryError",
    "InvalidInputError",
    "DataError",
    "ParameterSelectionError",
    "ShapeError",
    "DTypeError",
    "DeviceMismatchError",
    "NonFiniteError",
    "MemoryBudgetError",
    "NotSymmetricError",
    "ResultFileError",
    "MissingDependencyError",
    "GnTheoryWarning",
    "ConvergenceWarning",
    "NumericalWarning",
]


class GnTheoryError(Exception):
    """Base class of every error raised by gn_theory."""


class InvalidInputError(GnTheoryError, ValueError):
    """An argument has an invalid value (range, option, empty input, ...)."""


class DataError(InvalidInputError):
    """The data (inputs or targets) do not fit the model or the loss."""


class ParameterSelectionError(InvalidInputError):
    """The ``params`` selection names unknown, frozen or no parameters."""


class ShapeError(InvalidInputError):
    """An array or tensor has the wrong shape."""


class DTypeError(GnTheoryError, TypeError):
    """An array or tensor has the wrong dtype."""


class DeviceMismatchError(InvalidInputError):
    """Tensors that must live on one device live on different devices."""


class NonFiniteError(GnTheoryError, FloatingPointError):
    """A model output, a loss or a matrix-vector product is NaN or infinite."""


class MemoryBudgetError(GnTheoryError, MemoryError):
    """A dense computation would need more memory than the configured budget."""


class NotSymmetricError(InvalidInputError):
    """An operator that must be symmetric failed a symmetry probe."""


class ResultFileError(InvalidInputError):
    """A result file is missing, empty, truncated, corrupt, foreign or of a newer schema."""


class MissingDependencyError(GnTheoryError, ImportError):
    """An optional dependency is not installed; the message says how to install it."""


class GnTheoryWarning(UserWarning):
    """Base class of every warning issued by gn_theory."""


class ConvergenceWarning(GnTheoryWarning):
    """An iterative method or a fit stopped before it converged."""


class NumericalWarning(GnTheoryWarning):
    """A result may be inaccurate (round-off, ill-conditioning, few samples)."""
