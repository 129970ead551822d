"""gn_theory: measure and explain the curvature of neural-network loss landscapes.

The public API, grouped by stage:

* operators: :func:`hessian_operator`, :func:`ggn_operator`,
  :func:`residual_operator` build the Hessian ``H`` of a mean loss, its
  generalized Gauss-Newton term ``G`` and the residual ``R = H - G`` as
  matrix-free :class:`CurvatureOperator` objects.
* spectra: :func:`eigh`, :func:`lanczos`, :func:`slq`, :func:`spectral_density`, :func:`trace` and
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
  with :func:`load_result` (torch-free, :mod:`gn_theory.results`).

The names are loaded lazily (PEP 562): ``import gn_theory`` imports neither torch
nor any stage; the first use of a name imports the module that defines it, so
the analysis half (results, rmt, explain) runs where torch is not installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name -> the module that defines it (imported on first use)
_LAZY: dict[str, str] = {
    # operators
    "CurvatureOperator": "gn_theory.operators",
    "DenseOperator": "gn_theory.operators",
    "as_operator": "gn_theory.operators",
    "hessian_operator": "gn_theory.operators",
    "ggn_operator": "gn_theory.operators",
    "residual_operator": "gn_theory.operators",
    # spectra (estimators; their results live in gn_theory.results)
    "eigh": "gn_theory.spectra",
    "lanczos": "gn_theory.spectra",
    "slq": "gn_theory.spectra",
    "spectral_density": "gn_theory.spectra",
    "smallest_eigenvalues": "gn_theory.spectra",
    "trace": "gn_theory.spectra",
    "outliers": "gn_theory.spectra",
    # class structure (measurement)
    "class_structure": "gn_theory.decomposition",
    "fort_ganguli": "gn_theory.decomposition",
    "within_class_operator": "gn_theory.decomposition",
    "measure_outlier_inputs": "gn_theory.decomposition",
    # results (torch-free)
    "Result": "gn_theory.results",
    "load_result": "gn_theory.results",
    "Spectrum": "gn_theory.results",
    "SpectralDensity": "gn_theory.results",
    "TraceEstimate": "gn_theory.results",
    "Outliers": "gn_theory.results",
    "ClassStructure": "gn_theory.results",
    "FortGanguli": "gn_theory.results",
    "OutlierInputs": "gn_theory.results",
    "TrainingLog": "gn_theory.results",
    # random-matrix models (torch-free)
    "MarchenkoPastur": "gn_theory.rmt",
    "fit_marchenko_pastur": "gn_theory.rmt",
    "fit_spiked_model": "gn_theory.rmt",
    "scaling_fit": "gn_theory.rmt",
    # explaining a measured spectrum (torch-free)
    "predict_outliers": "gn_theory.explain",
    # the whole analysis in one call (measure -> decompose -> fit)
    "analyze": "gn_theory.analysis",
    "Analysis": "gn_theory.analysis",
    # errors and warnings
    "GnTheoryError": "gn_theory.exceptions",
    "InvalidInputError": "gn_theory.exceptions",
    "DataError": "gn_theory.exceptions",
    "ParameterSelectionError": "gn_theory.exceptions",
    "ShapeError": "gn_theory.exceptions",
    "DTypeError": "gn_theory.exceptions",
    "DeviceMismatchError": "gn_theory.exceptions",
    "NonFiniteError": "gn_theory.exceptions",
    "MemoryBudgetError": "gn_theory.exceptions",
    "NotSymmetricError": "gn_theory.exceptions",
    "ResultFileError": "gn_theory.exceptions",
    "MissingDependencyError": "gn_theory.exceptions",
    "GnTheoryWarning": "gn_theory.exceptions",
    "ConvergenceWarning": "gn_theory.exceptions",
    "NumericalWarning": "gn_theory.exceptions",
}
_SUBMODULES = {
    "operators", "spectra", "decomposition", "results", "rmt", "explain", "exceptions",
    "data", "models", "training", "plots", "stages", "cli", "analysis", "report",
}

__all__ = ["__version__", *_LAZY, "rmt", "results"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"gn_theory.{name}")
    raise AttributeError(f"module 'gn_theory' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)


if TYPE_CHECKING:  # static view of the lazy names, for type checkers and IDEs
    from . import rmt, results  # noqa: F401
    from .decomposition import (  # noqa: F401
        class_structure,
        fort_ganguli,
        measure_outlier_inputs,
        within_class_operator,
    )
    from .exceptions import (  # noqa: F401
        ConvergenceWarning,
        DataError,
        DeviceMismatchError,
        DTypeError,
        GnTheoryError,
        GnTheoryWarning,
        InvalidInputError,
        MemoryBudgetError,
        MissingDependencyError,
        NonFiniteError,
        NotSymmetricError,
        NumericalWarning,
        ParameterSelectionError,
        ResultFileError,
        ShapeError,
    )
    from .analysis import Analysis, analyze  # noqa: F401
    from .explain import predict_outliers  # noqa: F401
    from .operators import (  # noqa: F401
        CurvatureOperator,
        DenseOperator,
        as_operator,
        ggn_operator,
        hessian_operator,
        residual_operator,
    )
    from .results import (  # noqa: F401
        ClassStructure,
        FortGanguli,
        OutlierInputs,
        Outliers,
        Result,
        SpectralDensity,
        Spectrum,
        TraceEstimate,
        TrainingLog,
        load_result,
    )
    from .rmt import MarchenkoPastur, fit_marchenko_pastur, fit_spiked_model, scaling_fit  # noqa: F401
    from .spectra import (  # noqa: F401
        eigh, lanczos, outliers, slq, smallest_eigenvalues, spectral_density, trace,
    )
