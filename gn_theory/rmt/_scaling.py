r"""Scaling laws by ordinary least squares (statsmodels), with honest uncertainty.

The papers' scaling questions are regressions of one measured quantity on
another: outlier size against data spread (Sagun et al. 2016, Fig. 7), bulk
width against the number of parameters (Sagun et al. 2017), outlier count
against the number of classes (Sagun et al. 2017; Papyan 2019). A power law
:math:`y = a x^b` is a straight line in log-log coordinates,

.. math:: \log y = \log a + b \log x + \varepsilon ,

so :func:`scaling_fit` fits that line by OLS (``statsmodels.api.OLS``) and
reports the exponent :math:`b`, the intercept :math:`\log a`, their standard
errors and t-based confidence intervals, :math:`R^2` and the number of points.
Semi-log (``log="x"``: :math:`y = a + b\log x`; ``log="y"``:
:math:`y = a e^{bx}`) and linear (``log=False``: :math:`y = a + bx`) fits use
the same machinery. Logarithms are natural.

Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from .._checks import check_alpha, check_choice, check_real_array
from ..exceptions import InvalidInputError
from ..results import Result, Summary
from ._common import FitResultMixin

#: Covariance estimators of statsmodels' ``OLS.fit`` that need no extra keywords.
COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3")

__all__ = ["scaling_fit", "ScalingFit"]

LogAxes = Literal["both", "x", "y", "none"]

_FORMULAS = {
    "both": "log y = log a + b log x   (y = a x^b)",
    "x": "y = a + b log x",
    "y": "log y = log a + b x   (y = a exp(b x))",
    "none": "y = a + b x",
}


def _normalise_log(log: Any) -> str:
    if log is True or log == "both" or log == "xy":
        return "both"
    if log is False or log is None or log == "none":
        return "none"
    if log in ("x", "y"):
        return str(log)
    raise InvalidInputError(
        f"log must be True (log-log), 'x', 'y' or False (linear); got {log!r}"
    )


def _transform(name: str, v: np.ndarray, on_log: bool) -> np.ndarray:
    if not on_log:
        return v
    bad = np.flatnonzero(v <= 0)
    if bad.size:
        raise InvalidInputError(
            f"{name} must be > 0 on a log axis; {bad.size} value(s) are <= 0 at positions "
            f"{bad[:10].tolist()} (e.g. {v[bad[0]]!r}); use log=False or log='x'/'y' for "
            f"the other axis only, or drop those points"
        )
    return np.log(v)


def _ols(x_t: np.ndarray, y_t: np.ndarray, cov_type: str) -> Any:
    import statsmodels.api as sm  # deferred: a heavy import, needed only when fitting

    X = sm.add_constant(x_t, has_constant="add")
    return sm.OLS(y_t, X).fit(cov_type=cov_type)


@dataclass(repr=False)
class ScalingFit(FitResultMixin, Result):
    r"""A fitted scaling law :math:`y = a x^b` (or a semi-log or linear line), statsmodels style.

    Built by :func:`scaling_fit`. The line is fitted on the transformed axes
    (natural logs where ``log`` says so): ``t(y) = intercept + slope * t(x)``.

    Attributes
    ----------
    x, y : numpy.ndarray
        The data, untransformed.
    log : str
        ``"both"`` (log-log), ``"x"``, ``"y"`` or ``"none"`` (linear).
    params : numpy.ndarray
        ``[intercept, slope]`` on the transformed axes.
    bse : numpy.ndarray
        Their standard errors.
    cov_params : numpy.ndarray
        Their (2, 2) covariance matrix.
    alpha : float
        Default significance level of :meth:`conf_int` (``1 - alpha`` coverage).
    rsquared, rsquared_adj : float
        :math:`R^2` and adjusted :math:`R^2` on the transformed axes.
    nobs : int
        Number of points.
    df_resid : float
        Residual degrees of freedom, ``nobs - 2``.
    pvalues : numpy.ndarray
        Two-sided p-values of ``intercept = 0`` and ``slope = 0``.
    resid_std : float
        Standard deviation of the residuals on the transformed axes
        (:math:`\sqrt{\mathrm{SSR}/(n-2)}`).
    cov_type : str
        statsmodels covariance type (``"nonrobust"`` or e.g. ``"HC3"``).
    x_name, y_name : str
        Labels used by :meth:`summary`.
    settings : dict
        The options of :func:`scaling_fit` (``log``, ``alpha``, ``cov_type``);
        free to extend.

    Notes
    -----
    The statsmodels results object is :attr:`results`; it is not saved, and
    after :meth:`load` it is rebuilt on first access by refitting the saved
    data (the same numbers). Confidence intervals use the t distribution with
    ``df_resid`` degrees of freedom, so :meth:`conf_int` works after loading
    for any ``alpha``.
    """

    x: np.ndarray
    y: np.ndarray
    log: str
    params: np.ndarray
    bse: np.ndarray
    cov_params: np.ndarray
    alpha: float
    rsquared: float
    rsquared_adj: float
    nobs: int
    df_resid: float
    pvalues: np.ndarray
    resid_std: float
    cov_type: str = "nonrobust"
    x_name: str = "x"
    y_name: str = "y"
    settings: dict = field(default_factory=dict)

    # not a dataclass field (no annotation): never saved
    _results = None

    param_names = ("intercept", "slope")

    # -- parameters -----------------------------------------------------------------
    @property
    def intercept(self) -> float:
        """Intercept on the transformed axes (``log a`` for ``log="both"``/``"y"``)."""
        return float(self.params[0])

    @property
    def slope(self) -> float:
        """Slope on the transformed axes."""
        return float(self.params[1])

    @property
    def exponent(self) -> float:
        """The exponent b of ``y = a x^b`` (the slope; log-log fits)."""
        return self.slope

    @property
    def exponent_se(self) -> float:
        """Standard error of the slope (the exponent in a log-log fit)."""
        return float(self.bse[1])

    @property
    def intercept_se(self) -> float:
        """Standard error of the intercept."""
        return float(self.bse[0])

    @property
    def prefactor(self) -> float:
        """The a of the law: ``exp(intercept)`` when y is on a log axis, else the intercept."""
        return math.exp(self.intercept) if self.log in ("both", "y") else self.intercept

    def _quantile(self, alpha: float) -> float:
        """t quantile (normal for robust covariances, as statsmodels does)."""
        if self.cov_type == "nonrobust":
            return float(stats.t.ppf(1.0 - alpha / 2.0, self.df_resid))
        return float(stats.norm.ppf(1.0 - alpha / 2.0))

    def conf_int(self, alpha: float | None = None) -> np.ndarray:
        """Confidence intervals of ``[intercept, slope]``: ``params -+ t_{1-alpha/2, df} * bse``.

        Parameters
        ----------
        alpha : float, optional
            Default :attr:`alpha`.

        Returns
        -------
        numpy.ndarray
            Shape (2, 2): rows intercept, slope; columns lower, upper.

        Raises
        ------
        InvalidInputError
            ``alpha`` outside (0, 1).
        """
        a = self._level(alpha)
        q = self._quantile(a)
        p, b = np.asarray(self.params, float), np.asarray(self.bse, float)
        return np.column_stack([p - q * b, p + q * b])

    def exponent_conf_int(self, alpha: float | None = None) -> tuple[float, float]:
        """Confidence interval of the slope (the exponent in a log-log fit).

        Parameters
        ----------
        alpha : float, optional
            Default :attr:`alpha`.

        Returns
        -------
        (float, float)
        """
        lo, hi = self.conf_int(alpha)[1]
        return float(lo), float(hi)

    # -- statsmodels object -------------------------------------------------------------
    @property
    def results(self) -> Any:
        """The statsmodels ``RegressionResults`` (refitted from the data after :meth:`load`)."""
        if self._results is None:
            lx, ly = self.log in ("both", "x"), self.log in ("both", "y")
            self._results = _ols(
                _transform("x", self.x, lx), _transform("y", self.y, ly), self.cov_type
            )
        return self._results

    # -- prediction ---------------------------------------------------------------------
    def predict(
        self, x: Any, *, interval: bool = False, alpha: float | None = None
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fitted law at ``x``, in the units of y.

        Parameters
        ----------
        x : array_like
            Where to evaluate (must be > 0 if x is on a log axis).
        interval : bool, default False
            Also return the ``1 - alpha`` confidence band of the fitted line
            (the mean of ``t(y)``, not a prediction interval for a new point),
            mapped back to y units.
        alpha : float, optional
            Default :attr:`alpha`.

        Returns
        -------
        numpy.ndarray or (numpy.ndarray, numpy.ndarray, numpy.ndarray)
            The prediction, and with ``interval=True`` the lower and upper
            band. For a log y axis the prediction is ``exp`` of the fitted
            log, i.e. the median of y under log-normal errors.

        Raises
        ------
        InvalidInputError
            Non-finite ``x``, or non-positive ``x`` on a log axis.
        """
        scalar = np.ndim(x) == 0
        xv = check_real_array(x, "x", scalar=True)
        xt = _transform("x", xv, self.log in ("both", "x"))
        X = np.column_stack([np.ones_like(xt), xt])
        mean = X @ np.asarray(self.params, float)
        back = np.exp if self.log in ("both", "y") else (lambda v: v)
        pred = back(mean)
        if not interval:
            return pred[0] if scalar else pred
        a = self._level(alpha)
        se = np.sqrt(np.einsum("ij,jk,ik->i", X, np.asarray(self.cov_params, float), X))
        q = self._quantile(a)
        lo, hi = back(mean - q * se), back(mean + q * se)
        if scalar:
            return pred[0], lo[0], hi[0]
        return pred, lo, hi

    # -- reporting ----------------------------------------------------------------------
    def summary(self, alpha: float | None = None) -> Summary:
        """A text/HTML table of the fit with numbered notes.

        Parameters
        ----------
        alpha : float, optional
            Level of the intervals shown (default :attr:`alpha`).

        Returns
        -------
        Summary
        """
        slope_name = "exponent b" if self.log == "both" else "slope b"
        icpt_name = "intercept log a" if self.log in ("both", "y") else "intercept a"
        rows = [
            ("model", _FORMULAS[self.log]),
            ("x | y", f"{self.x_name} | {self.y_name}"),
            ("points", str(self.nobs)),
            *self._estimate_rows({1: slope_name, 0: icpt_name}, alpha),
        ]
        if self.log in ("both", "y"):
            rows.append(("prefactor a", f"{self.prefactor:.6g}"))
        rows += [
            ("R^2 | adj. R^2", f"{self.rsquared:.4f} | {self.rsquared_adj:.4f}"),
            ("p-value (slope = 0)", f"{self.pvalues[1]:.3g}"),
            ("residual std", f"{self.resid_std:.4g}" + (" (log units)" if self.log in (
                "both", "y") else "")),
        ]
        notes = [
            f"OLS (statsmodels) on {'natural-log ' if self.log != 'none' else ''}axes; "
            + (
                f"intervals are t-based with {self.df_resid:g} residual degrees of freedom and "
                "assume independent, homoscedastic, normal residuals on the fitted scale."
                if self.cov_type == "nonrobust"
                else f"standard errors from the {self.cov_type} covariance, intervals from "
                "normal quantiles (asymptotic; optimistic with few points)."
            ),
        ]
        if self.log in ("both", "y"):
            notes.append(
                "The back-transformed prefactor exp(intercept) is the median of y at given x "
                "under log-normal errors, not its mean."
            )
        if math.isnan(self.rsquared):
            notes.append(
                "y is constant: there is no variation to explain, so R^2 is undefined (nan); "
                "the fitted slope is 0 up to round-off."
            )
        if self.nobs < 6:
            notes.append(
                f"Only {self.nobs} points: the standard errors rest on {self.df_resid:g} degrees "
                "of freedom and the intervals are wide; a curved trend cannot be told from a "
                "straight one."
            )
        return Summary(f"Scaling fit: {self.y_name} vs {self.x_name}", rows, notes)

    def __repr__(self) -> str:
        lo, hi = self.exponent_conf_int()
        return (
            f"ScalingFit(log={self.log!r}, slope={self.slope:.4g} "
            f"[{lo:.4g}, {hi:.4g}], intercept={self.intercept:.4g}, "
            f"R^2={self.rsquared:.4f}, n={self.nobs})"
        )


def scaling_fit(
    x: Any,
    y: Any,
    *,
    log: bool | Literal["x", "y", "both", "none"] = True,
    alpha: float = 0.05,
    cov_type: str = "nonrobust",
    x_name: str = "x",
    y_name: str = "y",
) -> ScalingFit:
    r"""Fit a scaling law ``y = a x^b`` (log-log OLS), a semi-log or a linear law.

    Parameters
    ----------
    x, y : array_like
        Paired measurements, 1-d, same length, at least 3 points, finite.
    log : {True, "x", "y", False}, default True
        Which axes are log-transformed (natural log) before the OLS fit:
        ``True`` (or ``"both"``): :math:`\log y = \log a + b \log x`, the power
        law :math:`y = a x^b`; ``"x"``: :math:`y = a + b \log x`; ``"y"``:
        :math:`\log y = \log a + b x`, :math:`y = a e^{bx}`; ``False`` (or
        ``"none"``): :math:`y = a + b x`.
    alpha : float, default 0.05
        Default level of the confidence intervals (``1 - alpha`` coverage).
    cov_type : {"nonrobust", "HC0", "HC1", "HC2", "HC3"}, default "nonrobust"
        Passed to statsmodels ``OLS.fit`` (e.g. ``"HC3"`` for
        heteroscedasticity-robust standard errors, which then use normal
        quantiles).
    x_name, y_name : str
        Labels for the summary (e.g. ``"data std"``, ``"top eigenvalue"``).

    Returns
    -------
    ScalingFit
        Exponent/slope and intercept with standard errors, confidence
        intervals, :math:`R^2`, ``nobs``; the statsmodels results as
        ``.results``.

    Raises
    ------
    InvalidInputError
        Mismatched lengths, fewer than 3 points, NaN or inf, non-positive
        values on a log axis, x constant (no slope to fit), an unknown ``log``
        or ``alpha`` outside (0, 1).

    Notes
    -----
    Typical uses: outlier size against data spread (Sagun, Bottou & LeCun
    2016, Fig. 7: top eigenvalues grow as blobs merge), bulk width against
    parameter count, outlier count against the number of classes
    (``log=False``: the count should track C or C - 1). With two parameters
    and n points the residual degrees of freedom are n - 2; three points are
    the minimum for any standard error at all.

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.rmt import scaling_fit
    >>> x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    >>> y = 3.0 * x**1.5 * np.exp([0.01, -0.02, 0.0, 0.02, -0.01])
    >>> fit = scaling_fit(x, y)
    >>> round(fit.exponent, 2), round(fit.prefactor, 1)
    (1.5, 3.0)
    >>> lo, hi = fit.exponent_conf_int()
    >>> bool(lo < 1.5 < hi)
    True
    """
    mode = _normalise_log(log)
    a = check_alpha(alpha)
    cov_type = check_choice("cov_type", cov_type, COV_TYPES)
    xv, yv = check_real_array(x, "x"), check_real_array(y, "y")
    if xv.size != yv.size:
        raise InvalidInputError(
            f"x and y must have the same length; got {xv.size} and {yv.size}"
        )
    if xv.size < 3:
        raise InvalidInputError(
            f"a scaling fit needs at least 3 points (2 parameters plus one degree of freedom "
            f"for the standard errors); got {xv.size}"
        )
    xt = _transform("x", xv, mode in ("both", "x"))
    yt = _transform("y", yv, mode in ("both", "y"))
    if np.ptp(xt) <= 1e-12 * max(1.0, float(np.max(np.abs(xt)))):
        raise InvalidInputError(
            f"x is constant ({xv[0]!r} everywhere): the slope is not identifiable"
        )
    res = _ols(xt, yt, cov_type)
    # a constant y leaves nothing to explain: R^2 = 1 - SSR/TSS is 0/0, not statsmodels' -inf
    constant_y = np.ptp(yt) <= 1e-12 * max(1.0, float(np.max(np.abs(yt))))
    fit = ScalingFit(
        x=xv.copy(),
        y=yv.copy(),
        log=mode,
        params=np.asarray(res.params, float),
        bse=np.asarray(res.bse, float),
        cov_params=np.asarray(res.cov_params(), float),
        alpha=a,
        rsquared=math.nan if constant_y else float(res.rsquared),
        rsquared_adj=math.nan if constant_y else float(res.rsquared_adj),
        nobs=int(res.nobs),
        df_resid=float(res.df_resid),
        pvalues=np.asarray(res.pvalues, float),
        resid_std=float(np.sqrt(res.scale)),
        cov_type=str(cov_type),
        x_name=str(x_name),
        y_name=str(y_name),
        settings={"log": mode, "alpha": a, "cov_type": str(cov_type)},
    )
    fit._results = res
    return fit
