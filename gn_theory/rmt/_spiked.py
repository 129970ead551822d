r"""A spiked random-matrix model fitted to a spectrum: a Marchenko-Pastur bulk plus BBP outliers.

:func:`fit_spiked_model` fits the bulk with
:func:`~gn_theory.rmt.fit_marchenko_pastur` (outliers excluded; it takes that
function's options as one keyword set, :class:`~gn_theory.rmt.MarchenkoPasturOptions`),
takes the eigenvalues above it as outliers and inverts the BBP formulas
(:func:`~gn_theory.rmt.bbp_spike`) for the spike strengths, propagating the
bulk's bootstrap replicates to their standard errors and intervals. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._checks import check_nonneg_int
from ..exceptions import InvalidInputError
from ..results import Result, Summary
from ._bbp import bbp_outlier, bbp_overlap, bbp_spike, bbp_threshold
from ._bootstrap import basic_interval
from ._common import EDGE_FACTOR, MP_MODELS, FitResultMixin, MPModel
from ._fit import MarchenkoPasturFit, fit_marchenko_pastur

if TYPE_CHECKING:  # annotations only
    from typing import Unpack

    from ._fit import MarchenkoPasturOptions

__all__ = ["fit_spiked_model", "SpikedModelFit"]


@dataclass(repr=False)
class SpikedModelFit(FitResultMixin, Result):
    r"""A spiked random-matrix model fitted to a spectrum: MP bulk plus BBP outliers.

    Built by :func:`fit_spiked_model`. The estimates are the bulk's
    ``[scale, ratio]`` followed by one spike strength per outlier
    (:attr:`params`, :attr:`param_names`, :attr:`bse`, :meth:`conf_int`).

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
    bootstrap_spikes : numpy.ndarray
        Shape (num_bootstrap, len(outliers)): the spikes implied by each bulk
        bootstrap replicate (NaN where flagged).
    settings : dict
        ``num_outliers``, ``model`` and the options passed to the bulk fit.
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
    bootstrap_spikes: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    settings: dict = field(default_factory=dict)

    # -- estimates ------------------------------------------------------------------
    @property
    def alpha(self) -> float:  # type: ignore[override]
        """Default level of :meth:`conf_int` (the bulk fit's)."""
        return self.bulk.alpha

    @property
    def params(self) -> np.ndarray:  # type: ignore[override]
        """``[scale, ratio, theta_1, ..., theta_k]``: the bulk, then one spike per outlier."""
        return np.concatenate([self.bulk.params, self.spikes])

    @property
    def param_names(self) -> tuple[str, ...]:
        """``("scale", "ratio", "theta_1", ...)``."""
        return (*self.bulk.param_names, *(f"theta_{j}" for j in range(1, self.spikes.size + 1)))

    @property
    def bse(self) -> np.ndarray:  # type: ignore[override]
        """Standard errors of :attr:`params` (the spikes' carry the bulk's uncertainty only)."""
        return np.concatenate([self.bulk.bse, self.spikes_bse])

    def conf_int(self, alpha: float | None = None) -> np.ndarray:
        """Basic bootstrap intervals of :attr:`params`.

        Parameters
        ----------
        alpha : float, optional
            ``1 - alpha`` coverage; default :attr:`alpha`.

        Returns
        -------
        numpy.ndarray
            Shape (2 + len(outliers), 2): the bulk's intervals
            (:meth:`MarchenkoPasturFit.conf_int`), then the spikes' from
            :attr:`bootstrap_spikes` (NaN where flagged or without bootstrap).

        Raises
        ------
        InvalidInputError
            ``alpha`` outside (0, 1).
        """
        a = self._level(alpha)
        spikes = basic_interval(self.bootstrap_spikes, a, self.spikes)
        return np.vstack([self.bulk.conf_int(a), spikes])

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
            Level of the intervals (default the bulk's).

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
    num_outliers: Literal["auto"] | int = "auto",
    model: MPModel = "multiplicative",
    **options: Unpack[MarchenkoPasturOptions],
) -> SpikedModelFit:
    r"""Fit an MP bulk with BBP outliers and infer the spike strengths.

    The bulk is fitted by :func:`~gn_theory.rmt.fit_marchenko_pastur`
    (outliers excluded); each outlier is inverted with
    :func:`~gn_theory.rmt.bbp_spike` at the fitted ``(ratio, scale)``, and
    :func:`~gn_theory.rmt.bbp_overlap` gives the predicted eigenvector overlap.

    Parameters
    ----------
    eigenvalues : array_like, Spectrum or SpectralDensity
        The whole spectrum, as for :func:`~gn_theory.rmt.fit_marchenko_pastur`.
    num_outliers : "auto" or int, default "auto"
        ``"auto"``: the eigenvalues above ``1.05 x`` the fitted upper edge
        (iterated); an int ``k``: the top ``k`` (those not above
        ``1.05 x`` the edge are flagged, not inverted).
    model : {"multiplicative", "additive", "information_plus_noise"}
        The spiked model (its spike parametrisation: :func:`~gn_theory.rmt.bbp_outlier`).
        The Wigner model has no MP bulk and is not accepted.
    **options
        The options of :func:`~gn_theory.rmt.fit_marchenko_pastur`
        (:class:`~gn_theory.rmt.MarchenkoPasturOptions`: ``ratio``, ``method``,
        ``zero_tol``, ``atom``, ``num_bootstrap``, ``bootstrap``, ``alpha``,
        ``seed``, ``maxiter``), with its defaults; ``exclude_outliers`` is set
        by ``num_outliers``. For information-plus-noise, ``ratio`` is ``c = n / m``.

    Returns
    -------
    SpikedModelFit

    Raises
    ------
    InvalidInputError
        Unknown or Wigner ``model``, bad ``num_outliers``, ``exclude_outliers``
        among the options, or anything :func:`~gn_theory.rmt.fit_marchenko_pastur`
        rejects.
    TypeError
        An option :func:`~gn_theory.rmt.fit_marchenko_pastur` does not have.

    Warns
    -----
    ConvergenceWarning
        From the bulk fit.

    Examples
    --------
    >>> from gn_theory.rmt import sample_covariance_eigenvalues
    >>> eigs = sample_covariance_eigenvalues(600, 1500, 2.3, spikes=[9.0, 4.0, 0.3], seed=0)
    >>> fit = fit_spiked_model(eigs)
    >>> fit.spikes.round(0), fit.above_threshold
    (array([9., 4.]), array([ True,  True]))
    >>> bool(abs(fit.predict()[0] / fit.outliers[0] - 1) < 1e-9)
    True
    """
    if model not in MP_MODELS:
        raise InvalidInputError(
            f"model must be one of {', '.join(repr(m) for m in MP_MODELS)} (a bulk that is "
            f"Marchenko-Pastur; 'wigner' has a semicircle bulk); got {model!r}"
        )
    if num_outliers == "auto":
        exclude: Any = "auto"
    elif isinstance(num_outliers, (int, np.integer)) and not isinstance(num_outliers, bool):
        exclude = check_nonneg_int("num_outliers", num_outliers)
    else:
        raise InvalidInputError(f"num_outliers must be 'auto' or an int >= 0; got {num_outliers!r}")
    if "exclude_outliers" in options:
        raise InvalidInputError(
            "fit_spiked_model sets exclude_outliers from num_outliers ('auto' or the top k); "
            "pass num_outliers instead"
        )
    bulk = fit_marchenko_pastur(eigenvalues, exclude_outliers=exclude, **options)
    g, s = bulk.ratio, bulk.scale
    sep = EDGE_FACTOR * bulk.upper_edge
    out = np.asarray(bulk.outliers, dtype=float)
    above = out > sep
    theta = np.full(out.shape, np.nan)
    overlap = np.full(out.shape, np.nan)
    theta_se = np.full(out.shape, np.nan)
    reps = np.asarray(bulk.bootstrap_params).reshape(-1, 2)
    theta_b = np.full((reps.shape[0], out.size), np.nan)
    if above.any():
        theta[above] = bbp_spike(out[above], g, s, model=model)
        overlap[above] = bbp_overlap(theta[above], g, s, model=model)
        if reps.shape[0]:
            theta_b[:, above] = [bbp_spike(out[above], rg, rs, model=model, below="threshold")
                                 for rs, rg in reps]
        if reps.shape[0] >= 2:
            theta_se[above] = theta_b[:, above].std(axis=0, ddof=1)
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
        bootstrap_spikes=theta_b,
        settings={"num_outliers": num_outliers if num_outliers == "auto" else exclude,
                  "model": str(model), **bulk.settings},
    )
