r"""Fitting the Marchenko-Pastur law, and a spiked model, to a measured spectrum.

:func:`fit_marchenko_pastur` follows the robust recipe of docs/theory.md 4.5:

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
``-inf``; docs/theory.md 4.5 step 6).

Standard errors and intervals come from the parametric bootstrap of
:mod:`gn_theory.rmt._bootstrap`; :func:`~gn_theory.rmt.fit_spiked_model`
(:mod:`gn_theory.rmt._spiked`) fits the bulk this way and inverts the BBP
formulas for the outliers.

Torch-free: the input is read by :func:`gn_theory.results.spectra.spectral_measure`
(an array, a :class:`~gn_theory.results.Spectrum` or a
:class:`~gn_theory.results.SpectralDensity`, or anything with ``nodes`` and
``weights``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypedDict

import numpy as np
from scipy import optimize, stats

from .._checks import check_alpha, check_choice, check_fraction, check_nonneg_int, check_seed
from .._format import fmt_values
from ..exceptions import ConvergenceWarning, InvalidInputError
from ..results import Result, Summary
from ..results.spectra import SpectralMeasure, spectral_measure
from ._bootstrap import (
    BOOTSTRAP_KINDS,
    BootstrapKind,
    basic_interval,
    bootstrap_replicates,
    check_wishart_size,
)
from ._common import EDGE_FACTOR, MIN_BULK, FitResultMixin, check_ratio_scale
from ._mp import MarchenkoPastur, standard_cdf

__all__ = ["fit_marchenko_pastur", "MarchenkoPasturFit", "MarchenkoPasturOptions"]

FitMethod = Literal["moments", "ks", "mle"]

_MAX_TRIM_ROUNDS = 50
_METHODS = ("moments", "ks")
#: Largest |eigenvalue| fitted as given; outside this range the values are rescaled first.
_SAFE_RANGE = (1e-100, 1e100)
#: Default bootstrap replicates per method (a KS refit costs a Nelder-Mead run).
DEFAULT_BOOTSTRAP = {"moments": 200, "ks": 50}
_MIN_RATIO = 1e-8
#: Relative precision of the KS refits inside the bootstrap (far below the standard errors).
_BOOT_XATOL = 1e-3

_MLE_REASON = (
    "method='mle' is not offered: the Marchenko-Pastur support [scale (1 - sqrt(ratio))**2, "
    "scale (1 + sqrt(ratio))**2] depends on the parameters, so the likelihood is non-regular "
    "(a single eigenvalue beyond the fitted edge gives log-likelihood -inf, the maximiser sits "
    "on the constraint and the usual asymptotics and standard errors do not apply; docs/theory.md "
    "4.5 step 6). Use method='ks' (Kolmogorov-Smirnov distance, robust and accurate) or "
    "'moments'."
)


class MarchenkoPasturOptions(TypedDict, total=False):
    """The options of :func:`fit_marchenko_pastur`, as one keyword set.

    :func:`~gn_theory.rmt.fit_spiked_model` takes them as ``**options`` (all but
    ``exclude_outliers``, which its ``num_outliers`` sets); their meaning and
    defaults are those of :func:`fit_marchenko_pastur`.
    """

    ratio: float | None
    method: FitMethod
    exclude_outliers: Literal["auto"] | bool | int | float
    zero_tol: float
    atom: float | None
    num_bootstrap: int | None
    bootstrap: BootstrapKind
    alpha: float
    seed: int | None
    maxiter: int | None


# ============================================================================= validation
def _check_method(method: Any) -> str:
    if method == "mle":
        raise InvalidInputError(_MLE_REASON)
    return check_choice("method", method, _METHODS)


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
    F = standard_cdf(xs / scale, ratio)
    return float(max(np.max(cw - F), np.max(F - cw_prev)))


def _ecdf(xb: np.ndarray, wb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(xb, kind="stable")
    xs, ws = xb[order], wb[order] / wb.sum()
    cw = np.cumsum(ws)
    return xs, cw, cw - ws


def _ks(xb: np.ndarray, wb: np.ndarray, zero_mass: float, ratio: float | None,
        maxiter: int | None, start: _Estimate | None = None, xatol: float = 1e-7) -> _Estimate:
    """Nelder-Mead on (log scale[, log ratio]) minimising the KS distance (docs/theory.md 4.5 step 5).

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
        return "top", check_nonneg_int("exclude_outliers", exclude)
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


# ============================================================================= diagnostics
#: Nodes of different probes within this relative distance are one outlier.
_REPEAT_RTOL = 1e-4


def _merge_repeats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Descending ``values`` with runs closer than :data:`_REPEAT_RTOL` merged: (means, counts)."""
    v = np.sort(np.asarray(values, dtype=float))[::-1]
    if v.size == 0:
        return v, np.zeros(0, dtype=np.int64)
    groups: list[list[float]] = [[v[0]]]
    for x in v[1:]:
        head = groups[-1][0]
        if head - x <= _REPEAT_RTOL * abs(head):
            groups[-1].append(x)
        else:
            groups.append([x])
    return (np.array([float(np.mean(g)) for g in groups]),
            np.array([len(g) for g in groups], dtype=np.int64))


def _third_moment_ratio(xb: np.ndarray, wb: np.ndarray, zero_mass: float, scale: float,
                        ratio: float, *, full: bool) -> tuple[float, str]:
    """Empirical over fitted third moment, in the measure whose moments the fit matched.

    ``full`` (a moments fit with a fitted ratio, which matched m1 and m2 of the kept
    values *with their zeros*): the kept values with the zeros against the full law
    (atom included). Otherwise (KS, a given or atom-fixed ratio: the nonzero bulk was
    fitted): the nonzero bulk against the fitted law's nonzero part. Comparing the
    nonzero bulk with the nonzero part of a moments fit would be off by the factor
    ``ratio (1 - zero_fraction)`` whenever the data's zeros differ from the fitted atom
    (docs/theory.md section 4.6).
    """
    if full:
        m3 = float(wb @ xb**3) / (float(wb.sum()) + zero_mass)
        return m3 / MarchenkoPastur(ratio, scale).moment(3), "kept values with zeros vs the full law"
    m3 = float(wb @ xb**3) / float(wb.sum())
    return (m3 / MarchenkoPastur(ratio, scale, nonzero=True).moment(3),
            "nonzero bulk vs the law's nonzero part")


#: A KS shape ``min(ratio, 1/ratio)`` this close to 1 sits on the fold of the family.
_FOLD_TOL = 1e-3
#: Shape- and zero-implied ratios further apart than this factor contradict each other.
_ATOM_FACTOR = 1.5


def _identification(method: str, ratio_source: str, ratio: float, f_obs: float,
                    rel_var: float, ci: np.ndarray, bse: float) -> str:
    """Why the fitted ratio is not identified, or ``""`` (docs/theory.md section 4.6).

    Checked for a fitted ratio: (1) a KS fit on the fold gamma = 1, where MP(g, s) and
    MP(1/g, g s) have the same nonzero part and the widest shape sits (a bulk more
    spread than any MP shape ends here too); (2) a KS fit on the branch gamma > 1 whose
    atom ``1 - 1/gamma`` the zero fraction contradicts; (3) a KS bootstrap interval
    that excludes the estimate (a boundary estimate: the moments estimator's small
    finite-size bias can shift its interval without any identification problem); (4) a
    bootstrap standard error above the estimate.
    """
    if ratio_source != "fitted":
        return ""
    reasons = []
    if method == "ks" and abs(math.log(ratio)) < _FOLD_TOL:
        reasons.append(
            f"the KS optimum sits on the fold gamma = 1 of the Marchenko-Pastur family (the "
            f"widest nonzero shape; MP(g, s) and MP(1/g, g s) coincide there); the nonzero "
            f"bulk has relative variance {rel_var:.3g} where the widest MP shape has 1, so "
            "a bulk more spread than any MP law lands here too and the ratio is not "
            "identified by the shape"
        )
    if method == "ks" and ratio > 1.0 + _FOLD_TOL:
        atom_ratio = 1.0 / (1.0 - f_obs) if f_obs < 1.0 else math.inf
        if abs(math.log(ratio / atom_ratio)) > math.log(_ATOM_FACTOR):
            reasons.append(
                f"the bulk shape gives ratio {ratio:.4g} (atom {1.0 - 1.0 / ratio:.4g}) but "
                f"the zero fraction {f_obs:.4g} implies {atom_ratio:.4g}: shape and zeros "
                "contradict each other"
            )
    if method == "ks" and np.all(np.isfinite(ci)):
        if not ci[0] <= ratio <= ci[1]:
            reasons.append(
                f"the bootstrap interval [{ci[0]:.4g}, {ci[1]:.4g}] excludes the estimate "
                f"{ratio:.4g} (the estimator sits at a boundary or is dominated by its bias)"
            )
    if math.isfinite(bse) and bse > ratio:
        reasons.append(
            f"the bootstrap standard error {bse:.3g} exceeds the estimate {ratio:.4g}"
        )
    return "; ".join(reasons)


# ============================================================================= results
@dataclass(repr=False)
class MarchenkoPasturFit(FitResultMixin, Result):
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
        ratio > 1 (docs/theory.md 4.5 step 8); NaN when there are no zeros.
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
        Empirical third moment over the fitted law's, taken in the measure
        whose moments the fit matched (:attr:`third_moment_frame`): for a
        moments fit with a fitted ratio, the kept values *with their zeros*
        against the full law (atom included), since that fit matched m1 and m2
        there; otherwise (KS, a given or atom-fixed ratio) the nonzero bulk
        against the law's nonzero part. About 1 for an MP bulk, above 1 for a
        heavier tail (2.1-2.5 for trained-network Gauss-Newton matrices,
        docs/theory.md section 5b).
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
    seed : int
        Bootstrap seed (drawn from fresh entropy and recorded when None was passed).
    settings : dict
        The options of :func:`fit_marchenko_pastur` that produced the fit.
    third_moment_frame : str
        The measure :attr:`third_moment_ratio` was taken in, in words.
    identified : bool
        False when a fitted ratio is not identified by the data (the KS fit on
        the fold gamma = 1 or on an atom branch the zeros contradict, or a
        bootstrap interval excluding the estimate); :attr:`identification`
        says why. A fit can converge numerically and still not identify its
        ratio.
    identification : str
        Empty when identified, else the reason.
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
    settings: dict = field(default_factory=dict)
    third_moment_frame: str = ""
    identified: bool = True
    identification: str = ""

    param_names = ("scale", "ratio")

    def _rescaled(self, c: float) -> MarchenkoPasturFit:
        """This fit for the spectrum multiplied by ``c`` (a power of two: exact)."""
        params, bse, boot = self.params.copy(), self.bse.copy(), self.bootstrap_params.copy()
        params[0] *= c
        bse[0] *= c
        if boot.size:
            boot[:, 0] *= c
        note = f"fitted on the values divided by 2**{round(math.log2(c))} (to stay in floating-point range)"
        return dataclasses.replace(
            self, params=params, bse=bse, bootstrap_params=boot, data=self.data * c,
            outliers=self.outliers * c, zero_threshold=self.zero_threshold * c,
            outlier_cut=self.outlier_cut * c,
            message=f"{self.message}; {note}" if self.message else note,
        )

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

    @property
    def distinct_outliers(self) -> np.ndarray:
        """The excluded values with repeats across SLQ probes merged, descending.

        For a quadrature density every probe reproduces a converged outlier as
        one of its nodes, so :attr:`outliers` lists it once per probe; here
        nodes within a relative ``1e-4`` of each other are one value (their
        mean). For an eigenvalue array this is :attr:`outliers` itself (true
        multiplicities are kept).
        """
        return _merge_repeats(self.outliers)[0] if self.weighted else self.outliers.copy()

    @property
    def distinct_outlier_counts(self) -> np.ndarray:
        """How many excluded nodes each of :attr:`distinct_outliers` merges (1s for an array)."""
        if not self.weighted:
            return np.ones(self.outliers.size, dtype=np.int64)
        return _merge_repeats(self.outliers)[1]

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
        return basic_interval(self.bootstrap_params, self._level(alpha), self.params)

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
        if not self.identified:
            notes.append(
                f"RATIO NOT IDENTIFIED: {self.identification}. Its value, standard error and "
                "interval are not estimates of a ratio; fix the ratio from the structure "
                "(ratio=...), pass atom=..., or use method='moments'."
            )
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
            distinct = (f" ({self.distinct_outliers.size} distinct nodes across the probes)"
                        if self.weighted else "")
            notes.append(
                f"{self.n_outliers} {unit}{distinct} above {self.outlier_cut:.6g} were excluded "
                "as outliers "
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
        elif self.third_moment_ratio < 1 / 1.5:
            notes.append(
                f"The bulk's third moment is {self.third_moment_ratio:.2f} x the MP value: the "
                "bulk is lighter-tailed than MP (more concentrated than an MP law of its mean "
                "and variance)."
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
        fitted = self.ratio_source == "fitted"
        rows = [
            ("method", f"{self.method}" + ("" if self.converged else "   (NOT CONVERGED)")),
            *self._estimate_rows({0: "scale sigma^2", 1: "ratio gamma"} if fitted
                                 else {0: "scale sigma^2"}, alpha),
        ]
        if not fitted:
            rows.append(("ratio gamma", f"{self.ratio:.6g} (fixed: {self.ratio_source})"))
        rows += [
            ("bulk edges", f"[{self.lower_edge:.6g}, {self.upper_edge:.6g}]"),
            ("counts", f"total {self.n_total}, bulk {self.n_bulk}, zero {self.n_zero}, "
                       f"negative {self.n_negative}, outliers {self.n_outliers}"),
            self._outlier_row(),
            ("atom-implied ratio", f"{self.atom_ratio:.6g}"),
            ("KS statistic | p-value",
             f"{self.ks_statistic:.4g} | {self.ks_pvalue:.3g} (optimistic)"),
            ("3rd moment / MP", f"{self.third_moment_ratio:.4g}"
                                + (f" ({self.third_moment_frame})" if self.third_moment_frame else "")),
            ("converged", str(self.converged)),
            ("ratio identified", "yes" if self.identified else "NO (see notes)"),
        ]
        return Summary("Marchenko-Pastur fit", rows, self._notes())

    def _outlier_row(self) -> tuple[str, str]:
        if not self.weighted:
            return ("outliers", fmt_values(self.outliers))
        vals, counts = self.distinct_outliers, self.distinct_outlier_counts
        shown = [f"{v:.4g}" + (f" (x{c})" if c > 1 else "") for v, c in zip(vals[:6], counts[:6])]
        more = f", ... ({vals.size} distinct)" if vals.size > 6 else ""
        return ("outlier nodes (distinct across probes)", (", ".join(shown) + more) or "-")

    def __repr__(self) -> str:
        flag = ("" if self.converged else ", converged=False") + (
            "" if self.identified else ", identified=False")
        return (
            f"MarchenkoPasturFit(method={self.method!r}, scale={self.scale:.6g}, "
            f"ratio={self.ratio:.6g}, n_bulk={self.n_bulk}, n_outliers={self.n_outliers}, "
            f"ks={self.ks_statistic:.3g}{flag})"
        )


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
    eigenvalues : array_like, Spectrum or SpectralDensity
        A 1-d array (or a :class:`~gn_theory.results.Spectrum`) of eigenvalues
        in any order (all of them, zeros and outliers included), or a spectral density with ``nodes`` and ``weights`` of one shape
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
        Bootstrap seed (None: fresh entropy, recorded in the result).
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
        its summary says why. Also when a fitted ratio is not identified (a
        KS fit on the fold gamma = 1 or on an atom branch the zero fraction
        contradicts, a KS bootstrap interval that excludes the estimate, a
        standard error above it; docs/theory.md 4.6): ``identified=False``
        and ``identification`` says why.

    Notes
    -----
    Robust recipe of docs/theory.md 4.5 step 8 (module docstring). The counts
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
    Marchenko & Pastur (1967); docs/theory.md section 4.

    Examples
    --------
    >>> from gn_theory.rmt import sample_covariance_eigenvalues
    >>> eigs = sample_covariance_eigenvalues(600, 1500, 2.3, spikes=[9.0, 4.0], seed=0)
    >>> fit = fit_marchenko_pastur(eigs)
    >>> round(fit.scale, 1), round(fit.ratio, 1), fit.n_outliers
    (2.3, 0.4, 2)
    >>> fit.conf_int().shape
    (2, 2)
    """
    method = _check_method(method)
    rule, rule_value = _outlier_rule(exclude_outliers)
    ztol = check_fraction("zero_tol", zero_tol)
    if num_bootstrap is None:
        num_bootstrap = DEFAULT_BOOTSTRAP[method]
    num_bootstrap = check_nonneg_int("num_bootstrap", num_bootstrap)
    bootstrap = check_choice("bootstrap", bootstrap, BOOTSTRAP_KINDS)
    a = check_alpha(alpha)
    if maxiter is not None:
        maxiter = check_nonneg_int("maxiter", maxiter)
    if ratio is not None:
        ratio, _ = check_ratio_scale(ratio, 1.0)
    if atom is not None:
        atom = check_fraction("atom (a mass at zero)", atom)
    seed = check_seed(seed)
    settings = {
        "ratio": ratio, "method": method,
        "exclude_outliers": {"auto": "auto", "none": False}.get(rule, rule_value),
        "zero_tol": ztol, "atom": atom, "num_bootstrap": num_bootstrap, "bootstrap": bootstrap,
        "alpha": a, "seed": seed, "maxiter": maxiter,
    }

    m = spectral_measure(eigenvalues, name="eigenvalues")
    x, w = m.values, m.weights
    xmax = float(np.max(np.abs(x)))
    if xmax == 0.0:
        raise InvalidInputError("every eigenvalue is zero: there is no bulk to fit")
    if not _SAFE_RANGE[0] <= xmax <= _SAFE_RANGE[1]:
        # third moments of values near 1e103 overflow and those near 1e-110 underflow: fit on the
        # values divided by a power of two (exact in floating point) and scale the result back
        c = 2.0 ** round(math.log2(xmax))
        fit = fit_marchenko_pastur(
            SpectralMeasure(x / c, w, m.num_params, m.weighted), ratio=ratio, method=method, exclude_outliers=exclude_outliers, zero_tol=ztol,
            atom=atom, num_bootstrap=num_bootstrap, bootstrap=bootstrap, alpha=a, seed=seed,
            maxiter=maxiter,
        )
        return fit._rescaled(c)
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
        return int(round(float(w[mask].sum()) * m.num_params)) if m.weighted else int(mask.sum())

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
        keep &= ~_top_mask(x, w, pos, rule_value, m.num_params)
    elif rule == "above":
        keep &= x <= rule_value
    if rule != "auto":
        est = fit_on(keep, method)
    else:
        # moments rounds until stable (docs/theory.md 4.5 step 8), then KS rounds from there
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
    third, moment_frame = _third_moment_ratio(xb, wb, zero_mass, scale_, ratio_,
                                              full=method == "moments" and ratio_source == "fitted")

    # -- bootstrap ------------------------------------------------------------------------
    if bootstrap == "wishart" and num_bootstrap:
        check_wishart_size(count(keep) + count(zero))

    def refit(values: np.ndarray, masses: np.ndarray, zero_mass: float) -> tuple[float, float]:
        e = _estimate(method, values, masses, zero_mass, ratio, maxiter, _BOOT_XATOL)
        return e.scale, e.ratio

    reps = bootstrap_replicates(
        bootstrap, est.scale, est.ratio, n_bulk=count(keep), n_zero=count(zero),
        zeros_from_atom=ratio is None, num=num_bootstrap, rng=np.random.default_rng(seed),
        refit=refit,
    )
    bse = reps.std(axis=0, ddof=1) if num_bootstrap >= 2 else np.full(2, np.nan)
    if ratio is not None and num_bootstrap >= 2:
        bse[1] = 0.0  # fixed, not estimated (the std of equal numbers can round to 1e-17)

    f0 = zero_mass
    converged = not messages
    message = " ".join(messages)
    if not converged:
        warnings.warn(f"Marchenko-Pastur fit: {message}", ConvergenceWarning, stacklevel=2)
    m1_nz = float(wb @ xb) / float(wb.sum())
    rel_var = float(wb @ xb**2) / float(wb.sum()) / m1_nz**2 - 1.0
    f_kept = zero_mass / (zero_mass + float(wb.sum()))
    params = np.array([scale_, ratio_])
    ci_ratio = basic_interval(reps, a, params)[1] if num_bootstrap >= 2 else np.full(2, np.nan)
    why = _identification(method, ratio_source, ratio_, f_kept, rel_var, ci_ratio, float(bse[1]))
    if why:
        warnings.warn(f"Marchenko-Pastur fit: the ratio is not identified: {why}",
                      ConvergenceWarning, stacklevel=2)
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
        n_total=int(m.num_params),
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
        seed=seed,
        settings=settings,
        third_moment_frame=moment_frame,
        identified=not why,
        identification=why,
    )
