r"""Predicted outlier positions of the Gauss-Newton matrix G from its class structure.

Papyan's split (THEORY.md section 2) writes :math:`G = G_{\rm cm} + G_{\rm w}`:
the class means :math:`\delta_{c,c'}` give the low-rank part :math:`G_{\rm cm}`
(rank at most :math:`C^2`), the within-class deviations the bulk
:math:`G_{\rm w}`. Four predictors turn this structure into positions of the
outliers of G, each under its own assumption (THEORY.md sections 5 and 5b):

* ``"iid"`` -- the means-plus-iid-noise ("information-plus-noise") mapping:
  with the class-mean eigenvalues :math:`\ell_k = {\rm eig}_k(G_{\rm cm})`, a
  Marchenko-Pastur bulk of ratio :math:`c` and scale :math:`s = \sigma^2`,
  :math:`\hat\lambda_k = \ell_k + s(1 + c) + c s^2/\ell_k` if
  :math:`\rho_k = \ell_k/s > \sqrt c`, else the edge :math:`s(1+\sqrt c)^2`
  (:func:`iid_noise_outliers`). Assumes the within-class deviations are iid and
  isotropic.
* ``"additive"`` -- an additive spike :math:`\ell_k u_k u_k^\top` on an MP bulk,
  :math:`\hat\lambda_k = \ell_k + s\ell_k/(\ell_k - cs)` above
  :math:`\ell_k > s(c + \sqrt c)` (:func:`additive_outliers`). Assumes the
  class-mean directions are in generic position with respect to an MP bulk.
* ``"bgn"`` -- the Benaych-Georges & Nadakuditi rule with the *empirical*
  Stieltjes transform of :math:`G_{\rm w}` (from stochastic Lanczos
  quadrature): :math:`G_{\mu}(\hat\lambda_k) = 1/\ell_k`
  (:func:`bgn_outliers`). Drops the MP assumption, keeps the generic-position
  one.
* ``"subspace"`` -- Rayleigh-Ritz of G itself on the class-mean span
  :math:`{\rm span}\{\delta_{c,c'}\}` (:func:`subspace_ritz`): Ritz values
  :math:`\theta_k` of :math:`Q^\top G Q`, residuals
  :math:`r_k = G y_k - \theta_k y_k`, and the corrected values
  :math:`\theta_k + \|r_k\|^2/\theta_k` (reported as ``"subspace_corrected"``).
  It uses products with G, so it shows the *structure that explains the
  outliers* (their eigenspace is the class-mean span), not an independent
  prediction.

:func:`predict_outliers` runs them on a
:class:`~gn_theory.decomposition.ClassStructure` and returns an
:class:`OutlierPrediction` that also carries the diagnostics that explain why a
predictor fails (THEORY.md 5b): how much of the energy of the top eigenvectors
of :math:`G_{\rm w}` lies inside the class-mean span (next to the random
baseline dim/P), the MP fit's third-moment ratio and KS statistic, and the share
of :math:`\operatorname{tr} G` carried by :math:`G_{\rm cm}`.

Conventions: ``ratio`` :math:`c = P/m` (dimension over number of noise columns;
:math:`m = NC` nominal, :math:`N(C-1)` effective) and ``scale``
:math:`\sigma^2`, so the bulk is :math:`[s(1-\sqrt c)^2, s(1+\sqrt c)^2]` with
an atom at 0 of mass :math:`1 - 1/c` when :math:`c > 1`, as everywhere in
:mod:`gn_theory.rmt`.

The module imports no torch; torch is imported inside the functions that
multiply by operators.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, NamedTuple, Sequence, get_args

import numpy as np

from .._format import fmt_values
from ..results import Summary
from ..exceptions import ConvergenceWarning, InvalidInputError, ShapeError
from ..results import Result
from ._bbp import (
    _resolve_stieltjes,
    bbp_outlier,
    bbp_overlap,
    bbp_threshold,
    bbp_upper_edge,
    bgn_outlier,
    empirical_stieltjes,
)
from ._mp import MarchenkoPastur, _check_ratio_scale

__all__ = [
    "PredictionMethod",
    "OutlierFormula",
    "RitzResult",
    "iid_noise_outliers",
    "additive_outliers",
    "bgn_outliers",
    "subspace_ritz",
    "predict_outliers",
    "OutlierPrediction",
]

#: The predictors of :func:`predict_outliers`.
PredictionMethod = Literal["iid", "additive", "bgn", "subspace"]
_METHODS: tuple[str, ...] = get_args(PredictionMethod)

#: The assumption each prediction row rests on, in words (used in the summary).
_ASSUMPTIONS = {
    "iid": "class means + iid isotropic within-class noise with an MP bulk",
    "additive": "additive spikes in generic position on an MP bulk",
    "bgn": "additive spikes in generic position on the empirical bulk of G_w",
    "subspace": "Rayleigh-Ritz of G on the class-mean span (products with G)",
    "subspace_corrected": "Ritz values + ||r_k||^2 / theta_k (products with G)",
}

#: Energy in the class-mean span above this many times the random baseline (and above
#: ISOTROPY_MIN_SHARE) counts as "not isotropic".
ISOTROPY_FACTOR = 5.0
ISOTROPY_MIN_SHARE = 0.2
#: Third-moment ratio outside [1/MP_MOMENT_TOL, MP_MOMENT_TOL] or a KS statistic above
#: MP_KS_TOL counts as "bulk not MP".
MP_MOMENT_TOL = 1.25
MP_KS_TOL = 0.1


# ----------------------------------------------------------------------------- validation
def _real_1d(values: Any, name: str, *, nonnegative: bool = True) -> np.ndarray:
    """Finite float64 1-D array; negative entries (below round-off) rejected if asked."""
    if isinstance(values, (str, bytes, dict)) or values is None:
        raise InvalidInputError(f"{name} must be a 1-d array of real numbers; got {type(values).__name__}")
    values = getattr(values, "eigenvalues", values)  # a Spectrum
    if _is_torch(values):
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a 1-d array of real numbers; got {values!r}") from exc
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ShapeError(f"{name} must be 1-d; got shape {arr.shape}")
    if arr.size == 0:
        raise InvalidInputError(f"{name} is empty")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InvalidInputError(
            f"{name} holds {bad.size} non-finite value(s) (NaN or inf) at positions {bad[:10].tolist()}"
        )
    if nonnegative:
        tol = 1e-10 * max(1.0, float(np.max(np.abs(arr))))
        neg = np.flatnonzero(arr < -tol)
        if neg.size:
            raise InvalidInputError(
                f"{name} must be >= 0 (eigenvalues of a PSD matrix); got {arr[neg][:5].tolist()} at "
                f"positions {neg[:10].tolist()}"
            )
        arr = np.clip(arr, 0.0, None)
    return arr


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _bulk_params(bulk_fit: Any) -> tuple[float, float, float, float, str]:
    """(ratio, scale, ks, third_moment_ratio, source) from a duck-typed bulk fit or a tuple."""
    if isinstance(bulk_fit, (tuple, list)):
        if len(bulk_fit) != 2:
            raise InvalidInputError(
                f"bulk_fit as a sequence must be (ratio, scale); got {len(bulk_fit)} entries"
            )
        g, s = _check_ratio_scale(bulk_fit[0], bulk_fit[1])
        return g, s, math.nan, math.nan, "given (ratio, scale)"
    if not (hasattr(bulk_fit, "ratio") and hasattr(bulk_fit, "scale")):
        raise InvalidInputError(
            "bulk_fit must have .ratio and .scale attributes (e.g. a MarchenkoPasturFit or a "
            f"MarchenkoPastur), be a (ratio, scale) tuple, or be None; got {type(bulk_fit).__name__}"
        )
    g, s = _check_ratio_scale(bulk_fit.ratio, bulk_fit.scale)

    def opt(name: str) -> float:
        v = getattr(bulk_fit, name, None)
        try:
            return float(v) if v is not None else math.nan
        except (TypeError, ValueError):
            return math.nan

    return g, s, opt("ks_statistic"), opt("third_moment_ratio"), f"bulk_fit ({type(bulk_fit).__name__})"


# ----------------------------------------------------------------------------- formulas
class OutlierFormula(NamedTuple):
    """Predicted outliers from one closed-form or BGN predictor (descending in the spikes).

    Unpacks as ``predicted, above, overlap, threshold, edge``.
    """

    #: predicted eigenvalues of G, one per class-mean eigenvalue (the edge where absent)
    predicted: np.ndarray
    #: whether the spike is above the threshold (an outlier is predicted to exist)
    above: np.ndarray
    #: predicted squared overlap of the outlier eigenvector with the spike direction
    overlap: np.ndarray
    #: threshold on the class-mean eigenvalue (eigenvalue units)
    threshold: float
    #: upper edge of the bulk
    edge: float


def iid_noise_outliers(class_mean_eigenvalues: Any, ratio: float, scale: float) -> OutlierFormula:
    r"""Outliers of :math:`G = \frac1N (M + E)(M + E)^\top` with iid noise E (the "Hessian mapping").

    With :math:`\ell_k` the eigenvalues of the mean part
    :math:`\frac1N MM^\top` (:math:`G_{\rm cm}`), a noise bulk
    MP(``ratio`` c, ``scale`` s) and :math:`\rho_k = \ell_k/s`,

    .. math:: \hat\lambda_k = \ell_k + s(1 + c) + \frac{c s^2}{\ell_k}
              \quad (\rho_k > \sqrt c), \qquad
              \hat\lambda_k = s(1 + \sqrt c)^2 \quad\text{otherwise.}

    This is the information-plus-noise law with :math:`\theta^2 = \rho`
    (:func:`~gn_theory.rmt.bbp_outlier` with ``model="information_plus_noise"``
    at singular value :math:`\sqrt{\ell_k}`).

    Parameters
    ----------
    class_mean_eigenvalues : array_like
        :math:`\ell_k \ge 0` (e.g. ``structure.eigenvalues("G_cm")``).
    ratio : float
        c = P / m (m noise columns: NC nominal, N(C-1) effective).
    scale : float
        :math:`\sigma^2` of the bulk (C times the per-entry noise variance).

    Returns
    -------
    OutlierFormula
        Predicted eigenvalues (same order as the input), above-threshold flags,
        squared overlaps of the outlier eigenvectors with the mean directions
        (:math:`1 - c(1+\rho)/(\rho(\rho + c))`), the threshold
        :math:`s\sqrt c` on :math:`\ell` and the edge.

    Raises
    ------
    InvalidInputError
        Non-finite or negative eigenvalues, or ``ratio``/``scale`` not finite and
        positive.

    Notes
    -----
    Assumes the within-class deviations are iid and isotropic (independent of
    the mean directions). THEORY.md 5b: on trained networks on real data this
    fails by 80-90 % because the within-class variation concentrates in the
    class-mean span.

    Examples
    --------
    >>> res = iid_noise_outliers([4.0, 0.3], ratio=1 / 3, scale=1.0)
    >>> res.predicted.round(4), res.above
    (array([5.4167, 2.488 ]), array([ True, False]))
    """
    ell = _real_1d(class_mean_eigenvalues, "class_mean_eigenvalues")
    c, s = _check_ratio_scale(ratio, scale)
    theta = np.sqrt(ell)
    predicted = np.asarray(bbp_outlier(theta, c, s, model="information_plus_noise"), dtype=float)
    overlap = np.asarray(bbp_overlap(theta, c, s, model="information_plus_noise"), dtype=float)
    threshold = s * math.sqrt(c)
    return OutlierFormula(predicted, ell > threshold, overlap, threshold, s * (1.0 + math.sqrt(c)) ** 2)


def additive_outliers(class_mean_eigenvalues: Any, ratio: float, scale: float) -> OutlierFormula:
    r"""Outliers of an MP bulk plus additive spikes :math:`\sum_k \ell_k u_k u_k^\top`.

    .. math:: \hat\lambda_k = \ell_k + \frac{s\ell_k}{\ell_k - cs}
              \quad (\ell_k > s(c + \sqrt c)), \qquad s(1+\sqrt c)^2 \text{ otherwise}

    (:func:`~gn_theory.rmt.bbp_outlier` with ``model="additive"``).

    Parameters
    ----------
    class_mean_eigenvalues : array_like
        Spikes :math:`\ell_k \ge 0`, eigenvalue units.
    ratio, scale : float
        The MP bulk (c, :math:`\sigma^2`).

    Returns
    -------
    OutlierFormula
        As :func:`iid_noise_outliers`, with the additive threshold
        :math:`s(c + \sqrt c)` and overlaps :math:`1 - cs^2/(\ell - cs)^2`.

    Raises
    ------
    InvalidInputError
        Non-finite or negative eigenvalues, or bad ``ratio``/``scale``.

    Notes
    -----
    THEORY.md 5b: with *empirical* class means and iid noise this is the right
    rule (errors below 1 %); it fails like the iid mapping when the
    within-class part is not isotropic.

    Examples
    --------
    >>> additive_outliers([3.0, 1.0], 0.5, 1.0).predicted.round(4)
    array([4.2   , 2.9142])
    """
    ell = _real_1d(class_mean_eigenvalues, "class_mean_eigenvalues")
    c, s = _check_ratio_scale(ratio, scale)
    predicted = np.asarray(bbp_outlier(ell, c, s, model="additive"), dtype=float)
    overlap = np.asarray(bbp_overlap(ell, c, s, model="additive"), dtype=float)
    threshold = bbp_threshold(c, s, model="additive")
    edge = bbp_upper_edge(c, s, model="additive")
    return OutlierFormula(predicted, ell > threshold, overlap, threshold, edge)


def _stieltjes_of(bulk: Any, upper_edge: float | None) -> tuple[Any, float | None]:
    """A Stieltjes transform and default edge from a density, eigenvalues, a law or a transform."""
    if hasattr(bulk, "nodes") and hasattr(bulk, "weights") and not callable(bulk):
        nodes = np.asarray(bulk.nodes, dtype=float)
        weights = np.asarray(bulk.weights, dtype=float)
        G = empirical_stieltjes(nodes, weights)
        if upper_edge is None:
            bounds = getattr(bulk, "bounds", None)
            if bounds is not None and np.size(bounds) == 2 and np.all(np.isfinite(bounds)):
                upper_edge = max(float(np.asarray(bounds)[1]), G.upper_edge)
        return G, upper_edge
    if isinstance(bulk, MarchenkoPastur) or callable(bulk):
        return bulk, upper_edge
    return empirical_stieltjes(_real_1d(bulk, "bulk eigenvalues", nonnegative=False)), upper_edge


def bgn_outliers(
    class_mean_eigenvalues: Any, bulk: Any, *, upper_edge: float | None = None
) -> OutlierFormula:
    r"""Outliers by the Benaych-Georges & Nadakuditi rule on an empirical (or any) bulk.

    Each spike :math:`\ell_k` produces the solution :math:`\hat\lambda_k > b` of
    :math:`G_\mu(\hat\lambda_k) = 1/\ell_k` if :math:`\ell_k > 1/G_\mu(b^+)`,
    else sits at the edge :math:`b` (:func:`~gn_theory.rmt.bgn_outlier`).

    Parameters
    ----------
    class_mean_eigenvalues : array_like
        Spikes :math:`\ell_k \ge 0`.
    bulk : SpectralDensity, array_like, MarchenkoPastur or Stieltjes transform
        The bulk :math:`\mu`: an object with ``nodes``/``weights`` (an SLQ
        :class:`~gn_theory.spectra.SpectralDensity`, all P dimensions, its atom
        at zero included), 1-D eigenvalues (all P of them), a
        :class:`MarchenkoPastur` law or anything :func:`bgn_outlier` accepts.
    upper_edge : float, optional
        Edge :math:`b`. Default for a density: the larger of its residual-widened
        range estimate ``bounds[1]`` and its largest node (so that
        :math:`1/G(b^+)` is a finite threshold); otherwise the largest support
        point.

    Returns
    -------
    OutlierFormula
        Predicted eigenvalues (input order), flags, overlaps
        :math:`-1/(\ell^2 G'(\hat\lambda))`, threshold :math:`1/G(b)` and edge b.

    Raises
    ------
    InvalidInputError
        Bad eigenvalues, an unusable bulk, or an edge below the support.

    Notes
    -----
    With a discrete bulk whose edge is its largest node, :math:`G(b^+) = \infty`
    and every positive spike is formally above threshold.

    Examples
    --------
    >>> bgn_outliers([3.0], MarchenkoPastur(0.5)).predicted.round(6)
    array([4.2])
    """
    ell = _real_1d(class_mean_eigenvalues, "class_mean_eigenvalues")
    G, edge = _stieltjes_of(bulk, upper_edge)
    res = bgn_outlier(ell, G, upper_edge=edge)
    G_real, _, b = _resolve_stieltjes(G, edge)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        gb = G_real(b)
    threshold = 0.0 if not math.isfinite(gb) or gb <= 0 else 1.0 / gb
    return OutlierFormula(
        np.asarray(res.outlier, float),
        np.asarray(res.above, bool),
        np.asarray(res.overlap, float),
        threshold,
        b,
    )


# ----------------------------------------------------------------------------- Rayleigh-Ritz
class RitzResult(NamedTuple):
    """Rayleigh-Ritz of a symmetric operator on a subspace (descending)."""

    #: Ritz values theta_k, descending
    values: np.ndarray
    #: residual norms ||G y_k - theta_k y_k||
    residual_norms: np.ndarray
    #: theta_k + ||r_k||^2 / theta_k (theta_k where theta_k <= 0)
    corrected: np.ndarray
    #: Ritz vectors y_k as columns (P, r), float64
    vectors: np.ndarray
    #: the orthonormal basis Q actually used (P, r)
    basis: np.ndarray


def _orthonormal_basis(basis: np.ndarray, rtol: float) -> np.ndarray:
    U, s, _ = np.linalg.svd(basis, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        raise InvalidInputError("basis spans only the zero vector")
    return U[:, s > rtol * s[0]]


def _apply(apply_G: Any, Q: np.ndarray) -> np.ndarray:
    """G @ Q for a CurvatureOperator (torch kernel), a tensor, an array, a LinearOperator or a callable."""
    P = Q.shape[0]
    if hasattr(apply_G, "torch_dtype") and hasattr(apply_G, "device"):  # CurvatureOperator
        import torch

        V = torch.as_tensor(Q, dtype=apply_G.torch_dtype, device=apply_G.device)
        out = (apply_G @ V).detach().cpu().double().numpy()
    elif _is_torch(apply_G):
        import torch

        out = (apply_G.double() @ torch.as_tensor(Q, device=apply_G.device)).detach().cpu().numpy()
    elif isinstance(apply_G, np.ndarray) or hasattr(apply_G, "matmat"):
        if getattr(apply_G, "shape", (P, P)) != (P, P):
            raise ShapeError(f"apply_G has shape {apply_G.shape}; the basis has {P} rows")
        out = apply_G.matmat(Q) if hasattr(apply_G, "matmat") else apply_G @ Q
    elif callable(apply_G):
        out = apply_G(Q)
        if _is_torch(out):
            out = out.detach().cpu().numpy()
    else:
        raise InvalidInputError(
            "apply_G must be a CurvatureOperator, a (P, P) array or tensor, a scipy LinearOperator "
            f"or a callable V -> G V; got {type(apply_G).__name__}"
        )
    out = np.asarray(out, dtype=np.float64)
    if out.shape != Q.shape:
        raise ShapeError(f"G @ Q must have shape {Q.shape}; got {out.shape}")
    if not np.all(np.isfinite(out)):
        raise InvalidInputError("G @ Q holds non-finite values")
    return out


def subspace_ritz(
    apply_G: Any, basis: Any, *, orthonormalize: bool = True, rtol: float = 1e-10
) -> RitzResult:
    r"""Rayleigh-Ritz of a symmetric G on span(basis), with residuals and a second-order correction.

    With Q an orthonormal basis of the span, :math:`W = GQ` (``r`` products),
    :math:`T = Q^\top W = S\,{\rm diag}(\theta)\,S^\top`, Ritz vectors
    :math:`y_k = Q s_k` and residuals :math:`r_k = W s_k - \theta_k y_k`
    (orthogonal to the span). If the true eigenvector is
    :math:`y_k + z` with z outside the span and G is small there compared with
    :math:`\theta_k`, eliminating z (a Schur complement) gives
    :math:`\lambda_k \approx \theta_k + \|r_k\|^2/\theta_k`, which is reported as
    ``corrected``. Ritz values never exceed the true top eigenvalues (Cauchy
    interlacing); the correction moves them up.

    Parameters
    ----------
    apply_G : CurvatureOperator, array, tensor, LinearOperator or callable
        G as a (P, P) numpy array or torch tensor, a
        :class:`~gn_theory.operators.CurvatureOperator` (multiplied in torch on
        its device), a scipy ``LinearOperator``, or a callable ``V -> G V`` on
        (P, r) numpy arrays.
    basis : array_like or torch.Tensor, shape (P, r)
        Spanning vectors as columns (need not be orthonormal or independent).
    orthonormalize : bool, default True
        Orthonormalise ``basis`` by an SVD, dropping directions with singular
        value below ``rtol`` times the largest. With False the columns must
        already be orthonormal.
    rtol : float, default 1e-10
        Rank cut-off of the SVD.

    Returns
    -------
    RitzResult
        ``values`` (descending), ``residual_norms``, ``corrected``, ``vectors``
        and ``basis``, all float64 numpy.

    Raises
    ------
    InvalidInputError
        Non-finite basis or products, an all-zero basis, non-orthonormal columns
        with ``orthonormalize=False``, or an unsupported ``apply_G``.
    ShapeError
        ``basis`` not 2-D, or ``apply_G`` of a size that does not match.

    Examples
    --------
    >>> G = np.diag([5.0, 3.0, 1.0, 0.5])
    >>> res = subspace_ritz(G, np.eye(4)[:, :2])
    >>> res.values, res.residual_norms
    (array([5., 3.]), array([0., 0.]))
    """
    if _is_torch(basis):
        basis = basis.detach().cpu().numpy()
    try:
        B = np.asarray(basis, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"basis must be a (P, r) array of real numbers; got {type(basis).__name__}"
        ) from exc
    if B.ndim == 1:
        B = B[:, None]
    if B.ndim != 2 or B.shape[1] == 0:
        raise ShapeError(f"basis must have shape (P, r) with r >= 1; got {B.shape}")
    if not np.all(np.isfinite(B)):
        raise InvalidInputError("basis holds non-finite values")
    if orthonormalize:
        Q = _orthonormal_basis(B, rtol)
    else:
        err = np.abs(B.T @ B - np.eye(B.shape[1])).max()
        if err > 1e-8:
            raise InvalidInputError(
                f"basis columns are not orthonormal (max |Q^T Q - I| = {err:.2e}); use orthonormalize=True"
            )
        Q = B
    W = _apply(apply_G, Q)
    T = Q.T @ W
    theta, S = np.linalg.eigh(0.5 * (T + T.T))
    order = np.argsort(theta)[::-1]
    theta, S = theta[order], S[:, order]
    Y = Q @ S
    R = W @ S - Y * theta
    res = np.linalg.norm(R, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        corrected = np.where(theta > 0, theta + res**2 / np.where(theta > 0, theta, 1.0), theta)
    return RitzResult(theta, res, corrected, Y, Q)


# ----------------------------------------------------------------------------- results
@dataclass
class OutlierPrediction(Result):
    r"""Predicted outlier positions of G by several predictors, with the diagnostics that explain them.

    Built by :func:`predict_outliers`. Rows are predictors (``methods``),
    columns the top-k outliers, descending.

    Attributes
    ----------
    methods : list of str
        Row labels: a subset of ``"iid"``, ``"additive"``, ``"bgn"``,
        ``"subspace"`` and ``"subspace_corrected"`` (Ritz values plus
        :math:`\|r_k\|^2/\theta_k`).
    predicted : numpy.ndarray
        (M, k) predicted top eigenvalues of G, descending per row.
    above : numpy.ndarray
        (M, k) bool: predicted to be an outlier (above its predictor's
        threshold; for the subspace rows, above the top eigenvalue of
        :math:`G_{\rm w}` when it was computed).
    overlaps : numpy.ndarray
        (M, k) predicted squared overlap of the outlier eigenvector with its
        class-mean direction (NaN for the subspace rows).
    thresholds : numpy.ndarray
        (M,) threshold on the class-mean eigenvalue (NaN for the subspace rows).
    edges : numpy.ndarray
        (M,) upper edge of the bulk each predictor uses.
    class_mean_eigenvalues : numpy.ndarray
        All nonzero eig(:math:`G_{\rm cm}`), descending (the spikes).
    observed : numpy.ndarray or None
        Observed top eigenvalues of G, descending.
    relative_errors : numpy.ndarray or None
        (M, min(k, len(observed))) signed (predicted - observed) / observed.
    ritz_residual_norms : numpy.ndarray or None
        :math:`\|r_k\|` of the top-k Ritz pairs.
    ratio, scale : float
        The MP bulk used by ``"iid"``/``"additive"`` (NaN if unknown).
    bulk_source : str
        Where ``ratio``/``scale`` came from.
    within_nodes, within_weights : numpy.ndarray or None
        SLQ quadrature of :math:`G_{\rm w}` (used by ``"bgn"`` and the moments).
    within_upper_edge : float
        Edge b used by ``"bgn"``.
    diagnostics : dict
        ``within_energy_in_span`` (share of the energy of the top
        ``num_within_vectors`` eigenvectors of :math:`G_{\rm w}` inside the
        class-mean span), ``random_baseline`` (span_dim / P), ``span_dim``,
        ``num_within_vectors``, ``within_top_eigenvalue``,
        ``third_moment_ratio`` (empirical / MP third moment), ``ks_statistic``,
        ``third_moment_source``, ``class_mean_trace_share``
        (:math:`\operatorname{tr}G_{\rm cm}/\operatorname{tr}G`), ``trace_G_cm``,
        ``trace_G_w``; NaN where not computed.
    num_params, num_classes, num_samples : int
        P, C, N.
    skipped : list of str
        Predictors or diagnostics left out, with the reason.
    seed : int
        Seed of SLQ and Lanczos.
    metadata : dict
        Settings (k, SLQ probes/steps, products spent).
    """

    methods: list
    predicted: np.ndarray
    above: np.ndarray
    overlaps: np.ndarray
    thresholds: np.ndarray
    edges: np.ndarray
    class_mean_eigenvalues: np.ndarray
    observed: np.ndarray | None = None
    relative_errors: np.ndarray | None = None
    ritz_residual_norms: np.ndarray | None = None
    ratio: float = math.nan
    scale: float = math.nan
    bulk_source: str = ""
    within_nodes: np.ndarray | None = None
    within_weights: np.ndarray | None = None
    within_upper_edge: float = math.nan
    diagnostics: dict = field(default_factory=dict)
    num_params: int = 0
    num_classes: int = 0
    num_samples: int = 0
    skipped: list = field(default_factory=list)
    seed: int = 0
    metadata: dict = field(default_factory=dict)

    # -- access ---------------------------------------------------------------------
    @property
    def k(self) -> int:
        """Number of predicted outliers per row."""
        return int(self.predicted.shape[1])

    def _row(self, method: str) -> int:
        if method not in self.methods:
            raise InvalidInputError(f"method must be one of {self.methods}; got {method!r}")
        return self.methods.index(method)

    def prediction(self, method: str) -> np.ndarray:
        """Predicted top-k eigenvalues of G by one predictor, descending.

        Parameters
        ----------
        method : str
            A row label from :attr:`methods`.

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        InvalidInputError
            A method that was not run.
        """
        return self.predicted[self._row(method)].copy()

    @property
    def mean_abs_errors(self) -> dict[str, float]:
        """Mean absolute relative error per predictor (empty without observed values)."""
        if self.relative_errors is None or self.relative_errors.shape[1] == 0:
            return {}
        return {m: float(np.mean(np.abs(e))) for m, e in zip(self.methods, self.relative_errors)}

    @property
    def best_method(self) -> str | None:
        """The predictor with the smallest mean absolute relative error (None without observed)."""
        errs = self.mean_abs_errors
        return min(errs, key=errs.get) if errs else None

    @property
    def num_predicted_outliers(self) -> dict[str, int]:
        """How many of the top-k each predictor says are outliers (above threshold)."""
        return {m: int(a.sum()) for m, a in zip(self.methods, self.above)}

    def predict(self, class_mean_eigenvalues: Any, method: str = "iid") -> np.ndarray:
        """Apply a fitted predictor to other class-mean eigenvalues (same bulk).

        Parameters
        ----------
        class_mean_eigenvalues : array_like
            Spikes :math:`\\ell_k \\ge 0`.
        method : {"iid", "additive", "bgn"}, default "iid"
            ``"bgn"`` uses the stored SLQ quadrature of :math:`G_{\\rm w}`.

        Returns
        -------
        numpy.ndarray
            Predicted eigenvalues, in the input order.

        Raises
        ------
        InvalidInputError
            Unknown method, bad eigenvalues, or a bulk that was not estimated.
        """
        if method in ("iid", "additive"):
            if not (math.isfinite(self.ratio) and math.isfinite(self.scale)):
                raise InvalidInputError(
                    f"{method!r} needs the MP bulk (ratio, scale), which was not estimated"
                )
            f = iid_noise_outliers if method == "iid" else additive_outliers
            return f(class_mean_eigenvalues, self.ratio, self.scale).predicted
        if method == "bgn":
            if self.within_nodes is None or self.within_weights is None:
                raise InvalidInputError("'bgn' needs the SLQ quadrature of G_w, which was not computed")
            G = empirical_stieltjes(self.within_nodes, self.within_weights)
            return bgn_outliers(class_mean_eigenvalues, G, upper_edge=self.within_upper_edge).predicted
        raise InvalidInputError(
            "method must be 'iid', 'additive' or 'bgn' (the subspace predictor needs products "
            f"with G); got {method!r}"
        )

    # -- reporting ------------------------------------------------------------------
    def table(self) -> str:
        """Predicted vs observed, one line per outlier, as plain text.

        Returns
        -------
        str
            Columns: k, observed, then each predictor's value and (with
            observed values) its signed relative error in percent.
        """
        head = ["k", "observed"] + [
            h for m in self.methods for h in ((m, "err %") if self.relative_errors is not None else (m,))
        ]
        widths = [max(10, len(h)) for h in head]
        lines = ["  ".join(f"{h:>{w}}" for h, w in zip(head, widths))]
        n_cmp = 0 if self.relative_errors is None else self.relative_errors.shape[1]
        for j in range(self.k):
            obs = self.observed[j] if self.observed is not None and j < self.observed.size else math.nan
            cells = [str(j + 1), f"{obs:.5g}"]
            for i in range(len(self.methods)):
                star = "" if self.above[i, j] else "*"
                cells.append(f"{self.predicted[i, j]:.5g}{star}")
                if self.relative_errors is not None:
                    cells.append(f"{100 * self.relative_errors[i, j]:+.1f}" if j < n_cmp else "-")
            lines.append("  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
        lines.append(
            "(* = at or below the predictor's threshold: no outlier predicted, value is the bulk edge)"
        )
        return "\n".join(lines)

    def _notes(self) -> list[str]:
        d = self.diagnostics
        notes: list[str] = []
        share, base = d.get("within_energy_in_span", math.nan), d.get("random_baseline", math.nan)
        dim, nvec = d.get("span_dim", 0), d.get("num_within_vectors", 0)
        if math.isfinite(share):
            where = (
                f"{100 * share:.1f}% of the energy of the top-{nvec} eigenvectors of G_w lies in the "
                f"{dim}-dim class-mean span (random subspace: {100 * base:.2g}%)"
            )
            if share > max(ISOTROPY_FACTOR * base, ISOTROPY_MIN_SHARE):
                errs = {m: e for m, e in self.mean_abs_errors.items()
                        if m in ("iid", "additive", "bgn")}
                if errs:
                    worst = max(errs.values())
                    effect = (
                        f" Here they miss the observed outliers by up to {100 * worst:.0f}% "
                        "(mean |relative error|)." if worst > 0.1 else
                        f" Here they still land within {100 * worst:.0f}% on average: the inflation is "
                        "small next to the class-mean eigenvalues themselves."
                    )
                else:
                    effect = ""
                notes.append(
                    f"Within-class part is not isotropic: {where}. Within-class variation inflates the "
                    "class-mean directions instead of acting as independent noise, which breaks the "
                    "assumption of the iid/additive/bgn predictors (noise in generic position to the "
                    f"means); where the inflation matters they predict the outliers too low.{effect}"
                )
            else:
                notes.append(
                    f"Within-class part looks isotropic with respect to the class means: {where}; the "
                    "generic-position assumption of the iid/additive/bgn predictors holds on this count."
                )
        else:
            notes.append(
                "Isotropy of G_w with respect to the class-mean span was not measured "
                "(no products with G)."
            )
        m3, ks = d.get("third_moment_ratio", math.nan), d.get("ks_statistic", math.nan)
        parts = []
        if math.isfinite(m3):
            parts.append(f"third moment {m3:.2f}x MP")
        if math.isfinite(ks):
            parts.append(f"KS {ks:.2f}")
        if parts:
            bad = (math.isfinite(m3) and not (1 / MP_MOMENT_TOL <= m3 <= MP_MOMENT_TOL)) or (
                math.isfinite(ks) and ks > MP_KS_TOL
            )
            src = d.get("third_moment_source", "")
            if bad:
                notes.append(
                    f"Bulk not MP: {', '.join(parts)}{f' ({src})' if src else ''}. The MP-based predictors "
                    "(iid, additive) use the wrong bulk; bgn uses the empirical bulk of G_w instead."
                )
            else:
                notes.append(f"Bulk consistent with MP on these counts: {', '.join(parts)}.")
        tshare = d.get("class_mean_trace_share", math.nan)
        if math.isfinite(tshare):
            notes.append(f"G_cm carries {100 * tshare:.1f}% of tr G (the rest is within-class, G_w).")
        if "subspace" in self.methods:
            notes.append(
                f"The subspace predictor is Rayleigh-Ritz of G itself on the class-mean span ({dim} products "
                "with G): it shows the structure that explains the outliers (their eigenspace is the "
                "class-mean span), not an independent prediction."
            )
        if "bgn" in self.methods:
            notes.append(
                "bgn uses the empirical Stieltjes transform of G_w from its SLQ quadrature with edge "
                f"b = {self.within_upper_edge:.4g} (the residual-widened range estimate); threshold 1/G(b)."
            )
        if self.bulk_source.startswith("moments"):
            notes.append(
                f"Bulk ratio {self.ratio:.4g} and scale {self.scale:.4g} by moment matching on the SLQ "
                "quadrature of G_w (THEORY 4.5 step 3: scale = tr(G_w)/P, ratio = m2/m1^2 - 1; "
                "fit_marchenko_pastur with nothing excluded); pass bulk_fit to fit the bulk your way."
            )
        errs = self.mean_abs_errors
        if errs:
            best = self.best_method
            worst = [m for m, e in errs.items() if e > 0.5]
            notes.append(
                f"Best predictor: {best} (mean |relative error| {100 * errs[best]:.1f}% over the top "
                f"{self.relative_errors.shape[1]})."
                + (f" Off by more than 50%: {', '.join(worst)}." if worst else "")
            )
        for s in self.skipped:
            notes.append(f"Skipped: {s}.")
        return notes

    def summary(self) -> Summary:
        """A text/HTML table of the predictions with numbered notes on the assumptions that broke.

        Returns
        -------
        Summary
        """
        d = self.diagnostics
        rows: list[tuple[str, str]] = [
            ("P, C, N", f"{self.num_params}, {self.num_classes}, {self.num_samples}"),
            ("class-mean eigenvalues", fmt_values(self.class_mean_eigenvalues)),
            ("bulk ratio, scale", f"{self.ratio:.4g}, {self.scale:.4g} ({self.bulk_source})"),
            ("observed top", fmt_values(self.observed) if self.observed is not None else "-"),
        ]
        errs = self.mean_abs_errors
        for i, m in enumerate(self.methods):
            err = f"; mean |err| {100 * errs[m]:.1f}%" if m in errs else ""
            rows.append(
                (m, f"{fmt_values(self.predicted[i])} [{int(self.above[i].sum())}/{self.k} above]{err}")
            )
            rows.append((f"  assumes", _ASSUMPTIONS[m]))
        for key in ("within_energy_in_span", "random_baseline", "third_moment_ratio", "ks_statistic",
                    "class_mean_trace_share"):
            v = d.get(key, math.nan)
            rows.append((key.replace("_", " "), f"{v:.4g}" if isinstance(v, float) else str(v)))
        return Summary("Predicted outliers of G from its class structure", rows, self._notes())

    def __repr__(self) -> str:
        best = self.best_method
        return (
            f"OutlierPrediction(methods={self.methods}, k={self.k}"
            + (f", best={best!r}" if best else "")
            + ")"
        )


# ----------------------------------------------------------------------------- driver
def _methods(method: Any) -> list[str]:
    if isinstance(method, str):
        if method == "all":
            return list(_METHODS)
        items: Sequence[Any] = [method]
    elif isinstance(method, (list, tuple)) and method:
        items = method
    else:
        raise InvalidInputError(
            f"method must be 'all', one of {_METHODS} or a non-empty list of them; got {method!r}"
        )
    out = []
    for m in items:
        if m not in _METHODS:
            raise InvalidInputError(
                f"method must be 'all' or one of {', '.join(map(repr, _METHODS))}; got {m!r}"
            )
        if m not in out:
            out.append(m)
    return out


def _check_structure(cs: Any) -> None:
    need = ("eigenvalues", "factor", "gram", "num_params", "num_classes", "within_operator", "ggn_operator")
    missing = [a for a in need if not hasattr(cs, a)]
    if missing:
        raise InvalidInputError(
            "class_structure must be a ClassStructure (from gn_theory.decomposition.class_structure); "
            f"got {type(cs).__name__} without {', '.join(missing)}"
        )


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _moments_bulk(nodes: np.ndarray, weights: np.ndarray, P: int) -> tuple[float, float, float, float]:
    """(ratio, scale, KS, third-moment ratio) of the moments fit to a quadrature, no exclusions."""
    from types import SimpleNamespace

    from ._fit import fit_marchenko_pastur

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = fit_marchenko_pastur(SimpleNamespace(nodes=nodes, weights=weights, num_params=P),
                                   exclude_outliers=False, num_bootstrap=0)
    if not fit.converged:
        raise InvalidInputError(
            f"moment matching on the SLQ quadrature of G_w failed ({fit.message}); pass bulk_fit "
            "(a MarchenkoPasturFit or a (ratio, scale) tuple)"
        )
    return fit.ratio, fit.scale, fit.ks_statistic, fit.third_moment_ratio


def predict_outliers(
    class_structure: Any,
    bulk_fit: Any = None,
    *,
    method: str | Sequence[str] = "all",
    observed: Any = None,
    k: int | None = None,
    within_density: Any = None,
    within_spectrum: Any = None,
    num_within_vectors: int | None = None,
    slq_probes: int = 10,
    slq_steps: int = 128,
    seed: int = 0,
) -> OutlierPrediction:
    r"""Predict the outliers of G from its class structure by several predictors, with diagnostics.

    The spikes are the nonzero eigenvalues :math:`\ell_k` of :math:`G_{\rm cm}`
    (exact, from the :math:`C^2\times C^2` Gram matrix). The predictors
    (module docstring; THEORY.md 5, 5b):

    * ``"iid"``: :func:`iid_noise_outliers` with the bulk (ratio, scale);
    * ``"additive"``: :func:`additive_outliers` with the same bulk;
    * ``"bgn"``: :func:`bgn_outliers` with the empirical Stieltjes transform of
      :math:`G_{\rm w}` (SLQ on ``class_structure.within_operator()`` unless
      ``within_density`` is given);
    * ``"subspace"``: :func:`subspace_ritz` of G on the class-mean span
      (rank(:math:`G_{\rm cm}`) products with G), reported as two rows,
      ``"subspace"`` (Ritz values) and ``"subspace_corrected"``
      (:math:`\theta_k + \|r_k\|^2/\theta_k`).

    Parameters
    ----------
    class_structure : ClassStructure
        From :func:`gn_theory.decomposition.class_structure` (with its GGN
        operator for ``"bgn"`` without ``within_density``, ``"subspace"``,
        ``observed="compute"`` and the diagnostics; a loaded one works for
        ``"iid"``/``"additive"`` with ``bulk_fit``).
    bulk_fit : object with ``.ratio`` and ``.scale``, (ratio, scale) or None
        The MP bulk for ``"iid"``/``"additive"``: e.g. a ``MarchenkoPasturFit``
        (its ``ks_statistic`` and ``third_moment_ratio`` are read if present) or
        a :class:`MarchenkoPastur`. None: moment matching on the SLQ
        quadrature of :math:`G_{\rm w}` (:func:`fit_marchenko_pastur` by moments,
        nothing excluded: scale
        :math:`= \operatorname{tr}G_{\rm w}/P`, ratio :math:`= m_2/m_1^2 - 1`),
        with that fit's KS statistic and third-moment ratio.
    method : {"all", "iid", "additive", "bgn", "subspace"} or list of them
        Predictors to run. ``"all"`` runs those the inputs allow and records the
        others under :attr:`OutlierPrediction.skipped`; naming one that cannot
        run raises.
    observed : array_like, Spectrum, "compute" or None
        Top eigenvalues of G (any order; sorted descending) to compare with, or
        ``"compute"`` for :func:`gn_theory.spectra.lanczos` on the GGN operator.
    k : int, optional
        Number of outliers predicted (default all nonzero eig(:math:`G_{\rm cm}`),
        at most :math:`C^2`; it cannot exceed that count).
    within_density : SpectralDensity, optional
        SLQ quadrature of :math:`G_{\rm w}` (anything with ``nodes``,
        ``weights`` and ``bounds``) to reuse.
    within_spectrum : Spectrum, optional
        Top eigenpairs of :math:`G_{\rm w}` (with eigenvectors) to reuse for the
        isotropy diagnostic.
    num_within_vectors : int, optional
        Top eigenvectors of :math:`G_{\rm w}` for the isotropy diagnostic
        (default ``k``).
    slq_probes, slq_steps : int, default 10, 128
        SLQ settings for :math:`G_{\rm w}` (Papyan's M = 128; capped at P).
    seed : int, default 0
        Seed of SLQ and Lanczos.

    Returns
    -------
    OutlierPrediction

    Raises
    ------
    InvalidInputError
        Not a class structure, bad ``bulk_fit`` (no ``.ratio``/``.scale``,
        non-positive or NaN values), unknown method, a named method that cannot
        run (no GGN operator), ``k`` out of range, or observed eigenvalues that
        are NaN, infinite or negative.

    Notes
    -----
    The diagnostics (THEORY.md 5b) say which assumption broke: the share of the
    energy of the top eigenvectors of :math:`G_{\rm w}` inside the class-mean
    span versus the random baseline dim/P (isotropy), the third-moment ratio
    and KS statistic of the bulk (MP), and :math:`\operatorname{tr}G_{\rm cm}
    /\operatorname{tr}G`.
    """
    _check_structure(class_structure)
    cs = class_structure
    methods = _methods(method)
    explicit = not (isinstance(method, str) and method == "all")
    seed = _check_int("seed", seed, minimum=0)
    slq_probes = _check_int("slq_probes", slq_probes)
    slq_steps = _check_int("slq_steps", slq_steps)
    skipped: list[str] = []

    ell = _real_1d(cs.eigenvalues("G_cm"), "eigenvalues of G_cm")
    r = ell.size
    k = r if k is None else _check_int("k", k)
    if k > r:
        raise InvalidInputError(f"G_cm has {r} nonzero eigenvalues (spikes); cannot predict k={k} outliers")

    # G (or nothing, after load)
    try:
        ggn = cs.ggn_operator()
    except InvalidInputError as exc:
        ggn, no_ggn = None, str(exc)
    P = int(cs.num_params)

    def need_ggn(what: str) -> bool:
        if ggn is not None:
            return True
        if explicit and what in methods:
            raise InvalidInputError(f"method {what!r}: {no_ggn}")
        skipped.append(f"{what} (no products with G: {no_ggn})")
        return False

    # observed
    obs = None
    if isinstance(observed, str):
        if observed != "compute":
            raise InvalidInputError(
                f"observed must be eigenvalues, a Spectrum, 'compute' or None; got {observed!r}"
            )
        if ggn is None:
            raise InvalidInputError(f"observed='compute' needs products with G: {no_ggn}")
        from ..spectra import lanczos

        top = lanczos(ggn, k, which="largest", seed=seed, return_eigenvectors=False)
        obs = np.sort(top.eigenvalues)[::-1]
    elif observed is not None:
        obs = np.sort(_real_1d(observed, "observed"))[::-1]

    # bulk parameters
    if bulk_fit is not None:
        ratio, scale, ks, m3_ratio, bulk_source = _bulk_params(bulk_fit)
        m3_source = "from bulk_fit" if math.isfinite(m3_ratio) else ""
    else:
        ratio = scale = ks = m3_ratio = math.nan
        bulk_source, m3_source = "", ""

    # within-class SLQ quadrature (bgn, the moment-matched bulk and the trace share use it)
    nodes = weights = bounds = None
    b_edge = math.nan
    if within_density is not None:
        if not (hasattr(within_density, "nodes") and hasattr(within_density, "weights")):
            raise InvalidInputError(
                "within_density must have nodes and weights (a SpectralDensity); got "
                f"{type(within_density).__name__}"
            )
        nodes = np.atleast_2d(np.asarray(within_density.nodes, dtype=float))
        weights = np.atleast_2d(np.asarray(within_density.weights, dtype=float))
        bounds = getattr(within_density, "bounds", None)
    elif ggn is not None and getattr(cs, "class_means", True) is not None:
        from ..spectra import slq

        dens = slq(cs.within_operator(), num_probes=slq_probes, num_steps=slq_steps, seed=seed)
        nodes, weights, bounds = dens.nodes, dens.weights, dens.bounds
    if nodes is not None:
        finite = np.all(np.isfinite(nodes)) and np.all(np.isfinite(weights))
        if nodes.shape != weights.shape or not finite:
            raise InvalidInputError("within_density nodes and weights must be finite arrays of one shape")
        top_node = float(nodes[weights > 0].max())
        b_edge = top_node
        if bounds is not None and np.size(bounds) == 2 and np.isfinite(np.asarray(bounds)[1]):
            b_edge = max(float(np.asarray(bounds)[1]), top_node)
        if bulk_fit is None:
            ratio, scale, ks, m3_ratio = _moments_bulk(nodes, weights, P)
            bulk_source = "moments fit to the SLQ quadrature of G_w"
            m3_source = "SLQ of G_w vs the moment-matched MP law"
        trace_w = P * float(np.sum(weights * nodes) / weights.shape[0])
    else:
        trace_w = math.nan
        if bulk_fit is None:
            if explicit and any(m in methods for m in ("iid", "additive")):
                raise InvalidInputError(
                    "bulk_fit is None and the within-class spectrum cannot be estimated (no products with G "
                    "and no within_density): pass bulk_fit as a MarchenkoPasturFit or (ratio, scale)"
                )

    rows: list[tuple[str, OutlierFormula]] = []
    for m in ("iid", "additive"):
        if m in methods:
            if math.isfinite(ratio):
                f = iid_noise_outliers if m == "iid" else additive_outliers
                rows.append((m, f(ell[:k], ratio, scale)))
            else:
                skipped.append(f"{m} (no bulk ratio/scale: pass bulk_fit or a GGN operator)")
    if "bgn" in methods:
        if nodes is not None:
            G = empirical_stieltjes(nodes, weights)
            rows.append(("bgn", bgn_outliers(ell[:k], G, upper_edge=b_edge)))
        elif need_ggn("bgn"):  # pragma: no cover - only reached if the means were skipped
            skipped.append("bgn (no within-class quadrature)")

    # the class-mean span and the within-class top eigenvectors
    # (the factor's singular values squared are eig(G_cm): keep the r nonzero ones)
    Q = np.linalg.svd(np.asarray(cs.factor("G_cm"), dtype=float).T, full_matrices=False)[0][:, :r]
    diag: dict[str, Any] = {
        "span_dim": int(Q.shape[1]),
        "random_baseline": float(Q.shape[1] / P),
        "within_energy_in_span": math.nan,
        "num_within_vectors": 0,
        "within_top_eigenvalue": math.nan,
        "third_moment_ratio": float(m3_ratio),
        "third_moment_source": m3_source,
        "ks_statistic": float(ks),
    }
    U = None
    if within_spectrum is not None:
        vecs = getattr(within_spectrum, "eigenvectors", None)
        if vecs is None:
            raise InvalidInputError(
                "within_spectrum must carry eigenvectors (lanczos(..., return_eigenvectors=True))"
            )
        ev = np.asarray(within_spectrum.eigenvalues, dtype=float)
        order = np.argsort(ev)[::-1]
        U, top_w = np.asarray(vecs, dtype=float)[:, order], float(ev[order[0]])
        if num_within_vectors is not None:
            U = U[:, : _check_int("num_within_vectors", num_within_vectors)]
    elif ggn is not None and getattr(cs, "class_means", True) is not None:
        from ..spectra import lanczos

        nv = k if num_within_vectors is None else _check_int("num_within_vectors", num_within_vectors)
        nv = min(nv, P - 1)
        spec = lanczos(cs.within_operator(), nv, which="largest", seed=seed, tol=1e-6, warn=False)
        U, top_w = spec.eigenvectors[:, ::-1], float(spec.eigenvalues[-1])
    else:
        skipped.append("isotropy diagnostic (no products with G_w)")
    if U is not None:
        if U.shape[0] != P:
            raise ShapeError(f"within_spectrum eigenvectors have {U.shape[0]} rows; P = {P}")
        diag["within_energy_in_span"] = float(min(1.0, np.sum((Q.T @ U) ** 2) / U.shape[1]))
        diag["num_within_vectors"] = int(U.shape[1])
        diag["within_top_eigenvalue"] = top_w

    trace_cm = float(np.trace(cs.gram("G_cm")))
    diag["trace_G_cm"] = trace_cm
    diag["trace_G_w"] = float(trace_w)
    diag["class_mean_trace_share"] = (
        float(min(1.0, max(0.0, trace_cm / (trace_cm + trace_w)))) if math.isfinite(trace_w) else math.nan
    )

    ritz_res = None
    if "subspace" in methods and need_ggn("subspace"):
        rr = subspace_ritz(ggn, Q, orthonormalize=False)
        edge = diag["within_top_eigenvalue"]
        for name, vals in (("subspace", rr.values[:k]), ("subspace_corrected", rr.corrected[:k])):
            above = vals > edge if math.isfinite(edge) else np.ones(k, bool)
            rows.append((name, OutlierFormula(vals, above, np.full(k, math.nan), math.nan, float(edge))))
        ritz_res = rr.residual_norms[:k]

    if not rows:
        raise InvalidInputError("no predictor could run: " + "; ".join(skipped))

    names = [n for n, _ in rows]
    predicted = np.vstack([f.predicted for _, f in rows])
    rel = None
    if obs is not None:
        n = min(k, obs.size)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = (predicted[:, :n] - obs[None, :n]) / obs[None, :n]
    return OutlierPrediction(
        methods=names,
        predicted=predicted,
        above=np.vstack([np.asarray(f.above, bool) for _, f in rows]),
        overlaps=np.vstack([f.overlap for _, f in rows]),
        thresholds=np.array([f.threshold for _, f in rows], dtype=float),
        edges=np.array([f.edge for _, f in rows], dtype=float),
        class_mean_eigenvalues=ell,
        observed=obs,
        relative_errors=rel,
        ritz_residual_norms=ritz_res,
        ratio=float(ratio),
        scale=float(scale),
        bulk_source=bulk_source,
        within_nodes=nodes,
        within_weights=weights,
        within_upper_edge=float(b_edge),
        diagnostics=diag,
        num_params=P,
        num_classes=int(cs.num_classes),
        num_samples=int(getattr(cs, "num_samples", 0)),
        skipped=skipped,
        seed=seed,
        metadata={"k": k, "slq_probes": slq_probes, "slq_steps": slq_steps, "methods_requested": methods},
    )
