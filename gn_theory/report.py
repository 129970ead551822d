r"""The report of a run: ``report.md`` and a self-contained ``report.html`` (torch-free).

The report is built from the numbers of ``summary.json``
(:func:`gn_theory.analysis.summary_dict`) and the figures of the plot stage.
Every sentence that says what agrees and what does not is computed from the
numbers beside it by one small function of this module (``*_sentence``), each
tested against hand-made inputs; none claims more than its numbers show:

* :func:`identity_sentence` -- "H = G + R holds to 3e-15 ...";
* :func:`outlier_sentence` -- "10 outliers found by the log-gap rule for C = 10
  classes (= C)", or why none were;
* :func:`predictor_sentence`, :func:`best_predictor_sentence` -- "the iid
  predictor misses the top-10 outliers of G by 89 % ...";
* :func:`mp_sentence`, :func:`spiked_sentence` -- whether the Marchenko-Pastur
  bulk fits (KS distance, third moment) and what the spiked model implies;
* :func:`residual_sentence`, :func:`top_agreement_sentence`,
  :func:`negative_sentence`, :func:`isotropy_sentence`,
  :func:`trace_share_sentence`, :func:`rank_sentence`,
  :func:`training_sentence`.

:func:`build_report` turns a summary into blocks (headings, paragraphs, lists,
figures with captions, tables); :func:`render_markdown` and :func:`render_html`
write them out (the HTML embeds the figures as base64 PNG, so the one file is the
whole report); :func:`write_report` does all of it for a run directory.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .analysis import read_summary
from .explain import ISOTROPY_FACTOR, ISOTROPY_MIN_SHARE, MP_KS_TOL, MP_MOMENT_TOL
from .results import atomic_write_bytes
from .stages import FIGURES

__all__ = [
    "identity_sentence",
    "outlier_sentence",
    "predictor_sentence",
    "best_predictor_sentence",
    "mp_sentence",
    "spiked_sentence",
    "residual_sentence",
    "top_agreement_sentence",
    "negative_sentence",
    "isotropy_sentence",
    "trace_share_sentence",
    "rank_sentence",
    "training_sentence",
    "describe_run",
    "Block",
    "build_report",
    "render_markdown",
    "render_html",
    "write_report",
    "IDENTITY_TOL",
    "AGREE_WITHIN",
]

#: Relative error below which an identity "holds", by precision (a few hundred ulps
#: accumulated over a pass over the data).
IDENTITY_TOL = {"float64": 1e-10, "float32": 1e-4}
#: Mean |relative error| at or below which a predictor "lands within" the observed outliers.
AGREE_WITHIN = 0.10
#: R is "small next to G" when its largest eigenvalue is below this share of H's.
SMALL_RESIDUAL = 0.10


# ============================================================================ numbers
def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _g(x: float, digits: int = 3) -> str:
    """A number in ``digits`` significant figures (``0.18``, ``1.3e-06``)."""
    return f"{x:.{digits}g}"


def _pct(share: float) -> str:
    """A share as a percentage: ``89 %`` from 10 % up, ``3.3 %`` below, ``0.04 %`` below 0.1 %."""
    p = 100.0 * share
    if abs(p) >= 10:
        return f"{p:.0f} %"
    if abs(p) >= 0.1:
        return f"{p:.1f} %"
    return f"{p:.2g} %"


# ============================================================================ sentences
def identity_sentence(name: str, error: float | None, *, dtype: str = "float64",
                      num_probes: int | None = None) -> str:
    """Whether an identity holds, from its measured relative error.

    Parameters
    ----------
    name : str
        The identity, e.g. ``"H = G + R"``.
    error : float or None
        Its relative error (None: not checked).
    dtype : {"float64", "float32"}, default "float64"
        Precision of the products; the error holds below :data:`IDENTITY_TOL`.
    num_probes : int, optional
        Random probes it was measured on.

    Returns
    -------
    str

    Examples
    --------
    >>> identity_sentence("H = G + R", 3.1e-15, num_probes=4)
    'H = G + R holds to 3e-15 (relative error on 4 random probes, float64).'
    >>> identity_sentence("H = G + R", 2e-3)
    'H = G + R does not hold: relative error 2e-03, above the 1e-10 expected from float64 round-off.'
    """
    if error is None or not _finite(error):
        return f"{name} was not checked."
    tol = IDENTITY_TOL.get(dtype, IDENTITY_TOL["float64"])
    on = f" on {num_probes} random probes" if num_probes else ""
    if error <= tol:
        return f"{name} holds to {error:.0e} (relative error{on}, {dtype})."
    return (f"{name} does not hold: relative error {error:.0e}, above the {tol:.0e} expected "
            f"from {dtype} round-off.")


def _classes_relation(count: int, C: int | None) -> str:
    if not C:
        return ""
    if count == C:
        return " (= C)"
    if count == C - 1:
        return " (= C - 1)"
    return f" (the theory expects C = {C} or C - 1 = {C - 1})"


_RULE_WORDS = {"gap": "log-gap", "mp_edge": "MP-edge"}


def outlier_sentence(o: dict[str, Any] | None, *, explain_rule: bool = True) -> str:
    """How many outliers the count found, by which rule, against the number of classes.

    Parameters
    ----------
    o : dict or None
        The ``outliers`` entry of ``summary.json``: ``operator``, ``rule``
        (``"gap"`` or ``"mp_edge"``), ``count``, ``num_classes``,
        ``largest_gap_ratio``, ``largest_gap_rank``, ``min_ratio``,
        ``num_candidates``, ``edges``, ``bulk_credible``, ``bulk_reason``, ``counts``.
    explain_rule : bool, default True
        Say why the MP-edge rule was not used (when it was not).

    Returns
    -------
    str

    Examples
    --------
    >>> outlier_sentence({"operator": "H", "rule": "gap", "count": 10, "num_classes": 10,
    ...                   "largest_gap_ratio": 3.2, "largest_gap_rank": 10, "min_ratio": 2.0})
    '10 outliers of H found by the log-gap rule for C = 10 classes (= C): the ratio across the gap after rank 10 is 3.2.'
    """
    if not o:
        return "The outliers were not counted."
    op, rule, n = o.get("operator", "H"), o.get("rule", "gap"), int(o.get("count", 0))
    C = o.get("num_classes") or None
    words = _RULE_WORDS.get(rule, rule)
    ratio, rank = o.get("largest_gap_ratio"), o.get("largest_gap_rank")
    min_ratio = o.get("min_ratio")
    for_c = f" for C = {C} classes" if C else ""
    if n > 0:
        s = (f"{n} outlier{'s' if n != 1 else ''} of {op} found by the {words} rule{for_c}"
             f"{_classes_relation(n, C)}")
        if rule == "gap" and _finite(ratio):
            s += f": the ratio across the gap after rank {rank} is {_g(ratio, 2)}."
        elif rule == "mp_edge" and _finite((o.get("edges") or {}).get("mp_edge")):
            s += (f": the eigenvalues above the cut {_g(o['edges']['mp_edge'])} of a credible "
                  "Marchenko-Pastur fit.")
        else:
            s += "."
    else:
        top = o.get("num_candidates")
        among = f" among the top {top} eigenvalues" if top else ""
        s = f"No outliers of {op} found by the {words} rule{among}"
        if rule == "gap" and _finite(ratio) and _finite(min_ratio):
            s += (f": the largest ratio of consecutive eigenvalues is {_g(ratio, 3)} (after rank "
                  f"{rank}), below the threshold {_g(min_ratio)}")
        s += (f"; the theory expects C = {C} or C - 1 = {C - 1}." if C else ".")
    counts = o.get("counts") or {}
    if (explain_rule and "mp_edge" in counts and not o.get("bulk_credible")
            and o.get("bulk_reason")):
        s += f" The MP-edge rule was not used: the bulk fit is not credible ({o['bulk_reason']})."
    return s


def _finite_errors(rel_errors: Sequence[Any] | None) -> list[float]:
    return [float(e) for e in (rel_errors or []) if _finite(e)]


def predictor_sentence(method: str, rel_errors: Sequence[float | None] | None, *,
                       operator: str = "G") -> str:
    """How far one predictor lands from the observed outliers, from its relative errors.

    Parameters
    ----------
    method : str
        The predictor's name.
    rel_errors : sequence of float or None
        Signed ``(predicted - observed) / observed`` per rank (None entries: not comparable).
    operator : str, default "G"
        Whose outliers were predicted.

    Returns
    -------
    str

    Examples
    --------
    >>> predictor_sentence("iid", [-0.9, -0.88, -0.89])
    'The iid predictor misses the top-3 outliers of G by 89 % (mean |relative error|; all too low).'
    >>> predictor_sentence("subspace", [0.01, -0.02])
    'The subspace predictor lands within 1.5 % of the top-2 outliers of G (mean |relative error|).'
    """
    errs = _finite_errors(rel_errors)
    if not errs:
        return f"The {method} predictor could not be compared with observed outliers of {operator}."
    k = len(errs)
    mean = sum(abs(e) for e in errs) / k
    direction = ""
    if all(e < 0 for e in errs):
        direction = "; all too low"
    elif all(e > 0 for e in errs):
        direction = "; all too high"
    if mean <= AGREE_WITHIN:
        return (f"The {method} predictor lands within {_pct(mean)} of the top-{k} outliers of "
                f"{operator} (mean |relative error|{direction}).")
    return (f"The {method} predictor misses the top-{k} outliers of {operator} by {_pct(mean)} "
            f"(mean |relative error|{direction}).")


def best_predictor_sentence(mean_errors: dict[str, float | None]) -> str:
    """The closest and the farthest predictor by mean |relative error|.

    Parameters
    ----------
    mean_errors : dict of str to float or None

    Returns
    -------
    str

    Examples
    --------
    >>> best_predictor_sentence({"iid": 0.3, "bgn": 1.14, "subspace_corrected": 0.033})
    'Closest: subspace_corrected (3.3 %); farthest: bgn (114 %).'
    """
    errs = {m: float(e) for m, e in mean_errors.items() if _finite(e)}
    if not errs:
        return "No predictor could be compared with observed outliers."
    best = min(errs, key=errs.get)
    if len(errs) == 1:
        return f"Only {best} could be compared ({_pct(errs[best])})."
    worst = max(errs, key=errs.get)
    return f"Closest: {best} ({_pct(errs[best])}); farthest: {worst} ({_pct(errs[worst])})."


def mp_sentence(mp: dict[str, Any] | None) -> str:
    """Whether the fitted Marchenko-Pastur law describes the bulk, with its parameters.

    The law "fits" when the fit converged and its KS distance is at most
    ``gn_theory.explain.MP_KS_TOL`` (0.1); the third moment against the law's is
    quoted when it lies outside ``[1/1.25, 1.25]``.

    Parameters
    ----------
    mp : dict or None
        The ``mp_fit`` entry of ``summary.json``.

    Returns
    -------
    str

    Examples
    --------
    >>> print(mp_sentence({"fitted_to": "the SLQ density of G", "converged": True,
    ...              "ks_statistic": 0.56, "third_moment_ratio": 0.11,
    ...              "params": {"scale": 1.3e-6, "ratio": 12.1},
    ...              "conf_int": {"scale": [1.2e-6, 1.4e-6], "ratio": [11.0, 13.0]},
    ...              "alpha": 0.05, "n_outliers": 721, "n_total": 5578}))
    The Marchenko-Pastur law does not describe the SLQ density of G: KS distance 0.56 (above 0.1) and third moment 0.11x the law's; fitted scale 1.3e-06 [1.2e-06, 1.4e-06], ratio 12.1 [11, 13] (95 % intervals), with 721 of 5578 values excluded as outliers.
    """
    if not mp:
        return "No Marchenko-Pastur fit was made."
    ks, m3 = mp.get("ks_statistic"), mp.get("third_moment_ratio")
    target = mp.get("fitted_to") or "the spectrum"
    ok = bool(mp.get("converged")) and _finite(ks) and ks <= MP_KS_TOL
    parts = []
    if _finite(ks):
        parts.append(f"KS distance {_g(ks, 2)} ({'at most' if ks <= MP_KS_TOL else 'above'} "
                     f"{_g(MP_KS_TOL)})")
    if _finite(m3) and not (1 / MP_MOMENT_TOL <= m3 <= MP_MOMENT_TOL):
        parts.append(f"third moment {_g(m3, 2)}x the law's")
    head = (f"The Marchenko-Pastur law fits {target}" if ok
            else f"The Marchenko-Pastur law does not describe {target}")
    if not mp.get("converged"):
        parts.insert(0, "the fit did not converge" + (f" ({mp['message']})"
                                                      if mp.get("message") else ""))
    s = head + (": " + " and ".join(parts) if parts else "")
    params, ci = mp.get("params") or {}, mp.get("conf_int") or {}
    shown = []
    for name in ("scale", "ratio"):
        v = params.get(name)
        if not _finite(v):
            continue
        lo, hi = (ci.get(name) or [None, None])[:2]
        shown.append(f"{name} {_g(v)}" + (f" [{_g(lo)}, {_g(hi)}]"
                                          if _finite(lo) and _finite(hi) else ""))
    if shown:
        alpha = mp.get("alpha")
        level = f" ({100 * (1 - alpha):.0f} % intervals)" if _finite(alpha) and any(
            "[" in x for x in shown) else ""
        s += "; fitted " + ", ".join(shown) + level
    n_out, n_tot = mp.get("n_outliers"), mp.get("n_total")
    if n_out and mp.get("weighted"):
        s += f", with the mass of {n_out} of {n_tot} eigenvalues excluded as outliers"
    elif n_out:
        s += f", with {n_out} of {n_tot} values excluded as outliers"
    return s + "."


def spiked_sentence(sp: dict[str, Any] | None, *, bulk_fits: bool | None = None) -> str:
    """What the spiked (MP + BBP) fit implies, with the caveat of a bulk that does not fit.

    Parameters
    ----------
    sp : dict or None
        The ``spiked_fit`` entry of ``summary.json``.
    bulk_fits : bool, optional
        Whether the MP bulk fits (see :func:`mp_sentence`); with False the implied
        spikes are not quoted (they rest on a law that does not describe the bulk).

    Returns
    -------
    str

    Examples
    --------
    >>> spiked_sentence({"num_outliers": 3, "num_spikes": 2, "separation": 4.1,
    ...                  "spikes": [9.0, 4.0, None], "model": "multiplicative"}, bulk_fits=True)
    '3 values lie above the fitted bulk; 2 of them lie beyond the separation 4.1 and imply multiplicative BBP spikes of strength 9, 4.'
    """
    if not sp:
        return "No spiked model was fitted."
    n, k = int(sp.get("num_outliers", 0)), int(sp.get("num_spikes", 0))
    unit = "SLQ nodes" if sp.get("weighted") else "values"
    if n == 1:
        unit = unit[:-1]
    if n == 0:
        s = "No values lie above the fitted bulk: the spiked model finds no spikes."
    elif bulk_fits is False:
        return (f"{n} {unit} lie{'' if n != 1 else 's'} above the fitted "
                f"bulk ({k} beyond the separation {_g(sp.get('separation', math.nan))}); the "
                "MP law does not describe the bulk, so the BBP spikes they imply are not "
                "meaningful and are not quoted.")
    else:
        spikes = [x for x in (sp.get("spikes") or []) if _finite(x)]
        shown = ", ".join(_g(x, 3) for x in spikes[:5]) + (", ..." if len(spikes) > 5 else "")
        s = (f"{n} {unit} lie{'' if n != 1 else 's'} above the fitted bulk; "
             f"{k} of them lie beyond the separation {_g(sp.get('separation', math.nan))}")
        s += (f" and imply {sp.get('model', '')} BBP spikes of strength {shown}." if k and shown
              else " and imply spikes." if k else " (no identifiable spike).")
    return s


def residual_sentence(top: dict[str, Sequence[float | None]]) -> str:
    """How large R is next to H, from their top eigenvalues.

    Parameters
    ----------
    top : dict
        ``{"H": [...], "R": [...]}`` descending (the ``top_eigenvalues`` of ``summary.json``).

    Returns
    -------
    str

    Examples
    --------
    >>> residual_sentence({"H": [0.18, 0.14], "R": [0.0012, 0.0011]})
    "R is small next to G: its largest eigenvalue, 0.0012, is 0.7 % of H's largest, 0.18."
    """
    h = [x for x in top.get("H", []) if _finite(x)]
    r = [x for x in top.get("R", []) if _finite(x)]
    if not h or not r or h[0] <= 0:
        return "The size of R next to H was not measured."
    share = r[0] / h[0]
    words = "R is small next to G" if abs(share) < SMALL_RESIDUAL else "R is not small next to G"
    return (f"{words}: its largest eigenvalue, {_g(r[0], 2)}, is {_pct(share)} of H's largest, "
            f"{_g(h[0], 2)}.")


def top_agreement_sentence(top: dict[str, Sequence[float | None]], a: str = "H",
                           b: str = "G") -> str:
    """How closely the top eigenvalues of two operators agree (largest relative difference).

    Parameters
    ----------
    top : dict
        Top eigenvalues by operator, descending.
    a, b : str
        The two operators.

    Returns
    -------
    str

    Examples
    --------
    >>> top_agreement_sentence({"H": [1.0, 0.5], "G": [1.01, 0.5]})
    'The top-2 eigenvalues of H and G agree within 1.0 %.'
    """
    x = [v for v in top.get(a, []) if _finite(v)]
    y = [v for v in top.get(b, []) if _finite(v)]
    n = min(len(x), len(y))
    if n == 0:
        return f"The top eigenvalues of {a} and {b} were not both measured."
    diffs = [abs(p - q) / max(abs(p), abs(q)) for p, q in zip(x[:n], y[:n]) if max(abs(p), abs(q))]
    d = max(diffs) if diffs else 0.0
    verb = "agree within" if d <= AGREE_WITHIN else "differ by up to"
    return f"The top-{n} eigenvalues of {a} and {b} {verb} {_pct(d)}."


def negative_sentence(smallest: Sequence[float | None] | None, top: Sequence[float | None] | None,
                      converged: bool | None = None) -> str:
    """The negative end of H, against its top.

    Parameters
    ----------
    smallest : sequence of float
        Smallest eigenvalues of H.
    top : sequence of float
        Top eigenvalues of H (for the scale).
    converged : bool, optional
        Whether the smallest ones converged.

    Returns
    -------
    str

    Examples
    --------
    >>> negative_sentence([-0.00053, -0.0005], [0.18], converged=False)
    "H has negative eigenvalues: the smallest estimate is -0.00053, 0.3 % of H's largest in magnitude (not converged within the budget: an estimate)."
    """
    s = [v for v in (smallest or []) if _finite(v)]
    t = [v for v in (top or []) if _finite(v)]
    if not s:
        return "The smallest eigenvalues of H were not measured."
    low = min(s)
    note = "" if converged is None else (" (converged)" if converged else
                                          " (not converged within the budget: an estimate)")
    if low >= 0:
        return f"The smallest measured eigenvalue of H is {_g(low, 2)}: no negative eigenvalue found{note}."
    what = "smallest estimate" if converged is False else "smallest"
    scale = f", {_pct(abs(low) / t[0])} of H's largest in magnitude" if t and t[0] > 0 else ""
    return f"H has negative eigenvalues: the {what} is {_g(low, 2)}{scale}{note}."


def isotropy_sentence(diagnostics: dict[str, Any] | None) -> str:
    """Whether the within-class part is isotropic with respect to the class means.

    Uses the share of the energy of the top eigenvectors of G_w inside the
    class-mean span against a random subspace of the same dimension (the
    assumption of the iid/additive/bgn predictors), with the thresholds of
    :mod:`gn_theory.explain` (``ISOTROPY_FACTOR``, ``ISOTROPY_MIN_SHARE``).

    Parameters
    ----------
    diagnostics : dict
        ``within_energy_in_span``, ``random_baseline``, ``span_dim``,
        ``num_within_vectors`` (the prediction's diagnostics).

    Returns
    -------
    str

    Examples
    --------
    >>> isotropy_sentence({"within_energy_in_span": 0.75, "random_baseline": 0.018,
    ...                    "span_dim": 100, "num_within_vectors": 30})
    '75 % of the energy of the top-30 eigenvectors of G_w lies in the 100-dim class-mean span, against 1.8 % for a random subspace: the within-class part is not isotropic, against the assumption of the iid, additive and bgn predictors.'
    """
    d = diagnostics or {}
    share, base = d.get("within_energy_in_span"), d.get("random_baseline")
    if not (_finite(share) and _finite(base)):
        return "The isotropy of the within-class part was not measured."
    nvec, dim = int(d.get("num_within_vectors") or 0), int(d.get("span_dim") or 0)
    head = (f"{_pct(share)} of the energy of the top-{nvec} eigenvectors of G_w lies in the "
            f"{dim}-dim class-mean span, against {_pct(base)} for a random subspace")
    if share > max(ISOTROPY_FACTOR * base, ISOTROPY_MIN_SHARE):
        return (head + ": the within-class part is not isotropic, against the assumption of the "
                "iid, additive and bgn predictors.")
    return head + ": consistent with an isotropic within-class part, as those predictors assume."


def trace_share_sentence(diagnostics: dict[str, Any] | None) -> str:
    """The share of tr G carried by the class means.

    Parameters
    ----------
    diagnostics : dict
        With ``class_mean_trace_share``.

    Returns
    -------
    str

    Examples
    --------
    >>> trace_share_sentence({"class_mean_trace_share": 0.065})
    'The class means (G_cm) carry 6.5 % of tr G; the within-class part G_w the other 94 %.'
    """
    share = (diagnostics or {}).get("class_mean_trace_share")
    if not _finite(share):
        return "The trace share of the class means was not measured."
    return (f"The class means (G_cm) carry {_pct(share)} of tr G; the within-class part G_w the "
            f"other {_pct(1 - share)}.")


def rank_sentence(num_cm: int | None, num_classes: int | None) -> str:
    """The number of nonzero eigenvalues of G_cm against the bound C^2 (and of G_1 against C).

    Parameters
    ----------
    num_cm : int
        Nonzero eigenvalues of G_cm.
    num_classes : int
        C.

    Returns
    -------
    str

    Examples
    --------
    >>> rank_sentence(90, 10)
    'G_cm has 90 nonzero eigenvalues, within the bound C^2 = 100 of the class/cross-class structure.'
    """
    if not num_cm or not num_classes:
        return "The class structure was not measured."
    bound = num_classes ** 2
    rel = "within" if num_cm <= bound else "above"
    return (f"G_cm has {num_cm} nonzero eigenvalues, {rel} the bound C^2 = {bound} of the "
            "class/cross-class structure.")


def training_sentence(training: dict[str, Any] | None) -> str:
    """Where training ended.

    Parameters
    ----------
    training : dict or None
        The ``training`` entry of ``summary.json``.

    Returns
    -------
    str

    Examples
    --------
    >>> training_sentence({"loss": 0.00101, "accuracy": 1.0, "num_steps": 800,
    ...                    "optimizer": "sgd", "stop_reason": "steps"})
    'Training (sgd, 800 steps) ended at 100.0 % training accuracy and loss 0.00101.'
    """
    if not training:
        return "No training log was recorded."
    acc, lo = training.get("accuracy"), training.get("loss")
    opt = training.get("optimizer")
    how = f" ({opt}, {training.get('num_steps')} steps)" if opt else ""
    s = f"Training{how} ended at {100 * acc:.1f} % training accuracy and loss {_g(lo)}" \
        if _finite(acc) and _finite(lo) else f"Training{how} ended"
    ev = training.get("eval_accuracy")
    if _finite(ev):
        s += f"; {100 * ev:.1f} % on the held-out split"
    return s + "."


# ============================================================================ description
def describe_run(summary: dict[str, Any]) -> str:
    """One line: the problem, the model and its size (from the settings and counts).

    Parameters
    ----------
    summary : dict

    Returns
    -------
    str

    Examples
    --------
    >>> describe_run({"num_params": 5578, "num_samples": 1000, "num_classes": 10,
    ...               "settings": {"data": {"data": "mnist", "image_size": 14,
    ...                                     "standardize": True},
    ...                            "model": {"model": "mlp", "width": 24, "depth": 2}}})
    'mlp (width 24, depth 2; P = 5,578 parameters) on N = 1,000 samples of mnist (14x14, standardised), C = 10 classes.'
    """
    st = summary.get("settings") or {}
    d, m = st.get("data") or {}, st.get("model") or {}
    P, N, C = summary.get("num_params"), summary.get("num_samples"), summary.get("num_classes")
    spec = (st.get("fit") or {}).get("spectrum")
    if not d and spec:
        return f"A spectrum from another tool ({spec})" + (f", C = {C} classes." if C else ".")
    model = m.get("model", "model")
    extras = [f"{k} {m[k]}" for k in ("width", "depth") if m.get(k) is not None]
    size = f"P = {P:,} parameters" if P else ""
    inner = "; ".join(x for x in (", ".join(extras), size) if x)
    data_bits = []
    if d.get("image_size"):
        data_bits.append(f"{d['image_size']}x{d['image_size']}")
    if d.get("standardize"):
        data_bits.append("standardised")
    if d.get("random_inputs"):
        data_bits.append("random inputs")
    data = d.get("data", "data") + (f" ({', '.join(data_bits)})" if data_bits else "")
    return (f"{model}" + (f" ({inner})" if inner else "") + (f" on N = {N:,} samples of {data}"
            if N else f" on {data}") + (f", C = {C} classes." if C else "."))


# ============================================================================ blocks
@dataclass
class Block:
    """One piece of the report: ``kind`` in ``h1 h2 p ul figure table pre``."""

    kind: str
    text: str = ""
    items: list = field(default_factory=list)
    path: str = ""
    header: list = field(default_factory=list)


def _mp_fits(summary: dict[str, Any]) -> bool | None:
    mp = summary.get("mp_fit")
    if not mp:
        return None
    ks = mp.get("ks_statistic")
    return bool(mp.get("converged")) and _finite(ks) and ks <= MP_KS_TOL


def _fmt_cell(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return _g(x, 4)
    return str(x)


def build_report(summary: dict[str, Any], figures: dict[str, str] | None = None) -> list[Block]:
    """The report as blocks, every verdict computed from ``summary`` by the sentence functions.

    Parameters
    ----------
    summary : dict
        ``summary.json`` of a run.
    figures : dict of str to str, optional
        Figure name (see :data:`gn_theory.stages.FIGURES`) -> path relative to the
        report, for the figures that exist.

    Returns
    -------
    list of Block
    """
    figures = figures or {}
    top = summary.get("top_eigenvalues") or {}
    identity = summary.get("identity") or {}
    pred = summary.get("prediction")
    dtype = summary.get("dtype") or "float64"
    probes = summary.get("identity_probes")
    blocks = [Block("h1", "gn_theory report"), Block("p", describe_run(summary))]

    verdict: list[str] = []
    if summary.get("training"):
        verdict.append(training_sentence(summary["training"]))
    for name, err in identity.items():
        verdict.append(identity_sentence(name, err, dtype=dtype,
                                         num_probes=probes if name == "H = G + R" else None))
    if "H" in top and "R" in top:
        verdict.append(residual_sentence(top))
    if "H" in top and "G" in top:
        verdict.append(top_agreement_sentence(top))
    if summary.get("outliers") is not None:
        verdict.append(outlier_sentence(summary["outliers"]))
    if summary.get("outliers_G") is not None:
        verdict.append(outlier_sentence(summary["outliers_G"], explain_rule=False))
    if pred:
        for m, row in pred["predictors"].items():
            verdict.append(predictor_sentence(m, row.get("relative_errors")))
        verdict.append(best_predictor_sentence(
            {m: r.get("mean_abs_relative_error") for m, r in pred["predictors"].items()}))
        verdict.append(isotropy_sentence(pred.get("diagnostics")))
        verdict.append(trace_share_sentence(pred.get("diagnostics")))
    if summary.get("mp_fit"):
        verdict.append(mp_sentence(summary["mp_fit"]))
    if summary.get("spiked_fit"):
        verdict.append(spiked_sentence(summary["spiked_fit"], bulk_fits=_mp_fits(summary)))
    blocks += [Block("h2", "What agrees and what does not"), Block("ul", items=verdict)]

    captions = {
        "spectrum": " ".join(x for x in (
            "Spectral densities (stochastic Lanczos quadrature) on a linear scale (left) and of "
            "log |lambda| (right: positive eigenvalues above, negative below), with the fitted "
            "Marchenko-Pastur law and the predicted outlier positions.",
            mp_sentence(summary.get("mp_fit")) if summary.get("mp_fit") else "",
            outlier_sentence(summary.get("outliers")) if summary.get("outliers") else "",
        ) if x),
        "predicted_vs_observed": " ".join(
            ["Predicted against observed outlier positions of G, rank by rank (y = x is "
             "agreement; hollow: the predictor calls no outlier there)."]
            + ([predictor_sentence(m, r.get("relative_errors"))
                for m, r in pred["predictors"].items()] if pred else [])),
        "relative_errors": " ".join(
            ["Relative error (predicted - observed) / observed per rank."]
            + ([best_predictor_sentence({m: r.get("mean_abs_relative_error")
                                         for m, r in pred["predictors"].items()})] if pred else [])),
        "gram": " ".join(
            ["Gram matrix of the class means of G (G_cm), in blocks of the true class."]
            + ([rank_sentence((summary.get("class_mean_eigenvalues") or {}).get("num_G_cm"),
                              summary.get("num_classes"))]
               if (summary.get("class_mean_eigenvalues") or {}).get("num_G_cm") else [])
            + ([trace_share_sentence(pred.get("diagnostics"))] if pred else [])),
        "training": "Loss, accuracy and gradient norm over training. "
                    + training_sentence(summary.get("training")),
    }
    if figures:
        blocks.append(Block("h2", "Figures"))
        for name, path in figures.items():
            blocks.append(Block("figure", text=captions.get(name, name), path=path))

    blocks.append(Block("h2", "Numbers"))
    if top:
        names = [n for n in ("H", "G", "R") if n in top]
        n = max(len(top[x]) for x in names)
        rows = [[str(j + 1)] + [_fmt_cell(top[x][j]) if j < len(top[x]) else "-" for x in names]
                for j in range(n)]
        blocks.append(Block("p", "Top eigenvalues (Lanczos, descending):"))
        blocks.append(Block("table", header=["rank"] + names, items=rows))
    small = (summary.get("smallest_eigenvalues") or {}).get("H")
    if small:
        conv = (summary.get("converged") or {}).get("H_bottom")
        blocks.append(Block("p", negative_sentence(small, top.get("H"), conv)))
    if pred:
        methods = list(pred["predictors"])
        obs = pred.get("observed") or []
        rows = []
        for j in range(pred["k"]):
            row = [str(j + 1), _fmt_cell(obs[j]) if j < len(obs) else "-"]
            for m in methods:
                r = pred["predictors"][m]
                e = (r.get("relative_errors") or [None] * pred["k"])
                err = e[j] if j < len(e) else None
                row.append(_fmt_cell(r["predicted"][j])
                           + (f" ({100 * err:+.1f} %)" if _finite(err) else ""))
            rows.append(row)
        blocks.append(Block("p", f"Outliers of G, observed and predicted (relative error in "
                                 f"brackets); the bulk of iid/additive: {pred.get('bulk_source')}:"))
        blocks.append(Block("table", header=["rank", "observed"] + methods, items=rows))
    mp = summary.get("mp_fit")
    if mp:
        rows = []
        for name in mp.get("param_names", []):
            ci = (mp.get("conf_int") or {}).get(name) or [None, None]
            rows.append([name, _fmt_cell(mp["params"].get(name)), _fmt_cell(mp["bse"].get(name)),
                         f"[{_fmt_cell(ci[0])}, {_fmt_cell(ci[1])}]"])
        rows.append(["KS statistic | p-value", _fmt_cell(mp.get("ks_statistic")),
                     _fmt_cell(mp.get("ks_pvalue")), "(p-value optimistic: fitted parameters)"])
        rows.append(["third moment / MP", _fmt_cell(mp.get("third_moment_ratio")), "", ""])
        blocks.append(Block("p", f"Marchenko-Pastur fit to {mp.get('fitted_to')} "
                                 f"({mp.get('method')}):"))
        blocks.append(Block("table", header=["parameter", "estimate", "std. error",
                                             f"{100 * (1 - (mp.get('alpha') or 0.05)):.0f} % interval"],
                            items=rows))
    if summary.get("skipped"):
        blocks.append(Block("p", "Not run: " + "; ".join(summary["skipped"]) + "."))
    blocks.append(Block("h2", "Settings and versions"))
    blocks.append(Block("pre", json.dumps({"settings": summary.get("settings"),
                                           "versions": summary.get("versions"),
                                           "seconds": summary.get("seconds")}, indent=2)))
    return blocks


def render_markdown(blocks: list[Block]) -> str:
    """The blocks as Markdown (figures linked by their relative paths).

    Parameters
    ----------
    blocks : list of Block

    Returns
    -------
    str
    """
    out: list[str] = []
    for b in blocks:
        if b.kind == "h1":
            out.append(f"# {b.text}")
        elif b.kind == "h2":
            out.append(f"## {b.text}")
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "ul":
            out.append("\n".join(f"- {x}" for x in b.items))
        elif b.kind == "figure":
            out.append(f"![{Path(b.path).stem}]({b.path})\n\n*{b.text}*")
        elif b.kind == "table":
            lines = ["| " + " | ".join(b.header) + " |", "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in b.items]
            out.append("\n".join(lines))
        elif b.kind == "pre":
            out.append("```json\n" + b.text + "\n```")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .15em; margin-top: 1.6em; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .92em; color: #333; margin-top: .4em; }
table { border-collapse: collapse; font-size: .9em; margin: .6em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .82em; }
li { margin: .25em 0; }
"""


def render_html(blocks: list[Block], base: str | os.PathLike | None = None) -> str:
    """The blocks as one self-contained HTML page (figures embedded as base64 PNG).

    Parameters
    ----------
    blocks : list of Block
    base : str or os.PathLike, optional
        The folder the figure paths are relative to.

    Returns
    -------
    str
    """
    root = Path(base) if base is not None else Path(".")
    title = next((b.text for b in blocks if b.kind == "h1"), "report")
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        if b.kind in ("h1", "h2", "p"):
            out.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in b.items) + "</ul>")
        elif b.kind == "figure":
            data = base64.b64encode((root / b.path).read_bytes()).decode("ascii")
            out.append(f'<figure><img alt="{html.escape(Path(b.path).stem)}" '
                       f'src="data:image/png;base64,{data}"><figcaption>{html.escape(b.text)}'
                       "</figcaption></figure>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
                           + "</tr>" for row in b.items)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "pre":
            out.append(f"<pre>{html.escape(b.text)}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(run_dir: str | os.PathLike) -> list[Path]:
    """Write ``report.md`` and ``report.html`` for a run directory (atomically).

    Parameters
    ----------
    run_dir : str or os.PathLike
        Holds ``summary.json`` and, where drawn, ``figures/*.png``.

    Returns
    -------
    list of pathlib.Path
        The two files.

    Raises
    ------
    ResultFileError
        No or a corrupt ``summary.json``.
    """
    run = Path(run_dir)
    summary = read_summary(run)
    figures = {name: f"figures/{name}.png" for name in FIGURES
               if (run / "figures" / f"{name}.png").is_file()}
    blocks = build_report(summary, figures)
    md = atomic_write_bytes(run / "report.md", render_markdown(blocks).encode("utf-8"))
    page = atomic_write_bytes(run / "report.html", render_html(blocks, run).encode("utf-8"))
    return [md, page]
