r"""How many outliers a spectrum has, by stated rules: :func:`count_outliers`.

An *outlier* is an eigenvalue separated from the bulk (docs/theory.md section 9).
Two operational rules are evaluated on the same candidates (the top eigenvalues,
e.g. Lanczos Ritz values of G, or the per-rank medians of an SLQ density's nodes):

* ``"mp_edge"`` -- the candidates above the cut of a Marchenko-Pastur fit to the
  bulk with the outliers excluded (``1.05 x`` the fitted upper edge, the recipe of
  docs/theory.md section 4.5). It is only as good as the fit: the rule is
  *credible* when the fit converged, identified its ratio, has a KS statistic of
  at most :data:`MP_CREDIBLE_KS` and excluded no more than a few isolated spikes
  (at most ``max(5, 2 %)`` of the spectrum); a bulk that is not MP makes the edge
  fall inside a heavy tail and the count meaningless.
* ``"gap"`` -- the largest ratio :math:`\lambda_j/\lambda_{j+1}` among the top
  ``max_outliers + 1`` candidates (the largest gap in log spacing), counted when
  it is at least ``min_ratio``; model-free.

The count reported (:attr:`OutlierCount.count`, with :attr:`OutlierCount.rule`)
is the ``"mp_edge"`` count when that rule is credible, else the ``"gap"`` count;
both are kept, with the comparison with C and C - 1 when the number of classes
is given (the papers' claim of C outliers, or C - 1). Torch-free.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import check_positive_int, check_real_array
from .._format import fmt_values
from ..exceptions import ConvergenceWarning, InvalidInputError
from ..results import Result, Summary
from ._common import EDGE_FACTOR
from ._fit import MarchenkoPasturFit, fit_marchenko_pastur

__all__ = ["count_outliers", "OutlierCount", "MP_CREDIBLE_KS"]

#: Largest KS statistic of a bulk fit whose edge the ``"mp_edge"`` rule trusts.
MP_CREDIBLE_KS = 0.1


@dataclass(repr=False)
class OutlierCount(Result):
    """Outliers counted by stated rules (values descending).

    Built by :func:`count_outliers`.

    Attributes
    ----------
    count : int
        The reported count, by :attr:`rule`.
    rule : str
        ``"mp_edge"`` (credible MP bulk) or ``"gap"``.
    values : numpy.ndarray
        The outliers by :attr:`rule`, descending.
    counts : dict
        Count per rule evaluated (``"gap"``, and ``"mp_edge"`` when a bulk was given).
    edges : dict
        The separating value per rule: the geometric mean across the chosen gap
        (NaN when no gap counts) and the MP cut.
    candidates : numpy.ndarray
        The values examined, descending.
    gap_ratios : numpy.ndarray
        :math:`\\lambda_j/\\lambda_{j+1}` over the candidates examined by ``"gap"``.
    gap_ratio : float
        The ratio at the gap the ``"gap"`` rule chose (the largest; NaN if none).
    mp_edge_lower_bound : bool
        True when every candidate lies above the MP cut: the ``"mp_edge"`` count
        is then at least the number of candidates; :attr:`mp_outlier_mass` is
        the fit's own count from the whole spectrum.
    mp_outlier_mass : int
        Outliers the MP fit excluded from the whole spectrum (-1 without a fit).
    bulk : MarchenkoPasturFit or None
        The bulk fit the ``"mp_edge"`` rule used.
    bulk_credible : bool
        Whether the ``"mp_edge"`` rule is trusted (module docstring).
    bulk_reason : str
        Why it is not (empty when credible or absent).
    num_classes : int
        C, or 0 when not given.
    settings : dict
        ``min_ratio``, ``max_outliers`` and the bulk's source.
    """

    count: int
    rule: str
    values: np.ndarray
    counts: dict
    edges: dict
    candidates: np.ndarray
    gap_ratios: np.ndarray
    gap_ratio: float
    mp_edge_lower_bound: bool = False
    mp_outlier_mass: int = -1
    bulk: MarchenkoPasturFit | None = None
    bulk_credible: bool = False
    bulk_reason: str = ""
    num_classes: int = 0
    settings: dict = field(default_factory=dict)

    @property
    def matches_classes(self) -> dict[str, bool]:
        """``{"C": count == C, "C-1": count == C - 1}`` (empty without C)."""
        if not self.num_classes:
            return {}
        return {"C": self.count == self.num_classes, "C-1": self.count == self.num_classes - 1}

    def _count_text(self, rule: str) -> str:
        n = self.counts[rule]
        if rule == "mp_edge" and self.mp_edge_lower_bound:
            return (f">= {n} (every candidate is above the cut; the fit excluded "
                    f"{self.mp_outlier_mass} of the whole spectrum)")
        return str(n)

    def summary(self) -> Summary:
        """The reported count and rule, each rule's count and edge, notes in words.

        Returns
        -------
        Summary
        """
        rows = [
            ("count", f"{self.count} (rule: {self.rule})"),
            ("outliers", fmt_values(self.values) if self.values.size else "-"),
            ("gap rule", f"{self._count_text('gap')}; largest ratio "
                         + (f"{self.gap_ratio:.3g}" if math.isfinite(self.gap_ratio) else "-")
                         + f" (needs >= {self.settings.get('min_ratio', 2.0):g})"),
        ]
        if "mp_edge" in self.counts:
            rows.append(("MP-edge rule", f"{self._count_text('mp_edge')}; cut "
                                         f"{self.edges['mp_edge']:.4g}; "
                                         + ("credible" if self.bulk_credible else "NOT credible")))
        rows.append(("candidates", fmt_values(self.candidates)))
        if self.num_classes:
            C = self.num_classes
            rows.append(("C, C - 1", f"{C}, {C - 1}"))
        notes = [self._rule_note()]
        if "mp_edge" in self.counts and not self.bulk_credible:
            notes.append(f"The MP-edge count is not used: {self.bulk_reason}.")
        if "mp_edge" in self.counts and self.counts["mp_edge"] != self.counts["gap"]:
            notes.append(
                f"The rules disagree: gap {self.counts['gap']}, MP edge "
                f"{self._count_text('mp_edge')}."
            )
        if self.num_classes:
            C = self.num_classes
            m = self.matches_classes
            verdict = ("equals C" if m["C"] else "equals C - 1" if m["C-1"]
                       else f"is neither C = {C} nor C - 1 = {C - 1}")
            notes.append(f"The count {self.count} ({self.rule}) {verdict}.")
        notes.append("Values and candidates are descending (largest first).")
        return Summary("Outlier count", rows, notes)

    def _rule_note(self) -> str:
        if self.rule == "mp_edge":
            return (f"Rule: eigenvalues above {EDGE_FACTOR:g} x the upper edge of a credible "
                    "Marchenko-Pastur fit to the bulk with outliers excluded.")
        if self.count:
            return (f"Rule: the largest gap ratio among the top candidates "
                    f"({self.gap_ratio:.3g} after rank {self.count}), at least "
                    f"{self.settings.get('min_ratio', 2.0):g}.")
        return (f"Rule: the largest gap ratio among the top candidates; the largest, "
                + (f"{self.gap_ratio:.3g}," if math.isfinite(self.gap_ratio) else "none,")
                + f" is below {self.settings.get('min_ratio', 2.0):g}: no separated outliers.")

    def __repr__(self) -> str:
        return f"OutlierCount(count={self.count}, rule={self.rule!r}, counts={self.counts})"


def _candidates(spectrum: Any) -> np.ndarray:
    """Descending candidates: eigenvalues, or per-rank medians of an SLQ density's nodes."""
    if hasattr(spectrum, "nodes") and hasattr(spectrum, "weights"):
        nodes = np.atleast_2d(np.asarray(spectrum.nodes, dtype=float))
        weights = np.atleast_2d(np.asarray(spectrum.weights, dtype=float))
        if nodes.shape != weights.shape or not np.all(np.isfinite(nodes)):
            raise InvalidInputError("a density needs finite nodes and weights of one shape")
        nodes = np.where(weights > 0, nodes, -np.inf)  # padding nodes do not count
        med = np.median(np.sort(nodes, axis=1)[:, ::-1], axis=0)
        return med[np.isfinite(med)]
    values = getattr(spectrum, "eigenvalues", spectrum)
    return np.sort(check_real_array(values, "spectrum"))[::-1]


def _credibility(fit: MarchenkoPasturFit) -> str:
    """Why an MP fit's edge cannot separate outliers, or ``""``."""
    reasons = []
    if not fit.converged:
        reasons.append(f"the fit did not converge ({fit.message})")
    if not getattr(fit, "identified", True):
        reasons.append("its ratio is not identified")
    if not fit.ks_statistic <= MP_CREDIBLE_KS:
        reasons.append(f"its KS statistic {fit.ks_statistic:.3g} exceeds {MP_CREDIBLE_KS:g} "
                       "(the bulk is not MP)")
    limit = max(5, 0.02 * fit.n_total)
    if fit.n_outliers > limit:
        reasons.append(f"it excluded {fit.n_outliers} values ({100 * fit.n_outliers / fit.n_total:.1f}% "
                       "of the spectrum), a heavy tail rather than a few isolated spikes")
    return "; ".join(reasons)


def count_outliers(
    spectrum: Any,
    bulk: Any = None,
    *,
    num_classes: int | None = None,
    min_ratio: float = 2.0,
    max_outliers: int = 50,
) -> OutlierCount:
    r"""Count the outliers of a spectrum by the gap rule and, given a bulk, the MP-edge rule.

    Parameters
    ----------
    spectrum : Spectrum, SpectralDensity or array_like
        The candidates: top eigenvalues (Lanczos Ritz values, or all eigenvalues),
        any order; for an SLQ density the per-rank medians of the probes' nodes
        (converged outliers agree across probes, bulk nodes do not).
    bulk : MarchenkoPasturFit, SpectralDensity or array_like, optional
        The bulk for the ``"mp_edge"`` rule: a fit (its ``outlier_cut``, or
        ``1.05 x`` its upper edge), or a spectrum (all eigenvalues, or an SLQ
        density) fitted here with outliers excluded
        (:func:`~gn_theory.rmt.fit_marchenko_pastur`, ``exclude_outliers="auto"``).
    num_classes : int, optional
        C, to compare the count with C and C - 1.
    min_ratio : float, default 2.0
        Smallest gap ratio the ``"gap"`` rule counts.
    max_outliers : int, default 50
        The ``"gap"`` rule examines the top ``max_outliers + 1`` positive candidates.

    Returns
    -------
    OutlierCount
        The count by the rule used (``"mp_edge"`` when the bulk fit is credible,
        else ``"gap"``), every rule's count and edge, values descending.

    Raises
    ------
    InvalidInputError
        No positive candidates, ``min_ratio <= 1``, bad ``max_outliers`` or
        ``num_classes``, or an unusable bulk.

    Examples
    --------
    >>> from gn_theory.rmt import sample_covariance_eigenvalues
    >>> ev = sample_covariance_eigenvalues(600, 1500, 1.0, spikes=[9.0, 6.0, 4.0], seed=0)
    >>> res = count_outliers(ev[:20], ev, num_classes=3)
    >>> res.count, res.rule, res.counts["gap"]
    (3, 'mp_edge', 3)
    """
    if not (isinstance(min_ratio, (int, float)) and min_ratio > 1):
        raise InvalidInputError(f"min_ratio must be a number > 1; got {min_ratio!r}")
    max_outliers = check_positive_int("max_outliers", max_outliers)
    C = 0 if num_classes is None else check_positive_int("num_classes", num_classes, minimum=2)
    cand = _candidates(spectrum)
    pos = cand[cand > 0]
    if pos.size == 0:
        raise InvalidInputError("no positive eigenvalues to separate outliers from")

    # -- gap rule ------------------------------------------------------------------------
    top = pos[: max_outliers + 1]
    ratios = top[:-1] / top[1:] if top.size > 1 else np.zeros(0)
    gap_count, gap_ratio, gap_edge = 0, math.nan, math.nan
    if ratios.size:
        j = int(np.argmax(ratios))
        gap_ratio = float(ratios[j])
        if gap_ratio >= min_ratio:
            gap_count, gap_edge = j + 1, float(math.sqrt(top[j] * top[j + 1]))
    counts = {"gap": gap_count}
    edges = {"gap": gap_edge}

    # -- MP-edge rule -----------------------------------------------------------------------
    fit = None
    credible, reason, lower, mass = False, "", False, -1
    source = "none"
    if bulk is not None:
        if isinstance(bulk, MarchenkoPasturFit):
            fit, source = bulk, "given fit"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                fit = fit_marchenko_pastur(bulk, exclude_outliers="auto", num_bootstrap=0)
            source = "fitted here (moments, outliers excluded)"
        cut = fit.outlier_cut if math.isfinite(fit.outlier_cut) else EDGE_FACTOR * fit.upper_edge
        n_above = int(np.sum(pos > cut))
        counts["mp_edge"], edges["mp_edge"] = n_above, float(cut)
        lower = n_above == pos.size
        mass = int(fit.n_outliers)
        reason = _credibility(fit)
        credible = not reason

    rule = "mp_edge" if credible else "gap"
    count = counts[rule]
    return OutlierCount(
        count=int(count),
        rule=rule,
        values=pos[:count].copy(),
        counts=counts,
        edges=edges,
        candidates=cand,
        gap_ratios=ratios,
        gap_ratio=gap_ratio,
        mp_edge_lower_bound=bool(lower),
        mp_outlier_mass=mass,
        bulk=fit,
        bulk_credible=bool(credible),
        bulk_reason=reason,
        num_classes=C,
        settings={"min_ratio": float(min_ratio), "max_outliers": max_outliers, "bulk": source},
    )
