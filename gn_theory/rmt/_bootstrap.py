"""The parametric bootstrap of the Marchenko-Pastur fits: replicates and basic intervals.

Replicates are drawn from the fitted law MP(ratio, scale) in one of two ways:

* ``"iid"``: independent draws from the continuous part by inverse CDF (a
  tabulated quantile function), zeros in the proportion of the fitted atom;
  fast, and conservative for a true random matrix (iid draws ignore eigenvalue
  repulsion);
* ``"wishart"``: the eigenvalues of a simulated sample covariance matrix of the
  fitted ratio (finite-matrix fluctuations; one eigendecomposition per
  replicate, refused above :data:`MAX_WISHART` rows).

Each replicate is refitted by the caller's estimator (``refit``), so the same
machinery serves every fitting method. Intervals are basic (reverse-percentile)
bootstrap intervals. Torch-free.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np

from ..exceptions import InvalidInputError
from ._common import MIN_BULK
from ._mp import standard_ppf
from ._simulate import sample_covariance_eigenvalues

__all__: list[str] = []

BootstrapKind = Literal["iid", "wishart"]
BOOTSTRAP_KINDS: tuple[str, ...] = ("iid", "wishart")
#: Largest matrix dimension the Wishart bootstrap simulates.
MAX_WISHART = 4000

#: ``refit(values, masses, zero_mass) -> (scale, ratio)``: the estimator run on each replicate.
Refit = Callable[[np.ndarray, np.ndarray, float], tuple[float, float]]


def quantile_table(ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Quantile function of the renormalised continuous part of MP(ratio, 1), tabulated.

    The table is exact (:func:`~gn_theory.rmt._mp.standard_ppf`) at 4097 Chebyshev
    points, dense at both edges where the quantile function has infinite slope;
    linear interpolation between them is accurate to far below the sampling noise.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Probabilities and quantiles, both ascending.
    """
    q = 0.5 * (1.0 - np.cos(np.linspace(0.0, np.pi, 4097)))
    return q, standard_ppf(q, np.full_like(q, ratio))


def check_wishart_size(size: int) -> None:
    """Refuse a Wishart bootstrap of ``size`` x ``size`` matrices above :data:`MAX_WISHART`."""
    if size > MAX_WISHART:
        raise InvalidInputError(
            f"bootstrap='wishart' simulates {size} x {size} covariance matrices per replicate; "
            f"above {MAX_WISHART} that is too slow: use bootstrap='iid' (conservative) or "
            "num_bootstrap=0"
        )


def bootstrap_replicates(
    kind: str,
    scale: float,
    ratio: float,
    *,
    n_bulk: int,
    n_zero: int,
    zeros_from_atom: bool,
    num: int,
    rng: np.random.Generator,
    refit: Refit,
) -> np.ndarray:
    """Refitted ``[scale, ratio]`` of ``num`` samples drawn from MP(ratio, scale).

    Parameters
    ----------
    kind : {"iid", "wishart"}
        How a replicate is drawn (module docstring).
    scale, ratio : float
        The fitted law.
    n_bulk, n_zero : int
        Nonzero values and zeros of the fitted data; a replicate has ``n_bulk +
        n_zero`` values.
    zeros_from_atom : bool
        For ``"iid"``: take the number of zeros from the fitted atom
        ``(1 - 1/ratio)_+`` instead of ``n_zero`` (when the ratio is fitted).
        Holding the observed zero count is inconsistent when the fitted atom
        differs from it: the nonzero part of MP(g, s) is that of MP(1/g, g s),
        so zero-free replicates of a law with g > 1 refit to 1/g.
    num : int
        Replicates.
    rng : numpy.random.Generator
        Randomness.
    refit : callable
        ``refit(values, masses, zero_mass) -> (scale, ratio)`` on the nonzero
        values of a replicate, their masses (fractions of the replicate) and the
        mass of its zeros.

    Returns
    -------
    numpy.ndarray
        Shape (num, 2).
    """
    out = np.empty((num, 2))
    if num == 0:
        return out
    total = n_bulk + n_zero
    if kind == "iid":
        if zeros_from_atom:
            n_zero = int(round(max(0.0, 1.0 - 1.0 / ratio) * total))
            n_bulk = total - n_zero
        n_bulk = max(n_bulk, MIN_BULK)
        q, tab = quantile_table(ratio)
        draws = np.interp(rng.uniform(size=(num, n_bulk)), q, tab) * scale
        wb = np.full(n_bulk, 1.0 / (n_bulk + n_zero))
        zero_mass = n_zero / (n_bulk + n_zero)
        for b in range(num):
            out[b] = refit(draws[b], wb, zero_mass)
        return out
    p = max(total, MIN_BULK)
    n = max(1, round(p / ratio))
    for b in range(num):
        ev = sample_covariance_eigenvalues(p, n, scale, seed=rng)
        nz = ev > 1e-9 * ev.max()
        wb = np.full(int(nz.sum()), 1.0 / p)
        out[b] = refit(ev[nz], wb, 1.0 - wb.sum())
    return out


def basic_interval(reps: np.ndarray, alpha: float, params: np.ndarray) -> np.ndarray:
    """Basic (reverse-percentile) bootstrap interval ``[2 p - q_hi, 2 p - q_lo]``, floored at 0.

    Unlike the plain percentile interval it does not double the estimator's
    bias (the moments ratio is biased by about ``+1/n`` at finite size).

    Parameters
    ----------
    reps : numpy.ndarray
        Shape (num, k): replicates of the k parameters.
    alpha : float
        ``1 - alpha`` coverage.
    params : numpy.ndarray
        Shape (k,): the estimates.

    Returns
    -------
    numpy.ndarray
        Shape (k, 2): lower, upper; NaN with fewer than 2 replicates.
    """
    params = np.asarray(params, dtype=float).reshape(-1)
    reps = np.asarray(reps, dtype=float).reshape(-1, params.size)
    if reps.shape[0] < 2:
        return np.full((params.size, 2), np.nan)
    lo, hi = np.quantile(reps, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
    return np.clip(np.column_stack([2.0 * params - hi, 2.0 * params - lo]), 0.0, None)
