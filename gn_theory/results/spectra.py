r"""Spectral results: spectra, densities, trace estimates and outliers (torch-free).

The estimators in :mod:`gn_theory.spectra` (torch) return these; here they are
data only (numpy arrays, numbers, strings, dicts), so they save, load and
analyse without torch.

Conventions (the package vocabulary, see :mod:`gn_theory.results`):

* eigenvalues, Ritz values and quadrature nodes are ordered **descending**
  (largest first); eigenvector columns and quadrature weights match;
* ``num_matvecs`` counts operator-vector products (a (P, b) block counts b);
* ``settings`` holds the operator description (kind, model, loss, dtype,
  device, ...) and the solver options that produced the result;
* a standard error is ``bse`` and an interval ``conf_int(alpha)`` is an array of
  shape ``(len(params), 2)``.

:func:`spectral_measure` is the one coercion of "something spectrum-like" (a
:class:`Spectrum`, a :class:`SpectralDensity`, an array or a tensor of
eigenvalues) into values and masses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from scipy.stats import norm, wasserstein_distance

from .. import _checks
from .._format import fmt_values
from ..exceptions import InvalidInputError, ShapeError
from ._base import Result
from ._summary import Summary

__all__ = [
    "Spectrum",
    "SpectralDensity",
    "TraceEstimate",
    "Outliers",
    "SpectralMeasure",
    "spectral_measure",
    "PAPYAN_KAPPA",
]

#: Papyan's kernel-width constant kappa (arXiv:1811.07062 code; docs/theory.md 3.2).
PAPYAN_KAPPA = 1.25


def _papyan_sigma(half_width: float, num_steps: int) -> float:
    """Papyan's kernel width ``d h / sqrt(8 ln kappa)``, ``h = 2 / (M - 1)`` (docs/theory.md 3.2)."""
    h = 2.0 / (max(num_steps, 2) - 1)
    return half_width * h / math.sqrt(8.0 * math.log(PAPYAN_KAPPA))


# =============================================================================== coercion
class SpectralMeasure(NamedTuple):
    """A discrete eigenvalue distribution: values (descending) and their masses.

    Attributes
    ----------
    values : numpy.ndarray
        Shape (n,), float64, finite, descending.
    weights : numpy.ndarray
        Shape (n,), non-negative, summing to 1 (zero-mass nodes dropped).
    num_params : int
        The nominal dimension P (the number of eigenvalues for an array; the
        operator dimension for a density).
    weighted : bool
        True for a quadrature (unequal masses), False for plain eigenvalues.
    """

    values: np.ndarray
    weights: np.ndarray
    num_params: int
    weighted: bool


def _finite_1d(values: Any, name: str) -> np.ndarray:
    """Finite float64 1-d values (a scalar becomes one value), or a clear error."""
    if isinstance(values, (str, bytes, dict)) or values is None:
        raise InvalidInputError(
            f"{name} must be a Spectrum, a SpectralDensity or a 1-d array of real numbers; "
            f"got {type(values).__name__}"
        )
    return _checks.check_real_array(values, name, scalar=True)


def spectral_measure(spectrum: Any, *, name: str = "eigenvalues") -> SpectralMeasure:
    """Values and masses of anything spectrum-like (the one coercion of the package).

    Parameters
    ----------
    spectrum : Spectrum, SpectralDensity, array_like or torch.Tensor
        A :class:`Spectrum` (its eigenvalues, equal masses), a
        :class:`SpectralDensity` or any object with ``nodes`` and ``weights``
        (the probe-averaged quadrature), or eigenvalues in any order.
    name : str, default "eigenvalues"
        Used in error messages.

    Returns
    -------
    SpectralMeasure
        ``values`` descending, ``weights`` summing to 1.

    Raises
    ------
    InvalidInputError
        If the input is not spectrum-like, is empty, holds NaN or inf, or a
        density's weights are negative or sum to 0.
    ShapeError
        If eigenvalues are not 1-d, or nodes and weights differ in shape (a
        subclass of InvalidInputError).

    Examples
    --------
    >>> from gn_theory.results.spectra import spectral_measure
    >>> m = spectral_measure([1.0, 3.0, 2.0])
    >>> m.values.tolist(), m.weights.tolist(), m.num_params
    ([3.0, 2.0, 1.0], [0.3333333333333333, 0.3333333333333333, 0.3333333333333333], 3)
    """
    if isinstance(spectrum, SpectralMeasure):
        return spectrum
    if hasattr(spectrum, "nodes") and hasattr(spectrum, "weights"):
        nodes = np.asarray(spectrum.nodes, dtype=np.float64)
        weights = np.asarray(spectrum.weights, dtype=np.float64)
        if nodes.shape != weights.shape:
            raise ShapeError(
                f"{name}: nodes and weights must have the same shape; got {nodes.shape} and "
                f"{weights.shape}"
            )
        x = _finite_1d(nodes.ravel(), f"{name} nodes")
        w = _finite_1d(weights.ravel(), f"{name} weights")
        if np.any(w < 0):
            raise InvalidInputError(f"{name}: weights must be >= 0 (quadrature masses)")
        total = float(w.sum())
        if not total > 0:
            raise InvalidInputError(f"{name}: the weights sum to 0, the density holds no mass")
        keep = w > 0
        x, w = x[keep], w[keep] / total
        order = np.argsort(-x, kind="stable")
        num_params = int(getattr(spectrum, "num_params", 0) or x.size)
        return SpectralMeasure(x[order], w[order], num_params, True)
    values = getattr(spectrum, "eigenvalues", spectrum)
    ev = np.sort(_finite_1d(values, name))[::-1].copy()
    return SpectralMeasure(ev, np.full(ev.size, 1.0 / ev.size), int(ev.size), False)


# =============================================================================== Spectrum
@dataclass
class Spectrum(Result):
    r"""Eigenvalues (descending) with eigenvectors, residual norms and convergence flags.

    Attributes
    ----------
    eigenvalues : numpy.ndarray
        Shape (k,), **descending** (largest first).
    eigenvectors : numpy.ndarray or None
        Shape (P, k), unit columns matching ``eigenvalues``; ``None`` unless asked.
    residual_norms : numpy.ndarray
        :math:`\|Ax - \theta x\|` per pair (Lanczos: the Krylov estimate
        :math:`\|B S_{last}\|`; eigh: computed from the dense matrix).
    converged : numpy.ndarray
        Boolean flags, ``residual_norms <= tol * ||A||`` (all True for eigh).
    num_matvecs : int
        Operator-vector products spent (a (P, b) block counts b).
    which : str
        ``"all"``, ``"largest"``, ``"smallest"`` or ``"both"``.
    method : str
        ``"eigh"`` or ``"lanczos"``.
    num_params : int
        Dimension P of the operator.
    seed : int or None
        Seed of the starting block.
    settings : dict
        Operator description (kind, model, loss, dtype, device, ...) and solver
        settings (tolerance, block and basis sizes, iterations, restarts, ...).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray | None
    residual_norms: np.ndarray
    converged: np.ndarray
    num_matvecs: int
    which: str
    method: str
    num_params: int
    seed: int | None = None
    settings: dict = field(default_factory=dict)

    _title = "Spectrum"

    @property
    def num_converged(self) -> int:
        """Number of converged pairs."""
        return int(np.count_nonzero(self.converged))

    @property
    def all_converged(self) -> bool:
        """Whether every pair converged."""
        return bool(np.all(self.converged))

    def largest(self, n: int = 1) -> np.ndarray:
        """The ``n`` largest eigenvalues held, in descending order."""
        return self.eigenvalues[:n].copy()

    def smallest(self, n: int = 1) -> np.ndarray:
        """The ``n`` smallest eigenvalues held, in ascending order."""
        return self.eigenvalues[::-1][:n].copy()

    def __len__(self) -> int:
        return int(self.eigenvalues.size)

    def summary(self) -> Summary:
        """Method, range, convergence and cost; notes on unconverged or negative values.

        Returns
        -------
        Summary
        """
        ev = self.eigenvalues
        k = int(ev.size)
        rows = [
            ("method", f"{self.method} ({self.which})"),
            ("operator", f"{self.settings.get('kind', '-')}, P = {self.num_params}"),
            ("eigenvalues", f"{k} held, descending"),
            ("largest", fmt_values(ev[:6])),
            ("smallest", fmt_values(ev[::-1][:3]) if k else "-"),
            ("converged", f"{self.num_converged} of {k}"),
            ("max residual", f"{float(self.residual_norms.max()):.3g}" if k else "-"),
            ("num_matvecs", str(self.num_matvecs)),
            ("seed", str(self.seed)),
        ]
        notes = []
        if k and not self.all_converged:
            notes.append(
                f"{k - self.num_converged} of {k} pairs did not converge to "
                f"tol={self.settings.get('tol', '?')}; their values are Ritz estimates "
                "within their residual norms"
            )
        n_neg = int(np.count_nonzero(ev < 0))
        if n_neg:
            notes.append(f"{n_neg} of the {k} eigenvalues held are negative")
        return Summary(self._title, rows, notes)

    def __repr__(self) -> str:
        ev = self.eigenvalues
        span = f"[{ev[0]:.4g}, {ev[-1]:.4g}]" if ev.size else "[]"
        return (
            f"Spectrum(method={self.method!r}, which={self.which!r}, k={ev.size}, "
            f"range={span}, converged={self.num_converged}/{ev.size}, "
            f"num_matvecs={self.num_matvecs})"
        )


# =============================================================================== density
@dataclass
class SpectralDensity(Result):
    r"""A spectral density from stochastic Lanczos quadrature.

    Row ``l`` of ``nodes``/``weights`` is the Gauss quadrature of probe ``l``:
    :math:`v_l^\top g(A) v_l \approx \sum_k \tau^{(l)}_k g(\theta^{(l)}_k)`
    (unit :math:`v_l`), each row of ``weights`` summing to 1. The estimated
    eigenvalue distribution is the average of the rows,
    :math:`\hat\phi = \frac1{n_v}\sum_l\sum_k\tau^{(l)}_k\delta_{\theta^{(l)}_k}`
    (docs/theory.md 3.2), so :math:`\int g\,d\hat\phi\approx\frac1P\operatorname{tr}g(A)`.

    Attributes
    ----------
    nodes, weights : numpy.ndarray
        Shape (num_probes, num_steps); each row of ``nodes`` **descending**
        (largest Ritz value first), ``weights`` matching. Probes whose
        recurrence stopped early (an invariant subspace) are padded at the end
        by repeating their last (smallest) node with weight 0.
    num_params : int
        Dimension P.
    num_steps, num_probes : int
        Lanczos steps m and probes :math:`n_v`.
    bounds : numpy.ndarray
        Shape (2,): ``[lower, upper]``, Papyan's range estimate
        :math:`[\theta_{min} - |\beta_m s_{m,min}|,\ \theta_{max} + |\beta_m s_{m,max}|]`
        (extremes over probes), not widened.
    num_matvecs : int
        Products spent.
    seed : int or None
        Probe seed.
    settings : dict
        Operator description and settings (probe distribution,
        reorthogonalisation, steps each probe ran; for a deflated density
        ``method``, ``deflate``, ``deflation_source``, ``deflation_num_matvecs``).
    deflated_eigenvalues : numpy.ndarray or None
        Eigenvalues computed exactly and deflated before SLQ
        (:func:`gn_theory.spectra.spectral_density`), **descending**; each is
        also a node of every row, with weight exactly 1/P. ``None``: plain SLQ.
    bulk_bounds : numpy.ndarray or None
        Shape (2,): Papyan's range estimate of the deflated operator (the
        bulk); it sets :meth:`default_sigma` when present.
    """

    nodes: np.ndarray
    weights: np.ndarray
    num_params: int
    num_steps: int
    num_probes: int
    bounds: np.ndarray
    num_matvecs: int = 0
    seed: int | None = None
    settings: dict = field(default_factory=dict)
    deflated_eigenvalues: np.ndarray | None = None
    bulk_bounds: np.ndarray | None = None

    _title = "Spectral density (stochastic Lanczos quadrature)"

    # -- construction from exact eigenvalues ---------------------------------------
    @classmethod
    def from_eigenvalues(cls, eigenvalues: Any, **settings: Any) -> SpectralDensity:
        """The exact eigenvalue distribution as a one-probe density (weights 1/P).

        Parameters
        ----------
        eigenvalues : array_like, torch.Tensor or Spectrum
            All P eigenvalues, any order.
        **settings
            Stored in ``settings``.

        Returns
        -------
        SpectralDensity
            One row of nodes, descending.

        Raises
        ------
        InvalidInputError, ShapeError
            As :func:`spectral_measure`.
        """
        m = spectral_measure(eigenvalues)
        P = m.values.size
        return cls(
            nodes=m.values[None, :].copy(),
            weights=np.full((1, P), 1.0 / P),
            num_params=P,
            num_steps=P,
            num_probes=1,
            bounds=np.array([m.values[-1], m.values[0]]),
            settings={"method": "exact", **settings},
        )

    # -- range and masses ------------------------------------------------------------
    @property
    def spectral_range(self) -> tuple[float, float]:
        """Estimated ``(lambda_min, lambda_max)`` (Papyan's residual-widened Ritz extremes)."""
        return float(self.bounds[0]), float(self.bounds[1])

    @property
    def num_deflated(self) -> int:
        """Number of eigenvalues deflated (computed exactly); 0 for plain SLQ."""
        return 0 if self.deflated_eigenvalues is None else int(np.size(self.deflated_eigenvalues))

    def _normalisation(self, bounds: Any = None) -> tuple[float, float]:
        """Papyan's centre c and half-width d of the range, widened by 5% (docs/theory.md 3.1)."""
        lb, ub = self.spectral_range if bounds is None else (float(bounds[0]), float(bounds[1]))
        width = max(ub - lb, 1e-12 * max(abs(lb), abs(ub), 1.0))
        lb, ub = lb - 0.025 * width, ub + 0.025 * width
        return 0.5 * (ub + lb), 0.5 * (ub - lb)

    def default_sigma(self) -> float:
        r"""Papyan's Gaussian kernel width in eigenvalue units (docs/theory.md 3.2).

        :math:`\sigma = d\,h/\sqrt{8\ln\kappa}` with :math:`h = 2/(M-1)`,
        :math:`\kappa = 1.25`, M the number of Lanczos steps and d the
        half-width of the range widened by 5%: the range of the deflated
        operator (``bulk_bounds``) for a deflated density, whose Ritz nodes
        span only that range (the deflated eigenvalues are exact).

        Returns
        -------
        float
        """
        _, d = self._normalisation(self.bulk_bounds)
        return _papyan_sigma(d, self.num_steps)

    def grid(self, num: int = 1024) -> np.ndarray:
        """Papyan's evaluation grid: ``num`` points on the 5%-widened range.

        Parameters
        ----------
        num : int, default 1024
            Number of points.

        Returns
        -------
        numpy.ndarray
            Ascending (a plotting axis).
        """
        c, d = self._normalisation()
        return np.linspace(c - d, c + d, _checks.check_positive_int("num", num, minimum=2))

    def _mix(self) -> tuple[np.ndarray, np.ndarray]:
        """Nodes and weights of the probe-averaged measure, flattened."""
        return self.nodes.ravel(), self.weights.ravel() / self.num_probes

    def density(self, grid: Any = None, sigma: float | None = None) -> np.ndarray:
        r"""Gaussian-broadened density :math:`\hat\phi_\sigma(t)` on ``grid``.

        Parameters
        ----------
        grid : array_like, optional
            Points t (default :meth:`grid`).
        sigma : float, optional
            Kernel standard deviation in eigenvalue units (default
            :meth:`default_sigma`, Papyan's rule).

        Returns
        -------
        numpy.ndarray
            Density values; integrates to 1 over the real line (not
            renormalised on the grid).

        Raises
        ------
        InvalidInputError
            If ``sigma`` is not positive.
        """
        t = self.grid() if grid is None else np.asarray(grid, float)
        s = self.default_sigma() if sigma is None else _checks.check_real(
            "sigma", sigma, low=0.0, low_open=True
        )
        x, w = self._mix()
        keep = w > 0
        x, w = x[keep], w[keep]
        out = np.zeros(t.shape)
        flat = t.reshape(-1)
        o = out.reshape(-1)
        for start in range(0, flat.size, 4096):
            z = (flat[start : start + 4096, None] - x[None, :]) / s
            o[start : start + 4096] = np.exp(-0.5 * z * z) @ w
        return out / (s * math.sqrt(2.0 * math.pi))

    def log_grid(self, num: int = 512, *, decades: float | None = None) -> np.ndarray:
        """``log10 |lambda|`` grid from the largest magnitude down ``decades`` decades.

        Parameters
        ----------
        num : int, default 512
            Number of points.
        decades : float, optional
            Span; default down to the smallest non-zero node magnitude (at most 16).

        Returns
        -------
        numpy.ndarray
            Values of ``log10 |lambda|``, ascending (a plotting axis).
        """
        x, w = self._mix()
        mag = np.abs(x[(w > 0) & (x != 0)])
        if mag.size == 0:
            return np.linspace(-1.0, 0.0, num)
        top = math.log10(mag.max())
        if decades is None:
            decades = min(16.0, max(top - math.log10(mag.min()), 1.0))
        return np.linspace(top - decades - 0.5, top + 0.5, _checks.check_positive_int("num", num))

    def log_density(
        self, log_grid: Any = None, sigma: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        r"""Densities of ``log10 |lambda|`` for the positive and the negative side.

        The papers plot Hessian spectra with eigenvalues spanning many decades
        on a log-magnitude axis, the negative side separately (docs/theory.md 3.5).
        Node :math:`\theta` with weight :math:`\tau` contributes a Gaussian in
        :math:`u = \log_{10}|\theta|` to the side of its sign; exact zeros go
        to neither (see :meth:`mass_near_zero`).

        Parameters
        ----------
        log_grid : array_like, optional
            Points ``u = log10 |lambda|`` (default :meth:`log_grid`).
        sigma : float, optional
            Kernel width in decades; default Papyan's rule applied to the span
            of ``log10 |theta|`` over the nodes.

        Returns
        -------
        positive, negative : numpy.ndarray
            Densities per decade; integrating ``positive`` over u gives (up to
            the tails cut by the grid) the mass of positive eigenvalues.

        Raises
        ------
        InvalidInputError
            If ``sigma`` is not positive.
        """
        u = self.log_grid() if log_grid is None else np.asarray(log_grid, float)
        x, w = self._mix()
        nz = (w > 0) & (x != 0)
        x, w = x[nz], w[nz]
        logs = np.log10(np.abs(x)) if x.size else x
        if sigma is None:
            span = float(logs.max() - logs.min()) if logs.size > 1 else 1.0
            d = max(span, 1.0) / 2.0
            sigma = _papyan_sigma(d, self.num_steps)
        sigma = _checks.check_real("sigma", sigma, low=0.0, low_open=True)
        out = []
        for sel in (x > 0, x < 0):
            z = (u.reshape(-1)[:, None] - logs[sel][None, :]) / sigma
            dens = np.exp(-0.5 * z * z) @ w[sel] / (sigma * math.sqrt(2 * math.pi))
            out.append(dens.reshape(u.shape))
        return out[0], out[1]

    def mass_near_zero(self, eps: float | None = None) -> float:
        """Estimated fraction of eigenvalues with ``|lambda| < eps``.

        Parameters
        ----------
        eps : float, optional
            Threshold; default ``1e-6 * max(|lambda_min|, |lambda_max|)``
            (relative to the estimated range).

        Returns
        -------
        float
        """
        if eps is None:
            eps = 1e-6 * max(abs(self.bounds[0]), abs(self.bounds[1]))
        else:
            eps = _checks.check_real("eps", eps, low=0.0)
        x, w = self._mix()
        return float(w[np.abs(x) < eps].sum())

    def negative_mass(self, eps: float = 0.0) -> float:
        """Estimated fraction of eigenvalues below ``-eps`` (docs/theory.md 3.5).

        Parameters
        ----------
        eps : float, default 0
            Margin.

        Returns
        -------
        float
        """
        eps = _checks.check_real("eps", eps, low=0.0)
        x, w = self._mix()
        return float(w[x < -eps].sum())

    def moment(self, order: int) -> float:
        r"""Estimated spectral moment :math:`\frac1P\operatorname{tr}A^{order}`.

        Exact in expectation over probes for ``order <= 2 m - 1``.

        Parameters
        ----------
        order : int
            Non-negative power.

        Returns
        -------
        float
        """
        order = _checks.check_nonneg_int("order", order)
        x, w = self._mix()
        return float(w @ x**order)

    def moments(self, max_order: int = 4) -> np.ndarray:
        """Moments of orders 0..``max_order`` (see :meth:`moment`).

        Parameters
        ----------
        max_order : int, default 4

        Returns
        -------
        numpy.ndarray
        """
        return np.array([self.moment(i) for i in range(max_order + 1)])

    def cdf(self, t: Any) -> np.ndarray:
        """Estimated fraction of eigenvalues ``<= t`` (a step function).

        Parameters
        ----------
        t : array_like

        Returns
        -------
        numpy.ndarray
        """
        x, w = self._mix()
        order = np.argsort(x, kind="stable")
        xs, cw = x[order], np.cumsum(w[order])
        idx = np.searchsorted(xs, np.asarray(t, float), side="right")
        return np.where(idx > 0, cw[np.maximum(idx - 1, 0)], 0.0)

    def wasserstein(self, other: Any) -> float:
        """Wasserstein-1 distance to exact eigenvalues or to another density.

        Parameters
        ----------
        other : array_like, torch.Tensor, Spectrum or SpectralDensity
            All P eigenvalues (equal weights), or a density.

        Returns
        -------
        float
            In eigenvalue units.
        """
        x, w = self._mix()
        y, v, _, _ = spectral_measure(other, name="other")
        return float(wasserstein_distance(x, y, w, v))

    @property
    def trace_estimate(self) -> float:
        """``P`` times the first moment: an estimate of ``tr A``."""
        return self.num_params * self.moment(1)

    def summary(self) -> Summary:
        """Probes, steps, range, moments and masses; notes on early stops.

        Returns
        -------
        Summary
        """
        lb, ub = self.spectral_range
        rows = [
            ("operator", f"{self.settings.get('kind', '-')}, P = {self.num_params}"),
            ("probes x steps", f"{self.num_probes} x {self.num_steps} "
                               f"({self.settings.get('probes', '-')})"),
            *([("deflated (exact, weight 1/P)",
                f"{self.num_deflated}: {fmt_values(self.deflated_eigenvalues)}")]
              if self.num_deflated else []),
            ("range", f"[{lb:.4g}, {ub:.4g}]"),
            ("mean (tr A / P)", f"{self.moment(1):.4g}"),
            ("tr A estimate", f"{self.trace_estimate:.4g}"),
            ("negative mass", f"{self.negative_mass():.4g}"),
            ("mass near zero", f"{self.mass_near_zero():.4g}"),
            ("kernel width", f"{self.default_sigma():.3g} (Papyan's rule)"),
            ("num_matvecs", str(self.num_matvecs)),
            ("seed", str(self.seed)),
        ]
        notes = []
        lengths = np.asarray(self.settings.get("lengths", []), dtype=int)
        short = int(np.count_nonzero(lengths < self.num_steps)) if lengths.size else 0
        if short:
            notes.append(
                f"{short} of {self.num_probes} probes stopped early (an invariant subspace); "
                "their rows are padded with zero-weight nodes"
            )
        if self.settings.get("reorthogonalize") is False:
            notes.append("no reorthogonalisation: nodes may contain ghost copies of outliers")
        return Summary(self._title, rows, notes)

    def __repr__(self) -> str:
        lb, ub = self.spectral_range
        return (
            f"SpectralDensity(num_probes={self.num_probes}, num_steps={self.num_steps}, "
            f"P={self.num_params}, range=[{lb:.4g}, {ub:.4g}], num_matvecs={self.num_matvecs}"
            + (f", num_deflated={self.num_deflated})" if self.num_deflated else ")")
        )


# =============================================================================== trace
@dataclass
class TraceEstimate(Result):
    """A stochastic trace estimate with its standard error.

    Attributes
    ----------
    estimate : float
        Estimated ``tr A``.
    bse : float
        Standard error of ``estimate`` (from the spread of the probe samples).
    num_matvecs : int
        Products spent.
    method : str
        ``"hutchinson"`` or ``"hutch++"``.
    samples : numpy.ndarray
        The Monte-Carlo samples (``z^T A z``, or for Hutch++ the residual
        samples), kept for later diagnostics.
    seed : int or None
        Probe seed.
    settings : dict
        Operator description and settings (probe distribution, block size).
    """

    estimate: float
    bse: float
    num_matvecs: int
    method: str
    samples: np.ndarray
    seed: int | None = None
    settings: dict = field(default_factory=dict)

    _title = "Trace estimate"

    @property
    def params(self) -> np.ndarray:
        """``[estimate]``, the estimate as a 1-d parameter array."""
        return np.array([self.estimate])

    @property
    def param_names(self) -> list[str]:
        """``["trace"]``."""
        return ["trace"]

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Normal confidence interval ``estimate +- z_{1-alpha/2} bse``.

        Parameters
        ----------
        alpha : float, default 0.05
            Significance level, in (0, 1).

        Returns
        -------
        numpy.ndarray
            Shape (1, 2): ``[[lower, upper]]``.

        Raises
        ------
        InvalidInputError
            If ``alpha`` is not in (0, 1).
        """
        q = float(norm.ppf(1 - _checks.check_alpha(alpha) / 2))
        return np.array([[self.estimate - q * self.bse, self.estimate + q * self.bse]])

    def summary(self) -> Summary:
        """Estimate, standard error and 95% interval; notes on the error model.

        Returns
        -------
        Summary
        """
        lo, hi = self.conf_int()[0]
        rows = [
            ("method", self.method),
            ("operator", str(self.settings.get("kind", "-"))),
            ("estimate", f"{self.estimate:.6g}"),
            ("bse", f"{self.bse:.3g}"),
            ("95% interval", f"[{lo:.6g}, {hi:.6g}]"),
            ("samples", str(int(np.size(self.samples)))),
            ("num_matvecs", str(self.num_matvecs)),
            ("seed", str(self.seed)),
        ]
        notes = []
        if self.method == "hutch++":
            notes.append("bse is that of the deflated Hutchinson part (the sketched part is exact)")
        if not math.isfinite(self.bse):
            notes.append("bse is not finite: too few samples for a spread (use more matvecs)")
        return Summary(self._title, rows, notes)


# =============================================================================== outliers
@dataclass
class Outliers(Result):
    """Outliers separated from the bulk.

    Attributes
    ----------
    count : int
        Number of outliers.
    values : numpy.ndarray
        Their values, **descending** (largest first; on the negative side the
        outermost, most negative one is last).
    threshold : float
        The separating value: the geometric mean across the chosen gap
        (``"gap"``) or the supplied edge (``"edge"``).
    method : str
        ``"gap"`` or ``"edge"``.
    side : str
        ``"positive"`` or ``"negative"``.
    gap_ratios : numpy.ndarray
        ``|lambda_j| / |lambda_{j+1}|`` for the candidates examined (``"gap"``),
        by decreasing magnitude ``|lambda_1| >= |lambda_2| >= ...``.
    bulk_edge : float
        The outermost eigenvalue not counted as an outlier (NaN if unknown).
    settings : dict
        The rule's options (``max_outliers``, ``min_ratio``, ``edge``).
    """

    count: int
    values: np.ndarray
    threshold: float
    method: str
    side: str
    gap_ratios: np.ndarray
    bulk_edge: float
    settings: dict = field(default_factory=dict)

    _title = "Outliers"

    def summary(self) -> Summary:
        """Count, values, threshold and bulk edge; a note when no gap was found.

        Returns
        -------
        Summary
        """
        rows = [
            ("rule", f"{self.method} ({self.side} side)"),
            ("count", str(self.count)),
            ("values", fmt_values(self.values) + (" (descending)" if self.count else "")),
            ("threshold", f"{self.threshold:.4g}"),
            ("bulk edge", f"{self.bulk_edge:.4g}"),
        ]
        if self.gap_ratios.size:
            j = int(np.argmax(self.gap_ratios))
            rows.append(("largest gap ratio", f"{self.gap_ratios[j]:.3g} (after rank {j + 1})"))
        notes = []
        if self.method == "gap" and self.count == 0:
            notes.append(
                f"no gap ratio reached min_ratio={self.settings.get('min_ratio', '?')}: "
                "no outliers separated"
            )
        return Summary(self._title, rows, notes)
