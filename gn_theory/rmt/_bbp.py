"""BBP phase transitions: outliers of spiked random matrices, closed forms and the general rule.

Four rank-one spiked models (docs/theory.md section 5), each with its own spike
parametrisation. ``ratio`` and ``scale`` follow the package conventions
(gamma = p / n, sigma^2 = population variance); how they enter each model:

* ``"multiplicative"`` (default; the spiked covariance model of Baik, Ben Arous
  & Peche): ``S = Sigma^(1/2) Z Z^T Sigma^(1/2) / n`` with ``Z`` p x n iid
  N(0, 1), ``ratio = p / n`` and ``Sigma = scale (I + theta u u^T)``; the spike
  is the population eigenvalue ``scale (1 + theta)``, so ``theta`` is
  dimensionless (``theta = ell - 1`` in docs/theory.md's table), ``theta > -1``.
* ``"additive"``: ``W + theta u u^T`` with ``W = scale Z Z^T / n``, whose
  spectrum is MP(ratio, scale); ``theta`` in eigenvalue units.
* ``"information_plus_noise"``: ``X = sqrt(scale) E / sqrt(m) + theta u w^T``,
  ``E`` n x m iid N(0, 1), ``ratio = c = n / m``; eigenvalues of ``X X^T``
  (bulk MP(c, scale)); ``theta >= 0`` is a singular value (``theta**2`` the
  signal eigenvalue, ``theta**2 = rho`` in docs/theory.md's Hessian mapping when
  ``scale = 1``).
* ``"wigner"``: ``W + theta u u^T`` with ``W`` symmetric, entries of variance
  ``scale / p``, so the semicircle has radius ``2 sigma``, ``sigma =
  sqrt(scale)``; ``theta`` in eigenvalue units; ``ratio`` is ignored (None is
  accepted).

Closed forms (``s = scale``, ``g = ratio``):

* multiplicative: threshold ``sqrt(g)``; outlier ``s (1 + theta)(1 + g / theta)``;
  overlap ``(1 - g / theta**2) / (1 + g / theta)``; edge ``s (1 + sqrt g)**2``.
* additive: threshold ``s (g + sqrt g)``; outlier
  ``theta + s theta / (theta - g s)``; overlap ``1 - g s**2 / (theta - g s)**2``;
  edge ``s (1 + sqrt g)**2``.
* information-plus-noise (``t = theta**2 / s``): threshold ``sqrt(s) g**(1/4)``;
  outlier ``s (1 + t)(g + t) / t``; left (``u``) overlap
  ``1 - g (1 + t) / (t (t + g))``, right (``w``) overlap
  ``1 - (g + t) / (t (t + 1))``; edge ``s (1 + sqrt g)**2``.
* Wigner (``sigma = sqrt(s)``): threshold ``sigma``; outlier
  ``theta + s / theta``; overlap ``1 - s / theta**2``; edge ``2 sigma``.

Below (or at) the threshold the top eigenvalue sticks to the upper edge of the
bulk and the overlap tends to 0. :mod:`gn_theory.rmt.symbolic` derives every
formula above with sympy, and the tests check code against derivation.

The general additive rule of Benaych-Georges & Nadakuditi (2011) is
:func:`bgn_outlier`: for a bulk with Cauchy-Stieltjes transform ``G`` and upper
edge ``b``, the outlier of ``bulk + theta u u^T`` (``u`` independent of the
bulk's eigenvectors) solves ``G(lambda) = 1 / theta`` for ``lambda > b``; it
exists iff ``theta > 1 / G(b+)``, and the squared overlap is
``-1 / (theta**2 G'(lambda))``. :func:`empirical_stieltjes` builds ``G`` from
eigenvalues or from quadrature nodes and weights (SLQ).

Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
from scipy import optimize

from .._checks import check_real_array
from ..exceptions import InvalidInputError
from ..results import Result, Summary
from ._common import BBPModel, UnpacksMixin, check_model, check_ratio_scale
from ._mp import MarchenkoPastur

__all__ = [
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
]

# ----------------------------------------------------------------------------- validation
def _params(ratio: Any, scale: Any, model: Any) -> tuple[str, float, float]:
    """Validate (model, ratio, scale); for Wigner ``ratio`` may be None (it is ignored)."""
    model = check_model(model)
    if model == "wigner" and ratio is None:
        _, s = check_ratio_scale(1.0, scale)
        return model, math.nan, s
    g, s = check_ratio_scale(ratio, scale)
    return model, g, s


def _as_array(values: Any, name: str) -> tuple[np.ndarray, bool]:
    """Finite float array of any shape from ``values``, and whether the input was a scalar."""
    arr = check_real_array(values, name, ndim=None, scalar=True, allow_empty=True)
    return arr, arr.ndim == 0


def _out(arr: np.ndarray, scalar: bool) -> Any:
    return float(arr) if scalar else arr


def _check_theta(theta: np.ndarray, model: str) -> None:
    if model == "multiplicative" and np.any(theta <= -1):
        raise InvalidInputError(
            "multiplicative spikes need theta > -1 (the population eigenvalue is "
            f"scale * (1 + theta) > 0); got {np.ravel(theta[theta <= -1])[:5].tolist()}"
        )
    if model == "information_plus_noise" and np.any(theta < 0):
        raise InvalidInputError(
            "information-plus-noise spikes are singular values, theta >= 0; got "
            f"{np.ravel(theta[theta < 0])[:5].tolist()}"
        )


# ----------------------------------------------------------------------------- closed forms
def bbp_upper_edge(ratio: float | None, scale: float = 1.0, *, model: BBPModel = "multiplicative") -> float:
    """Upper edge of the bulk in a spiked model.

    Parameters
    ----------
    ratio : float or None
        gamma = p / n (``c = n / m`` for information-plus-noise); ignored for
        ``model="wigner"`` (None allowed there).
    scale : float, default 1.0
        sigma^2 (see the module docstring for its role in each model).
    model : {"multiplicative", "additive", "information_plus_noise", "wigner"}
        The spiked model.

    Returns
    -------
    float
        ``scale (1 + sqrt(ratio))**2`` (the MP edge) for the three covariance-type
        models, ``2 sqrt(scale)`` for Wigner.

    Raises
    ------
    InvalidInputError
        Unknown model, or ``ratio``/``scale`` not finite and positive.

    Examples
    --------
    >>> bbp_upper_edge(0.25, 2.0)
    4.5
    >>> bbp_upper_edge(None, 4.0, model="wigner")
    4.0
    """
    model, g, s = _params(ratio, scale, model)
    if model == "wigner":
        return 2.0 * math.sqrt(s)
    return s * (1.0 + math.sqrt(g)) ** 2


def bbp_threshold(ratio: float | None, scale: float = 1.0, *, model: BBPModel = "multiplicative") -> float:
    """Critical spike strength of the BBP transition, in the model's own parametrisation.

    Parameters
    ----------
    ratio : float or None
        gamma = p / n (``c = n / m`` for information-plus-noise); ignored for
        Wigner.
    scale : float, default 1.0
        sigma^2, the variance of the noise (population variance).
    model : {"multiplicative", "additive", "information_plus_noise", "wigner"}
        The spiked model (module docstring).

    Returns
    -------
    float
        ``sqrt(ratio)`` (multiplicative: dimensionless, independent of scale);
        ``scale (ratio + sqrt(ratio))`` (additive); ``sqrt(scale) ratio**(1/4)``
        (information-plus-noise, a singular value); ``sqrt(scale)`` (Wigner).
        A spike produces an outlier iff ``theta`` is strictly above it.

    Raises
    ------
    InvalidInputError
        Unknown model, or ``ratio``/``scale`` not finite and positive.

    References
    ----------
    Baik, Ben Arous & Peche (2005); Benaych-Georges & Nadakuditi (2011, 2012).

    Examples
    --------
    >>> bbp_threshold(0.25)
    0.5
    >>> bbp_threshold(0.5, model="additive")  # 0.5 + sqrt(0.5)
    1.2071067811865475
    >>> bbp_threshold(16.0, 4.0, model="information_plus_noise")
    4.0
    >>> bbp_threshold(None, 2.25, model="wigner")
    1.5
    """
    model, g, s = _params(ratio, scale, model)
    if model == "multiplicative":
        return math.sqrt(g)
    if model == "additive":
        return s * (g + math.sqrt(g))
    if model == "information_plus_noise":
        return math.sqrt(s) * g**0.25
    return math.sqrt(s)


def _outlier_above(theta: np.ndarray, model: str, g: float, s: float) -> np.ndarray:
    """Closed-form outlier for spikes known to be above threshold."""
    if model == "multiplicative":
        return s * (1.0 + theta) * (1.0 + g / theta)
    if model == "additive":
        return theta + s * theta / (theta - g * s)
    if model == "information_plus_noise":
        t = theta**2 / s
        return s * (1.0 + t) * (g + t) / t
    return theta + s / theta


def bbp_outlier(
    theta: Any, ratio: float | None, scale: float = 1.0, *, model: BBPModel = "multiplicative"
) -> Any:
    """Limiting top eigenvalue of a rank-one spiked model.

    Parameters
    ----------
    theta : float or array_like
        Spike strength(s) in the model's parametrisation (module docstring):
        multiplicative ``theta > -1`` (population eigenvalue ``scale (1 + theta)``),
        information-plus-noise ``theta >= 0`` (a singular value), additive and
        Wigner any real (eigenvalue units).
    ratio : float or None
        gamma = p / n (``c = n / m`` for information-plus-noise); ignored for
        Wigner.
    scale : float, default 1.0
        sigma^2.
    model : {"multiplicative", "additive", "information_plus_noise", "wigner"}
        The spiked model.

    Returns
    -------
    float or ndarray
        The outlier for ``theta`` above :func:`bbp_threshold`, the upper edge of
        the bulk (:func:`bbp_upper_edge`) at or below it. A float for scalar
        ``theta``, else an array of its shape.

    Raises
    ------
    InvalidInputError
        Unknown model, bad ``ratio``/``scale``, non-finite ``theta``, or
        ``theta`` outside the model's domain.

    Examples
    --------
    docs/theory.md section 8 (gamma = 0.5; population eigenvalues 2, 3, 6 and 1.3):

    >>> bbp_outlier([1.0, 2.0, 5.0, 0.3], 0.5).round(4)
    array([3.    , 3.75  , 6.6   , 2.9142])
    >>> bbp_outlier(3.0, 0.5, model="additive")
    4.2
    >>> bbp_outlier(2.0, 0.5, model="information_plus_noise")
    5.625
    >>> round(bbp_outlier(1.5, None, model="wigner"), 6)
    2.166667
    """
    model, g, s = _params(ratio, scale, model)
    th, scalar = _as_array(theta, "theta")
    _check_theta(th, model)
    thr = bbp_threshold(None if model == "wigner" else g, s, model=model)
    edge = bbp_upper_edge(None if model == "wigner" else g, s, model=model)
    above = th > thr
    out = np.full(th.shape, edge, dtype=float)
    out[above] = _outlier_above(th[above], model, g, s)
    # the closed form meets the edge continuously; never report below it
    out = np.maximum(out, edge)
    return _out(out, scalar)


def bbp_overlap(
    theta: Any,
    ratio: float | None,
    scale: float = 1.0,
    *,
    model: BBPModel = "multiplicative",
    side: Literal["left", "right"] = "left",
) -> Any:
    """Limiting squared overlap of the outlier eigenvector with the spike direction.

    Parameters
    ----------
    theta : float or array_like
        Spike strength(s), as in :func:`bbp_outlier`.
    ratio : float or None
        gamma = p / n (``c = n / m`` for information-plus-noise); ignored for
        Wigner.
    scale : float, default 1.0
        sigma^2.
    model : {"multiplicative", "additive", "information_plus_noise", "wigner"}
        The spiked model.
    side : {"left", "right"}, default "left"
        ``"left"``: overlap ``<v_hat, u>**2`` of the top eigenvector with the
        spike ``u`` (every model). ``"right"``: for information-plus-noise only,
        the overlap of the top right singular vector with ``w``.

    Returns
    -------
    float or ndarray
        Squared overlap in [0, 1); 0 at or below the threshold.

    Raises
    ------
    InvalidInputError
        Bad model/ratio/scale/theta, or ``side="right"`` for a model other than
        information-plus-noise.

    Examples
    --------
    >>> bbp_overlap([1.0, 2.0, 0.5], 0.5).round(4)
    array([0.3333, 0.7   , 0.    ])
    >>> bbp_overlap(3.0, 0.5, model="additive")
    0.92
    >>> round(bbp_overlap(2.0, 0.5, model="information_plus_noise", side="right"), 4)
    0.775
    """
    model, g, s = _params(ratio, scale, model)
    if side not in ("left", "right"):
        raise InvalidInputError(f"side must be 'left' or 'right'; got {side!r}")
    if side == "right" and model != "information_plus_noise":
        raise InvalidInputError(
            f"side='right' exists only for model='information_plus_noise'; got model={model!r}"
        )
    th, scalar = _as_array(theta, "theta")
    _check_theta(th, model)
    thr = bbp_threshold(None if model == "wigner" else g, s, model=model)
    above = th > thr
    t = th[above]
    if model == "multiplicative":
        val = (1.0 - g / t**2) / (1.0 + g / t)
    elif model == "additive":
        val = 1.0 - g * s**2 / (t - g * s) ** 2
    elif model == "information_plus_noise":
        t2 = t**2 / s
        if side == "left":
            val = 1.0 - g * (1.0 + t2) / (t2 * (t2 + g))
        else:
            val = 1.0 - (g + t2) / (t2 * (t2 + 1.0))
    else:
        val = 1.0 - s / t**2
    out = np.zeros(th.shape, dtype=float)
    out[above] = np.clip(val, 0.0, 1.0)
    return _out(out, scalar)


def bbp_spike(
    outlier: Any,
    ratio: float | None,
    scale: float = 1.0,
    *,
    model: BBPModel = "multiplicative",
    below: Literal["raise", "threshold"] = "raise",
) -> Any:
    """Spike strength that produces an observed outlier: the inverse of :func:`bbp_outlier`.

    Solves the model's quadratic for ``theta`` and keeps the root above the
    threshold (the other root, below threshold, maps to the edge, not to the
    outlier).

    Parameters
    ----------
    outlier : float or array_like
        Observed top eigenvalue(s).
    ratio : float or None
        gamma = p / n (``c = n / m`` for information-plus-noise); ignored for
        Wigner.
    scale : float, default 1.0
        sigma^2.
    model : {"multiplicative", "additive", "information_plus_noise", "wigner"}
        The spiked model.
    below : {"raise", "threshold"}, default "raise"
        What to do with values at or below the upper edge of the bulk, where no
        spike is identifiable (every subcritical spike maps to the edge):
        ``"raise"`` raises :class:`InvalidInputError` naming them;
        ``"threshold"`` returns :func:`bbp_threshold` for them, an upper bound
        on the spike.

    Returns
    -------
    float or ndarray
        ``theta`` in the model's parametrisation.

    Raises
    ------
    InvalidInputError
        Bad model/ratio/scale/below, non-finite ``outlier``, or (with
        ``below="raise"``) an outlier at or below the upper edge.

    Notes
    -----
    multiplicative: ``theta**2 + (1 + g - x) theta + g = 0`` with ``x = outlier / scale``;
    additive: ``theta**2 - (x - s (1 - g)) theta + x g s = 0``;
    information-plus-noise: ``t**2 + (1 + g - x) t + g = 0`` for ``t = theta**2 / s``;
    Wigner: ``theta**2 - x theta + s = 0``. In each case the discriminant is
    ``(x - lower)(x - upper)`` with the bulk's edges, written in that factored
    form for accuracy near the edge.

    Examples
    --------
    >>> round(bbp_spike(3.0, 0.5), 12)  # population eigenvalue 2 = 1 + theta
    1.0
    >>> bbp_spike([4.2], 0.5, model="additive").round(12)
    array([3.])
    >>> bbp_spike(2.0, 0.5, below="threshold") == bbp_threshold(0.5)
    True
    """
    model, g, s = _params(ratio, scale, model)
    if below not in ("raise", "threshold"):
        raise InvalidInputError(f"below must be 'raise' or 'threshold'; got {below!r}")
    x, scalar = _as_array(outlier, "outlier")
    edge = bbp_upper_edge(None if model == "wigner" else g, s, model=model)
    thr = bbp_threshold(None if model == "wigner" else g, s, model=model)
    ok = x > edge
    if below == "raise" and not np.all(ok):
        bad = np.ravel(x[~ok])
        shown = ", ".join(f"{v:.6g}" for v in bad[:5]) + (", ..." if bad.size > 5 else "")
        raise InvalidInputError(
            f"{bad.size} outlier value(s) at or below the upper edge {edge:.6g} of the "
            f"{model} bulk (ratio={g:g}, scale={s:g}): {shown}. No spike is identifiable "
            "there (every subcritical spike maps to the edge); pass below='threshold' "
            f"to get the threshold {thr:.6g} as an upper bound."
        )
    v = x[ok]
    if model == "multiplicative":
        t = v / s
        lo, hi = (1.0 - math.sqrt(g)) ** 2, (1.0 + math.sqrt(g)) ** 2
        disc = np.clip((t - lo) * (t - hi), 0.0, None)
        th = 0.5 * ((t - 1.0 - g) + np.sqrt(disc))
    elif model == "additive":
        lo, hi = s * (1.0 - math.sqrt(g)) ** 2, s * (1.0 + math.sqrt(g)) ** 2
        disc = np.clip((v - lo) * (v - hi), 0.0, None)
        th = 0.5 * ((v - s * (1.0 - g)) + np.sqrt(disc))
    elif model == "information_plus_noise":
        t = v / s
        lo, hi = (1.0 - math.sqrt(g)) ** 2, (1.0 + math.sqrt(g)) ** 2
        disc = np.clip((t - lo) * (t - hi), 0.0, None)
        th = np.sqrt(s * 0.5 * ((t - 1.0 - g) + np.sqrt(disc)))
    else:
        r = 2.0 * math.sqrt(s)
        disc = np.clip((v - r) * (v + r), 0.0, None)
        th = 0.5 * (v + np.sqrt(disc))
    out = np.full(x.shape, thr, dtype=float)
    out[ok] = np.maximum(th, thr)
    return _out(out, scalar)


# ----------------------------------------------------------------------------- general rule
class EmpiricalStieltjes:
    """Cauchy-Stieltjes transform of a discrete measure, ``G(z) = sum_k w_k / (z - x_k)``.

    Built by :func:`empirical_stieltjes`; call it on real or complex ``z``.

    Attributes
    ----------
    nodes, weights : ndarray
        Flattened support points and their masses (summing to one).
    upper_edge, lower_edge : float
        Largest and smallest node with positive weight.
    """

    _CHUNK = 2**22  # elements of the (len(z), len(nodes)) work array per block

    def __init__(self, nodes: np.ndarray, weights: np.ndarray) -> None:
        keep = weights > 0
        self.nodes = np.ascontiguousarray(nodes[keep], dtype=float)
        self.weights = np.ascontiguousarray(weights[keep], dtype=float)
        self.upper_edge = float(self.nodes.max())
        self.lower_edge = float(self.nodes.min())

    def __repr__(self) -> str:
        return (
            f"EmpiricalStieltjes({self.nodes.size} nodes on "
            f"[{self.lower_edge:.6g}, {self.upper_edge:.6g}])"
        )

    def _apply(self, z: Any, power: int) -> Any:
        z_arr = np.asarray(z)
        complex_in = np.iscomplexobj(z_arr)
        zf = np.ravel(z_arr).astype(complex if complex_in else float)
        out = np.empty(zf.shape, dtype=zf.dtype)
        step = max(1, self._CHUNK // max(1, self.nodes.size))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for i in range(0, zf.size, step):
                d = zf[i : i + step, None] - self.nodes[None, :]
                out[i : i + step] = (self.weights[None, :] / d**power).sum(axis=1)
        out = out.reshape(z_arr.shape)
        return out[()] if out.ndim == 0 else out

    def __call__(self, z: Any) -> Any:
        """``G(z) = sum_k w_k / (z - x_k)`` (real for real ``z`` off the nodes)."""
        return self._apply(z, 1)

    def derivative(self, z: Any) -> Any:
        """``G'(z) = -sum_k w_k / (z - x_k)**2``."""
        return -self._apply(z, 2)

    def mean(self) -> float:
        """First moment ``sum_k w_k x_k``."""
        return float(self.weights @ self.nodes)


def empirical_stieltjes(values: Any, weights: Any = None) -> EmpiricalStieltjes:
    """Stieltjes transform of an empirical spectrum or of a quadrature rule.

    Parameters
    ----------
    values : array_like, shape (n,) or (num_probes, num_steps)
        Eigenvalues (1-D), or quadrature nodes, e.g. the Ritz values of
        stochastic Lanczos quadrature, one row per probe. A 2-D array without
        ``weights`` is read as several draws of eigenvalues, pooled.
    weights : array_like, optional
        Same shape as ``values``: quadrature weights, nonnegative, each row
        (or the whole vector, if 1-D) summing to one (to 1e-6; renormalised
        exactly). Rows are averaged (weight ``1 / num_probes`` per probe).
        Default: ``1 / n`` per eigenvalue.

    Returns
    -------
    EmpiricalStieltjes
        Callable ``G(z)`` with ``.derivative(z)``, ``.upper_edge`` and
        ``.lower_edge``; pass it to :func:`bgn_outlier`.

    Raises
    ------
    InvalidInputError
        Empty or non-finite values, more than two dimensions, weights of
        another shape, negative weights, or rows not summing to one.

    Examples
    --------
    >>> G = empirical_stieltjes([1.0, 2.0, 3.0])
    >>> G.upper_edge, round(float(G(4.0)), 6)  # (1/3 + 1/2 + 1) / 3
    (3.0, 0.611111)
    >>> nodes = [[1.0, 3.0], [2.0, 2.0]]; w = [[0.5, 0.5], [0.25, 0.75]]
    >>> round(float(empirical_stieltjes(nodes, w)(4.0)), 6)  # (0.5/3 + 0.5/1 + 1/2) / 2
    0.583333
    """
    x, _ = _as_array(values, "values")
    if x.ndim not in (1, 2) or x.size == 0:
        raise InvalidInputError(
            f"values must be a non-empty array of shape (n,) or (num_probes, num_steps); got shape {x.shape}"
        )
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    if weights is None:
        w = np.full(rows.shape, 1.0 / rows.shape[1])
    else:
        w, _ = _as_array(weights, "weights")
        if w.shape != x.shape:
            raise InvalidInputError(
                f"weights must have the shape of values {x.shape}; got {w.shape}"
            )
        w = w.reshape(rows.shape)
        if np.any(w < 0):
            raise InvalidInputError("weights must be nonnegative")
        sums = w.sum(axis=1)
        if np.any(np.abs(sums - 1.0) > 1e-6):
            raise InvalidInputError(
                "each row of weights must sum to one (quadrature weights of one probe); "
                f"got row sums {np.round(sums[:5], 8).tolist()}"
            )
        w = w / sums[:, None]
    w = w / rows.shape[0]
    return EmpiricalStieltjes(rows.ravel(), w.ravel())


@dataclass(repr=False)
class BGNOutlier(UnpacksMixin, Result):
    """Result of :func:`bgn_outlier`: the predicted outlier of each spike.

    Unpacks as ``outlier, overlap, above`` (it was a named tuple).

    Attributes
    ----------
    outlier : float or numpy.ndarray
        Predicted top eigenvalue (the upper edge where no outlier exists); a float
        for a scalar spike, else an array of the spikes' shape.
    overlap : float or numpy.ndarray
        Predicted squared overlap with the spike (0 where no outlier exists).
    above : bool or numpy.ndarray
        Whether the spike is above the threshold ``1 / G(b+)``.
    threshold : float
        ``1 / G(b+)`` (0 when ``G(b+)`` is infinite, as for a discrete bulk).
    upper_edge : float
        The edge ``b`` used.
    settings : dict
        The spikes and the kind of transform.
    """

    outlier: Any
    overlap: Any
    above: Any
    threshold: float = math.nan
    upper_edge: float = math.nan
    settings: dict = field(default_factory=dict)

    _unpacks = ("outlier", "overlap", "above")

    def summary(self) -> Summary:
        """One row per spike: the outlier, its overlap, and whether it separates.

        Returns
        -------
        Summary
        """
        out, ov, ab = (np.atleast_1d(np.asarray(v)) for v in (self.outlier, self.overlap, self.above))
        theta = np.atleast_1d(np.asarray(self.settings.get("theta", np.full(out.shape, np.nan))))
        rows = [("edge b", f"{self.upper_edge:.6g}"), ("threshold 1/G(b+)", f"{self.threshold:.6g}")]
        for j, (t, lam, o, a) in enumerate(zip(theta.ravel(), out.ravel(), ov.ravel(), ab.ravel()), 1):
            rows.append((f"spike {j}", f"theta {t:.6g} -> {lam:.6g}, overlap^2 {o:.3f}"
                         + ("" if a else " (at or below threshold: no outlier)")))
        notes = [
            "Benaych-Georges & Nadakuditi: the outlier solves G(lambda) = 1/theta right of the "
            "edge; overlap^2 = -1/(theta^2 G'(lambda)). Assumes the spike is in generic position "
            "with respect to the bulk's eigenvectors."
        ]
        return Summary("Outliers by the Benaych-Georges & Nadakuditi rule", rows, notes)

    def __repr__(self) -> str:
        return f"BGNOutlier(outlier={self.outlier!r}, overlap={self.overlap!r}, above={self.above!r})"


def _mp_real_stieltjes(mp: MarchenkoPastur) -> tuple[Callable, Callable]:
    """G and G' of an MP law on the real axis right of its upper edge (stable forms)."""
    s, g = mp.scale, mp.ratio
    lo, hi = mp.lower_edge, mp.upper_edge
    full_atom = max(0.0, 1.0 - 1.0 / g)

    def G_full(z: float) -> float:
        root = math.sqrt(max((z - lo) * (z - hi), 0.0))
        return 2.0 / (z - s * (1.0 - g) + root)  # small root of s g z G^2 - (z - s(1-g)) G + 1

    def dG_full(z: float) -> float:
        G = G_full(z)
        root = math.sqrt(max((z - lo) * (z - hi), 0.0))
        # implicit differentiation: G' = -Q_z / Q_G, Q_G = 2 s g z G - (z - s(1-g)) = -root
        return (s * g * G * G - G) / root if root > 0 else -math.inf

    if not mp.nonzero or full_atom == 0.0:
        return G_full, dG_full

    def G_nz(z: float) -> float:
        return (G_full(z) - full_atom / z) / (1.0 - full_atom)

    def dG_nz(z: float) -> float:
        return (dG_full(z) + full_atom / z**2) / (1.0 - full_atom)

    return G_nz, dG_nz


def _finite_difference(G: Callable[[float], float]) -> Callable[[float], float]:
    """Derivative of a smooth real function by Richardson-extrapolated central differences."""

    def dG(z: float) -> float:
        h = 1e-3 * max(1.0, abs(z))
        d1 = (G(z + h) - G(z - h)) / (2 * h)
        d2 = (G(z + h / 2) - G(z - h / 2)) / h
        return (4 * d2 - d1) / 3

    return dG


def _resolve_stieltjes(obj: Any, upper_edge: Any) -> tuple[Callable, Callable, float]:
    own_edge: float | None = None
    if isinstance(obj, MarchenkoPastur):
        G, dG = _mp_real_stieltjes(obj)
        own_edge = obj.upper_edge
    elif callable(obj) and hasattr(obj, "derivative"):
        G = lambda z: float(np.real(obj(z)))  # noqa: E731
        dG = lambda z: float(np.real(obj.derivative(z)))  # noqa: E731
        own_edge = getattr(obj, "upper_edge", None)
    elif hasattr(obj, "stieltjes"):
        G = lambda z: float(np.real(obj.stieltjes(z)))  # noqa: E731
        dG = _finite_difference(G)
        own_edge = getattr(obj, "upper_edge", None)
    elif callable(obj):
        G = lambda z: float(np.real(obj(z)))  # noqa: E731
        dG = _finite_difference(G)
    else:
        raise InvalidInputError(
            "stieltjes must be an EmpiricalStieltjes, a MarchenkoPastur, an object with "
            f".stieltjes(z) and .upper_edge, or a callable G(z); got {type(obj).__name__}"
        )
    if upper_edge is None:
        if own_edge is None:
            raise InvalidInputError("upper_edge is required when stieltjes has no .upper_edge")
        edge = float(own_edge)
    else:
        (edge_arr, _) = _as_array(upper_edge, "upper_edge")
        edge = float(edge_arr)
        if own_edge is not None and edge < float(own_edge):
            raise InvalidInputError(
                f"upper_edge={edge:.6g} lies below the support's upper edge {float(own_edge):.6g}; "
                "G is singular there. Pass an edge at or above it."
            )
    return G, dG, edge


def bgn_outlier(theta: Any, stieltjes: Any, *, upper_edge: float | None = None) -> BGNOutlier:
    """Outlier of ``bulk + theta u u^T`` by the Benaych-Georges & Nadakuditi rule.

    For a bulk with Cauchy-Stieltjes transform ``G(z) = int dmu(t) / (z - t)``
    and upper edge ``b``, the top eigenvalue of ``bulk + theta u u^T`` (``u``
    a unit vector in generic position with respect to the bulk's eigenvectors)
    converges to the solution ``lambda > b`` of ``G(lambda) = 1 / theta`` if
    ``theta > 1 / G(b+)``, and to ``b`` otherwise; the squared overlap of its
    eigenvector with ``u`` converges to ``-1 / (theta**2 G'(lambda))`` (0 below
    threshold).

    Parameters
    ----------
    theta : float or array_like
        Additive spike strength(s), eigenvalue units.
    stieltjes : EmpiricalStieltjes, MarchenkoPastur or callable
        The bulk's transform: :func:`empirical_stieltjes` of bulk eigenvalues
        or SLQ nodes/weights; a :class:`MarchenkoPastur` law (closed-form ``G``
        and ``G'`` by implicit differentiation of its quadratic, so that this
        reproduces :func:`bbp_outlier` with ``model="additive"``); any object
        with ``.stieltjes(z)`` and ``.upper_edge``; or a callable ``G(z)``
        (with ``.derivative(z)`` if available; central differences otherwise).
    upper_edge : float, optional
        Edge ``b``; default ``stieltjes.upper_edge``. It may be set higher (e.g.
        a finite-size edge) but not below the support.

    Returns
    -------
    BGNOutlier
        ``outlier``, ``overlap`` and ``above``: floats for scalar ``theta``,
        arrays otherwise; with the ``threshold`` and ``upper_edge`` used.

    Raises
    ------
    InvalidInputError
        Unsupported ``stieltjes``, missing or invalid ``upper_edge``,
        non-finite ``theta``, or a transform that is not finite and positive
        right of the edge.

    Notes
    -----
    With an empirical transform built from ``n`` eigenvalues, ``G(b+) = inf``
    and every positive spike has an outlier (as for any finite matrix); the
    prediction is meaningful when the top eigenvalues are a smooth bulk.

    References
    ----------
    F. Benaych-Georges and R. R. Nadakuditi, "The eigenvalues and
    eigenvectors of finite, low rank perturbations of large random matrices",
    Adv. Math. 227 (2011), Theorems 2.1 and 2.3.

    Examples
    --------
    >>> from gn_theory.rmt import MarchenkoPastur
    >>> res = bgn_outlier([3.0, 6.0], MarchenkoPastur(0.5))
    >>> res.outlier.round(6), res.overlap.round(6)
    (array([4.2     , 7.090909]), array([0.92    , 0.983471]))
    >>> bgn_outlier(1.0, MarchenkoPastur(0.5)).above  # threshold 0.5 + sqrt(0.5)
    False
    """
    G, dG, edge = _resolve_stieltjes(stieltjes, upper_edge)
    th, scalar = _as_array(theta, "theta")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        g_edge = G(edge)
    if math.isnan(g_edge) or g_edge <= 0:
        raise InvalidInputError(
            f"G(upper_edge) = {g_edge!r} at upper_edge = {edge:.6g}; a Stieltjes transform is "
            "positive right of the support"
        )
    threshold = 0.0 if math.isinf(g_edge) else 1.0 / g_edge

    def f(lam: float) -> float:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            val = G(lam)
        return (0.0 if math.isinf(val) else 1.0 / val) - current

    outlier = np.full(th.shape, edge, dtype=float)
    overlap = np.zeros(th.shape, dtype=float)
    above = th > threshold
    flat_idx = np.flatnonzero(above)
    th_flat = th.reshape(-1)
    out_flat = outlier.reshape(-1)
    ov_flat = overlap.reshape(-1)
    for i in flat_idx:
        current = float(th_flat[i])
        lo, hi = edge, edge + current
        for _ in range(200):  # G(b + theta) <= 1/theta for a probability law; be safe for others
            if f(hi) >= 0:
                break
            lo, hi = hi, edge + 2.0 * (hi - edge)
        else:
            raise InvalidInputError(
                f"could not bracket G(lambda) = 1/theta for theta={current:.6g}; is G a "
                "Stieltjes transform of a probability law?"
            )
        lam = optimize.brentq(f, lo, hi, xtol=1e-15 * max(1.0, abs(hi)), rtol=4 * np.finfo(float).eps)
        d = dG(lam)
        out_flat[i] = lam
        ov_flat[i] = min(1.0, max(0.0, -1.0 / (current**2 * d))) if d < 0 else 0.0
    settings = {"theta": th.tolist(), "stieltjes": type(stieltjes).__name__}
    if scalar:
        return BGNOutlier(float(outlier), float(overlap), bool(above), float(threshold), edge,
                          settings)
    return BGNOutlier(outlier, overlap, above, float(threshold), edge, settings)
