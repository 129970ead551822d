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
* the outlier predictors (:func:`iid_noise_outliers`, :func:`additive_outliers`,
  :func:`bgn_outliers`, :func:`subspace_ritz`); :func:`predict_outliers`, which
  compares them with the measured outliers of G, lives in :mod:`gn_theory.explain`
  and is re-exported here;
* outlier counts by stated rules, the MP edge of a credible bulk fit or the
  largest gap (:func:`count_outliers`);
* scaling-law regressions (:func:`scaling_fit`);
* simulators with known truth (:func:`sample_covariance_eigenvalues`, ...);
* sympy derivations of the closed forms in :mod:`gn_theory.rmt.symbolic`
  (imported on demand: it loads sympy).

The modules of this subpackage do not import torch: they work on numpy arrays
and on saved results, so a spectrum measured on a GPU machine can be fitted
anywhere.
"""

from __future__ import annotations

import importlib

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
from ._common import EDGE_FACTOR
from ._count import OutlierCount, count_outliers
from ._fit import MarchenkoPasturFit, MarchenkoPasturOptions, fit_marchenko_pastur
from ._mp import MarchenkoPastur, marchenko_pastur, mp_edges, mp_moment
from ._predictors import (
    OutlierFormula,
    RitzResult,
    additive_outliers,
    bgn_outliers,
    iid_noise_outliers,
    subspace_ritz,
)
from ._scaling import ScalingFit, scaling_fit
from ._simulate import (
    additive_spiked_mp_eigenvalues,
    information_plus_noise_eigenvalues,
    sample_covariance_eigenvalues,
    spiked_wigner_eigenvalues,
)
from ._spiked import SpikedModelFit, fit_spiked_model

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
    "MarchenkoPasturOptions",
    "fit_spiked_model",
    "SpikedModelFit",
    # outlier counts (EDGE_FACTOR: values above it times a fitted upper edge are outliers)
    "EDGE_FACTOR",
    "count_outliers",
    "OutlierCount",
    # outlier predictors (predict_outliers and OutlierPrediction live in gn_theory.explain)
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


#: Names loaded on first use: the sympy module, and the outlier comparison of
#: gn_theory.explain (which imports this package: a lazy re-export breaks the cycle).
_LAZY = {
    "symbolic": ("gn_theory.rmt.symbolic", None),
    "predict_outliers": ("gn_theory.explain", "predict_outliers"),
    "OutlierPrediction": ("gn_theory.explain", "OutlierPrediction"),
}


def __getattr__(name: str):  # PEP 562
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
