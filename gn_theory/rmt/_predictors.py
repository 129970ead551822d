r"""The outlier predictors as plain functions: closed forms, the BGN rule, and Rayleigh-Ritz.

Papyan's split (docs/theory.md section 2) writes :math:`G = G_{\rm cm} + G_{\rm w}`:
the class means give the low-rank part :math:`G_{\rm cm}` (its eigenvalues
:math:`\ell_k` are the *spikes*), the within-class deviations the bulk
:math:`G_{\rm w}`. Each function below turns spikes and a bulk into predicted
outliers of G under its own assumption (docs/theory.md sections 5 and 5b):

* :func:`iid_noise_outliers` -- means plus iid isotropic noise with an MP bulk
  (the information-plus-noise mapping);
* :func:`additive_outliers` -- additive spikes in generic position on an MP bulk;
* :func:`bgn_outliers` -- the Benaych-Georges & Nadakuditi rule on any bulk,
  e.g. the empirical Stieltjes transform of an SLQ quadrature of :math:`G_{\rm w}`;
* :func:`subspace_ritz` -- Rayleigh-Ritz of G itself on a subspace (the
  class-mean span), with residuals and a second-order correction. It is the one
  function here that multiplies by an operator: it takes ``apply_G``
  explicitly (any array, LinearOperator or callable).

:func:`gn_theory.explain.predict_outliers` runs them on a class structure and
compares them with the observed outliers.

Conventions: ``ratio`` :math:`c = P/m` (dimension over number of noise columns)
and ``scale`` :math:`\sigma^2`, so the bulk is :math:`[s(1-\sqrt c)^2,
s(1+\sqrt c)^2]` with an atom at 0 of mass :math:`1 - 1/c` when :math:`c > 1`,
as everywhere in :mod:`gn_theory.rmt`. Torch-free: a torch tensor given as
``apply_G`` or ``basis`` is read through ``.detach().cpu()``, without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import check_real_array
from .._format import fmt_values
from ..exceptions import InvalidInputError, ShapeError
from ..results import Result, Summary
from ._bbp import (
    bbp_outlier,
    bbp_overlap,
    bbp_threshold,
    bbp_upper_edge,
    bgn_outlier,
    empirical_stieltjes,
)
from ._common import UnpacksMixin, check_ratio_scale
from ._mp import MarchenkoPastur

__all__ = [
    "OutlierFormula",
    "RitzResult",
    "iid_noise_outliers",
    "additive_outliers",
    "bgn_outliers",
    "subspace_ritz",
]


def _spikes(values: Any) -> np.ndarray:
    """Class-mean eigenvalues: a finite, nonnegative 1-d array (a scalar is one spike)."""
    return check_real_array(values, "class_mean_eigenvalues", scalar=True, nonnegative=True)


# ----------------------------------------------------------------------------- formulas
@dataclass(repr=False)
class OutlierFormula(UnpacksMixin, Result):
    """Predicted outliers from one closed-form or BGN predictor, one per spike (input order).

    Unpacks as ``predicted, above, overlap, threshold, edge`` (it was a named tuple).

    Attributes
    ----------
    predicted : numpy.ndarray
        Predicted eigenvalues of G, one per class-mean eigenvalue (the edge where
        no outlier is predicted); descending for descending spikes.
    above : numpy.ndarray
        Bool: the spike is above the threshold (an outlier is predicted to exist).
    overlap : numpy.ndarray
        Predicted squared overlap of the outlier eigenvector with the spike direction.
    threshold : float
        Threshold on the class-mean eigenvalue (eigenvalue units).
    edge : float
        Upper edge of the bulk.
    settings : dict
        The predictor and its bulk (``predictor``, ``ratio``, ``scale`` or the edge used).
    """

    predicted: np.ndarray
    above: np.ndarray
    overlap: np.ndarray
    threshold: float
    edge: float
    settings: dict = field(default_factory=dict)

    _unpacks = ("predicted", "above", "overlap", "threshold", "edge")

    def summary(self) -> Summary:
        """The predicted outliers, the threshold and the edge.

        Returns
        -------
        Summary
        """
        rows = [(key, str(value)) for key, value in self.settings.items()]
        rows += [
            ("threshold on the spikes", f"{self.threshold:.6g}"),
            ("bulk edge", f"{self.edge:.6g}"),
            ("predicted", fmt_values(self.predicted)),
            ("above threshold", f"{int(np.sum(self.above))} of {np.size(self.above)}"),
            ("overlap^2", fmt_values(self.overlap)),
        ]
        notes = ["Spikes at or below the threshold produce no outlier: their value is the edge."]
        return Summary("Predicted outliers", rows, notes)

    def __repr__(self) -> str:
        return (
            f"OutlierFormula(predicted={np.round(self.predicted, 6).tolist()}, "
            f"above={np.asarray(self.above).tolist()}, threshold={self.threshold:.6g}, "
            f"edge={self.edge:.6g})"
        )


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
    the mean directions). docs/theory.md 5b: on trained networks on real data this
    fails by 80-90 % because the within-class variation concentrates in the
    class-mean span.

    Examples
    --------
    >>> res = iid_noise_outliers([4.0, 0.3], ratio=1 / 3, scale=1.0)
    >>> res.predicted.round(4), res.above
    (array([5.4167, 2.488 ]), array([ True, False]))
    """
    ell = _spikes(class_mean_eigenvalues)
    c, s = check_ratio_scale(ratio, scale)
    theta = np.sqrt(ell)
    predicted = np.asarray(bbp_outlier(theta, c, s, model="information_plus_noise"), dtype=float)
    overlap = np.asarray(bbp_overlap(theta, c, s, model="information_plus_noise"), dtype=float)
    threshold = s * math.sqrt(c)
    return OutlierFormula(predicted, ell > threshold, overlap, threshold,
                          s * (1.0 + math.sqrt(c)) ** 2,
                          {"predictor": "iid", "ratio": c, "scale": s})


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
    docs/theory.md 5b: with *empirical* class means and iid noise this is the right
    rule (errors below 1 %); it fails like the iid mapping when the
    within-class part is not isotropic.

    Examples
    --------
    >>> additive_outliers([3.0, 1.0], 0.5, 1.0).predicted.round(4)
    array([4.2   , 2.9142])
    """
    ell = _spikes(class_mean_eigenvalues)
    c, s = check_ratio_scale(ratio, scale)
    predicted = np.asarray(bbp_outlier(ell, c, s, model="additive"), dtype=float)
    overlap = np.asarray(bbp_overlap(ell, c, s, model="additive"), dtype=float)
    threshold = bbp_threshold(c, s, model="additive")
    edge = bbp_upper_edge(c, s, model="additive")
    return OutlierFormula(predicted, ell > threshold, overlap, threshold, edge,
                          {"predictor": "additive", "ratio": c, "scale": s})


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
    values = getattr(bulk, "eigenvalues", bulk)  # a Spectrum of all P eigenvalues
    return empirical_stieltjes(check_real_array(values, "bulk eigenvalues")), upper_edge


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
        :class:`~gn_theory.results.SpectralDensity`, all P dimensions, its atom
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
    ell = _spikes(class_mean_eigenvalues)
    G, edge = _stieltjes_of(bulk, upper_edge)
    res = bgn_outlier(ell, G, upper_edge=edge)
    return OutlierFormula(
        np.asarray(res.outlier, float),
        np.asarray(res.above, bool),
        np.asarray(res.overlap, float),
        res.threshold,
        res.upper_edge,
        {"predictor": "bgn", "bulk": type(bulk).__name__, "upper_edge": res.upper_edge},
    )


# ----------------------------------------------------------------------------- Rayleigh-Ritz
@dataclass(repr=False)
class RitzResult(UnpacksMixin, Result):
    """Rayleigh-Ritz of a symmetric operator on a subspace (Ritz values descending).

    Unpacks as ``values, residual_norms, corrected, vectors, basis`` (it was a named tuple).

    Attributes
    ----------
    values : numpy.ndarray
        Ritz values theta_k, descending.
    residual_norms : numpy.ndarray
        ``||G y_k - theta_k y_k||``.
    corrected : numpy.ndarray
        ``theta_k + ||r_k||^2 / theta_k`` (``theta_k`` where ``theta_k <= 0``).
    vectors : numpy.ndarray
        Ritz vectors y_k as columns, shape (P, r), float64, matching :attr:`values`.
    basis : numpy.ndarray
        The orthonormal basis Q actually used, (P, r).
    num_matvecs : int
        Products with G spent (r: one block of the basis).
    settings : dict
        ``orthonormalize`` and ``rtol``.
    """

    values: np.ndarray
    residual_norms: np.ndarray
    corrected: np.ndarray
    vectors: np.ndarray
    basis: np.ndarray
    num_matvecs: int = 0
    settings: dict = field(default_factory=dict)

    _unpacks = ("values", "residual_norms", "corrected", "vectors", "basis")

    def summary(self) -> Summary:
        """Ritz values, residual norms and corrected values.

        Returns
        -------
        Summary
        """
        rows = [
            ("subspace", f"{self.basis.shape[1]} directions in dimension {self.basis.shape[0]}"),
            ("Ritz values", fmt_values(self.values)),
            ("residual norms", fmt_values(self.residual_norms)),
            ("corrected", fmt_values(self.corrected)),
            ("operator products", str(self.num_matvecs)),
        ]
        notes = [
            "Ritz values never exceed the true top eigenvalues (Cauchy interlacing); the "
            "correction theta + ||r||^2 / theta eliminates the component outside the span to "
            "second order.",
            "Values are descending (largest first), Ritz vector columns matching.",
        ]
        return Summary("Rayleigh-Ritz on a subspace", rows, notes)

    def __repr__(self) -> str:
        return (
            f"RitzResult(values={np.round(self.values, 6).tolist()}, "
            f"residual_norms={np.round(self.residual_norms, 6).tolist()})"
        )


def _orthonormal_basis(basis: np.ndarray, rtol: float) -> np.ndarray:
    U, s, _ = np.linalg.svd(basis, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        raise InvalidInputError("basis spans only the zero vector")
    return U[:, s > rtol * s[0]]


def _is_tensor(x: Any) -> bool:
    """A torch tensor, recognised without importing torch."""
    return hasattr(x, "detach") and hasattr(x, "cpu") and not callable(getattr(x, "matmat", None))


def _apply(apply_G: Any, Q: np.ndarray) -> np.ndarray:
    """G @ Q for an array, a LinearOperator (a CurvatureOperator included), a tensor or a callable."""
    P = Q.shape[0]
    if isinstance(apply_G, np.ndarray) or hasattr(apply_G, "matmat") or _is_tensor(apply_G):
        if tuple(getattr(apply_G, "shape", (P, P))) != (P, P):
            raise ShapeError(f"apply_G has shape {tuple(apply_G.shape)}; the basis has {P} rows")
        if hasattr(apply_G, "matmat"):  # one block product (a CurvatureOperator: one kernel call)
            out = apply_G.matmat(Q)
        elif _is_tensor(apply_G):
            out = check_real_array(apply_G, "apply_G", ndim=2) @ Q
        else:
            out = apply_G @ Q
    elif callable(apply_G):
        out = apply_G(Q)
        if _is_tensor(out):
            out = out.detach().cpu().double().numpy()
    else:
        raise InvalidInputError(
            "apply_G must be a (P, P) array or tensor, a scipy LinearOperator (e.g. a "
            f"CurvatureOperator) or a callable V -> G V; got {type(apply_G).__name__}"
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
    apply_G : array, LinearOperator, tensor or callable
        G as a (P, P) numpy array or torch tensor, a scipy ``LinearOperator``
        (a :class:`~gn_theory.operators.CurvatureOperator` is one: its ``matmat``
        runs one block product in torch on its device), or a callable
        ``V -> G V`` on (P, r) numpy arrays (it may return a tensor).
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
        and ``basis``, all float64 numpy, and ``num_matvecs`` (r).

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
    B = check_real_array(basis, "basis", ndim=None, allow_empty=True)
    if B.ndim == 1:
        B = B[:, None]
    if B.ndim != 2 or B.shape[1] == 0:
        raise ShapeError(f"basis must have shape (P, r) with r >= 1; got {B.shape}")
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
    return RitzResult(theta, res, corrected, Y, Q, num_matvecs=int(Q.shape[1]),
                      settings={"orthonormalize": bool(orthonormalize), "rtol": float(rtol)})
