r"""Explaining the outliers of G: compare predictions from its class structure with what was measured.

:func:`predict_outliers` takes a class structure (data only), a bulk fit and the
measured inputs, runs the four predictors of :mod:`gn_theory.rmt`
(docs/theory.md sections 5 and 5b) and returns an :class:`OutlierPrediction` with
the diagnostics that say which assumption broke. It **never measures**: no
torch, no products with an operator. The measurements it compares with (the top
of G, the SLQ quadrature and top eigenvectors of :math:`G_{\rm w}`, Rayleigh-Ritz
of G on the class-mean span) come from one named function,
:func:`gn_theory.decomposition.measure_outlier_inputs`, whose
:class:`~gn_theory.results.OutlierInputs` saves and loads like any result::

    inputs = measure_outlier_inputs(G, structure)      # products with G (torch)
    pred = predict_outliers(structure, inputs=inputs)  # anywhere, numpy only

The predictors (rows of the result):

* ``"iid"`` -- means plus iid isotropic noise on an MP bulk
  (:func:`~gn_theory.rmt.iid_noise_outliers`);
* ``"additive"`` -- additive spikes on an MP bulk (:func:`~gn_theory.rmt.additive_outliers`);
* ``"bgn"`` -- Benaych-Georges & Nadakuditi on the empirical Stieltjes transform
  of the SLQ quadrature of :math:`G_{\rm w}` (:func:`~gn_theory.rmt.bgn_outliers`);
* ``"subspace"`` and ``"subspace_corrected"`` -- the Ritz values of G on the
  class-mean span and their residual correction (:func:`~gn_theory.rmt.subspace_ritz`,
  measured): the structure that explains the outliers, not an independent prediction.

Observed and predicted positions are ordered **descending** (largest first).
Torch-free.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Sequence, get_args

import numpy as np
from scipy import stats

from ._checks import check_positive_int, check_real_array
from ._format import fmt_values
from .exceptions import ConvergenceWarning, InvalidInputError, ShapeError
from .results import Result, Summary
from .rmt import (
    EDGE_FACTOR,
    MarchenkoPastur,
    MarchenkoPasturFit,
    OutlierFormula,
    additive_outliers,
    bgn_outliers,
    empirical_stieltjes,
    fit_marchenko_pastur,
    iid_noise_outliers,
)

if TYPE_CHECKING:  # annotations only
    from .results import ClassStructure, OutlierInputs, SpectralDensity, Spectrum, TraceEstimate
    from .rmt import RitzResult

__all__ = ["predict_outliers", "OutlierPrediction", "PredictionMethod"]

#: The predictors of :func:`predict_outliers`.
PredictionMethod = Literal["iid", "additive", "bgn", "subspace"]
_METHODS: tuple[str, ...] = get_args(PredictionMethod)

#: The assumption each prediction row rests on, in words (used in the summary).
_ASSUMPTIONS = {
    "iid": "class means + iid isotropic within-class noise with an MP bulk",
    "additive": "additive spikes in generic position on an MP bulk",
    "bgn": "additive spikes in generic position on the empirical spectrum of G_w",
    "subspace": "Rayleigh-Ritz of G on the class-mean span (measured products with G)",
    "subspace_corrected": "Ritz values + ||r_k||^2 / theta_k (measured products with G)",
}

#: Energy in the class-mean span above this many times the random baseline (and above
#: ISOTROPY_MIN_SHARE) counts as "not isotropic".
ISOTROPY_FACTOR = 5.0
ISOTROPY_MIN_SHARE = 0.2
#: Third-moment ratio outside [1/MP_MOMENT_TOL, MP_MOMENT_TOL] or a KS statistic above
#: MP_KS_TOL counts as "bulk not MP".
MP_MOMENT_TOL = 1.25
MP_KS_TOL = 0.1

#: A predicted value within this relative distance of its predictor's edge is "at the edge".
AT_EDGE_RTOL = 0.01
#: What each table marker means (:meth:`OutlierPrediction.markers`).
_MARKERS = {
    "*": "below the predictor's threshold: no outlier predicted, the value is its bulk edge",
    "~": (f"formally above the threshold but within {100 * AT_EDGE_RTOL:g}% of the predictor's "
          "edge: no separation from the bulk predicted"),
    "+": "a Ritz value at or below the top eigenvalue of G_w",
}
#: Mean |relative error| up to this is "within" (directions of the predictions).
WITHIN_TOL = 0.1


def _direction(errors: np.ndarray) -> str:
    """``"within 10% on average"``, ``"too low"``, ``"too high"`` or ``"mixed"`` for signed relative errors."""
    e = np.asarray(errors, dtype=float)
    if float(np.mean(np.abs(e))) <= WITHIN_TOL:
        return f"within {100 * WITHIN_TOL:g}% on average"
    if np.all(e < 0):
        return "too low"
    if np.all(e > 0):
        return "too high"
    return "mixed"


#: Where each input comes from, said in the messages about a missing one.
_MEASURE = "measure it with gn_theory.decomposition.measure_outlier_inputs(G, structure)"
_INPUT_FIELDS = ("observed", "within_density", "within_spectrum", "ritz", "trace")


# ============================================================================= the result
@dataclass(repr=False)
class OutlierPrediction(Result):
    r"""Predicted outlier positions of G by several predictors, with the diagnostics that explain them.

    Built by :func:`predict_outliers`. Rows are predictors (``methods``),
    columns the top-k outliers, descending.

    Attributes
    ----------
    methods : list of str
        Row labels: a subset of ``"iid"``, ``"additive"``, ``"bgn"``,
        ``"subspace"`` and ``"subspace_corrected"`` (Ritz values plus
        :math:`\|r_k\|^2/\theta_k`).
    predicted : numpy.ndarray
        (M, k) predicted top eigenvalues of G, descending per row.
    above : numpy.ndarray
        (M, k) bool: predicted to be an outlier (above its predictor's
        threshold; for the subspace rows, above the top eigenvalue of
        :math:`G_{\rm w}` when it was computed).
    overlaps : numpy.ndarray
        (M, k) predicted squared overlap of the outlier eigenvector with its
        class-mean direction (NaN for the subspace rows).
    thresholds : numpy.ndarray
        (M,) threshold on the class-mean eigenvalue (NaN for the subspace rows).
    edges : numpy.ndarray
        (M,) upper edge of the bulk each predictor uses.
    class_mean_eigenvalues : numpy.ndarray
        All nonzero eig(:math:`G_{\rm cm}`), descending (the spikes).
    observed : numpy.ndarray or None
        Observed top eigenvalues of G, descending (as given; never measured here).
    relative_errors : numpy.ndarray or None
        (M, min(k, len(observed))) signed (predicted - observed) / observed.
    ritz_residual_norms : numpy.ndarray or None
        :math:`\|r_k\|` of the top-k Ritz pairs.
    ratio, scale : float
        The MP bulk used by ``"iid"``/``"additive"`` (NaN if unknown).
    bulk : MarchenkoPasturFit or None
        The bulk fit itself, when it is one (given, or fitted here to
        ``within_density``).
    bulk_source : str
        Where ``ratio``/``scale`` came from.
    within_nodes, within_weights : numpy.ndarray or None
        SLQ quadrature of :math:`G_{\rm w}` (used by ``"bgn"`` and the moments).
    within_upper_edge : float
        Edge b used by ``"bgn"``.
    diagnostics : dict
        ``within_energy_in_span`` (share of the energy of the top
        ``num_within_vectors`` eigenvectors of :math:`G_{\rm w}` inside the
        class-mean span), ``random_baseline`` (span_dim / P), ``span_dim``,
        ``num_within_vectors``, ``within_top_eigenvalue``,
        ``third_moment_ratio`` (empirical / MP third moment), ``ks_statistic``,
        ``third_moment_source``, ``class_mean_trace_share``
        (:math:`\operatorname{tr}G_{\rm cm}/\operatorname{tr}G`) with
        ``class_mean_trace_share_interval`` (95 %; a point for an exact trace),
        ``trace_G``, ``trace_G_cm``, ``trace_G_w``, ``trace_source``
        (``"exact"`` or the SLQ of :math:`G_{\rm w}`); ``bulk_edge_ok``;
        ``bgn_at_edge`` (bgn predictions within 1 % of its edge),
        ``bgn_edge_over_bulk_edge`` (bgn's edge over the MP edge of
        :math:`G_{\rm w}` with outliers excluded: above 1.05 its edge is itself an
        outlier of :math:`G_{\rm w}`), ``within_top_energy_in_span`` (share of the
        top eigenvector of :math:`G_{\rm w}` in the class-mean span); NaN where not
        computed.
    num_params, num_classes, num_samples : int
        P, C, N.
    skipped : list of str
        Predictors or diagnostics left out, with the reason (a missing input).
    settings : dict
        ``k``, ``methods_requested``, which inputs were given, and the
        ``measurement`` settings of the :class:`~gn_theory.results.OutlierInputs`
        when one was passed.
    bulk_alternatives : list of dict
        The MP bulk used (first) and the alternatives it is compared with, one
        dict each: ``label``, ``ratio``, ``scale``, ``upper_edge``, ``usable``,
        ``edge_ok`` (the edge lies below every observed eigenvalue compared; None
        without observed), ``observed_below_edge``, ``num_compared`` and
        ``errors`` ({predictor: {"mean", "mean_abs", "direction"}} for iid and
        additive). The summary reports how each MP verdict changes with the bulk.
    """

    methods: list
    predicted: np.ndarray
    above: np.ndarray
    overlaps: np.ndarray
    thresholds: np.ndarray
    edges: np.ndarray
    class_mean_eigenvalues: np.ndarray
    observed: np.ndarray | None = None
    relative_errors: np.ndarray | None = None
    ritz_residual_norms: np.ndarray | None = None
    ratio: float = math.nan
    scale: float = math.nan
    bulk: MarchenkoPasturFit | None = None
    bulk_source: str = ""
    within_nodes: np.ndarray | None = None
    within_weights: np.ndarray | None = None
    within_upper_edge: float = math.nan
    diagnostics: dict = field(default_factory=dict)
    num_params: int = 0
    num_classes: int = 0
    num_samples: int = 0
    skipped: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    bulk_alternatives: list = field(default_factory=list)

    # -- access ---------------------------------------------------------------------
    @property
    def k(self) -> int:
        """Number of predicted outliers per row."""
        return int(self.predicted.shape[1])

    def _row(self, method: str) -> int:
        if method not in self.methods:
            raise InvalidInputError(f"method must be one of {self.methods}; got {method!r}")
        return self.methods.index(method)

    def prediction(self, method: str) -> np.ndarray:
        """Predicted top-k eigenvalues of G by one predictor, descending.

        Parameters
        ----------
        method : str
            A row label from :attr:`methods`.

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        InvalidInputError
            A method that was not run.
        """
        return self.predicted[self._row(method)].copy()

    @property
    def mean_abs_errors(self) -> dict[str, float]:
        """Mean absolute relative error per predictor (empty without observed values)."""
        if self.relative_errors is None or self.relative_errors.shape[1] == 0:
            return {}
        return {m: float(np.mean(np.abs(e))) for m, e in zip(self.methods, self.relative_errors)}

    @property
    def best_method(self) -> str | None:
        """The predictor with the smallest mean absolute relative error (None without observed)."""
        errs = self.mean_abs_errors
        return min(errs, key=errs.get) if errs else None

    @property
    def num_predicted_outliers(self) -> dict[str, int]:
        """How many of the top-k each predictor says are outliers (above threshold)."""
        return {m: int(a.sum()) for m, a in zip(self.methods, self.above)}

    def predict(self, class_mean_eigenvalues: Any, method: str = "iid") -> np.ndarray:
        """Apply a fitted predictor to other class-mean eigenvalues (same bulk).

        Parameters
        ----------
        class_mean_eigenvalues : array_like
            Spikes :math:`\\ell_k \\ge 0`.
        method : {"iid", "additive", "bgn"}, default "iid"
            ``"bgn"`` uses the stored SLQ quadrature of :math:`G_{\\rm w}`.

        Returns
        -------
        numpy.ndarray
            Predicted eigenvalues, in the input order.

        Raises
        ------
        InvalidInputError
            Unknown method, bad eigenvalues, or a bulk that was not estimated.
        """
        if method in ("iid", "additive"):
            if not (math.isfinite(self.ratio) and math.isfinite(self.scale)):
                raise InvalidInputError(
                    f"{method!r} needs the MP bulk (ratio, scale), which was not estimated"
                )
            f = iid_noise_outliers if method == "iid" else additive_outliers
            return f(class_mean_eigenvalues, self.ratio, self.scale).predicted
        if method == "bgn":
            if self.within_nodes is None or self.within_weights is None:
                raise InvalidInputError("'bgn' needs the SLQ quadrature of G_w, which was not computed")
            G = empirical_stieltjes(self.within_nodes, self.within_weights)
            return bgn_outliers(class_mean_eigenvalues, G, upper_edge=self.within_upper_edge).predicted
        raise InvalidInputError(
            "method must be 'iid', 'additive' or 'bgn' (the subspace predictor needs products "
            f"with G); got {method!r}"
        )

    # -- reporting ------------------------------------------------------------------
    def markers(self) -> np.ndarray:
        """The table marker of each predicted value (M, k): ``""``, ``"*"``, ``"~"`` or ``"+"``.

        ``"*"``: a formula row (iid, additive, bgn) below its threshold: no outlier
        predicted, the value is that predictor's bulk edge. ``"~"``: a formula row
        formally above its threshold but within :data:`AT_EDGE_RTOL` of its edge (no
        separation from the bulk predicted). ``"+"``: a subspace row (a real Ritz value)
        at or below the top eigenvalue of :math:`G_{\\rm w}`.

        Returns
        -------
        numpy.ndarray
            Strings, one per entry of :attr:`predicted`.
        """
        out = np.full(self.predicted.shape, "", dtype=object)
        for i, m in enumerate(self.methods):
            if m.startswith("subspace"):
                out[i, ~self.above[i]] = "+"
                continue
            edge = self.edges[i]
            near = np.abs(self.predicted[i] - edge) <= AT_EDGE_RTOL * abs(edge)
            out[i, ~self.above[i]] = "*"
            out[i, self.above[i] & near] = "~"
        return out

    def table(self) -> str:
        """Predicted vs observed, one line per outlier, as plain text.

        Returns
        -------
        str
            Columns: k, observed, then each predictor's value (with its marker, see
            :meth:`markers`) and (with observed values) its signed relative error in
            percent; footnotes explain the markers that occur.
        """
        head = ["k", "observed"] + [
            h for m in self.methods for h in ((m, "err %") if self.relative_errors is not None else (m,))
        ]
        widths = [max(10, len(h)) for h in head]
        lines = ["  ".join(f"{h:>{w}}" for h, w in zip(head, widths))]
        n_cmp = 0 if self.relative_errors is None else self.relative_errors.shape[1]
        marks = self.markers()
        for j in range(self.k):
            obs = self.observed[j] if self.observed is not None and j < self.observed.size else math.nan
            cells = [str(j + 1), f"{obs:.5g}"]
            for i in range(len(self.methods)):
                cells.append(f"{self.predicted[i, j]:.5g}{marks[i, j]}")
                if self.relative_errors is not None:
                    cells.append(f"{100 * self.relative_errors[i, j]:+.1f}" if j < n_cmp else "-")
            lines.append("  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
        used = set(marks.ravel().tolist())
        for mark, text in _MARKERS.items():
            if mark in used:
                lines.append(f"({mark} = {text})")
        return "\n".join(lines)

    @property
    def directions(self) -> dict[str, str]:
        """Per predictor: ``"within 10% on average"``, ``"too low"``, ``"too high"`` or ``"mixed"``.

        Read from the signed relative errors (empty without observed values):
        "within 10% on average" when the mean absolute error is at most 10 %, else too low (too
        high) when every error is negative (positive), else mixed.
        """
        if self.relative_errors is None or self.relative_errors.shape[1] == 0:
            return {}
        return {m: _direction(e) for m, e in zip(self.methods, self.relative_errors)}

    def _error_note(self) -> str | None:
        errs, dirs = self.mean_abs_errors, self.directions
        if not errs:
            return None
        parts = []
        for i, m in enumerate(self.methods):
            e = self.relative_errors[i]
            parts.append(f"{m} {dirs[m]} (mean {100 * float(np.mean(e)):+.1f}%, "
                         f"range {100 * float(e.min()):+.1f}% to {100 * float(e.max()):+.1f}%)")
        n = self.relative_errors.shape[1]
        best = self.best_method
        worst = [m for m, v in errs.items() if v > 0.5]
        return (f"Against the observed top {n}: " + "; ".join(parts) + f". Best predictor: {best} "
                f"(mean |relative error| {100 * errs[best]:.1f}%)."
                + (f" Off by more than 50% on average: {', '.join(worst)}." if worst else ""))

    def _notes(self) -> list[str]:
        d = self.diagnostics
        notes: list[str] = []
        share, base = d.get("within_energy_in_span", math.nan), d.get("random_baseline", math.nan)
        dim, nvec = d.get("span_dim", 0), d.get("num_within_vectors", 0)
        generic = [m for m in ("iid", "additive", "bgn") if m in self.methods]
        if math.isfinite(share):
            where = (
                f"{100 * share:.1f}% of the energy of the top-{nvec} eigenvectors of G_w lies in the "
                f"{dim}-dim class-mean span (random subspace: {100 * base:.2g}%)"
            )
            if share > max(ISOTROPY_FACTOR * base, ISOTROPY_MIN_SHARE):
                errs = {m: e for m, e in self.mean_abs_errors.items() if m in generic}
                effect = ""
                if errs:
                    worst = max(errs, key=errs.get)
                    effect = (f" The largest mean |relative error| among {', '.join(errs)} is "
                              f"{100 * errs[worst]:.0f}% ({worst}).")
                notes.append(
                    f"The within-class part G_w is not isotropic: {where}. It is not a bulk of "
                    "noise in generic position to the means: its largest directions are the "
                    "class-mean directions, which breaks the assumption of the iid, additive and "
                    f"bgn predictors.{effect}"
                )
            else:
                notes.append(
                    f"The within-class part G_w looks isotropic with respect to the class means: "
                    f"{where}; the generic-position assumption of the iid/additive/bgn predictors "
                    "holds on this count."
                )
        else:
            notes.append(
                "Isotropy of G_w with respect to the class-mean span was not measured "
                "(no within_spectrum: the top eigenvectors of G_w come from "
                "gn_theory.decomposition.measure_outlier_inputs)."
            )
        note = self._error_note()
        if note:
            notes.append(note)
        m3, ks = d.get("third_moment_ratio", math.nan), d.get("ks_statistic", math.nan)
        parts = []
        if math.isfinite(m3):
            parts.append(f"third moment {m3:.2f}x MP")
        if math.isfinite(ks):
            parts.append(f"KS {ks:.2f}")
        if parts:
            bad = (math.isfinite(m3) and not (1 / MP_MOMENT_TOL <= m3 <= MP_MOMENT_TOL)) or (
                math.isfinite(ks) and ks > MP_KS_TOL
            )
            src = d.get("third_moment_source", "")
            if bad:
                tail = ("heavier-tailed than MP" if math.isfinite(m3) and m3 > MP_MOMENT_TOL
                        else "lighter-tailed than MP" if math.isfinite(m3) and m3 < 1 / MP_MOMENT_TOL
                        else "not MP-shaped")
                notes.append(
                    f"G_w's spectrum is not MP: {', '.join(parts)}{f' ({src})' if src else ''}, "
                    f"{tail}. The MP-based predictors (iid, additive) use the wrong law; bgn uses "
                    "the empirical spectrum of G_w instead."
                )
            else:
                notes.append(f"G_w's spectrum is consistent with MP on these counts: {', '.join(parts)}.")
        notes += self._bulk_notes()
        notes += self._bgn_notes()
        tshare = d.get("class_mean_trace_share", math.nan)
        if math.isfinite(tshare):
            lo, hi = d.get("class_mean_trace_share_interval", [math.nan, math.nan])
            src = d.get("trace_source", "")
            band = ("" if src == "exact" or not math.isfinite(lo)
                    else f", 95% interval [{100 * lo:.1f}%, {100 * hi:.1f}%]")
            notes.append(f"G_cm carries {100 * tshare:.1f}% of tr G{band} ({src}); the rest is "
                         "the within-class part G_w.")
        if "subspace" in self.methods:
            notes.append(
                f"The subspace predictor is Rayleigh-Ritz of G itself on the class-mean span ({dim} products "
                "with G): it shows the structure that explains the outliers (their eigenspace is the "
                "class-mean span), not an independent prediction."
            )
        for s in self.skipped:
            notes.append(f"Skipped: {s}.")
        return notes

    def _bulk_notes(self) -> list[str]:
        """The bulk used, the edge rule, and how the MP verdicts change with the bulk."""
        notes: list[str] = []
        alts = self.bulk_alternatives
        if not alts:
            return notes
        primary = alts[0]
        notes.append(
            f"MP bulk used by iid/additive: ratio {self.ratio:.4g}, scale {self.scale:.4g}, upper "
            f"edge {primary['upper_edge']:.4g} ({self.bulk_source})."
        )
        if primary.get("edge_ok") is False:
            notes.append(
                f"The bulk FAILED the edge rule: its upper edge {primary['upper_edge']:.4g} lies "
                f"above {primary['observed_below_edge']} of the {primary['num_compared']} observed "
                "eigenvalues compared, so those sit inside the fitted bulk and the MP predictions "
                "for them are edge values: the iid/additive verdicts are unreliable."
            )
        elif primary.get("edge_ok") is None:
            notes.append("The edge rule (the bulk edge below the observed outliers) was not "
                         "checked: no observed eigenvalues.")
        mp = [m for m in ("iid", "additive") if m in self.methods]
        if len(alts) > 1 and mp and self.relative_errors is not None:
            for m in mp:
                cells = []
                for a in alts:
                    e = a.get("errors", {}).get(m)
                    if e is None:
                        cells.append(f"{a['label']}: -")
                        continue
                    flag = "" if a.get("edge_ok") is not False else "; edge among the observed"
                    cells.append(f"{a['label']}: mean {100 * e['mean']:+.1f}%, {e['direction']}{flag}")
                verdicts = {a["errors"][m]["direction"] for a in alts if m in a.get("errors", {})}
                holds = ("the verdict holds across these bulks" if len(verdicts) == 1
                         else "the verdict CHANGES with the bulk")
                notes.append(f"Sensitivity of {m} to the bulk: " + " | ".join(cells) + f"; {holds}.")
        return notes

    def _bgn_notes(self) -> list[str]:
        if "bgn" not in self.methods:
            return []
        d = self.diagnostics
        i = self.methods.index("bgn")
        b = self.edges[i]
        notes = [
            "bgn uses the empirical Stieltjes transform of G_w from its SLQ quadrature with edge "
            f"b = {b:.4g} (the residual-widened range estimate: G_w's top eigenvalue); threshold 1/G(b)."
        ]
        n_at = int(d.get("bgn_at_edge", 0))
        if n_at:
            ratio = d.get("bgn_edge_over_bulk_edge", math.nan)
            energy = d.get("within_top_energy_in_span", math.nan)
            why = ""
            if math.isfinite(ratio) and ratio > EDGE_FACTOR:
                why = (f" That edge is itself an outlier of G_w: {ratio:.3g}x the upper edge of the MP "
                       "fit to G_w with outliers excluded")
                if math.isfinite(energy):
                    why += (f", and {100 * energy:.0f}% of the energy of G_w's top eigenvector lies "
                            "in the class-mean span")
                why += "."
            notes.append(
                f"bgn is degenerate here: {n_at} of its {self.k} predictions sit within "
                f"{100 * AT_EDGE_RTOL:g}% of its edge b (marked ~ in the table).{why} Its values say "
                "where G_w's top sits, not where the spikes put G's outliers."
            )
        return notes

    def summary(self) -> Summary:
        """A text/HTML table of the predictions with numbered notes on the assumptions that broke.

        Returns
        -------
        Summary
        """
        d = self.diagnostics
        rows: list[tuple[str, str]] = [
            ("P, C, N", f"{self.num_params}, {self.num_classes}, {self.num_samples}"),
            ("class-mean eigenvalues", fmt_values(self.class_mean_eigenvalues)),
            ("MP bulk ratio, scale", f"{self.ratio:.4g}, {self.scale:.4g} ({self.bulk_source})"),
            ("observed top", fmt_values(self.observed) if self.observed is not None else "-"),
        ]
        errs = self.mean_abs_errors
        for i, m in enumerate(self.methods):
            err = f"; mean |err| {100 * errs[m]:.1f}%" if m in errs else ""
            direction = self.directions.get(m)
            err += f", {direction}" if direction else ""
            rows.append(
                (m, f"{fmt_values(self.predicted[i])} [{int(self.above[i].sum())}/{self.k} above]{err}")
            )
            rows.append((f"  assumes", _ASSUMPTIONS[m]))
        for key in ("within_energy_in_span", "random_baseline", "third_moment_ratio", "ks_statistic",
                    "class_mean_trace_share"):
            v = d.get(key, math.nan)
            rows.append((key.replace("_", " "), f"{v:.4g}" if isinstance(v, float) else str(v)))
        if self.bulk_alternatives:
            a = self.bulk_alternatives[0]
            ok = {True: "below the observed", False: "FAILED (among the observed)",
                  None: "not checked"}[a.get("edge_ok")]
            rows.append(("bulk edge rule", f"edge {a['upper_edge']:.4g}: {ok}"))
        return Summary("Predicted outliers of G from its class structure", rows, self._notes())

    def __repr__(self) -> str:
        best = self.best_method
        return (
            f"OutlierPrediction(methods={self.methods}, k={self.k}"
            + (f", best={best!r}" if best else "")
            + ")"
        )



# ============================================================================= inputs
def _check_structure(structure: Any) -> None:
    need = ("eigenvalues", "class_mean_basis", "gram", "num_params", "num_classes")
    missing = [a for a in need if not hasattr(structure, a)]
    if missing:
        raise InvalidInputError(
            "structure must be a ClassStructure (gn_theory.decomposition.class_structure, or "
            f"ClassStructure.load); got {type(structure).__name__} without {', '.join(missing)}"
        )


def _gather(inputs: Any, given: dict[str, Any]) -> dict[str, Any]:
    """The measured inputs: the fields of ``inputs``, completed by the keywords (never both)."""
    if inputs is None:
        return dict(given)
    if not all(hasattr(inputs, name) for name in _INPUT_FIELDS if name != "trace"):
        raise InvalidInputError(
            "inputs must be an OutlierInputs (from gn_theory.decomposition.measure_outlier_inputs "
            f"or OutlierInputs.load); got {type(inputs).__name__}"
        )
    out = {}
    for name in _INPUT_FIELDS:
        from_inputs = getattr(inputs, name, None)
        if from_inputs is not None and given[name] is not None:
            raise InvalidInputError(
                f"{name} is given twice, in inputs and as a keyword; pass one of them"
            )
        out[name] = from_inputs if from_inputs is not None else given[name]
    return out


def _observed(observed: Any) -> np.ndarray | None:
    """Observed top eigenvalues of G, descending."""
    if observed is None:
        return None
    if isinstance(observed, str):
        if observed == "compute":
            raise InvalidInputError(
                "observed='compute' is not offered: predict_outliers compares and never measures. "
                "Measure the top of G first, inputs = gn_theory.decomposition.measure_outlier_inputs"
                "(G, structure), then call predict_outliers(structure, inputs=inputs)"
            )
        raise InvalidInputError(
            f"observed must be eigenvalues (an array or a Spectrum) or None; got {observed!r}"
        )
    values = getattr(observed, "eigenvalues", observed)
    return np.sort(check_real_array(values, "observed", scalar=True, nonnegative=True))[::-1].copy()


def _bulk_params(bulk_fit: Any) -> tuple[float, float, float, float, str]:
    """(ratio, scale, ks, third_moment_ratio, source) from a bulk fit, a law or a (ratio, scale)."""
    if isinstance(bulk_fit, (tuple, list)):
        if len(bulk_fit) != 2:
            raise InvalidInputError(
                f"bulk_fit as a sequence must be (ratio, scale); got {len(bulk_fit)} entries"
            )
        law = MarchenkoPastur(bulk_fit[0], bulk_fit[1])  # checks ratio and scale
        return law.ratio, law.scale, math.nan, math.nan, "given (ratio, scale)"
    if not (hasattr(bulk_fit, "ratio") and hasattr(bulk_fit, "scale")):
        raise InvalidInputError(
            "bulk_fit must have .ratio and .scale attributes (e.g. a MarchenkoPasturFit or a "
            f"MarchenkoPastur), be a (ratio, scale) tuple, or be None; got {type(bulk_fit).__name__}"
        )
    law = MarchenkoPastur(bulk_fit.ratio, bulk_fit.scale)  # checks ratio and scale

    def opt(name: str) -> float:
        v = getattr(bulk_fit, name, None)
        try:
            return float(v) if v is not None else math.nan
        except (TypeError, ValueError):
            return math.nan

    return (law.ratio, law.scale, opt("ks_statistic"), opt("third_moment_ratio"),
            f"bulk_fit ({type(bulk_fit).__name__})")


def _quadrature(density: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """Nodes and weights (num_probes, num_steps) of an SLQ density and the edge b of its bulk."""
    if not (hasattr(density, "nodes") and hasattr(density, "weights")):
        raise InvalidInputError(
            "within_density must have nodes and weights (a SpectralDensity); got "
            f"{type(density).__name__}"
        )
    nodes = np.atleast_2d(np.asarray(density.nodes, dtype=float))
    weights = np.atleast_2d(np.asarray(density.weights, dtype=float))
    if nodes.shape != weights.shape or not (np.all(np.isfinite(nodes)) and np.all(np.isfinite(weights))):
        raise InvalidInputError("within_density nodes and weights must be finite arrays of one shape")
    edge = float(nodes[weights > 0].max())
    bounds = getattr(density, "bounds", None)
    if bounds is not None and np.size(bounds) == 2 and np.all(np.isfinite(bounds)):
        edge = max(float(np.max(bounds)), edge)  # the residual-widened range estimate
    return nodes, weights, edge


#: The bulk rules compared, the default first: (label, exclude_outliers).
_BULK_RULES: tuple[tuple[str, Any], ...] = (("outliers excluded", "auto"), ("nothing excluded", False))


def _fit_bulk(density: Any, exclude: Any) -> MarchenkoPasturFit:
    """The moments fit of the MP law to a quadrature (a computation, no products)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_marchenko_pastur(density, exclude_outliers=exclude, num_bootstrap=0)


def _unusable(fit: MarchenkoPasturFit) -> str:
    """Why a bulk fit cannot serve the MP predictors, or ``""``."""
    if not fit.converged:
        return fit.message
    if not getattr(fit, "identified", True):
        return f"its ratio is not identified: {fit.identification}"
    return ""


def _alternative(label: str, ratio: float, scale: float, why: str, ell: np.ndarray,
                 obs: np.ndarray | None, n_cmp: int) -> dict[str, Any]:
    """One bulk: its edge, the edge rule against the observed, and the MP verdicts."""
    edge = float(scale * (1.0 + math.sqrt(ratio)) ** 2)
    out: dict[str, Any] = {
        "label": label, "ratio": float(ratio), "scale": float(scale), "upper_edge": edge,
        "usable": not why, "reason": why, "edge_ok": None, "observed_below_edge": 0,
        "num_compared": int(n_cmp), "errors": {},
    }
    if obs is None or n_cmp == 0:
        return out
    below = int(np.sum(obs[:n_cmp] <= edge))
    out["observed_below_edge"] = below
    out["edge_ok"] = below == 0
    if why:
        return out
    for m, f in (("iid", iid_noise_outliers), ("additive", additive_outliers)):
        e = (f(ell, ratio, scale).predicted[:n_cmp] - obs[:n_cmp]) / obs[:n_cmp]
        out["errors"][m] = {"mean": float(np.mean(e)), "mean_abs": float(np.mean(np.abs(e))),
                            "direction": _direction(e)}
    return out


def _trace_share(trace_cm: float, trace: Any, nodes: np.ndarray | None,
                 weights: np.ndarray | None, P: int) -> dict[str, Any]:
    """tr G_cm / tr G: exact with a measured tr G, else from the SLQ trace of G_w with a 95% band."""
    out: dict[str, Any] = {"trace_G_cm": trace_cm, "trace_G": math.nan, "trace_G_w": math.nan,
                           "class_mean_trace_share": math.nan,
                           "class_mean_trace_share_interval": [math.nan, math.nan],
                           "trace_source": ""}
    if trace is not None:
        tr = float(getattr(trace, "estimate", trace))
        bse = float(getattr(trace, "bse", 0.0) or 0.0)
        if not (math.isfinite(tr) and tr > 0):
            raise InvalidInputError(f"trace must be a finite positive tr G; got {tr!r}")
        band = [trace_cm / (tr + 1.96 * bse), trace_cm / max(tr - 1.96 * bse, trace_cm)]
        out.update(trace_G=tr, trace_G_w=tr - trace_cm, class_mean_trace_share=trace_cm / tr,
                   class_mean_trace_share_interval=[float(min(band)), float(min(1.0, max(band)))],
                   trace_source="exact" if bse == 0.0 else "given tr G")
        return out
    if nodes is None:
        return out
    per_probe = P * np.sum(weights * nodes, axis=1)  # one trace estimate of G_w per probe
    tw = float(np.mean(per_probe))
    n = per_probe.size
    se = float(np.std(per_probe, ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    q = float(stats.t.ppf(0.975, n - 1)) if n > 1 else math.nan
    lo_w, hi_w = max(tw - q * se, 0.0), tw + q * se
    share = trace_cm / (trace_cm + tw)
    out.update(trace_G=trace_cm + tw, trace_G_w=tw, class_mean_trace_share=share,
               class_mean_trace_share_interval=(
                   [trace_cm / (trace_cm + hi_w), trace_cm / (trace_cm + lo_w)]
                   if math.isfinite(se) else [math.nan, math.nan]),
               trace_source=f"SLQ trace of G_w, {n} probes")
    return out


def _top_vectors(spectrum: Any, P: int) -> tuple[np.ndarray, float]:
    """Eigenvectors (P, n) of a Spectrum, descending, and its top eigenvalue."""
    vecs = getattr(spectrum, "eigenvectors", None)
    if vecs is None:
        raise InvalidInputError(
            "within_spectrum must carry eigenvectors (lanczos(..., return_eigenvectors=True))"
        )
    ev = check_real_array(getattr(spectrum, "eigenvalues", None), "within_spectrum eigenvalues")
    U = np.atleast_2d(np.asarray(vecs, dtype=float))
    if U.shape[0] != P:
        raise ShapeError(f"within_spectrum eigenvectors have {U.shape[0]} rows; P = {P}")
    order = np.argsort(ev)[::-1]
    return U[:, order], float(ev[order[0]])


def _methods(method: Any) -> list[str]:
    if isinstance(method, str):
        if method == "all":
            return list(_METHODS)
        items: Sequence[Any] = [method]
    elif isinstance(method, (list, tuple)) and method:
        items = method
    else:
        raise InvalidInputError(
            f"method must be 'all', one of {_METHODS} or a non-empty list of them; got {method!r}"
        )
    out = []
    for m in items:
        if m not in _METHODS:
            raise InvalidInputError(
                f"method must be 'all' or one of {', '.join(map(repr, _METHODS))}; got {m!r}"
            )
        if m not in out:
            out.append(m)
    return out



# ============================================================================= predict
def predict_outliers(
    structure: ClassStructure,
    bulk_fit: MarchenkoPasturFit | MarchenkoPastur | tuple[float, float] | None = None,
    *,
    inputs: OutlierInputs | None = None,
    observed: Spectrum | Any = None,
    within_density: SpectralDensity | None = None,
    within_spectrum: Spectrum | None = None,
    ritz: RitzResult | None = None,
    trace: TraceEstimate | float | None = None,
    method: Literal["all"] | PredictionMethod | Sequence[PredictionMethod] = "all",
    k: int | None = None,
) -> OutlierPrediction:
    r"""Predict the outliers of G from its class structure and compare them with what was measured.

    The spikes are the nonzero eigenvalues :math:`\ell_k` of :math:`G_{\rm cm}`
    (exact, from the :math:`C^2\times C^2` Gram matrix of the structure). The
    predictors (module docstring; docs/theory.md 5, 5b) each need an input:

    * ``"iid"``, ``"additive"``: the MP bulk, ``bulk_fit`` or, if None, the
      moments fit to ``within_density`` with the outliers excluded
      (:func:`~gn_theory.rmt.fit_marchenko_pastur` on the quadrature,
      ``exclude_outliers="auto"``: the recipe of docs/theory.md section 4.5; a
      computation, no products). Whatever the bulk, its upper edge must lie below
      the observed eigenvalues compared (the *edge rule*), or the result says the
      bulk failed; the verdicts under the alternative bulk (nothing excluded, and
      the default when ``bulk_fit`` is given) are reported beside it
      (:attr:`OutlierPrediction.bulk_alternatives`);
    * ``"bgn"``: ``within_density``, the SLQ quadrature of :math:`G_{\rm w}`;
    * ``"subspace"``: ``ritz``, Rayleigh-Ritz of G on the class-mean span,
      reported as two rows, ``"subspace"`` (Ritz values) and
      ``"subspace_corrected"`` (:math:`\theta_k + \|r_k\|^2/\theta_k`).

    This function never measures (no torch, no products with an operator): the
    measured inputs come as ``inputs`` (an :class:`~gn_theory.results.OutlierInputs`
    from :func:`gn_theory.decomposition.measure_outlier_inputs`) or as the keywords
    of the same names. A predictor or diagnostic whose input is missing is skipped
    and the reason recorded in :attr:`OutlierPrediction.skipped`; naming it in
    ``method`` makes the omission an error.

    Parameters
    ----------
    structure : ClassStructure
        From :func:`gn_theory.decomposition.class_structure` or
        ``ClassStructure.load`` (data only).
    bulk_fit : MarchenkoPasturFit, MarchenkoPastur, (ratio, scale) or None
        The MP bulk for ``"iid"``/``"additive"``: anything with ``.ratio`` and
        ``.scale`` (its ``ks_statistic`` and ``third_moment_ratio`` are read if
        present) or a ``(ratio, scale)`` pair. None: fitted to ``within_density``.
    inputs : OutlierInputs, optional
        The measured inputs (``observed``, ``within_density``, ``within_spectrum``,
        ``ritz``); a keyword fills a field the inputs lack (giving both is an error).
    observed : Spectrum or array_like, optional
        Top eigenvalues of G (any order; sorted descending) to compare with.
    within_density : SpectralDensity, optional
        SLQ quadrature of :math:`G_{\rm w}` (``nodes``, ``weights`` and ``bounds``).
    within_spectrum : Spectrum, optional
        Top eigenpairs of :math:`G_{\rm w}` with eigenvectors, for the isotropy diagnostic.
    ritz : RitzResult, optional
        :func:`~gn_theory.rmt.subspace_ritz` of G on the class-mean span, for ``"subspace"``.
    trace : TraceEstimate or float, optional
        :math:`\operatorname{tr}G` (exact from ``measure_outlier_inputs``) for the
        share of :math:`G_{\rm cm}`; without it the share uses the SLQ trace of
        :math:`G_{\rm w}`, with a 95 % interval from the spread of its probes.
    method : {"all", "iid", "additive", "bgn", "subspace"} or list of them
        Predictors to run. ``"all"`` runs those the inputs allow and records the
        others under :attr:`OutlierPrediction.skipped`; naming one whose input is
        missing raises.
    k : int, optional
        Number of outliers predicted (default all nonzero eig(:math:`G_{\rm cm}`),
        at most :math:`C^2`; it cannot exceed that count).

    Returns
    -------
    OutlierPrediction
        Observed and predicted positions descending (largest first).

    Raises
    ------
    InvalidInputError
        Not a class structure or not an ``OutlierInputs``; an input given twice;
        bad ``bulk_fit`` (no ``.ratio``/``.scale``, non-positive or NaN values);
        unknown method, or a named method whose input is missing; ``k`` out of
        range; observed eigenvalues that are NaN, infinite or negative;
        ``observed="compute"`` (measure with ``measure_outlier_inputs`` instead);
        a ``within_density`` without nodes and weights, a ``within_spectrum``
        without eigenvectors, or Ritz values fewer than ``k``.
    ShapeError
        Eigenvectors or a Ritz basis whose dimension is not the structure's P.

    Notes
    -----
    The diagnostics (docs/theory.md 5b) say which assumption broke: the share of the
    energy of the top eigenvectors of :math:`G_{\rm w}` inside the class-mean
    span versus the random baseline dim/P (isotropy), the third-moment ratio
    and KS statistic of the bulk (MP), and :math:`\operatorname{tr}G_{\rm cm}
    /\operatorname{tr}G`.

    Examples
    --------
    Measure where the model is, compare anywhere (``structure`` and ``inputs``
    may be loaded from files)::

        from gn_theory.decomposition import measure_outlier_inputs
        inputs = measure_outlier_inputs(G, structure)
        pred = predict_outliers(structure, inputs=inputs)
        print(pred.summary())

    Without measured inputs only the MP formulas run, on a given bulk
    (``predict_outliers(structure, (ratio, scale))``); the rest is skipped and
    listed in ``pred.skipped``.
    """
    _check_structure(structure)
    methods = _methods(method)
    explicit = not (isinstance(method, str) and method == "all")
    got = _gather(inputs, {"observed": observed, "within_density": within_density,
                           "within_spectrum": within_spectrum, "ritz": ritz, "trace": trace})
    skipped: list[str] = []

    def unavailable(what: str, reason: str) -> None:
        if explicit and what in methods:
            raise InvalidInputError(f"method {what!r} needs {reason}")
        skipped.append(f"{what} (needs {reason})")

    ell = check_real_array(structure.eigenvalues("G_cm"), "eigenvalues of G_cm", nonnegative=True)
    r = ell.size
    k = r if k is None else check_positive_int("k", k)
    if k > r:
        raise InvalidInputError(
            f"G_cm has {r} nonzero eigenvalues (spikes); cannot predict k={k} outliers"
        )
    P = int(structure.num_params)
    obs = _observed(got["observed"])

    # -- the bulk: given, or the moments fit to the quadrature of G_w, outliers excluded -------
    bulk: MarchenkoPasturFit | None = bulk_fit if isinstance(bulk_fit, MarchenkoPasturFit) else None
    ratio = scale = ks = m3_ratio = math.nan
    bulk_source = m3_source = ""
    nodes = weights = None
    b_edge = math.nan
    n_cmp = 0 if obs is None else min(k, obs.size)
    alternatives: list[dict[str, Any]] = []
    fits: dict[str, MarchenkoPasturFit] = {}
    if got["within_density"] is not None:
        nodes, weights, b_edge = _quadrature(got["within_density"])
        for label, exclude in _BULK_RULES:
            fits[label] = _fit_bulk(got["within_density"], exclude)
    if bulk_fit is not None:
        ratio, scale, ks, m3_ratio, bulk_source = _bulk_params(bulk_fit)
        m3_source = "from bulk_fit" if math.isfinite(m3_ratio) else ""
        alternatives.append(_alternative("given bulk_fit", ratio, scale, "", ell[:k], obs, n_cmp))
    elif fits:
        bulk = fits[_BULK_RULES[0][0]]
        why = _unusable(bulk)
        if not why:
            ratio, scale = bulk.ratio, bulk.scale
            ks, m3_ratio = bulk.ks_statistic, bulk.third_moment_ratio
            bulk_source = ("moments fit to the SLQ quadrature of G_w, outliers excluded "
                           "(docs/theory.md 4.5)")
            m3_source = f"SLQ of G_w, {bulk.third_moment_frame}"
    for label, fit in fits.items():
        alternatives.append(_alternative(label, fit.ratio, fit.scale, _unusable(fit), ell[:k],
                                         obs, n_cmp))
    rows: list[tuple[str, OutlierFormula]] = []
    for m in ("iid", "additive"):
        if m not in methods:
            continue
        if math.isfinite(ratio):
            f = iid_noise_outliers if m == "iid" else additive_outliers
            rows.append((m, f(ell[:k], ratio, scale)))
        elif bulk is not None and _unusable(bulk):
            unavailable(m, f"an MP bulk: the moments fit to within_density failed ({_unusable(bulk)}); "
                           "pass bulk_fit (a MarchenkoPasturFit or (ratio, scale))")
        else:
            unavailable(m, "an MP bulk: pass bulk_fit (a MarchenkoPasturFit or (ratio, scale)) or "
                           f"within_density (the SLQ quadrature of G_w; {_MEASURE})")
    if "bgn" in methods:
        if nodes is not None:
            G = empirical_stieltjes(nodes, weights)
            rows.append(("bgn", bgn_outliers(ell[:k], G, upper_edge=b_edge)))
        else:
            unavailable("bgn", f"within_density, the SLQ quadrature of G_w ({_MEASURE})")

    # -- diagnostics: the class-mean span against the top eigenvectors of G_w ------------------
    Q = np.asarray(structure.class_mean_basis(), dtype=float)
    diag: dict[str, Any] = {
        "span_dim": int(Q.shape[1]),
        "random_baseline": float(Q.shape[1] / P),
        "within_energy_in_span": math.nan,
        "num_within_vectors": 0,
        "within_top_eigenvalue": math.nan,
        "third_moment_ratio": float(m3_ratio),
        "third_moment_source": m3_source,
        "ks_statistic": float(ks),
    }
    diag["within_top_energy_in_span"] = math.nan
    if got["within_spectrum"] is not None:
        U, top_w = _top_vectors(got["within_spectrum"], P)
        diag["within_energy_in_span"] = float(min(1.0, np.sum((Q.T @ U) ** 2) / U.shape[1]))
        diag["within_top_energy_in_span"] = float(min(1.0, np.sum((Q.T @ U[:, 0]) ** 2)))
        diag["num_within_vectors"] = int(U.shape[1])
        diag["within_top_eigenvalue"] = top_w
    else:
        skipped.append(f"isotropy diagnostic (needs within_spectrum, the top eigenvectors of G_w; "
                       f"{_MEASURE})")
    diag.update(_trace_share(float(np.trace(structure.gram("G_cm"))), got["trace"], nodes,
                             weights, P))
    diag["bulk_edge_ok"] = alternatives[0]["edge_ok"] if alternatives else None
    diag["bgn_at_edge"] = 0
    diag["bgn_edge_over_bulk_edge"] = math.nan
    for name, f in rows:
        if name == "bgn":
            near = np.abs(np.asarray(f.predicted) - f.edge) <= AT_EDGE_RTOL * abs(f.edge)
            diag["bgn_at_edge"] = int(np.sum(near & np.asarray(f.above, bool)))
            robust = fits.get(_BULK_RULES[0][0])
            if robust is not None and robust.upper_edge > 0:
                diag["bgn_edge_over_bulk_edge"] = float(f.edge / robust.upper_edge)

    # -- the subspace rows: measured Ritz values of G on the class-mean span -------------------
    ritz_res = None
    if "subspace" in methods:
        rr = got["ritz"]
        if rr is None:
            unavailable("subspace", "ritz, Rayleigh-Ritz of G on the class-mean span (products "
                        f"with G, which predict_outliers never does; {_MEASURE})")
        else:
            values = check_real_array(rr.values, "ritz values")
            if values.size < k:
                raise InvalidInputError(f"ritz has {values.size} Ritz values; k = {k} are needed")
            basis = getattr(rr, "basis", None)
            if basis is not None and np.shape(basis)[0] != P:
                raise ShapeError(f"the Ritz basis has {np.shape(basis)[0]} rows; P = {P}")
            edge = diag["within_top_eigenvalue"]
            corrected = check_real_array(rr.corrected, "corrected Ritz values")
            for name, vals in (("subspace", values[:k]), ("subspace_corrected", corrected[:k])):
                above = vals > edge if math.isfinite(edge) else np.ones(k, bool)
                rows.append((name, OutlierFormula(vals, above, np.full(k, math.nan), math.nan,
                                                  float(edge), {"predictor": name})))
            ritz_res = np.asarray(rr.residual_norms, dtype=float)[:k].copy()

    if not rows:
        raise InvalidInputError("no predictor could run: " + "; ".join(skipped))

    names = [n for n, _ in rows]
    predicted = np.vstack([f.predicted for _, f in rows])
    rel = None
    if obs is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = (predicted[:, :n_cmp] - obs[None, :n_cmp]) / obs[None, :n_cmp]
    settings: dict[str, Any] = {
        "k": k,
        "methods_requested": methods,
        "inputs_given": [name for name in _INPUT_FIELDS if got[name] is not None],
    }
    if inputs is not None:
        settings["measurement"] = dict(getattr(inputs, "settings", {}) or {})
    return OutlierPrediction(
        methods=names,
        predicted=predicted,
        above=np.vstack([np.asarray(f.above, bool) for _, f in rows]),
        overlaps=np.vstack([f.overlap for _, f in rows]),
        thresholds=np.array([f.threshold for _, f in rows], dtype=float),
        edges=np.array([f.edge for _, f in rows], dtype=float),
        class_mean_eigenvalues=ell,
        observed=obs,
        relative_errors=rel,
        ritz_residual_norms=ritz_res,
        ratio=float(ratio),
        scale=float(scale),
        bulk=bulk,
        bulk_source=bulk_source,
        within_nodes=nodes,
        within_weights=weights,
        within_upper_edge=float(b_edge),
        diagnostics=diag,
        num_params=P,
        num_classes=int(structure.num_classes),
        num_samples=int(getattr(structure, "num_samples", 0)),
        skipped=skipped,
        settings=settings,
        bulk_alternatives=alternatives,
    )
