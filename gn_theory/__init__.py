"""gn_theory: measure and explain the curvature of neural-network loss landscapes.

The public API, grouped by stage:

* operators: :func:`hessian_operator`, :func:`ggn_operator`,
  :func:`residual_operator` build the Hessian ``H`` of a mean loss, its
  generalized Gauss-Newton term ``G`` and the residual ``R = H - G`` as
  matrix-free :class:`CurvatureOperator` objects.
* spectra: :func:`eigh`, :func:`lanczos`, :func:`slq`, :func:`trace` and
  :func:`outliers` estimate spectra of any symmetric operator and return
  :class:`Spectrum`, :class:`SpectralDensity`, :class:`TraceEstimate`,
  :class:`Outliers`.
* class structure: :func:`class_structure` splits the GGN of a softmax
  classifier into class-mean, cross-class and within-class parts
  (:class:`ClassStructure`); :func:`fort_ganguli` measures Fort & Ganguli's
  observables (:class:`FortGanguli`).
* random-matrix models: :mod:`gn_theory.rmt` (Marchenko-Pastur bulks, BBP
  outliers, fits, outlier predictors), torch-free.
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
from .spectra import (  # noqa: E402
    Outliers,
    SpectralDensity,
    Spectrum,
    TraceEstimate,
    eigh,
    lanczos,
    outliers,
    slq,
    trace,
)
from .decomposition import (  # noqa: E402
    ClassStructure,
    FortGanguli,
    class_structure,
    fort_ganguli,
)
from . import rmt  # noqa: E402
from .rmt import (  # noqa: E402
    MarchenkoPastur,
    fit_marchenko_pastur,
    fit_spiked_model,
    predict_outliers,
    scaling_fit,
)

__all__ = [
    "__version__",
    # operators
    "CurvatureOperator",
    "DenseOperator",
    "hessian_operator",
    "ggn_operator",
    "residual_operator",
    # spectra
    "Spectrum",
    "SpectralDensity",
    "TraceEstimate",
    "Outliers",
    "eigh",
    "lanczos",
    "slq",
    "trace",
    "outliers",
    # class structure
    "class_structure",
    "ClassStructure",
    "fort_ganguli",
    "FortGanguli",
    # random-matrix models (the subpackage, and its main entry points)
    "rmt",
    "MarchenkoPastur",
    "fit_marchenko_pastur",
    "fit_spiked_model",
    "predict_outliers",
    "scaling_fit",
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
