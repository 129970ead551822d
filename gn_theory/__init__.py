"""gn_theory: measure and explain the curvature of neural-network loss landscapes.

The public API, grouped by stage:

* operators: :func:`hessian_operator`, :func:`ggn_operator`,
  :func:`residual_operator` build the Hessian ``H`` of a mean loss, its
  generalized Gauss-Newton term ``G`` and the residual ``R = H - G`` as
  matrix-free :class:`CurvatureOperator` objects.
* results: every results object saves to ``.npz`` + ``.json`` and loads back
  with :func:`load_result`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .exceptions import (  # noqa: E402
    ConvergenceWarning,
    DataError,
    DeviceMismatchError,
    DTypeError,
    GnTheoryError,
    GnTheoryWarning,
    InvalidInputError,
    MemoryBudgetError,
    NonFiniteError,
    NotSymmetricError,
    NumericalWarning,
    ParameterSelectionError,
    ShapeError,
)
from .operators import (  # noqa: E402
    CurvatureOperator,
    DenseOperator,
    ggn_operator,
    hessian_operator,
    residual_operator,
)
from .results import load_result  # noqa: E402

__all__ = [
    "__version__",
    # operators
    "CurvatureOperator",
    "DenseOperator",
    "hessian_operator",
    "ggn_operator",
    "residual_operator",
    # results
    "load_result",
    # errors and warnings
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
    "GnTheoryWarning",
    "ConvergenceWarning",
    "NumericalWarning",
]
