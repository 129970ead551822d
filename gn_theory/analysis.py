r"""One call from a trained classifier to the theory's verdict: measure -> decompose -> fit.

:func:`analyze` runs the whole analysis on a trained model and returns an
:class:`Analysis`; each step is also a function of its own:

* :func:`measure_model` (torch): the top of H, G and R and the smallest of H
  (Lanczos), SLQ densities of H and G, and the check H = G + R on random probes
  -> :class:`Measurement`;
* :func:`decompose_model` (torch): the class structure of G
  (:func:`~gn_theory.decomposition.class_structure`), the identities
  G = G_cm + G_w and G_cm = G_0 + G_1 + G_2, and the measured inputs of outlier
  prediction (:func:`~gn_theory.decomposition.measure_outlier_inputs`)
  -> :class:`Decomposition`;
* :func:`fit_theory` (numpy/scipy only): the Marchenko-Pastur bulk fit and the
  spiked (BBP) fit, the observed outlier counts with the rule used
  (:func:`~gn_theory.spectra.outliers`), and every outlier predictor
  (:func:`~gn_theory.explain.predict_outliers`) -> :class:`TheoryFit`. It also
  takes a spectrum measured by another tool (eigenvalues, or SLQ nodes and weights).

The results are data only and torch-free: they save and load anywhere.
:meth:`Analysis.save` writes each stage's result as its own ``.npz`` + ``.json``
pair inside a directory (``training``, ``measurement``, ``decomposition``,
``fit``) plus ``summary.json``, the numbers a report quotes
(:meth:`Analysis.summary_dict`); :meth:`Analysis.load` reads them back.

This module imports no torch: the measuring functions import it when called
(deferred, so that the analysis half runs where torch is absent). Eigenvalues,
Ritz values and outlier positions are **descending** (largest first) everywhere.

Examples
--------
>>> import numpy as np
>>> from gn_theory.analysis import fit_theory
>>> ev = np.r_[np.random.default_rng(0).uniform(0.5, 1.5, 400), 9.0, 12.0]
>>> theory = fit_theory(ev, num_classes=2)
>>> theory.outliers.count, theory.outliers.values.tolist()
(2, [12.0, 9.0])
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from ._checks import check_choice, check_positive_int, check_seed
from ._format import fmt_values
from .exceptions import ConvergenceWarning, InvalidInputError, ResultFileError
from .explain import OutlierPrediction, predict_outliers
from .results import (
    ClassStructure,
    OutlierInputs,
    Result,
    SpectralDensity,
    Spectrum,
    Summary,
    TrainingLog,
    atomic_write_bytes,
    load_result,
    provenance,
)
from .results.spectra import spectral_measure
from .rmt import (
    MarchenkoPasturFit,
    OutlierCount,
    SpikedModelFit,
    count_outliers,
    fit_marchenko_pastur,
    fit_spiked_model,
)

__all__ = [
    "analyze",
    "measure_model",
    "decompose_model",
    "fit_theory",
    "Analysis",
    "Measurement",
    "Decomposition",
    "TheoryFit",
    "summary_dict",
    "FILES",
    "SUMMARY_FILE",
    "SUMMARY_FORMAT",
]

#: The stem of each stage's result pair inside an analysis directory.
FILES: dict[str, str] = {
    "training": "training",
    "measurement": "measurement",
    "decomposition": "decomposition",
    "theory": "fit",
}
#: The numbers of a run, in plain JSON (what the report quotes).
SUMMARY_FILE = "summary.json"
#: Format tag and version of ``summary.json``.
SUMMARY_FORMAT = "gn_theory.summary"
SUMMARY_VERSION = 1

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# ============================================================================ results
@dataclass(repr=False)
class Measurement(Result):
    r"""What :func:`measure_model` measured: extreme eigenvalues, densities, H = G + R.

    Attributes
    ----------
    H_top, G_top, R_top : Spectrum or None
        The ``top_k`` largest eigenvalues of H and G and the ``min(top_k, C)``
        largest of R (Lanczos), descending.
    H_bottom : Spectrum or None
        The ``bottom_k`` smallest eigenvalues of H (most negative last), with
        convergence flags (the negative end of a trained Hessian converges slowly;
        the run has a fixed budget).
    H_density, G_density : SpectralDensity or None
        Stochastic Lanczos quadrature of H and of G.
    identity_errors : numpy.ndarray
        Per random probe v: :math:`\|Hv - Gv - Rv\| / \|Hv\|`.
    loss_value, accuracy : float
        Mean loss and accuracy of the model on the data at the measured parameters.
    num_params, num_samples, num_classes : int
        P, N, C.
    num_matvecs : int
        Operator-vector products spent.
    seconds : dict
        Wall time of each measurement.
    settings : dict
        The options (``top_k``, ``bottom_k``, ``num_probes``, ``num_steps``, seed,
        dtype, device, loss) and the ``fingerprint`` of the Hessian operator.
    """

    H_top: Spectrum | None
    G_top: Spectrum | None
    R_top: Spectrum | None
    H_bottom: Spectrum | None
    H_density: SpectralDensity | None
    G_density: SpectralDensity | None
    identity_errors: np.ndarray
    loss_value: float
    accuracy: float
    num_params: int
    num_samples: int
    num_classes: int
    num_matvecs: int = 0
    seconds: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def identity_error(self) -> float:
        """The largest relative error of H v = G v + R v over the probes (NaN if none)."""
        e = np.asarray(self.identity_errors, dtype=float)
        return float(e.max()) if e.size else math.nan

    def summary(self) -> Summary:
        """A table of the measured eigenvalues and checks.

        Returns
        -------
        Summary
        """
        rows = [("P, N, C", f"{self.num_params}, {self.num_samples}, {self.num_classes}"),
                ("loss, accuracy", f"{self.loss_value:.6g}, {self.accuracy:.4f}")]
        for name in ("H_top", "G_top", "R_top", "H_bottom"):
            spec = getattr(self, name)
            if spec is not None:
                rows.append((name.replace("_", " "), fmt_values(spec.eigenvalues, 8)
                             + f" ({spec.num_converged}/{len(spec)} converged)"))
        for name in ("H_density", "G_density"):
            d = getattr(self, name)
            if d is not None:
                lo, hi = d.spectral_range
                rows.append((name.replace("_", " "),
                             f"{d.num_probes} probes x {d.num_steps} steps, range [{lo:.4g}, {hi:.4g}]"))
        rows.append(("||Hv - Gv - Rv|| / ||Hv||", f"{self.identity_error:.3g} (max over "
                     f"{np.size(self.identity_errors)} probes)"))
        rows.append(("operator products", str(self.num_matvecs)))
        rows.append(("seconds", ", ".join(f"{k} {v:.2f}" for k, v in self.seconds.items())))
        notes = ["Eigenvalues are descending (largest first); H bottom lists the smallest, the "
                 "most negative last."]
        if self.H_bottom is not None and not self.H_bottom.all_converged:
            notes.append(f"{len(self.H_bottom) - self.H_bottom.num_converged} of the smallest "
                         "eigenvalues of H did not converge within the budget: treat them as "
                         "estimates.")
        return Summary("Measured spectra of H, G and R", rows, notes)


@dataclass(repr=False)
class Decomposition(Result):
    """What :func:`decompose_model` measured: the class structure of G and its uses.

    Attributes
    ----------
    structure : ClassStructure
        Class means and the exact spectra of G_cm, G_0, G_1, G_2.
    inputs : OutlierInputs or None
        The measured inputs of outlier prediction (top of G, SLQ and top
        eigenvectors of G_w, Ritz values on the class-mean span).
    identity_errors : dict
        ``{"G = G_cm + G_w": ..., "G_cm = G_0 + G_1 + G_2": ...}`` relative errors
        on random probes (empty when the C^2 class means were skipped).
    seconds : dict
        Wall time of each measurement.
    settings : dict
        The options used.
    """

    structure: ClassStructure
    inputs: OutlierInputs | None = None
    identity_errors: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def num_matvecs(self) -> int:
        """Products spent (the class means' VJPs and the outlier inputs' products)."""
        return int(self.structure.num_matvecs) + (
            0 if self.inputs is None else int(self.inputs.num_matvecs))

    def summary(self) -> Summary:
        """A table of the class structure and the identities.

        Returns
        -------
        Summary
        """
        s = self.structure
        rows = [("P, N, C", f"{s.num_params}, {s.num_samples}, {s.num_classes}")]
        for part in ("G_1", "G_cm"):
            try:
                rows.append((f"eig {part}", fmt_values(s.eigenvalues(part), 8)))
            except InvalidInputError as exc:
                rows.append((f"eig {part}", f"skipped ({exc})"))
        for k, v in self.identity_errors.items():
            rows.append((k, f"{v:.3g}"))
        if self.inputs is not None and self.inputs.within_spectrum is not None:
            rows.append(("top eig G_w", fmt_values(self.inputs.within_spectrum.eigenvalues, 6)))
        rows.append(("operator products", str(self.num_matvecs)))
        notes = ["Eigenvalues are descending (largest first)."] + [str(x) for x in s.skipped]
        return Summary("Class structure of G", rows, notes)


@dataclass(repr=False)
class TheoryFit(Result):
    """What :func:`fit_theory` found: bulk fits, outlier counts and predictions.

    Attributes
    ----------
    mp_fit : MarchenkoPasturFit or None
        Marchenko-Pastur law fitted to :attr:`fitted_to` (outliers excluded).
    spiked_fit : SpikedModelFit or None
        MP bulk plus BBP outliers fitted to the same spectrum.
    prediction : OutlierPrediction or None
        Every outlier predictor against the observed top of G (needs a class structure).
    outliers : OutlierCount or None
        Observed outliers of the main spectrum (the top of H, or the given
        spectrum) by :func:`~gn_theory.rmt.count_outliers`: the MP-edge rule when
        the bulk fit is credible, else the log-gap rule (the rule used is recorded).
    outliers_G : OutlierCount or None
        The same count on the top of G.
    spectrum : Spectrum, SpectralDensity or None
        The spectrum from another tool that was fitted (``None`` for a measurement).
    fitted_to : str
        What the fits were fitted to, in words.
    spectrum_name : str
        The operator whose outliers :attr:`outliers` counts (``"H"``, or the
        name of a given spectrum).
    num_classes : int
        C (0 if unknown).
    skipped : list of str
        What could not run, and why.
    settings : dict
        The options used.
    """

    mp_fit: MarchenkoPasturFit | None = None
    spiked_fit: SpikedModelFit | None = None
    prediction: OutlierPrediction | None = None
    outliers: OutlierCount | None = None
    outliers_G: OutlierCount | None = None
    spectrum: Spectrum | SpectralDensity | None = None
    fitted_to: str = ""
    spectrum_name: str = "H"
    num_classes: int = 0
    skipped: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def summary(self) -> Summary:
        """A table of the fits, counts and the best predictor.

        Returns
        -------
        Summary
        """
        rows: list[tuple[str, str]] = []
        if self.outliers is not None:
            rows.append((f"outliers of {self.spectrum_name} ({self.outliers.rule} rule)",
                         f"{self.outliers.count}: {fmt_values(self.outliers.values)}"))
        if self.outliers_G is not None:
            rows.append((f"outliers of G ({self.outliers_G.rule} rule)",
                         f"{self.outliers_G.count}: {fmt_values(self.outliers_G.values)}"))
        if self.mp_fit is not None:
            f = self.mp_fit
            rows.append(("MP fit", f"scale {f.scale:.4g}, ratio {f.ratio:.4g}, KS "
                         f"{f.ks_statistic:.3g} ({self.fitted_to})"))
        if self.spiked_fit is not None:
            rows.append(("spiked fit", f"{self.spiked_fit.num_spikes} spikes above the BBP "
                         f"threshold {self.spiked_fit.threshold:.4g}"))
        if self.prediction is not None:
            for m, e in self.prediction.mean_abs_errors.items():
                rows.append((f"predictor {m}", f"mean |relative error| {100 * e:.1f}%"))
        notes = [f"Skipped: {s}." for s in self.skipped]
        return Summary("Theory fitted to the measured spectrum", rows, notes)


@dataclass(repr=False)
class Analysis(Result):
    """The stages of one analysis: training log, measurement, decomposition, theory.

    Built by :func:`analyze` (or from a run directory by :meth:`load`). Saved by
    :meth:`save` as one pair per stage plus ``summary.json`` in a directory.

    Attributes
    ----------
    measurement : Measurement or None
    decomposition : Decomposition or None
    theory : TheoryFit or None
    training : TrainingLog or None
    settings : dict
        The options of the whole analysis (and of the run that produced it).
    """

    measurement: Measurement | None = None
    decomposition: Decomposition | None = None
    theory: TheoryFit | None = None
    training: TrainingLog | None = None
    settings: dict = field(default_factory=dict)

    def _first(self, name: str, sources: tuple[Any, ...]) -> int | None:
        """``name`` from the first of ``sources`` (stage results) that knows it."""
        for obj in sources:
            if obj is not None and getattr(obj, name, None):
                return int(getattr(obj, name))
        return None

    @property
    def _structure(self) -> Any:
        return self.decomposition and self.decomposition.structure

    @property
    def num_params(self) -> int | None:
        """P, from the first stage that knows it."""
        return self._first("num_params", (self.measurement, self._structure, self.training))

    @property
    def num_classes(self) -> int | None:
        """C, from the first stage that knows it."""
        return self._first("num_classes", (self.measurement, self._structure, self.theory))

    @property
    def num_samples(self) -> int | None:
        """N, from the first stage that knows it."""
        return self._first("num_samples", (self.measurement, self._structure, self.training))

    def summary_dict(self) -> dict[str, Any]:
        """The numbers of the analysis as plain JSON data (what ``summary.json`` holds).

        Returns
        -------
        dict
            See :func:`summary_dict`.
        """
        return summary_dict(self)

    def summary(self) -> Summary:
        """A table of the headline numbers.

        Returns
        -------
        Summary
        """
        d = self.summary_dict()
        rows = [("P, N, C", f"{d['num_params']}, {d['num_samples']}, {d['num_classes']}")]
        if d["training"]:
            t = d["training"]
            rows.append(("training loss, accuracy", f"{t['loss']:.4g}, {t['accuracy']:.4f}"))
        for name, vals in d["top_eigenvalues"].items():
            rows.append((f"top eig {name}", fmt_values(np.array(vals, dtype=float), 6)))
        for name, err in d["identity"].items():
            rows.append((name, f"{err:.3g}" if err is not None else "-"))
        o = d["outliers"]
        if o:
            rows.append((f"outliers of {o['operator']} ({o['rule']})", str(o["count"])))
        p = d["prediction"]
        if p:
            for m, row in p["predictors"].items():
                e = row["mean_abs_relative_error"]
                rows.append((f"predictor {m}", "-" if e is None else f"{100 * e:.1f}% mean |rel err|"))
        notes = [f"Skipped: {s}." for s in d["skipped"]]
        return Summary("gn_theory analysis", rows, notes)

    # -- files ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:  # type: ignore[override]
        """Write each stage's result as its own pair, and ``summary.json``, into a directory.

        Parameters
        ----------
        path : str or os.PathLike
            The directory (created if missing). Existing pairs of the same names
            are replaced, each atomically (old or new, never a mix).

        Returns
        -------
        pathlib.Path
            The path of ``summary.json``.

        Raises
        ------
        InvalidInputError
            If a field cannot be stored (that pair is not written).
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for attr, stem in FILES.items():
            obj = getattr(self, attr)
            if obj is not None:
                obj.save(folder / stem)
        return write_summary(folder, self.summary_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Analysis:  # type: ignore[override]
        """Read an analysis directory written by :meth:`save` (or by the CLI's stages).

        Parameters
        ----------
        path : str or os.PathLike
            The directory; the stages whose pairs are absent are ``None``.

        Returns
        -------
        Analysis

        Raises
        ------
        ResultFileError
            No such directory, no stage result in it, or a pair that is corrupt or
            of the wrong type.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise ResultFileError(f"no analysis directory at {str(folder)!r}")
        types = {"training": TrainingLog, "measurement": Measurement,
                 "decomposition": Decomposition, "theory": TheoryFit}
        parts: dict[str, Any] = {}
        for attr, stem in FILES.items():
            if (folder / f"{stem}.json").exists():
                parts[attr] = types[attr].load(folder / stem)
        if not parts:
            raise ResultFileError(
                f"{str(folder)!r} holds no analysis results (none of "
                f"{', '.join(s + '.json' for s in FILES.values())})"
            )
        settings: dict[str, Any] = {}
        summary = folder / SUMMARY_FILE
        if summary.exists():
            settings = dict(read_summary(summary).get("settings") or {})
        return cls(settings=settings, **parts)


# ============================================================================ summary.json
def _num(x: Any) -> float | None:
    """A JSON number: finite floats as they are, NaN and inf as None."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _nums(values: Any) -> list[float | None]:
    if values is None:
        return []
    return [_num(v) for v in np.asarray(values, dtype=float).ravel()]


def _outliers_dict(o: OutlierCount | None, operator: str) -> dict | None:
    if o is None:
        return None
    ratios = np.asarray(o.gap_ratios, dtype=float)
    j = int(np.argmax(ratios)) if ratios.size else -1
    return {
        "operator": operator,
        "rule": o.rule,
        "count": int(o.count),
        "positions": _nums(o.values),
        "counts": {k: int(v) for k, v in o.counts.items()},
        "edges": {k: _num(v) for k, v in o.edges.items()},
        "min_ratio": _num(o.settings.get("min_ratio")),
        "largest_gap_ratio": _num(o.gap_ratio),
        "largest_gap_rank": j + 1 if j >= 0 else None,
        "num_candidates": int(ratios.size + 1),
        "bulk_credible": bool(o.bulk_credible),
        "bulk_reason": o.bulk_reason,
        "num_classes": int(o.num_classes) or None,
    }


def _fit_dict(fit: MarchenkoPasturFit, fitted_to: str) -> dict[str, Any]:
    ci = fit.conf_int()
    names = list(fit.param_names)
    return {
        "fitted_to": fitted_to,
        "method": fit.method,
        "param_names": names,
        "params": {n: _num(v) for n, v in zip(names, fit.params)},
        "bse": {n: _num(v) for n, v in zip(names, fit.bse)},
        "conf_int": {n: [_num(ci[i, 0]), _num(ci[i, 1])] for i, n in enumerate(names)},
        "alpha": _num(fit.alpha),
        "ratio_source": fit.ratio_source,
        "upper_edge": _num(fit.upper_edge),
        "lower_edge": _num(fit.lower_edge),
        "ks_statistic": _num(fit.ks_statistic),
        "ks_pvalue": _num(fit.ks_pvalue),
        "third_moment_ratio": _num(fit.third_moment_ratio),
        "n_total": int(fit.n_total),
        "n_bulk": int(fit.n_bulk),
        "n_outliers": int(fit.n_outliers),
        "n_zero": int(fit.n_zero),
        "n_negative": int(fit.n_negative),
        "num_bootstrap": int(fit.num_bootstrap),
        "weighted": bool(fit.weighted),
        "converged": bool(fit.converged),
        "message": fit.message,
    }


_LIST_CAP = 30


def _spiked_dict(sp: SpikedModelFit) -> dict[str, Any]:
    n = int(np.size(sp.outliers))
    return {
        "model": sp.model,
        "weighted": bool(sp.bulk.weighted),
        "num_outliers": n,
        "num_spikes": int(sp.num_spikes),
        "threshold": _num(sp.threshold),
        "separation": _num(sp.separation),
        "outliers": _nums(np.asarray(sp.outliers)[:_LIST_CAP]),
        "spikes": _nums(np.asarray(sp.spikes)[:_LIST_CAP]),
        "spikes_bse": _nums(np.asarray(sp.spikes_bse)[:_LIST_CAP]),
        "listed": min(n, _LIST_CAP),
    }


def _prediction_dict(p: OutlierPrediction) -> dict[str, Any]:
    errs = p.mean_abs_errors
    rows = {}
    for i, m in enumerate(p.methods):
        rel = None if p.relative_errors is None else _nums(p.relative_errors[i])
        rows[m] = {
            "predicted": _nums(p.predicted[i]),
            "above": [bool(a) for a in p.above[i]],
            "num_above": int(np.sum(p.above[i])),
            "relative_errors": rel,
            "mean_abs_relative_error": _num(errs.get(m)),
        }
    diag = {k: (int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                else _num(v) if isinstance(v, (float, np.floating)) else v)
            for k, v in p.diagnostics.items()}
    return {
        "k": int(p.k),
        "operator": "G",
        "observed": _nums(p.observed),
        "class_mean_eigenvalues": _nums(p.class_mean_eigenvalues[:_LIST_CAP]),
        "num_class_mean_eigenvalues": int(np.size(p.class_mean_eigenvalues)),
        "bulk_source": p.bulk_source,
        "bulk_ratio": _num(p.ratio),
        "bulk_scale": _num(p.scale),
        "predictors": rows,
        "best": p.best_method,
        "diagnostics": diag,
        "skipped": [str(s) for s in p.skipped],
    }


def _json_safe(obj: Any) -> Any:
    """Settings made plain JSON (numpy scalars to numbers, non-finite to None, tuples to lists)."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_json_safe(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def summary_dict(analysis: Analysis) -> dict[str, Any]:
    """The numbers of an analysis as plain JSON data: the content of ``summary.json``.

    Parameters
    ----------
    analysis : Analysis

    Returns
    -------
    dict
        Keys: ``format``, ``schema_version``, ``num_params``, ``num_classes``,
        ``num_samples``; ``training`` (``loss``, ``accuracy``, ``num_steps``,
        ``stop_reason``, ... of the last logged step) and ``loss`` / ``accuracy``
        at the measured parameters; ``top_eigenvalues`` and ``smallest_eigenvalues``
        by operator (descending); ``converged`` flags; ``identity`` (relative
        errors of H = G + R, G = G_cm + G_w, G_cm = G_0 + G_1 + G_2);
        ``outliers`` (count, positions, the rule and its numbers), ``outliers_G``;
        ``class_mean_eigenvalues``; ``prediction`` (each
        predictor's predicted positions, relative errors, mean |relative error|,
        the observed top of G, the diagnostics); ``mp_fit`` (params, bse,
        conf_int, alpha, KS statistic and p-value, third-moment ratio, edges,
        counts); ``spiked_fit``; ``densities`` (what was measured); ``settings``,
        ``versions``, ``seconds``, ``skipped``. A value that was not measured is
        ``None`` (JSON ``null``); so is a non-finite number.
    """
    m, dec, th, tr = analysis.measurement, analysis.decomposition, analysis.theory, analysis.training
    out: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "schema_version": SUMMARY_VERSION,
        "num_params": analysis.num_params,
        "num_classes": analysis.num_classes,
        "num_samples": analysis.num_samples,
    }
    out["training"] = None if tr is None else {
        "loss": _num(tr.final_loss),
        "accuracy": _num(tr.final_accuracy),
        "grad_norm": _num(tr.final_grad_norm),
        "eval_loss": _num(tr.final_eval_loss) if tr.has_eval else None,
        "eval_accuracy": _num(tr.final_eval_accuracy) if tr.has_eval else None,
        "num_steps": int(tr.num_steps),
        "stop_reason": tr.stop_reason,
        "optimizer": tr.settings.get("optimizer"),
        "seconds": _num(tr.elapsed_s),
    }
    out["loss"] = None if m is None else _num(m.loss_value)
    out["accuracy"] = None if m is None else _num(m.accuracy)
    top: dict[str, list] = {}
    bottom: dict[str, list] = {}
    converged: dict[str, bool] = {}
    if m is not None:
        for name, spec in (("H", m.H_top), ("G", m.G_top), ("R", m.R_top)):
            if spec is not None:
                top[name] = _nums(spec.eigenvalues)
                converged[name] = bool(spec.all_converged)
        if m.H_bottom is not None:
            bottom["H"] = _nums(m.H_bottom.eigenvalues)
            converged["H_bottom"] = bool(m.H_bottom.all_converged)
    out["top_eigenvalues"] = top
    out["smallest_eigenvalues"] = bottom
    out["converged"] = converged
    identity: dict[str, float | None] = {}
    if m is not None:
        identity["H = G + R"] = _num(m.identity_error)
    if dec is not None:
        identity.update({k: _num(v) for k, v in dec.identity_errors.items()})
    out["identity"] = identity
    out["identity_probes"] = None if m is None else int(np.size(m.identity_errors))
    out["dtype"] = None if m is None else m.settings.get("dtype")
    name = th.spectrum_name if th is not None else "H"
    out["outliers"] = None if th is None else _outliers_dict(th.outliers, name)
    out["outliers_G"] = None if th is None else _outliers_dict(th.outliers_G, "G")
    cme: dict[str, Any] = {}
    if dec is not None:
        for part in ("G_1", "G_cm"):
            try:
                ev = dec.structure.eigenvalues(part)
            except InvalidInputError:
                continue
            cme[part] = _nums(ev[:_LIST_CAP])
            cme[f"num_{part}"] = int(ev.size)
        if dec.inputs is not None and dec.inputs.within_spectrum is not None:
            cme["G_w_top"] = _nums(dec.inputs.within_spectrum.eigenvalues)
    out["class_mean_eigenvalues"] = cme
    out["prediction"] = (None if th is None or th.prediction is None
                         else _prediction_dict(th.prediction))
    out["mp_fit"] = None if th is None or th.mp_fit is None else _fit_dict(th.mp_fit, th.fitted_to)
    out["spiked_fit"] = (None if th is None or th.spiked_fit is None
                         else _spiked_dict(th.spiked_fit))
    densities = []
    if m is not None:
        densities = [n for n, d in (("H", m.H_density), ("G", m.G_density)) if d is not None]
    if dec is not None and dec.inputs is not None and dec.inputs.within_density is not None:
        densities.append("G_w")
    out["densities"] = densities
    settings = dict(analysis.settings)
    for key, obj in (("measure", m), ("decompose", dec), ("fit", th)):
        if obj is not None and key not in settings:
            settings[key] = {k: v for k, v in obj.settings.items() if k != "fingerprint"}
    out["settings"] = _json_safe(settings)
    out["versions"] = {k: v for k, v in provenance().items()
                       if k in ("gn_theory", "numpy", "scipy", "torch", "python", "platform")}
    for obj in (m, dec, th, tr):  # the versions that measured the results, where recorded
        prov = getattr(obj, "provenance", {}) if obj is not None else {}
        if prov.get("torch"):
            out["versions"]["torch"] = prov["torch"]
    seconds: dict[str, Any] = {}
    if tr is not None:
        seconds["train"] = _num(tr.elapsed_s)
    for key, obj in (("measure", m), ("decompose", dec)):
        if obj is not None:
            seconds[key] = {k: _num(v) for k, v in obj.seconds.items()}
    out["seconds"] = seconds
    skipped: list[str] = []
    if th is not None:
        skipped += [str(s) for s in th.skipped]
    if dec is not None:
        skipped += [str(s) for s in dec.structure.skipped]
    out["skipped"] = skipped
    return out


def write_summary(folder: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """Write ``summary.json`` into ``folder`` atomically (strict JSON: no NaN).

    Parameters
    ----------
    folder : str or os.PathLike
    summary : dict
        As :func:`summary_dict` returns.

    Returns
    -------
    pathlib.Path
    """
    text = json.dumps(summary, indent=2, allow_nan=False) + "\n"
    return atomic_write_bytes(Path(folder) / SUMMARY_FILE, text.encode())


def read_summary(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``summary.json`` (or the one in a directory), checking its format tag.

    Parameters
    ----------
    path : str or os.PathLike
        The file, or a directory holding it.

    Returns
    -------
    dict

    Raises
    ------
    ResultFileError
        Missing, unreadable, not JSON, or not a gn_theory summary.
    """
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_FILE
    if not p.is_file():
        raise ResultFileError(f"no {SUMMARY_FILE} at {str(p)!r} (run the fit stage first)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFileError(f"{str(p)!r} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != SUMMARY_FORMAT:
        raise ResultFileError(f"{str(p)!r} is not a gn_theory summary (format tag missing)")
    if int(data.get("schema_version", 0)) > SUMMARY_VERSION:
        raise ResultFileError(
            f"{str(p)!r} has summary version {data['schema_version']}, newer than this "
            f"gn_theory's ({SUMMARY_VERSION})"
        )
    return data


# ============================================================================ measuring (torch)
def _as_pair(data: Any) -> Any:
    """The training split of a Dataset, an (inputs, targets) pair, or batches concatenated."""
    import torch  # deferred: torch (this module imports without it)

    if hasattr(data, "train_inputs") and hasattr(data, "train_targets"):
        return data.train_inputs, data.train_targets
    if (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(t, torch.Tensor) for t in data)):
        return data[0], data[1]
    try:
        batches = list(data)
    except TypeError:
        raise InvalidInputError(
            "data must be a gn_theory.data.Dataset, an (inputs, targets) pair of tensors or an "
            f"iterable of such batches; got {type(data).__name__}"
        ) from None
    if not batches or not all(isinstance(b, (tuple, list)) and len(b) == 2 for b in batches):
        raise InvalidInputError("data must hold (inputs, targets) batches")
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def _resolve_dtype(dtype: Any) -> Any:
    import torch  # deferred: torch

    if dtype is None:
        return torch.float64
    if isinstance(dtype, str):
        table = {"float64": torch.float64, "double": torch.float64,
                 "float32": torch.float32, "float": torch.float32}
        check_choice("dtype", dtype, tuple(table))
        return table[dtype]
    if dtype not in (torch.float32, torch.float64):
        raise InvalidInputError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    return dtype


def _num_classes(model: Any, data: Any, pair: Any) -> int:
    import torch  # deferred: torch

    c = getattr(data, "num_classes", None)
    if c:
        return int(c)
    p = next(model.parameters())
    with torch.no_grad():
        out = model(pair[0][:1].to(device=p.device, dtype=p.dtype))
    return int(out.shape[-1])


def _evaluate_all_shards(model: Any, pair: Any, loss: str) -> dict[str, float]:
    """Loss, accuracy and N over the whole data: all shards' sums in a data-parallel run."""
    import torch  # deferred: torch (this module imports without it)

    from . import distributed
    from .training import evaluate

    n = int(pair[1].shape[0])
    ev = evaluate(model, pair, loss=loss)
    if not distributed.is_distributed():
        return {**ev, "num_samples": n}
    sums = distributed.all_reduce_sum(torch.tensor(
        [ev["loss"] * n, ev["accuracy"] * n, float(n)], dtype=torch.float64))
    total = float(sums[2])
    return {"loss": float(sums[0]) / total, "accuracy": float(sums[1]) / total,
            "num_samples": int(total)}


def _without_vectors(spectrum: Spectrum) -> Spectrum:
    """The spectrum without its eigenvectors (P x k numbers a Measurement does not store)."""
    if spectrum.eigenvectors is None:
        return spectrum
    return dataclasses.replace(spectrum, eigenvectors=None)


def _timed(seconds: dict, key: str, log: Log, what: str, fn: Callable[[], Any]) -> Any:
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        value = fn()
    for w in caught:  # re-issue, so callers see them once, after the step's log line
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    seconds[key] = time.perf_counter() - t
    log(f"{what} ({seconds[key]:.1f} s)")
    return value


def _checkpoint(checkpoint_dir: Any, step: str, resume: bool) -> dict[str, Any]:
    """The ``checkpoint=``/``resume=`` arguments of one step: ``<checkpoint_dir>/<step>.npz``."""
    if checkpoint_dir is None:
        if resume:
            raise InvalidInputError("resume=True needs checkpoint_dir= (the folder of the "
                                    "checkpoints to continue from)")
        return {}
    return {"checkpoint": Path(checkpoint_dir) / f"{step}.npz", "resume": bool(resume)}


def measure_model(
    model: Any,
    data: Any,
    *,
    loss: str = "cross_entropy",
    top_k: int | None = None,
    bottom_k: int = 3,
    num_probes: int = 2,
    num_steps: int = 80,
    identity_probes: int = 4,
    densities: tuple[str, ...] = ("H", "G"),
    seed: int = 0,
    device: Any = None,
    dtype: Any = None,
    progress: bool = False,
    log: Log | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
) -> Measurement:
    r"""Measure the spectra of H, G and R of a trained model, and check H = G + R.

    Steps (each logged): the top ``top_k`` eigenvalues of H and G and the top
    ``min(top_k, C)`` of R (:func:`~gn_theory.spectra.lanczos`), the ``bottom_k`` smallest of H
    (:func:`~gn_theory.spectra.smallest_eigenvalues`: Lanczos with the top ``top_k`` of H
    deflated, at ``tol=1e-6`` within a budget of ``max(400, 40 bottom_k)`` products;
    convergence is recorded), the densities of the operators in ``densities``
    (:func:`~gn_theory.spectra.spectral_density`: their top ``top_k`` eigenpairs exact,
    with weight 1/P, and SLQ with ``num_probes`` x ``num_steps`` on the deflated rest),
    and :math:`\|Hv - Gv - Rv\|/\|Hv\|` on ``identity_probes`` Gaussian probes. The
    top eigenvectors are used for the deflation and not stored.

    Parameters
    ----------
    model : torch.nn.Module
        The trained classifier (not modified).
    data : Dataset, (Tensor, Tensor) or iterable of batches
        The training data (a :class:`~gn_theory.data.Dataset` gives its training split).
    loss : {"cross_entropy", "mse"}, default "cross_entropy"
    top_k : int, optional
        Top eigenvalues per operator; default ``3 C`` (the log-gap rule wants at
        least 3C candidates), at most P - 1.
    bottom_k : int, default 3
        Smallest eigenvalues of H (0: skip).
    num_probes, num_steps : int, default 2, 80
        Probes and Lanczos steps per probe of the deflated densities. Chosen from
        the accuracy-time curves in docs/performance.md: with the top eigenpairs
        deflated, 2 x 80 beats plain SLQ's 10 x 128 in Wasserstein-1 and on the
        log-|lambda| scale for H and G_w of the real-MNIST problem, with an eighth
        of its products.
    identity_probes : int, default 4
        Probes of the H = G + R check.
    densities : tuple of {"H", "G"}, default ("H", "G")
        Operators whose SLQ density is measured.
    seed : int, default 0
        Seed of every random start and probe.
    device : str or torch.device, optional
        Where to compute (default: the model's device).
    dtype : torch.dtype or {"float64", "float32"}, optional
        Precision of the operators; default float64.
    progress : bool, default False
        tqdm bars of the Lanczos and SLQ runs.
    log : callable, optional
        Called with one line per finished step.
    checkpoint_dir : str or os.PathLike, optional
        A folder where the top-eigenvalue Lanczos runs of H, G and R checkpoint
        (``measure_H_top.npz``, ...: :func:`~gn_theory.spectra.lanczos`'s
        ``checkpoint=``), the search for the smallest of H (``measure_H_bottom.npz``)
        and the densities (``measure_H_density.npz``, ``measure_G_density.npz``, a
        checkpoint per probe); without it nothing is written.
    resume : bool, default False
        Continue those runs from the checkpoints in ``checkpoint_dir`` (same
        numbers as an uninterrupted run; foreign checkpoints are refused).

    Returns
    -------
    Measurement

    Raises
    ------
    InvalidInputError
        Bad options or data.
    """
    import torch  # deferred: torch (this module imports without it)

    from .operators import ggn_operator, hessian_operator, residual_operator
    from .spectra import lanczos, smallest_eigenvalues, spectral_density

    log = log or _quiet
    seed = check_seed(seed)
    bottom_k = check_positive_int("bottom_k", bottom_k, minimum=0)
    num_probes = check_positive_int("num_probes", num_probes)
    num_steps = check_positive_int("num_steps", num_steps)
    identity_probes = check_positive_int("identity_probes", identity_probes)
    for d in densities:
        check_choice("densities", d, ("H", "G"))
    tdtype = _resolve_dtype(dtype)
    pair = _as_pair(data)
    C = _num_classes(model, data, pair)
    kw = dict(device=device, dtype=tdtype)
    H = hessian_operator(model, pair, loss, **kw)
    G = ggn_operator(model, pair, loss, **kw)
    R = residual_operator(model, pair, loss, **kw)
    P = H.num_params
    k = min(3 * C, P - 1) if top_k is None else check_positive_int("top_k", top_k)
    if k > P - 1:
        raise InvalidInputError(f"top_k = {k} must be below the number of parameters P = {P}")
    seconds: dict[str, float] = {}
    ev = _evaluate_all_shards(model, pair, loss)
    spectra: dict[str, Spectrum] = {}
    k_R = min(k, C)  # the size of R next to H needs its top only; R's top is flat and slow
    # the top eigenvectors of H and G are kept while they are needed: deflated densities and
    # the deflated search for the smallest of H (docs/performance.md); never stored
    keep = {"H": "H" in densities or bool(bottom_k), "G": "G" in densities, "R": False}
    for name, op, n in (("H", H, k), ("G", G, k), ("R", R, k_R)):
        spectra[name] = _timed(
            seconds, f"{name}_top", log, f"top {n} eigenvalues of {name}",
            lambda op=op, n=n, v=keep[name], name=name: lanczos(
                op, n, seed=seed, return_eigenvectors=v, progress=progress,
                **_checkpoint(checkpoint_dir, f"measure_{name}_top", resume)))
    bottom = None
    if bottom_k:
        nb = min(bottom_k, P - 1)
        bottom = _timed(seconds, "H_bottom", log, f"smallest {nb} eigenvalues of H",
                        lambda: smallest_eigenvalues(H, nb, top=spectra["H"], seed=seed,
                                                     progress=progress,
                                                     **_checkpoint(checkpoint_dir,
                                                                   "measure_H_bottom", resume)))
    dens: dict[str, SpectralDensity] = {}
    for name in densities:
        op = {"H": H, "G": G}[name]
        top = spectra[name]
        dens[name] = _timed(
            seconds, f"{name}_density", log,
            f"density of {name} (top {len(top)} deflated, {num_probes} probes x "
            f"{min(num_steps, P - len(top))} steps)",
            lambda op=op, top=top, name=name: spectral_density(
                op, deflate=top, num_probes=num_probes, num_steps=num_steps, seed=seed,
                progress=progress, **_checkpoint(checkpoint_dir, f"measure_{name}_density",
                                                 resume)))
    spectra = {name: _without_vectors(s) for name, s in spectra.items()}

    def identity() -> np.ndarray:
        gen = torch.Generator().manual_seed(seed)
        V = torch.randn(P, identity_probes, generator=gen, dtype=torch.float64)
        V = V.to(device=H.device, dtype=H.torch_dtype)
        HV, GV, RV = H @ V, G @ V, R @ V
        num = torch.linalg.norm(HV - GV - RV, dim=0)
        den = torch.linalg.norm(HV, dim=0).clamp_min(torch.finfo(HV.dtype).tiny)
        return (num / den).double().cpu().numpy()

    errors = _timed(seconds, "identity", log, "check H = G + R", identity)
    log(f"H = G + R: relative error {float(errors.max()):.2e} on {identity_probes} probes")
    settings = {
        "loss": loss, "top_k": k, "bottom_k": bottom_k, "num_probes": num_probes,
        "num_steps": num_steps, "identity_probes": identity_probes,
        "densities": list(densities), "seed": seed,
        "dtype": str(tdtype).replace("torch.", ""), "device": str(H.device),
        "threads": torch.get_num_threads(),
    }
    fp = H.fingerprint
    if fp is not None:
        settings["fingerprint"] = fp
    return Measurement(
        H_top=spectra["H"], G_top=spectra["G"], R_top=spectra["R"], H_bottom=bottom,
        H_density=dens.get("H"), G_density=dens.get("G"),
        identity_errors=errors,
        loss_value=float(ev["loss"]), accuracy=float(ev["accuracy"]),
        num_params=int(P), num_samples=int(ev["num_samples"]), num_classes=int(C),
        num_matvecs=int(H.num_matvecs + G.num_matvecs + R.num_matvecs),
        seconds=seconds, settings=settings,
    )


def decompose_model(
    model: Any,
    data: Any,
    *,
    top_k: int | None = None,
    num_probes: int = 2,
    num_steps: int = 80,
    identity_probes: int = 4,
    seed: int = 0,
    device: Any = None,
    dtype: Any = None,
    progress: bool = False,
    log: Log | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
) -> Decomposition:
    r"""Measure the class structure of G, its identities and the inputs of outlier prediction.

    Steps: :func:`~gn_theory.decomposition.class_structure` (softmax
    cross-entropy only), :func:`~gn_theory.decomposition.identity_error`, and
    :func:`~gn_theory.decomposition.measure_outlier_inputs` (top ``top_k`` of G,
    the SLQ of :math:`G_{\rm w}` with ``num_probes`` x ``num_steps``, the top
    eigenvectors of :math:`G_{\rm w}`, Rayleigh-Ritz of G on the class-mean span).

    Parameters
    ----------
    model : torch.nn.Module
        The trained classifier (not modified).
    data : Dataset, (Tensor, Tensor) or iterable of batches
    top_k : int, optional
        Top eigenvalues of G to compare the predictions with; default ``3 C``.
    num_probes, num_steps : int, default 2, 80
        Deflated density of G_w (its top ``C^2`` eigenpairs exact; see :func:`measure_model`).
    identity_probes : int, default 4
        Probes of the identities.
    seed : int, default 0
    device, dtype
        As :func:`measure_model` (default float64).
    progress : bool, default False
    log : callable, optional
    checkpoint_dir : str or os.PathLike, optional
        A folder where the class-structure pass checkpoints
        (``decompose_class_structure.npz``:
        :func:`~gn_theory.decomposition.class_structure`'s ``checkpoint=``), and the
        Lanczos runs and density of the outlier inputs (``outlier_inputs_*.npz``:
        :func:`~gn_theory.decomposition.measure_outlier_inputs`'s ``checkpoint_dir=``).
    resume : bool, default False
        Continue them from their checkpoints in ``checkpoint_dir``.

    Returns
    -------
    Decomposition

    Raises
    ------
    InvalidInputError
        Bad options or data.
    """
    from .decomposition import class_structure, identity_error, measure_outlier_inputs
    from .operators import ggn_operator  # deferred: torch (this module imports without it)

    log = log or _quiet
    seed = check_seed(seed)
    tdtype = _resolve_dtype(dtype)
    pair = _as_pair(data)
    seconds: dict[str, float] = {}
    structure = _timed(seconds, "class_structure", log, "class structure of G",
                       lambda: class_structure(model, pair, device=device, dtype=tdtype,
                                               **_checkpoint(checkpoint_dir,
                                                             "decompose_class_structure",
                                                             resume)))
    C, P = int(structure.num_classes), int(structure.num_params)
    G = ggn_operator(model, pair, device=device, dtype=tdtype)
    errors: dict[str, float] = {}
    inputs = None
    if structure.class_means is not None:
        errors = _timed(seconds, "identity", log, "check G = G_cm + G_w",
                        lambda: identity_error(G, structure, num_probes=identity_probes,
                                               seed=seed))
    k = min(3 * C, P - 1) if top_k is None else check_positive_int("top_k", top_k)
    inputs = _timed(
        seconds, "outlier_inputs", log,
        f"inputs of outlier prediction (top {k} of G, SLQ and top of G_w, Ritz values)",
        lambda: measure_outlier_inputs(G, structure, k=k, num_probes=num_probes,
                                       num_steps=num_steps, seed=seed, progress=progress,
                                       checkpoint_dir=checkpoint_dir, resume=resume))
    settings = {"top_k": k, "num_probes": num_probes, "num_steps": num_steps,
                "identity_probes": identity_probes, "seed": seed,
                "dtype": str(tdtype).replace("torch.", ""), "device": str(G.device)}
    return Decomposition(structure=structure, inputs=inputs, identity_errors=errors,
                         seconds=seconds, settings=settings)


# ============================================================================ fitting (numpy)
def _spectrum_name(spectrum: Any, default: str) -> str:
    kind = getattr(spectrum, "settings", {}).get("kind") if hasattr(spectrum, "settings") else None
    return {"hessian": "H", "ggn": "G", "residual": "R"}.get(kind, default)


def _as_spectrum(source: Any) -> Spectrum | SpectralDensity:
    """A given spectrum as a result: a density or Spectrum as it is, eigenvalues as a full Spectrum."""
    if isinstance(source, (Spectrum, SpectralDensity)):
        return source
    m = spectral_measure(source, name="spectrum")  # validates: a clear error for a bad input
    if m.weighted:  # anything with nodes and weights
        nodes = np.atleast_2d(np.asarray(source.nodes, dtype=float))
        weights = np.atleast_2d(np.asarray(source.weights, dtype=float))
        return SpectralDensity(nodes=nodes, weights=weights, num_params=m.num_params,
                               num_steps=nodes.shape[1], num_probes=nodes.shape[0],
                               bounds=np.array([nodes.min(), nodes.max()]))
    n = m.values.size
    return Spectrum(eigenvalues=m.values, eigenvectors=None, residual_norms=np.zeros(n),
                    converged=np.ones(n, bool), num_matvecs=0, which="all", method="given",
                    num_params=n)


def fit_theory(
    source: Measurement | Spectrum | SpectralDensity | Any,
    decomposition: Decomposition | None = None,
    *,
    num_classes: int | None = None,
    mp_method: str = "moments",
    num_bootstrap: int | None = None,
    alpha: float = 0.05,
    min_ratio: float = 2.0,
    predict_k: int | None = None,
    seed: int = 0,
    name: str | None = None,
) -> TheoryFit:
    """Fit the random-matrix theory to a measured spectrum and compare its predictions.

    * Observed outliers: :func:`~gn_theory.rmt.count_outliers` on the top of H
      (a :class:`Measurement`) or on the given spectrum, and on the top of G: the
      MP-edge rule when the bulk fit is credible, else the log-gap rule
      (``min_ratio``); the rule used is recorded.
    * The Marchenko-Pastur fit (:func:`~gn_theory.rmt.fit_marchenko_pastur`,
      outliers excluded) and the spiked fit (:func:`~gn_theory.rmt.fit_spiked_model`)
      of the SLQ density of G (of H without one; of the given spectrum).
    * With a decomposition: :func:`~gn_theory.explain.predict_outliers` on the
      class structure and the measured inputs, the top ``predict_k`` outliers of G.

    A fit that cannot run (too few values, a degenerate bulk) is skipped and the
    reason recorded in :attr:`TheoryFit.skipped`.

    Parameters
    ----------
    source : Measurement, Spectrum, SpectralDensity or array_like
        A measurement of :func:`measure_model`, or a spectrum from any tool:
        eigenvalues (any order) or an SLQ density (``nodes``, ``weights``).
    decomposition : Decomposition, optional
        From :func:`decompose_model`, for the predictors.
    num_classes : int, optional
        C, for a given spectrum (a measurement knows it).
    mp_method : {"moments", "ks"}, default "moments"
        The MP fit's method.
    num_bootstrap : int, optional
        Bootstrap replicates of the MP fit (default the fit's).
    alpha : float, default 0.05
        Level of the intervals.
    min_ratio : float, default 2.0
        Smallest ratio of consecutive eigenvalues the log-gap rule counts as a gap.
    predict_k : int, optional
        Outliers of G the predictors are compared on; default C (at most the
        number of nonzero class-mean eigenvalues).
    seed : int, default 0
        Bootstrap seed.
    name : str, optional
        Name of a given spectrum in the report (default from its operator kind, or
        ``"spectrum"``).

    Returns
    -------
    TheoryFit

    Raises
    ------
    InvalidInputError
        A source that is not spectrum-like, or bad options.
    """
    check_choice("mp_method", mp_method, ("moments", "ks"))
    seed = check_seed(seed)
    skipped: list[str] = []
    settings = {"mp_method": mp_method, "num_bootstrap": num_bootstrap, "alpha": alpha,
                "min_ratio": min_ratio, "predict_k": predict_k, "seed": seed}
    top_G = prediction = given = None
    if isinstance(source, Measurement):
        C = int(source.num_classes)
        top, top_G, spectrum_name = source.H_top, source.G_top, "H"
        if source.G_density is not None:
            bulk, fitted_to = source.G_density, "the SLQ density of G"
        elif source.H_density is not None:
            bulk, fitted_to = source.H_density, "the SLQ density of H (positive part)"
        else:
            bulk, fitted_to = None, ""
            skipped.append("the MP and spiked fits (no SLQ density was measured)")
    else:
        given = _as_spectrum(source)
        C = 0 if num_classes is None else check_positive_int("num_classes", num_classes, minimum=2)
        spectrum_name = name or _spectrum_name(source, "spectrum")
        top, bulk = given, given
        weighted = hasattr(source, "nodes") and hasattr(source, "weights")
        fitted_to = (f"the given SLQ density ({spectrum_name})" if weighted
                     else f"the given eigenvalues ({spectrum_name})")
    if decomposition is not None:
        C = C or int(decomposition.structure.num_classes)
    mp_fit = spiked = None
    if bulk is not None:
        opts: dict[str, Any] = {"method": mp_method, "alpha": alpha, "seed": seed}
        if num_bootstrap is not None:
            opts["num_bootstrap"] = num_bootstrap
        try:
            mp_fit = fit_marchenko_pastur(bulk, **opts)
            spiked = fit_spiked_model(bulk, **opts)
        except InvalidInputError as exc:
            skipped.append(f"the MP and spiked fits ({exc})")
    counts: dict[str, OutlierCount | None] = {"main": None, "G": None}
    for key, spec in (("main", top), ("G", top_G)):
        if spec is None:
            continue
        try:
            counts[key] = count_outliers(spec, mp_fit, num_classes=C or None,
                                         min_ratio=min_ratio)
        except InvalidInputError as exc:
            skipped.append(f"the outlier count of {spectrum_name if key == 'main' else 'G'} "
                           f"({exc})")
    if decomposition is not None:
        structure = decomposition.structure
        try:
            r = structure.eigenvalues("G_cm").size
            k = min(C, r) if predict_k is None else check_positive_int("predict_k", predict_k)
            prediction = predict_outliers(structure, inputs=decomposition.inputs, k=k)
        except InvalidInputError as exc:
            skipped.append(f"the outlier predictors ({exc})")
    elif isinstance(source, Measurement):
        skipped.append("the outlier predictors (no class structure: run the decompose stage)")
    return TheoryFit(
        mp_fit=mp_fit, spiked_fit=spiked, prediction=prediction, outliers=counts["main"],
        outliers_G=counts["G"], spectrum=given, fitted_to=fitted_to, spectrum_name=spectrum_name,
        num_classes=int(C), skipped=skipped, settings=settings,
    )


def analyze(
    model: Any,
    data: Any,
    *,
    loss: str = "cross_entropy",
    top_k: int | None = None,
    bottom_k: int = 3,
    num_probes: int = 2,
    num_steps: int = 80,
    seed: int = 0,
    device: Any = None,
    dtype: Any = None,
    progress: bool = False,
    training_log: TrainingLog | None = None,
    mp_method: str = "moments",
    min_ratio: float = 2.0,
    log: Log | None = None,
) -> Analysis:
    """Measure, decompose and fit a trained classifier: the whole analysis in one call.

    :func:`measure_model`, then (for softmax cross-entropy) :func:`decompose_model`,
    then :func:`fit_theory`. Save the result with ``analysis.save(directory)``.

    Parameters
    ----------
    model : torch.nn.Module
        The trained classifier (not modified).
    data : Dataset, (Tensor, Tensor) or iterable of batches
        Its training data.
    loss : {"cross_entropy", "mse"}, default "cross_entropy"
        With ``"mse"`` the class structure (a softmax property) is skipped.
    top_k : int, optional
        Top eigenvalues of H, G, R; default 3 C.
    bottom_k : int, default 3
        Smallest eigenvalues of H.
    num_probes, num_steps : int, default 2, 80
        Probes and steps of the deflated densities of H, G and G_w (see :func:`measure_model`).
    seed : int, default 0
    device : str or torch.device, optional
        Where to compute (default the model's device).
    dtype : torch.dtype or str, optional
        Precision of the measurements (default float64).
    progress : bool, default False
        tqdm bars.
    training_log : TrainingLog, optional
        Kept in the analysis (training loss and accuracy in the summary).
    mp_method : {"moments", "ks"}, default "moments"
    min_ratio : float, default 2.0
        Gap of the log-gap outlier rule.
    log : callable, optional
        Called with one line per finished step.

    Returns
    -------
    Analysis
    """
    check_choice("loss", loss, ("cross_entropy", "mse"))
    m = measure_model(model, data, loss=loss, top_k=top_k, bottom_k=bottom_k,
                      num_probes=num_probes, num_steps=num_steps, seed=seed, device=device,
                      dtype=dtype, progress=progress, log=log)
    dec = None
    if loss == "cross_entropy":
        dec = decompose_model(model, data, top_k=m.settings["top_k"], num_probes=num_probes,
                              num_steps=num_steps, seed=seed, device=device, dtype=dtype,
                              progress=progress, log=log)
    theory = fit_theory(m, dec, mp_method=mp_method, min_ratio=min_ratio, seed=seed)
    if training_log is not None and not isinstance(training_log, TrainingLog):
        raise InvalidInputError(
            f"training_log must be a TrainingLog; got {type(training_log).__name__}")
    settings = {"analyze": {"loss": loss, "top_k": m.settings["top_k"], "bottom_k": bottom_k,
                            "num_probes": num_probes, "num_steps": num_steps, "seed": seed,
                            "dtype": m.settings["dtype"], "device": m.settings["device"],
                            "mp_method": mp_method, "min_ratio": min_ratio},
                "gn_theory": __version__}
    return Analysis(measurement=m, decomposition=dec, theory=theory, training=training_log,
                    settings=settings)


def load_stage(folder: str | os.PathLike, stage: str) -> Any:
    """Load one stage's result pair from an analysis directory.

    Parameters
    ----------
    folder : str or os.PathLike
    stage : {"training", "measurement", "decomposition", "theory"}

    Returns
    -------
    Result

    Raises
    ------
    ResultFileError
        Missing or corrupt pair.
    """
    check_choice("stage", stage, tuple(FILES))
    path = Path(folder) / FILES[stage]
    if not Path(f"{path}.json").exists():
        raise ResultFileError(f"no {FILES[stage]}.json in {str(folder)!r}")
    return load_result(path)
