r"""Spectra of symmetric operators: dense, Lanczos top/bottom-k, SLQ densities, traces.

Every estimator takes any symmetric operator: a :class:`~gn_theory.CurvatureOperator`
(``hessian_operator``, ``ggn_operator``, ``residual_operator``, ``DenseOperator``),
any :class:`scipy.sparse.linalg.LinearOperator`, a dense numpy array or a dense
torch tensor. They are converted once by :func:`gn_theory.operators.as_operator`;
all Krylov work then runs in torch on the operator's device, and only small
projected matrices (m x m, tridiagonals) visit the host.

Eigenvalues, Ritz values and quadrature nodes are returned **descending**
(largest first), eigenvector columns and weights matching. The results
(:class:`Spectrum`, :class:`SpectralDensity`, :class:`TraceEstimate`,
:class:`Outliers`) live in the torch-free :mod:`gn_theory.results` and are
re-exported here.

* :func:`eigh` -- full spectrum from the dense matrix (float64 by default).
* :func:`lanczos` -- k largest / smallest / both-end eigenpairs by thick-restart
  block Lanczos with full reorthogonalisation; memory ``O(P (m + b))``.
* :func:`slq` -- stochastic Lanczos quadrature: a :class:`SpectralDensity`
  keeping every probe's Ritz nodes and Gauss weights; all probes share one
  batched product per step.
* :func:`spectral_density` -- the density users plot: the top k eigenpairs
  exactly (deflated), SLQ on the rest; the fast default (docs/performance.md).
* :func:`deflated_operator` -- ``(I - QQ^T) A (I - QQ^T) + s QQ^T`` for computed
  eigenpairs (Lanczos on the rest of the spectrum).
* :func:`trace` -- Hutchinson or Hutch++ with a standard error, probes batched.
* :func:`outliers` -- separate outliers from the bulk (largest log gap, or
  above a supplied bulk edge).
* :func:`check_symmetric` -- a two-vector symmetry probe.

References
----------
See ``docs/theory.md`` section 3 (Lanczos 3.1, SLQ 3.2, traces 3.4, negative
eigenvalues 3.5). Papyan, arXiv:1811.07062 and arXiv:2008.11865 (SLQ
normalisation and kernel width); Ghorbani, Krishnan, Xiao, arXiv:1901.10159;
Meyer, Musco, Musco, Woodruff, SOSA 2021 (Hutch++); Wu and Simon, SIAM J.
Matrix Anal. Appl. 22 (2000) (thick-restart Lanczos).
"""

from __future__ import annotations

from ..results.spectra import (
    PAPYAN_KAPPA,
    Outliers,
    SpectralDensity,
    SpectralMeasure,
    Spectrum,
    TraceEstimate,
    spectral_measure,
)
from .density import (
    DEFAULT_DEFLATE,
    DEFAULT_DENSITY_PROBES,
    DEFAULT_DENSITY_STEPS,
    DeflatedOperator,
    deflated_operator,
    smallest_eigenvalues,
    spectral_density,
)
from .eigh import eigh
from .lanczos import lanczos
from .outliers import outliers
from .slq import DEFAULT_SLQ_PROBES, DEFAULT_SLQ_STEPS, slq
from .symmetry import check_symmetric
from .trace import trace

__all__ = [
    # estimators
    "eigh",
    "lanczos",
    "slq",
    "spectral_density",
    "deflated_operator",
    "DeflatedOperator",
    "trace",
    "outliers",
    "check_symmetric",
    # results (defined in gn_theory.results)
    "Spectrum",
    "SpectralDensity",
    "TraceEstimate",
    "Outliers",
    # spectrum-like input
    "SpectralMeasure",
    "spectral_measure",
    # defaults
    "PAPYAN_KAPPA",
    "DEFAULT_SLQ_STEPS",
    "DEFAULT_SLQ_PROBES",
    "DEFAULT_DEFLATE",
    "DEFAULT_DENSITY_PROBES",
    "DEFAULT_DENSITY_STEPS",
    "smallest_eigenvalues",
]
