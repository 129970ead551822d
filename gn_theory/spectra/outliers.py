"""Outliers of a spectrum: the largest gap in log spacing, or beyond a bulk edge."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from .. import _checks
from ..exceptions import InvalidInputError
from ..results.spectra import Outliers, spectral_measure

__all__ = ["outliers"]


def _rank_medians(density: Any, sign: float) -> np.ndarray:
    """Per-rank medians over probes of the Ritz values, outermost on ``sign``'s side first.

    Only nodes of positive weight count: a probe whose recurrence stopped early
    is padded with weight-0 copies of a node, which are not Ritz values. Ranks
    are kept as far as every probe has one.
    """
    nodes = np.atleast_2d(np.asarray(density.nodes, dtype=float))
    weights = np.atleast_2d(np.asarray(density.weights, dtype=float))
    rows = [np.sort(x[w > 0] * sign)[::-1] for x, w in zip(nodes, weights) if (w > 0).any()]
    n = min(r.size for r in rows)
    return np.median(np.stack([r[:n] for r in rows]), axis=0)


def outliers(
    spectrum: Any,
    *,
    method: Literal["gap", "edge"] = "gap",
    edge: float | None = None,
    max_outliers: int = 50,
    min_ratio: float = 2.0,
    side: Literal["positive", "negative"] = "positive",
) -> Outliers:
    r"""Separate outliers from the bulk.

    Rules (docs/theory.md 9):

    * ``"gap"`` -- sort the candidates on ``side`` by decreasing magnitude
      :math:`|\lambda_1|\ge|\lambda_2|\ge\dots` (the largest
      ``max_outliers + 1`` of them), take the largest ratio
      :math:`|\lambda_j|/|\lambda_{j+1}|` (the largest gap in log spacing);
      the count is that j, provided the ratio is at least ``min_ratio``,
      else 0. For C-class problems pass at least ``3C`` eigenvalues (top-k
      from :func:`lanczos` or all from :func:`eigh`) and look at both the
      count and ``count - 1`` (the C versus C-1 question).
    * ``"edge"`` -- every eigenvalue beyond a bulk edge (e.g. the
      Marchenko-Pastur :math:`\lambda_+` of a fit) is an outlier.

    For a :class:`~gn_theory.results.SpectralDensity` the candidates are the
    per-rank medians over probes of the Ritz values (the j-th largest node of
    every probe): outliers converge in every probe, bulk nodes do not agree.
    Nodes of weight 0 (the padding of a probe that stopped early) are not Ritz
    values and are ignored; ranks go as far as every probe has one.

    Parameters
    ----------
    spectrum : Spectrum, SpectralDensity, array_like or torch.Tensor
        Eigenvalues (any order) or an SLQ density.
    method : {"gap", "edge"}, default "gap"
    edge : float, optional
        Bulk edge (required for ``"edge"``), a finite real number on the same
        side (a negative number for ``side="negative"``).
    max_outliers : int, default 50
        Candidates examined by ``"gap"``: the largest ``max_outliers + 1``
        magnitudes. Deep in the bulk (near zero) consecutive ratios are
        large and meaningless, so the search must stay near the top; 50
        covers ``3C`` for up to 16 classes.
    min_ratio : float, default 2.0
        Smallest gap ratio that counts as a separation.
    side : {"positive", "negative"}, default "positive"
        Which end; negative outliers are found among the negative values.

    Returns
    -------
    Outliers
        ``values`` **descending** (largest first: on the negative side the
        outermost, most negative value is last); ``settings`` holds the options.

    Raises
    ------
    InvalidInputError
        Unknown method or side, ``"edge"`` without ``edge``, no candidates,
        ``min_ratio`` or ``edge`` not a finite real number (``True`` is not 1),
        ``min_ratio <= 1``, or input that is not spectrum-like (not 1-d,
        empty, NaN or inf, also at weight 0).

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import outliers
    >>> ev = np.r_[np.linspace(0.0, 1.0, 100), 9.0, 10.0, 12.0]
    >>> o = outliers(ev)
    >>> o.count, o.values.tolist()
    (3, [12.0, 10.0, 9.0])
    >>> outliers(ev, method="edge", edge=9.5).count
    2
    """
    _checks.check_choice("method", method, ("gap", "edge"))
    _checks.check_choice("side", side, ("positive", "negative"))
    min_ratio = _checks.check_real("min_ratio", min_ratio, low=1.0, low_open=True)
    max_outliers = _checks.check_positive_int("max_outliers", max_outliers)
    if edge is not None:
        edge = _checks.check_real("edge", edge)
    settings = {"max_outliers": max_outliers, "min_ratio": min_ratio, "edge": edge}
    sign = 1.0 if side == "positive" else -1.0
    measure = spectral_measure(spectrum, name="spectrum")  # validates any spectrum-like input
    if measure.weighted:
        cand = _rank_medians(spectrum, sign)
    else:
        cand = np.sort(measure.values * sign)[::-1]
    if method == "edge":
        if edge is None:
            raise InvalidInputError('method="edge" needs the bulk edge: pass edge=...')
        e = edge * sign
        vals = cand[cand > e]
        rest = cand[cand <= e]
        return Outliers(
            count=int(vals.size),
            values=np.sort(vals * sign)[::-1],
            threshold=edge,
            method="edge",
            side=side,
            gap_ratios=np.zeros(0),
            bulk_edge=float(rest[0] * sign) if rest.size else float("nan"),
            settings=settings,
        )
    pos = cand[cand > 0][: max_outliers + 1]
    if pos.size == 0:
        raise InvalidInputError(f"no {side} eigenvalues to separate outliers from")
    if pos.size == 1:
        return Outliers(
            count=0, values=np.zeros(0), threshold=float("nan"), method="gap", side=side,
            gap_ratios=np.zeros(0), bulk_edge=float(pos[0] * sign), settings=settings,
        )
    ratios = pos[:-1] / pos[1:]
    j = int(np.argmax(ratios))
    count = j + 1 if ratios[j] >= min_ratio else 0
    thr = float(math.sqrt(pos[j] * pos[j + 1]) * sign) if count else float("nan")
    return Outliers(
        count=count,
        values=np.sort(pos[:count] * sign)[::-1],
        threshold=thr,
        method="gap",
        side=side,
        gap_ratios=ratios,
        bulk_edge=float(pos[count] * sign),
        settings=settings,
    )
