r"""Fitting the Marchenko-Pastur law, and a spiked model, to a measured spectrum.

:func:`fit_marchenko_pastur` follows the robust recipe of THEORY.md 4.5:

1. **Zeros and negatives.** Values with ``|x| <= zero_tol * max|x|`` are the
   atom at zero (negatives of that size are round-off); larger negatives (a
   Hessian has them) are set aside and counted. A known atom mass
   (``atom=``, e.g. ``1 - N (C - 1) / P`` for a Gauss-Newton matrix) overrides
   the threshold count and fixes ``ratio = 1 / (1 - atom)``.
2. **Moments** (default): ``scale = m1`` and ``ratio = m2 / m1**2 - 1`` over
   the kept eigenvalues, zeros included (the atom has zero moments), since the
   full MP law has moments ``sigma^2`` and ``sigma^4 (1 + gamma)``.
3. **Outliers.** Eigenvalues above ``1.05 x`` the fitted upper edge are
   spikes: drop them and refit until the kept set is stable (or drop a given
   number, or everything above a given edge).
4. **KS refinement** (``method="ks"``): Nelder-Mead on
   ``(log scale, log ratio)`` minimising ``sup |F_emp - F_MP|`` over the
   nonzero bulk against the continuous part renormalised to one, started from
   the moments estimate.

The nonzero part of MP(gamma, sigma^2) equals that of MP(1/gamma, gamma sigma^2)
(the nonzero eigenvalues of ``X X^T / n`` and ``X^T X / n`` coincide), so a
fit to the nonzero bulk alone cannot tell gamma from 1/gamma. The KS fit
therefore picks the branch whose atom ``(1 - 1/gamma)_+`` is closer to the
observed zero fraction of the kept eigenvalues; the moments fit includes the
zeros and needs no such choice.

The maximum-likelihood estimator is deliberately not offered (``method="mle"``
raises with the reason): the support depends on the parameters, so the
likelihood is not regular (one point beyond the fitted edge gives
``-inf``; THEORY.md 4.5 step 6).

:func:`fit_spiked_model` fits the bulk this way, takes the eigenvalues above
it as outliers and inverts the BBP formulas (:func:`~gn_theory.rmt.bbp_spike`)
for the spike strengths.

Torch-free: a :class:`~gn_theory.spectra.SpectralDensity` is duck-typed on
its ``nodes``/``weights``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy import optimize, stats

from .._format import fmt_values
from ..results import Summary
from ..exceptions import ConvergenceWarning, InvalidInputError
from ..results import Result
from ._bbp import _MODELS, bbp_outlier, bbp_overlap, bbp_spike, bbp_threshold
from ._mp import MarchenkoPastur, _cdf_cont1, _check_ratio_scale, _ppf_cont1
from ._scaling import _check_alpha

__all__ = [
    "fit_marchenko_pastur",
    "MarchenkoPasturFit",
    "fit_spiked_model",
    "SpikedModelFit",
]

FitMethod = Literal["moments", "ks", "mle"]
BootstrapKind = Literal["iid", "wishart"]

#: Eigenvalues above this multiple of the fitted upper edge are outliers (THEORY.md 4.5 step 8).
EDGE_FACTOR = 1.05
#: Fewest nonzero bulk eigenvalues a fit accepts (more than the two parameters).
MIN_BULK = 3
_MAX_TRIM_ROUNDS = 50
_METHODS = ("moments", "ks")
#: Default bootstrap replicates per method (a KS refit costs a Nelder-Mead run).
DEFAULT_BOOTSTRAP = {"moments": 200, "ks": 50}
_MIN_RATIO = 1e-8
#: Largest matrix dimension the Wishart bootstrap simulates.
_MAX_WISHART = 4000
#: Relative precision of the KS refits inside the bootstrap (far below the standard errors).
_BOOT_XATOL = 1e-3

_MLE_REASON = (
    "method='mle' is not offered: the Marchenko-Pastur support [scale (1 - sqrt(ratio))**2, "
    "scale (1 + sqrt(ratio))**2] depends on the parameters, so the likelihood is non-regular "
    "(a single eigenvalue beyond the fitted edge gives log-likelihood -inf, the maximiser sits "
    "on the constraint and the usual asymptotics and standard errors do not apply; THEORY.md "
    "4.5 step 6). Use method='ks' (Kolmogorov-Smirnov distance, robust and accurate) or "
    "'moments'."
)


# ============================================================================= validation
def _check_method(method: Any) -> str:
    if method == "mle":
        raise InvalidInputError(_MLE_REASON)
    if method not in _METHODS:
        raise InvalidInputError(
            f"method must be one of {', '.join(repr(m) for m in _METHODS)}; got {method!r}"
        )
    return str(method)


def _check_nonneg_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidInputError(f"{name} must be an integer >= 0; got {value!r}")
    return int(value)


def _finite_array(values: Any, name: str) -> np.ndarray:
    if isinstance(values, (str, bytes)):
        raise InvalidInputError(f"{name} must be real numbers; got {values!r}")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{name} must be a 1-d array of real numbers or a SpectralDensity; "
            f"got {type(values).__name__}"
        ) from exc
    if arr.size == 0:
        raise InvalidInputError(f"{name} is empty: nothing to fit")
    bad = np.flatnonzero(~np.isfinite(arr.ravel()))
    if bad.size:
        raise InvalidInputError(
            f"{name} holds {bad.size} non-finite value(s) (NaN or inf) at flat positions "
            f"{bad[:10].tolist()}; a spectrum with NaN/inf is broken upstream, fix it first"
        )
    return arr


class _Measure(NamedTuple):
    """Values, their masses (summing to one), the nominal count, and whether weighted."""

    x: np.ndarray
    w: np.ndarray
    n_total: int
    weighted: bool


def _as_measure(eigenvalues: Any) -> _Measure:
    """A 1-d array (equal masses) or anything with ``nodes``/``weights`` (an SLQ density)."""
    if hasattr(eigenvalues, "nodes") and hasattr(eigenvalues, "weights"):
        nodes = _finite_array(eigenvalues.nodes, "nodes")
        weights = _finite_array(eigenvalues.weights, "weights")
        if nodes.shape != weights.shape:
            raise InvalidInputError(
                f"nodes and weights must have the same shape; got {nodes.shape} and "
                f"{weights.shape}"
            )
        if np.any(weights < 0):
            raise InvalidInputError("weights must be >= 0 (quadrature masses)")
        total = float(weights.sum())
        if total <= 0:
            raise InvalidInputError("weights sum to 0: the density holds no mass")
        x, w = nodes.ravel(), weights.ravel() / total
        keep = w > 0
        n_total = int(getattr(eigenvalues, "num_params", 0) or keep.sum())
        return _Measure(x[keep].copy(), w[keep].copy(), n_total, True)
    arr = _finite_array(eigenvalues, "eigenvalues")
    if arr.ndim != 1:
        raise InvalidInputError(
            f"eigenvalues must be 1-d (one spectrum); got shape {arr.shape}"
        )
    return _Measure(arr.copy(), np.full(arr.size, 1.0 / arr.size), arr.size, False)


# ============================================================================= estimators
class _Estimate(NamedTuple):
    scale: float
    ratio: float
    converged: bool
    message: str


def _moments(xb: np.ndarray, wb: np.ndarray, zero_mass: float, ratio: float | None) -> _Estimate:
    """Moment matching on the kept values (bulk ``xb`` with masses ``wb``, plus zeros)."""
    bulk_mass = float(wb.sum())
    if ratio is not None:
        # fitted on the nonzero bulk: its mean is scale * max(1, ratio)
        return _Estimate(float(wb @ xb) / bulk_mass / max(1.0, ratio), ratio, True, "")
    total = bulk_mass + zero_mass
    m1 = float(wb @ xb) / total
    m2 = float(wb @ xb**2) / total
    g = m2 / m1**2 - 1.0
    if not g > _MIN_RATIO:
        return _Estimate(
            m1, _MIN_RATIO, False,
            f"degenerate data: m2 / m1^2 - 1 = {g:.3g} <= 0 (the kept eigenvalues are nearly "
            f"all equal), so the ratio is not identifiable; it was clipped to {_MIN_RATIO:g}",
        )
    return _Estimate(m1, g, True, "")


def _ks_distance(xs: np.ndarray, cw: np.ndarray, cw_prev: np.ndarray, scale: float,
                 ratio: float) -> float:
    """sup |F_emp - F| for sorted nonzero values against the renormalised continuous part."""
    F = _cdf_cont1(xs / scale, ratio)
    return float(max(np.max(cw - F), np.max(F - cw_prev)))


def _ecdf(xb: np.ndarray, wb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(xb, kind="stable")
    xs, ws = xb[order], wb[order] / wb.sum()
    cw = np.cumsum(ws)
    return xs, cw, cw - ws


def _ks(xb: np.ndarray, wb: np.ndarray, zero_mass: float, ratio: float | None,
        maxiter: int | None, start: _Estimate | None = None, xatol: float = 1e-7) -> _Estimate:
    """Nelder-Mead on (log scale[, log ratio]) minimising the KS distance (THEORY.md 4.5 step 5).

    ``xatol`` is the simplex size on the log parameters (a relative precision);
    ``fatol = xatol / 100`` on the distance.
    """
    xs, cw, cw_prev = _ecdf(xb, wb)
    start = start or _moments(xb, wb, zero_mass, ratio)
    if ratio is not None:
        def obj(u: np.ndarray) -> float:
            return _ks_distance(xs, cw, cw_prev, math.exp(u[0]), ratio)

        u0 = np.array([math.log(start.scale)])
    else:
        def obj(u: np.ndarray) -> float:
            return _ks_distance(xs, cw, cw_prev, math.exp(u[0]), math.exp(u[1]))

        # start on the canonical branch (nonzero part of MP(g, s) = that of MP(1/g, g s))
        s0, g0 = start.scale, max(start.ratio, _MIN_RATIO)
        if g0 > 1.0:
            s0, g0 = s0 * g0, 1.0 / g0
        u0 = np.array([math.log(s0), math.log(g0)])
    opts: dict[str, Any] = {"xatol": xatol, "fatol": xatol / 100.0}
    if maxiter is not None:
        opts["maxiter"] = int(maxiter)
    res = optimize.minimize(obj, u0, method="Nelder-Mead", options=opts)
    ok = bool(res.success) and bool(np.all(np.isfinite(res.x)))
    msg = "" if ok else f"KS minimisation (Nelder-Mead) did not converge: {res.message}"
    if ratio is not None:
        return _Estimate(math.exp(res.x[0]), ratio, ok, msg)
    s, g = math.exp(res.x[0]), math.exp(res.x[1])
    if g > 1.0:
        s, g = s * g, 1.0 / g
    # branch: the atom (1 - 1/gamma)_+ closest to the observed zero fraction of the kept values
    f_obs = zero_mass / (zero_mass + float(wb.sum()))
    if f_obs > 0.5 * (1.0 - g):
        s, g = s * g, 1.0 / g
    return _Estimate(s, g, ok, msg)


def _estimate(method: str, xb: np.ndarray, wb: np.ndarray, zero_mass: float,
              ratio: float | None, maxiter: int | None, xatol: float = 1e-7) -> _Estimate:
    if method == "ks":
        return _ks(xb, wb, zero_mass, ratio, maxiter, xatol=xatol)
    return _moments(xb, wb, zero_mass, ratio)


def _upper_edge(e: _Estimate) -> float:
    return e.scale * (1.0 + math.sqrt(e.ratio)) ** 2


# ============================================================================= outliers
def _outlier_rule(exclude: Any) -> tuple[str, Any]:
    """Normalise ``exclude_outliers`` to ("auto" | "none" | "top" | "above", value)."""
    if exclude is True or exclude == "auto":
        return "auto", None
    if exclude is False or exclude is None:
        return "none", None
    if isinstance(exclude, (int, np.integer)):
        return "top", _check_nonneg_int("exclude_outliers", exclude)
    if isinstance(exclude, (float, np.floating)):
        if not math.isfinite(exclude) or exclude <= 0:
            raise InvalidInputError(
                f"exclude_outliers as an edge must be finite and > 0; got {exclude!r}"
            )
        return "above", float(exclude)
    raise InvalidInputError(
        "exclude_outliers must be 'auto', False, an int (drop the top k) or a float "
        f"(drop everything above it); got {exclude!r}"
    )


def _top_mask(x: np.ndarray, w: np.ndarray, candidates: np.ndarray, k: int,
              n_total: int) -> np.ndarray:
    """The top ``k`` of ``candidates`` (for weighted data: the top mass ``k / n_total``)."""
    out = np.zeros_like(candidates)
    if k == 0:
        return out
    idx = np.flatnonzero(candidates)
    idx = idx[np.argsort(-x[idx], kind="stable")]
    cum = np.cumsum(w[idx])
    out[idx[cum <= (k + 0.5) / n_total]] = True
    return out


# ============================================================================= results
def _basic_ci(reps: np.ndarray, alpha: float, params: np.ndarray) -> np.ndarray:
    """Basic (reverse-percentile) bootstrap interval ``[2 p - q_hi, 2 p - q_lo]``, floored at 0.

    Unlike the plain percentile interval it does not double the estimator's
    bias (the moments ratio is biased by about ``+1/n`` at finite size).
    """
    if reps.shape[0] < 2:
        return np.full((params.size, 2), np.nan)
    lo, hi = np.quantile(reps, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
    return np.clip(np.column_stack([2.0 * params - hi, 2.0 * params - lo]), 0.0, None)


@dataclass(repr=False)
class MarchenkoPasturFit(Result):
    r"""A Marchenko-Pastur law fitted to a spectrum, statsmodels style.

    Built by :func:`fit_marchenko_pastur`.

    Attributes
    ----------
    params : numpy.ndarray
        ``[scale, ratio]`` (names in :attr:`param_names`): sigma^2 and gamma = p / n.
    bse : numpy.ndarray
        Bootstrap standard errors of :attr:`params` (0 for a ratio that was
        fixed, NaN without bootstrap).
    bootstrap_params : numpy.ndarray
        Shape (num_bootstrap, 2): the refitted ``[scale, ratio]`` of each
        bootstrap replicate.
    alpha : float
        Default level of :meth:`conf_int`.
    method : str
        ``"moments"`` or ``"ks"``.
    bootstrap : str
        ``"iid"`` or ``"wishart"`` (see :func:`fit_marchenko_pastur`).
    ratio_source : str
        ``"fitted"``, ``"given"`` (the ``ratio`` argument) or ``"atom"``
        (``1 / (1 - atom)`` from a known atom mass).
    data, data_weights : numpy.ndarray
        The nonzero bulk values fitted (sorted) and their masses as fractions
        of the whole spectrum (``1 / n_total`` each for an eigenvalue array;
        quadrature weights for a density).
    outliers : numpy.ndarray
        The values excluded as outliers, descending.
    n_total, n_zero, n_negative, n_outliers, n_bulk : int
        Counts: all eigenvalues; treated as the atom at zero; negative beyond
        the zero tolerance (set aside); excluded above the bulk; fitted
        (nonzero). For a density these are masses times ``n_total``
        (``num_params``), rounded.
    zero_fraction : float
        Mass treated as the atom, as a fraction of the whole spectrum.
    atom_ratio : float
        ``1 / (1 - zero_fraction)``: the ratio the atom alone implies when
        ratio > 1 (THEORY.md 4.5 step 8); NaN when there are no zeros.
    zero_threshold : float
        ``zero_tol * max|x|``: values within it counted as zeros.
    outlier_rule : str
        How outliers were chosen (``"auto"``, ``"top"``, ``"above"``, ``"none"``).
    outlier_cut : float
        Positive values above it were excluded (``inf``: none).
    ks_statistic, ks_pvalue : float
        Kolmogorov-Smirnov distance between the nonzero bulk and the fitted
        continuous part (renormalised), and its p-value. The p-value ignores
        that the parameters were fitted to the same data, so it is optimistic.
    third_moment_ratio : float
        Third moment of the nonzero bulk over that of the fitted law's nonzero
        part; about 1 for an MP bulk, 2.1-2.5 for trained-network Hessians
        (THEORY.md 5b: heavier-tailed than MP).
    iterations : int
        Rounds of the outlier exclusion.
    converged : bool
        False if an optimisation failed, the outlier exclusion did not settle
        or the data were degenerate; :attr:`message` says which.
    message : str
        Empty when converged.
    weighted : bool
        True when fitted to a quadrature density (nodes and weights).
    num_bootstrap : int
        Replicates drawn.
    seed : int or None
        Bootstrap seed.
    metadata : dict
        Free-form.
    """

    params: np.ndarray
    bse: np.ndarray
    bootstrap_params: np.ndarray
    alpha: float
    method: str
    bootstrap: str
    ratio_source: str
    data: np.ndarray
    data_weights: np.ndarray
    outliers: np.ndarray
    n_total: int
    n_zero: int
    n_negative: int
    n_outliers: int
    n_bulk: int
    zero_fraction: float
    atom_ratio: float
    zero_threshold: float
    outlier_rule: str
    outlier_cut: float
    ks_statistic: float
    ks_pvalue: float
    third_moment_ratio: float
    iterations: int
    converged: bool
    message: str = ""
    weighted: bool = False
    num_bootstrap: int = 0
    seed: int | None = None
    metadata: dict = field(default_factory=dict)

    param_names = ("scale", "ratio")
    #: array fields, for rebuilding from a dict (see :class:`SpikedModelFit`)
    _ARRAY_SHAPES = {"params": (2,), "bse": (2,), "bootstrap_params": (-1, 2), "data": (-1,),
                     "data_weights": (-1,), "outliers": (-1,)}

    # -- parameters ------------------------------------------------------------------
    @property
    def scale(self) -> float:
        """Fitted sigma^2."""
        return float(self.params[0])

    @property
    def ratio(self) -> float:
        """Fitted (or fixed) gamma = p / n."""
        return float(self.params[1])

    @property
    def upper_edge(self) -> float:
        """lambda_+ = scale (1 + sqrt(ratio))**2 of the fitted law."""
        return self.scale * (1.0 + math.sqrt(self.ratio)) ** 2

    @property
    def lower_edge(self) -> float:
        """lambda_- = scale (1 - sqrt(ratio))**2 of the fitted law."""
        return self.scale * (1.0 - math.sqrt(self.ratio)) ** 2

    def conf_int(self, alpha: float | None = None) -> np.ndarray:
        """Basic bootstrap intervals of ``[scale, ratio]``.

        Parameters
        ----------
        alpha : float, optional
            ``1 - alpha`` coverage; default :attr:`alpha`.

        Returns
        -------
        numpy.ndarray
            Shape (2, 2): rows scale, ratio; columns lower, upper:
            ``[2 p - q_(1-alpha/2), 2 p - q_(alpha/2)]`` with ``q`` the
            quantiles of :attr:`bootstrap_params` (the basic bootstrap
            interval, which corrects rather than doubles a bias), floored at
            0; NaN with fewer than 2 replicates; a fixed ratio gives
            ``[ratio, ratio]``.

        Raises
        ------
        InvalidInputError
            ``alpha`` outside (0, 1).
        """
        a = self.alpha if alpha is None else _check_alpha(alpha)
        return _basic_ci(np.asarray(self.bootstrap_params, float).reshape(-1, 2), a,
                         np.asarray(self.params, float))

    # -- the fitted law ----------------------------------------------------------------
    def distribution(self, *, nonzero: bool = False) -> MarchenkoPastur:
        """The fitted law as a frozen :class:`~gn_theory.rmt.MarchenkoPastur`.

        Parameters
        ----------
        nonzero : bool, default False
            Law of the nonzero eigenvalues only.

        Returns
        -------
        MarchenkoPastur
        """
        return MarchenkoPastur(self.ratio, self.scale, nonzero=nonzero)

    def predict(self, x: Any, *, kind: Literal["pdf", "cdf"] = "pdf",
                nonzero: bool = False) -> np.ndarray:
        """The fitted density (or CDF) at ``x``.

        Parameters
        ----------
        x : array_like
            Where to evaluate.
        kind : {"pdf", "cdf"}, default "pdf"
            Density of the continuous part (weighted by its mass) or CDF (atom
            included).
        nonzero : bool, default False
            Use the law of the nonzero eigenvalues (renormalised), the one the
            KS statistic compares with.

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        InvalidInputError
            Unknown ``kind``.
        """
        law = self.distribution(nonzero=nonzero)
        if kind == "pdf":
            return law.pdf(x)
        if kind == "cdf":
            return law.cdf(x)
        raise InvalidInputError(f"kind must be 'pdf' or 'cdf'; got {kind!r}")

    # -- reporting ------------------------------------------------------------------------
    def _notes(self) -> list[str]:
        notes = []
        if not self.converged:
            notes.append(f"NOT CONVERGED: {self.message} Treat the numbers as unreliable.")
        unit = "eigenvalues (quadrature mass x n_total, rounded)" if self.weighted else "eigenvalues"
        if self.ratio_source == "atom":
            notes.append(
                f"Zeros: the known atom mass {self.zero_fraction:.6g} ({self.n_zero} {unit}, the "
                "values nearest 0) was treated as the atom; it fixes ratio = 1 / (1 - atom)."
            )
        elif self.n_zero:
            notes.append(
                f"Zeros: {self.n_zero} {unit} within {self.zero_threshold:.3g} of 0 were treated "
                "as the atom at zero (they enter the moments as zeros and set the zero fraction)."
            )
        if self.n_negative:
            notes.append(
                f"{self.n_negative} negative {unit} below -{self.zero_threshold:.3g} were set "
                "aside (MP describes a positive semi-definite bulk; fit G or the positive part)."
            )
        if self.n_outliers:
            notes.append(
                f"{self.n_outliers} {unit} above {self.outlier_cut:.6g} were excluded as outliers "
                + (f"(above {EDGE_FACTOR:g} x the fitted upper edge, refitted until stable: "
                   f"{self.iterations} rounds)." if self.outlier_rule == "auto"
                   else f"(rule: {self.outlier_rule}).")
            )
        if self.n_outliers > max(5, 0.02 * self.n_total):
            notes.append(
                f"{self.n_outliers} outliers ({100 * self.n_outliers / self.n_total:.1f}% of the "
                "spectrum) is more than a few isolated spikes: the bulk probably has a heavy tail "
                "that the exclusion cuts off. Compare with exclude_outliers=False or an int."
            )
        if self.ratio > 1 and math.isfinite(self.atom_ratio) and self.ratio_source != "atom":
            rel = abs(self.atom_ratio / self.ratio - 1.0)
            if rel > 0.02:
                notes.append(
                    f"The zero fraction implies ratio {self.atom_ratio:.4g}, {100 * rel:.0f}% "
                    f"away from the fitted {self.ratio:.4g}: the zero count and the bulk shape "
                    "disagree (a mis-set zero_tol, smeared zeros in SLQ, or not an MP bulk)."
                )
        if (self.ratio > 1 and self.ratio_source == "fitted"
                and self.zero_fraction < 0.5 * (1.0 - 1.0 / self.ratio)):
            notes.append(
                f"The fitted law puts mass {1.0 - 1.0 / self.ratio:.3g} at zero but only "
                f"{self.zero_fraction:.3g} of the kept values are zero: the spread of the bulk "
                "(m2 / m1^2), not a rank deficit, drove the ratio above 1, as a heavy-tailed "
                "bulk does. Fix the ratio from the structure (ratio=...) or pass atom=..."
            )
        notes.append(
            "The KS p-value treats the fitted parameters as known; after fitting it is "
            "optimistic (too large) and not a valid test."
        )
        if self.num_bootstrap:
            how = (
                "iid draws from the fitted law (inverse CDF)" if self.bootstrap == "iid"
                else "eigenvalues of simulated Wishart matrices of the fitted ratio"
            )
            extra = (
                " Eigenvalues of a true random matrix repel, so their linear statistics "
                "fluctuate far less than iid draws: these errors are conservative for an "
                "exactly MP matrix and do not include any model misfit."
                if self.bootstrap == "iid" else ""
            )
            notes.append(
                f"Standard errors and {100 * (1 - self.alpha):g}% intervals: parametric "
                f"bootstrap, {self.num_bootstrap} replicates of {how}, zeros from the fitted atom, "
                f"refitted by {self.method}; basic (reverse-percentile) bootstrap intervals.{extra}"
            )
        else:
            notes.append("No bootstrap was run: standard errors and intervals are NaN.")
        if self.third_moment_ratio > 1.5:
            notes.append(
                f"The bulk's third moment is {self.third_moment_ratio:.2f} x the MP value: the "
                "bulk is heavier-tailed than MP (as for trained-network Hessians), so MP is a "
                "poor model for it whatever the parameters."
            )
        if self.weighted:
            notes.append(
                "Fitted to quadrature nodes and weights (a spectral density): the KS p-value and "
                "the bootstrap use the nominal count n_total and ignore the probe noise."
            )
        return notes

    def summary(self, alpha: float | None = None) -> Summary:
        """A text/HTML table of the fit, ending in numbered notes.

        Parameters
        ----------
        alpha : float, optional
            Level of the intervals shown (default :attr:`alpha`).

        Returns
        -------
        Summary
        """
        a = self.alpha if alpha is None else _check_alpha(alpha)
        ci = self.conf_int(a)
        pct = f"{100 * (1 - a):g}% CI"
        ratio_row = (
            f"{self.ratio:.6g} +- {self.bse[1]:.3g} (se)   {pct} [{ci[1, 0]:.6g}, {ci[1, 1]:.6g}]"
            if self.ratio_source == "fitted" else f"{self.ratio:.6g} (fixed: {self.ratio_source})"
        )
        rows = [
            ("method", f"{self.method}" + ("" if self.converged else "   (NOT CONVERGED)")),
            ("scale sigma^2", f"{self.scale:.6g} +- {self.bse[0]:.3g} (se)   "
                              f"{pct} [{ci[0, 0]:.6g}, {ci[0, 1]:.6g}]"),
            ("ratio gamma", ratio_row),
            ("bulk edges", f"[{self.lower_edge:.6g}, {self.upper_edge:.6g}]"),
            ("counts", f"total {self.n_total}, bulk {self.n_bulk}, zero {self.n_zero}, "
                       f"negative {self.n_negative}, outliers {self.n_outliers}"),
            ("outlier nodes" if self.weighted else "outliers", fmt_values(self.outliers)),
            ("atom-implied ratio", f"{self.atom_ratio:.6g}"),
            ("KS statistic | p-value",
             f"{self.ks_statistic:.4g} | {self.ks_pvalue:.3g} (optimistic)"),
            ("3rd moment / MP", f"{self.third_moment_ratio:.4g}"),
            ("converged", str(self.converged)),
        ]
        return Summary("Marchenko-Pastur fit", rows, self._notes())

    def __repr__(self) -> str:
        flag = "" if self.converged else ", converged=False"
        return (
            f"MarchenkoPasturFit(method={self.method!r}, scale={self.scale:.6g}, "
            f"ratio={self.ratio:.6g}, n_bulk={self.n_bulk}, n_outliers={self.n_outliers}, "
            f"ks={self.ks_statistic:.3g}{flag})"
        )

    # -- rebuilding from a plain dict (nested inside SpikedModelFit) -----------------------
    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> MarchenkoPasturFit:
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        for name, shape in cls._ARRAY_SHAPES.items():
            kw[name] = np.asarray(kw[name], dtype=np.float64).reshape(shape)
        return cls(**kw)


# ============================================================================= bootstrap
def _quantile_table(ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Quantile function of the renormalised continuous part of MP(ratio, 1), tabulated.

    The table is exact (:func:`~gn_theory.rmt._mp._ppf_cont1`) at 4097 Chebyshev
    points, dense at both edges where the quantile function has infinite slope;
    linear interpolation between them is accurate to far below the sampling noise.
    """
    q = 0.5 * (1.0 - np.cos(np.linspace(0.0, np.pi, 4097)))
    return q, _ppf_cont1(q, np.full_like(q, ratio))


def _bootstrap(est: _Estimate, method: str, kind: str, n_bulk: int, n_zero: int,
               ratio: float | None, num: int, rng: np.random.Generator,
               maxiter: int | None) -> np.ndarray:
    """Refitted ``[scale, ratio]`` on ``num`` samples drawn from the fitted law."""
    out = np.empty((num, 2))
    if num == 0:
        return out
    if kind == "iid" and ratio is None:
        # Draw from the whole fitted law: its atom sets the zero count of a replicate. (Holding
        # the observed zero count instead is inconsistent when the fitted atom differs from it:
        # the nonzero part of MP(g, s) is that of MP(1/g, g s), so zero-free replicates of a law
        # with g > 1 refit to 1/g.)
        total = n_bulk + n_zero
        n_zero = int(round(max(0.0, 1.0 - 1.0 / est.ratio) * total))
        n_bulk = total - n_zero
    n_bulk = max(n_bulk, MIN_BULK)
    if kind == "iid":
        q, tab = _quantile_table(est.ratio)
        draws = np.interp(rng.uniform(size=(num, n_bulk)), q, tab) * est.scale
        wb = np.full(n_bulk, 1.0 / (n_bulk + n_zero))
        zero_mass = n_zero / (n_bulk + n_zero)
        for b in range(num):
            e = _estimate(method, draws[b], wb, zero_mass, ratio, maxiter, _BOOT_XATOL)
            out[b] = e.scale, e.ratio
        return out
    from ._simulate import sample_covariance_eigenvalues

    p = n_bulk + n_zero
    n = max(1, round(p / est.ratio))
    for b in range(num):
        ev = sample_covariance_eigenvalues(p, n, est.scale, seed=rng)
        nz = ev > 1e-9 * ev.max()
        wb = np.full(int(nz.sum()), 1.0 / p)
        e = _estimate(method, ev[nz], wb, 1.0 - wb.sum(), ratio, maxiter, _BOOT_XATOL)
        out[b] = e.scale, e.ratio
    return out


# ============================================================================= the fit
def fit_marchenko_pastur(
    eigenvalues: Any,
    *,
    ratio: float | None = None,
    method: FitMethod = "moments",
    exclude_outliers: Literal["auto"] | bool | int | float = "auto",
    zero_tol: float = 1e-6,
    atom: float | None = None,
    num_bootstrap: int | None = None,
    bootstrap: BootstrapKind = "iid",
    alpha: float = 0.05,
    seed: int | None = 0,
    maxiter: int | None = None,
) -> MarchenkoPasturFit:
    r"""Fit the Marchenko-Pastur law MP(ratio, scale) to the bulk of a spectrum.

    Parameters
    ----------
    eigenvalues : array_like or SpectralDensity
        A 1-d array of eigenvalues (all of them, zeros and outliers included),
        or a spectral density with ``nodes`` and ``weights`` of one shape
        (e.g. :func:`gn_theory.spectra.slq`), fitted as the weighted
        quadrature measure: moments are weighted sums and the KS distance is
        taken between its weighted CDF and the MP CDF (no histogram).
    ratio : float, optional
        gamma = p / n if known (e.g. ``P / (N (C - 1))`` for G of a
        cross-entropy loss); then only ``scale`` is fitted, on the nonzero bulk.
    method : {"moments", "ks"}, default "moments"
        ``"moments"``: ``scale = m1``, ``ratio = m2 / m1**2 - 1`` over the kept
        values with the zeros (robust, closed form). ``"ks"``: minimise the KS
        distance of the nonzero bulk to the renormalised continuous part by
        Nelder-Mead on ``(log scale, log ratio)`` from the moments estimate.
        ``"mle"`` raises :class:`InvalidInputError` explaining why it is not
        offered (non-regular likelihood; module docstring).
    exclude_outliers : "auto", False, int or float, default "auto"
        ``"auto"``: drop positive values above ``1.05 x`` the fitted upper
        edge and refit until the kept set is stable; an int ``k``: drop the
        top ``k``; a float: drop everything above it; False: keep all.
    zero_tol : float, default 1e-6
        Values with ``|x| <= zero_tol * max|x|`` are zeros (the atom).
    atom : float, optional
        Known mass of the atom at zero in [0, 1) (exact rank deficiency, or
        the bound ``1 - N (C - 1) / P``). The mass ``atom`` nearest zero is
        then the atom (robust to SLQ smearing it) and, unless ``ratio`` is
        given, ``ratio = 1 / (1 - atom)`` is fixed when ``atom > 0``.
    num_bootstrap : int, optional
        Parametric bootstrap replicates for :attr:`~MarchenkoPasturFit.bse`
        and :meth:`~MarchenkoPasturFit.conf_int` (0: none). Default 200 for
        ``"moments"`` (about 0.2 s for 2000 eigenvalues) and 50 for ``"ks"``
        (each KS refit is a Nelder-Mead run, about 50 ms for 2000 values).
    bootstrap : {"iid", "wishart"}, default "iid"
        ``"iid"``: draw ``n_bulk`` values from the fitted law by inverse CDF
        (fast; conservative, see Notes). ``"wishart"``: eigenvalues of a
        simulated sample covariance with the fitted ratio and ``n_bulk +
        n_zero`` rows (realistic for iid-noise matrices; costs one
        eigendecomposition per replicate, refused above 4000 rows).
    alpha : float, default 0.05
        Default level of the intervals.
    seed : int or None, default 0
        Bootstrap seed.
    maxiter : int, optional
        Iteration cap of Nelder-Mead (``method="ks"``); scipy's default if None.

    Returns
    -------
    MarchenkoPasturFit

    Raises
    ------
    InvalidInputError
        Empty, non-1-d or non-finite input; all values zero; fewer than
        3 nonzero bulk values left to fit; ``ratio`` not finite and > 0;
        ``atom`` outside [0, 1); unknown or unsupported ``method`` (``"mle"``);
        bad ``exclude_outliers``, ``zero_tol``, ``num_bootstrap``,
        ``bootstrap`` or ``alpha``.

    Warns
    -----
    ConvergenceWarning
        If the optimisation failed, the outlier exclusion did not settle or
        the data are degenerate; the result then has ``converged=False`` and
        its summary says why.

    Notes
    -----
    Robust recipe of THEORY.md 4.5 step 8 (module docstring). The counts
    ``n_total = n_zero + n_negative + n_outliers + n_bulk`` (up to rounding
    for a density) say what was set aside.

    Standard errors come from a parametric bootstrap: ``num_bootstrap``
    samples of the kept values (bulk and zeros) are drawn from the fitted law,
    its atom setting the number of zeros when the ratio is fitted (the
    observed zero count when the ratio is given or fixed by ``atom``), and
    refitted by the same method; ``bse`` is the standard
    deviation of the replicates and ``conf_int`` the basic bootstrap interval
    ``[2 p - q_hi, 2 p - q_lo]`` from their quantiles. iid draws
    ignore eigenvalue repulsion: the trace of a Wishart matrix fluctuates like
    ``1/p``, iid draws like ``1/sqrt(p)``, so for an exactly MP matrix the iid
    errors are too large by up to ``sqrt(p / 2)`` (conservative; they are a
    sensible scale for a bulk that is only approximately MP).
    ``bootstrap="wishart"`` gives the finite-matrix errors. Neither includes
    model misfit: read the KS statistic and the third-moment ratio.

    References
    ----------
    Marchenko & Pastur (1967); THEORY.md section 4.

    Examples
    --------
    >>> from gn_theory.rmt._simulate import sample_covariance_eigenvalues
    >>> eigs = sample_covariance_eigenvalues(600, 1500, 2.3, spikes=[9.0, 4.0], seed=0)
    >>> fit = fit_marchenko_pastur(eigs)
    >>> round(fit.scale, 1), round(fit.ratio, 1), fit.n_outliers
    (2.3, 0.4, 2)
    >>> fit.conf_int().shape
    (2, 2)
    """
    method = _check_method(method)
    rule, rule_value = _outlier_rule(exclude_outliers)
    try:
        ztol = float(zero_tol)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"zero_tol must be a number in [0, 1); got {zero_tol!r}") from exc
    if not 0.0 <= ztol < 1.0:
        raise InvalidInputError(f"zero_tol must be in [0, 1); got {zero_tol!r}")
    if num_bootstrap is None:
        num_bootstrap = DEFAULT_BOOTSTRAP[method]
    num_bootstrap = _check_nonneg_int("num_bootstrap", num_bootstrap)
    if bootstrap not in ("iid", "wishart"):
        raise InvalidInputError(f"bootstrap must be 'iid' or 'wishart'; got {bootstrap!r}")
    a = _check_alpha(alpha)
    if maxiter is not None:
        _check_nonneg_int("maxiter", maxiter)
    if ratio is not None:
        ratio, _ = _check_ratio_scale(ratio, 1.0)
    if atom is not None:
        try:
            atom = float(atom)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"atom must be a number in [0, 1); got {atom!r}") from exc
        if not 0.0 <= atom < 1.0:
            raise InvalidInputError(f"atom (a mass at zero) must be in [0, 1); got {atom!r}")

    m = _as_measure(eigenvalues)
    x, w = m.x, m.w
    xmax = float(np.max(np.abs(x)))
    if xmax == 0.0:
        raise InvalidInputError("every eigenvalue is zero: there is no bulk to fit")
    thresh = ztol * xmax

    # -- 1. zeros (the atom) and negatives ---------------------------------------------
    zero = np.abs(x) <= thresh
    ratio_source = "given" if ratio is not None else "fitted"
    if atom is not None:
        order = np.argsort(np.abs(x), kind="stable")
        cum = np.cumsum(w[order])
        zero[order[cum - 0.5 * w[order] <= atom]] = True
        if ratio is None and atom > 0:
            ratio, ratio_source = 1.0 / (1.0 - atom), "atom"
    neg = (x < 0) & ~zero
    pos = (x > 0) & ~zero
    zero_mass = float(w[zero].sum())

    def count(mask: np.ndarray) -> int:
        return int(round(float(w[mask].sum()) * m.n_total)) if m.weighted else int(mask.sum())

    def fit_on(keep: np.ndarray, how: str, start: _Estimate | None = None) -> _Estimate:
        if int(keep.sum()) < MIN_BULK:
            raise InvalidInputError(
                f"only {int(keep.sum())} nonzero bulk value(s) left to fit (of {x.size}: "
                f"{count(zero)} zero, {count(neg)} negative, {count(pos & ~keep)} excluded as "
                f"outliers); a fit needs at least {MIN_BULK}"
            )
        if how == "ks":
            return _ks(x[keep], w[keep], zero_mass, ratio, maxiter, start)
        return _moments(x[keep], w[keep], zero_mass, ratio)

    def trim(keep: np.ndarray, est: _Estimate, how: str) -> tuple[np.ndarray, _Estimate, int, bool]:
        """Drop values above 1.05 x the fitted edge and refit until the kept set is stable."""
        for rounds in range(1, _MAX_TRIM_ROUNDS + 1):
            new = pos & (x <= EDGE_FACTOR * _upper_edge(est))
            if np.array_equal(new, keep):
                return keep, est, rounds, True
            keep = new
            est = fit_on(keep, how, est)
        return keep, est, _MAX_TRIM_ROUNDS, False

    # -- 2./3. fit, excluding outliers -----------------------------------------------------
    keep = pos.copy()
    messages: list[str] = []
    iterations = 1
    if rule == "top":
        keep &= ~_top_mask(x, w, pos, rule_value, m.n_total)
    elif rule == "above":
        keep &= x <= rule_value
    if rule != "auto":
        est = fit_on(keep, method)
    else:
        # moments rounds until stable (THEORY.md 4.5 step 8), then KS rounds from there
        keep, est, iterations, stable = trim(keep, fit_on(keep, "moments"), "moments")
        if method == "ks":
            keep, est, more, stable_ks = trim(keep, fit_on(keep, "ks", est), "ks")
            iterations, stable = iterations + more, stable and stable_ks
        if not stable:
            messages.append(
                f"the outlier exclusion did not settle in {_MAX_TRIM_ROUNDS} rounds (the kept "
                "set oscillates); the last kept set was fitted."
            )
    if not est.converged:
        messages.insert(0, est.message)
    if rule == "auto":
        cut = EDGE_FACTOR * _upper_edge(est)
    elif rule == "above":
        cut = float(rule_value)
    elif rule == "top" and (pos & ~keep).any():
        cut = float(x[keep].max())
    else:
        cut = math.inf
    scale_, ratio_ = est.scale, est.ratio

    # -- goodness of fit ------------------------------------------------------------------
    xb, wb = x[keep], w[keep]
    order = np.argsort(xb, kind="stable")
    xb, wb = xb[order], wb[order]
    law_nz = MarchenkoPastur(ratio_, scale_, nonzero=True)
    if m.weighted:
        xs, cw, cw_prev = _ecdf(xb, wb)
        ks_stat = _ks_distance(xs, cw, cw_prev, scale_, ratio_)
        ks_p = float(stats.kstwo.sf(ks_stat, max(count(keep), 1)))
    else:
        res = stats.kstest(xb, law_nz.cdf)
        ks_stat, ks_p = float(res.statistic), float(res.pvalue)
    m3 = float(wb @ xb**3) / float(wb.sum())
    third = m3 / law_nz.moment(3)

    # -- bootstrap ------------------------------------------------------------------------
    if bootstrap == "wishart" and num_bootstrap and count(keep) + count(zero) > _MAX_WISHART:
        raise InvalidInputError(
            f"bootstrap='wishart' simulates {count(keep) + count(zero)} x "
            f"{count(keep) + count(zero)} covariance matrices per replicate; above "
            f"{_MAX_WISHART} that is too slow: use bootstrap='iid' (conservative) or "
            "num_bootstrap=0"
        )
    rng = np.random.default_rng(seed)
    reps = _bootstrap(est, method, bootstrap, count(keep), count(zero), ratio, num_bootstrap,
                      rng, maxiter)
    bse = reps.std(axis=0, ddof=1) if num_bootstrap >= 2 else np.full(2, np.nan)
    if ratio is not None and num_bootstrap >= 2:
        bse[1] = 0.0  # fixed, not estimated (the std of equal numbers can round to 1e-17)

    f0 = zero_mass
    converged = not messages
    message = " ".join(messages)
    if not converged:
        warnings.warn(f"Marchenko-Pastur fit: {message}", ConvergenceWarning, stacklevel=2)
    outl = np.sort(x[pos & ~keep])[::-1]
    return MarchenkoPasturFit(
        params=np.array([scale_, ratio_]),
        bse=bse,
        bootstrap_params=reps,
        alpha=a,
        method=method,
        bootstrap=str(bootstrap),
        ratio_source=ratio_source,
        data=xb.copy(),
        data_weights=wb.copy(),
        outliers=outl,
        n_total=int(m.n_total),
        n_zero=count(zero),
        n_negative=count(neg),
        n_outliers=count(pos & ~keep),
        n_bulk=count(keep),
        zero_fraction=float(f0),
        atom_ratio=1.0 / (1.0 - f0) if f0 > 0 else math.nan,
        zero_threshold=float(thresh),
        outlier_rule=rule if rule in ("auto", "none") else f"{rule} {rule_value}",
        outlier_cut=float(cut),
        ks_statistic=ks_stat,
        ks_pvalue=ks_p,
        third_moment_ratio=float(third),
        iterations=int(iterations),
        converged=bool(converged),
        message=message,
        weighted=m.weighted,
        num_bootstrap=num_bootstrap,
        seed=seed if seed is None else int(seed),
    )


# ============================================================================= spiked model
_BULK_MODELS = tuple(m for m in _MODELS if m != "wigner")


@dataclass(repr=False)
class SpikedModelFit(Result):
    r"""A spiked random-matrix model fitted to a spectrum: MP bulk plus BBP outliers.

    Built by :func:`fit_spiked_model`.

    Attributes
    ----------
    bulk : MarchenkoPasturFit
        The fit of the bulk (saved with this result).
    model : str
        The spiked model (``"multiplicative"``, ``"additive"`` or
        ``"information_plus_noise"``; parametrisations in
        :func:`~gn_theory.rmt.bbp_outlier`).
    outliers : numpy.ndarray
        Observed outlier eigenvalues, descending.
    spikes : numpy.ndarray
        Implied spike strengths theta (:func:`~gn_theory.rmt.bbp_spike` at the
        fitted ratio and scale); NaN for outliers not separated from the bulk.
    spikes_bse : numpy.ndarray
        Standard errors of :attr:`spikes` propagated from the bulk bootstrap
        (the bulk parameters' uncertainty only; NaN without bootstrap).
    above_threshold : numpy.ndarray
        Bool: the outlier lies above ``separation`` and so identifies a spike
        above the BBP threshold.
    overlaps : numpy.ndarray
        Predicted squared overlaps of the outlier eigenvectors with the spike
        directions (:func:`~gn_theory.rmt.bbp_overlap`); NaN where flagged.
    threshold : float
        BBP threshold of the fitted bulk, in the model's parametrisation.
    separation : float
        ``1.05 x`` the fitted upper edge: outliers at or below it cannot be told
        from the bulk's own top eigenvalues (Tracy-Widom fluctuations) and get
        no spike.
    metadata : dict
        Free-form.
    """

    bulk: MarchenkoPasturFit
    model: str
    outliers: np.ndarray
    spikes: np.ndarray
    spikes_bse: np.ndarray
    above_threshold: np.ndarray
    overlaps: np.ndarray
    threshold: float
    separation: float
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.bulk, dict):  # loaded from JSON
            self.bulk = MarchenkoPasturFit._from_dict(self.bulk)

    # the nested bulk fit is saved as a dict inside the JSON (arrays as lists, exact for float64)
    def _split_fields(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, other = super()._split_fields()
        other["bulk"] = self.bulk.to_dict()
        return arrays, other

    @property
    def num_spikes(self) -> int:
        """Number of outliers identified as spikes above the BBP threshold."""
        return int(np.sum(self.above_threshold))

    def predict(self, theta: Any = None) -> np.ndarray:
        """Outlier locations predicted from spike strengths (:func:`~gn_theory.rmt.bbp_outlier`).

        Parameters
        ----------
        theta : array_like, optional
            Spike strengths; default :attr:`spikes`, so that ``predict()``
            returns the observed outliers back (NaN where flagged).

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        InvalidInputError
            ``theta`` outside the model's domain.
        """
        th = np.atleast_1d(np.asarray(self.spikes if theta is None else theta, dtype=float))
        out = np.full(th.shape, np.nan)
        ok = np.isfinite(th)
        out[ok] = bbp_outlier(th[ok], self.bulk.ratio, self.bulk.scale, model=self.model)
        return out

    def summary(self, alpha: float | None = None) -> Summary:
        """The bulk fit and one row per outlier, with numbered notes.

        Parameters
        ----------
        alpha : float, optional
            Level of the bulk intervals (default the bulk's).

        Returns
        -------
        Summary
        """
        base = self.bulk.summary(alpha)
        rows = [("spiked model", self.model)] + base.rows[:4] + [
            ("BBP threshold", f"{self.threshold:.6g}"),
            ("separation", f"{self.separation:.6g} ({EDGE_FACTOR:g} x upper edge)"),
        ]
        for k, (lam, th, se, ov) in enumerate(
            zip(self.outliers, self.spikes, self.spikes_bse, self.overlaps), 1
        ):
            rows.append((
                f"outlier {k}",
                f"{lam:.6g} -> theta {th:.5g} +- {se:.2g}, overlap^2 {ov:.3f}"
                if np.isfinite(th) else f"{lam:.6g}: not separated from the bulk (no spike)",
            ))
        notes = list(base.notes)
        notes.append(
            f"Spikes are {self.model} strengths from the limiting BBP formulas at the fitted "
            "ratio and scale; their standard errors carry the bulk's uncertainty only, not the "
            "outlier's own O(n^-1/2) fluctuation."
        )
        flagged = int(np.sum(~self.above_threshold))
        if flagged:
            notes.append(
                f"{flagged} outlier(s) lie at or below {self.separation:.6g}: any spike there is "
                "at or near the BBP threshold and is not identifiable (theta = NaN)."
            )
        return Summary("Spiked model fit (MP bulk + BBP outliers)", rows, notes)

    def __repr__(self) -> str:
        return (
            f"SpikedModelFit(model={self.model!r}, scale={self.bulk.scale:.6g}, "
            f"ratio={self.bulk.ratio:.6g}, spikes={np.round(self.spikes, 4).tolist()})"
        )


def fit_spiked_model(
    eigenvalues: Any,
    *,
    ratio: float | None = None,
    num_outliers: Literal["auto"] | int = "auto",
    model: Literal["multiplicative", "additive", "information_plus_noise"] = "multiplicative",
    method: FitMethod = "moments",
    zero_tol: float = 1e-6,
    atom: float | None = None,
    num_bootstrap: int | None = None,
    bootstrap: BootstrapKind = "iid",
    alpha: float = 0.05,
    seed: int | None = 0,
    maxiter: int | None = None,
) -> SpikedModelFit:
    r"""Fit an MP bulk with BBP outliers and infer the spike strengths.

    The bulk is fitted by :func:`fit_marchenko_pastur` (outliers excluded);
    each outlier is inverted with :func:`~gn_theory.rmt.bbp_spike` at the
    fitted ``(ratio, scale)``, and :func:`~gn_theory.rmt.bbp_overlap` gives the
    predicted eigenvector overlap.

    Parameters
    ----------
    eigenvalues : array_like or SpectralDensity
        The whole spectrum, as for :func:`fit_marchenko_pastur`.
    ratio : float, optional
        gamma = p / n if known (``c = n / m`` for information-plus-noise).
    num_outliers : "auto" or int, default "auto"
        ``"auto"``: the eigenvalues above ``1.05 x`` the fitted upper edge
        (iterated); an int ``k``: the top ``k`` (those not above
        ``1.05 x`` the edge are flagged, not inverted).
    model : {"multiplicative", "additive", "information_plus_noise"}
        The spiked model (its spike parametrisation: :func:`~gn_theory.rmt.bbp_outlier`).
        The Wigner model has no MP bulk and is not accepted.
    method, zero_tol, atom, num_bootstrap, bootstrap, alpha, seed, maxiter
        Passed to :func:`fit_marchenko_pastur`.

    Returns
    -------
    SpikedModelFit

    Raises
    ------
    InvalidInputError
        Unknown or Wigner ``model``, bad ``num_outliers``, or anything
        :func:`fit_marchenko_pastur` rejects.

    Warns
    -----
    ConvergenceWarning
        From the bulk fit.

    Examples
    --------
    >>> from gn_theory.rmt._simulate import sample_covariance_eigenvalues
    >>> eigs = sample_covariance_eigenvalues(600, 1500, 2.3, spikes=[9.0, 4.0, 0.3], seed=0)
    >>> fit = fit_spiked_model(eigs)
    >>> fit.spikes.round(0), fit.above_threshold
    (array([9., 4.]), array([ True,  True]))
    >>> bool(abs(fit.predict()[0] / fit.outliers[0] - 1) < 1e-9)
    True
    """
    if model not in _BULK_MODELS:
        raise InvalidInputError(
            f"model must be one of {', '.join(repr(m) for m in _BULK_MODELS)} (a bulk that is "
            f"Marchenko-Pastur; 'wigner' has a semicircle bulk); got {model!r}"
        )
    if num_outliers == "auto":
        exclude: Any = "auto"
    elif isinstance(num_outliers, (int, np.integer)) and not isinstance(num_outliers, bool):
        exclude = _check_nonneg_int("num_outliers", num_outliers)
    else:
        raise InvalidInputError(f"num_outliers must be 'auto' or an int >= 0; got {num_outliers!r}")
    bulk = fit_marchenko_pastur(
        eigenvalues, ratio=ratio, method=method, exclude_outliers=exclude, zero_tol=zero_tol,
        atom=atom, num_bootstrap=num_bootstrap, bootstrap=bootstrap, alpha=alpha, seed=seed,
        maxiter=maxiter,
    )
    g, s = bulk.ratio, bulk.scale
    sep = EDGE_FACTOR * bulk.upper_edge
    out = np.asarray(bulk.outliers, dtype=float)
    above = out > sep
    theta = np.full(out.shape, np.nan)
    overlap = np.full(out.shape, np.nan)
    theta_se = np.full(out.shape, np.nan)
    if above.any():
        theta[above] = bbp_spike(out[above], g, s, model=model)
        overlap[above] = bbp_overlap(theta[above], g, s, model=model)
        reps = np.asarray(bulk.bootstrap_params).reshape(-1, 2)
        if reps.shape[0] >= 2:
            th_b = np.array([bbp_spike(out[above], rg, rs, model=model, below="threshold")
                             for rs, rg in reps])
            theta_se[above] = th_b.std(axis=0, ddof=1)
    return SpikedModelFit(
        bulk=bulk,
        model=str(model),
        outliers=out.copy(),
        spikes=theta,
        spikes_bse=theta_se,
        above_threshold=above,
        overlaps=overlap,
        threshold=float(bbp_threshold(g, s, model=model)),
        separation=float(sep),
    )
