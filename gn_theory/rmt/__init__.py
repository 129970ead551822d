"""Random-matrix models of curvature spectra: Marchenko-Pastur bulks and BBP outliers.

Conventions (used throughout): ``ratio`` gamma = dimension / number of samples
(p / n); ``scale`` sigma^2 = the population variance, so the MP bulk is
``[scale (1 - sqrt(ratio))**2, scale (1 + sqrt(ratio))**2]`` with an atom of
mass ``1 - 1/ratio`` at zero when ``ratio > 1``. A multiplicative spike
``theta`` is a population eigenvalue ``scale * (1 + theta)``.

Contents:

* the Marchenko-Pastur law (:class:`MarchenkoPastur`, :data:`marchenko_pastur`);
* closed-form spiked-model predictions for four models (:func:`bbp_threshold`,
  :func:`bbp_outlier`, :func:`bbp_overlap`, :func:`bbp_spike`) and the general
  Benaych-Georges & Nadakuditi rule (:func:`bgn_outlier`,
  :func:`empirical_stieltjes`);
* fits with uncertainties and goodness of fit (:func:`fit_marchenko_pastur`,
  :func:`fit_spiked_model`);
* predictions of the GGN's outliers from its class structure, with the
  diagnostics that explain a failure (:func:`predict_outliers`);
* scaling-law regressions (:func:`scaling_fit`);
* simulators with known truth (:func:`sample_covariance_eigenvalues`, ...);
* sympy derivations of the closed forms in :mod:`gn_theory.rmt.symbolic`
  (imported on demand: it loads sympy).

The modules of this subpackage do not import torch: they work on numpy arrays
and on saved results, so a spectrum measured on a GPU machine can be fitted
anywhere.
"""

from __future__ import annotations

from ._bbp import (
    BBPModel,
    BGNOutlier,
    EmpiricalStieltjes,
    bbp_outlier,
    bbp_overlap,
    bbp_spike,
    bbp_threshold,
    bbp_upper_edge,
    bgn_outlier,
    empirical_stieltjes,
)
from ._fit import MarchenkoPasturFit, SpikedModelFit, fit_marchenko_pastur, fit_spiked_model
from ._mp import MarchenkoPastur, marchenko_pastur, mp_edges, mp_moment
from ._predict import (
    OutlierFormula,
    OutlierPrediction,
    RitzResult,
    additive_outliers,
    bgn_outliers,
    iid_noise_outliers,
    predict_outliers,
    subspace_ritz,
)
from ._scaling import ScalingFit, scaling_fit
from ._simulate import (
    additive_spiked_mp_eigenvalues,
    information_plus_noise_eigenvalues,
    sample_covariance_eigenvalues,
    spiked_wigner_eigenvalues,
)

__all__ = [
    # Marchenko-Pastur law
    "MarchenkoPastur",
    "marchenko_pastur",
    "mp_edges",
    "mp_moment",
    # spiked models
    "BBPModel",
    "bbp_threshold",
    "bbp_outlier",
    "bbp_overlap",
    "bbp_spike",
    "bbp_upper_edge",
    "EmpiricalStieltjes",
    "empirical_stieltjes",
    "BGNOutlier",
    "bgn_outlier",
    # fits
    "fit_marchenko_pastur",
    "MarchenkoPasturFit",
    "fit_spiked_model",
    "SpikedModelFit",
    # outlier prediction from class structure
    "predict_outliers",
    "OutlierPrediction",
    "OutlierFormula",
    "RitzResult",
    "iid_noise_outliers",
    "additive_outliers",
    "bgn_outliers",
    "subspace_ritz",
    # scaling laws
    "scaling_fit",
    "ScalingFit",
    # simulators
    "sample_covariance_eigenvalues",
    "additive_spiked_mp_eigenvalues",
    "information_plus_noise_eigenvalues",
    "spiked_wigner_eigenvalues",
]


def __getattr__(name: str):  # the sympy module only when asked for
    if name == "symbolic":
        import importlib

        return importlib.import_module(f"{__name__}.symbolic")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
