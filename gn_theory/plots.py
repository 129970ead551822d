r"""Figures from result objects (matplotlib, headless, torch-free).

Every function takes result objects (and optionally the axes to draw on),
labels its axes and returns the :class:`matplotlib.figure.Figure`. Nothing here
does file I/O, picks a backend, shows a window or saves: the caller does
(``fig.savefig("density.png")``). Figures are built with
:class:`matplotlib.figure.Figure` directly, never through ``pyplot``, so no state
leaks from one call to the next and nothing needs closing.

Spectrum
    :func:`plot_density` (one scale), :func:`plot_spectrum_overview` (linear and
    log-|lambda| side by side): stochastic Lanczos quadrature densities of H, G, R,
    G_w (whatever is passed), exact eigenvalue histograms, the fitted
    Marchenko-Pastur bulk, observed and predicted outliers.
Predicted versus observed
    :func:`plot_predicted_vs_observed`, :func:`plot_relative_errors`,
    :func:`plot_outlier_counts`.
Structure
    :func:`plot_gram`, :func:`plot_overlaps`, :func:`plot_dense_hessian`.
Scaling
    :func:`plot_scaling`.
Training
    :func:`plot_training`.

Conventions: eigenvalues and outlier positions come in any order (the package
stores them descending, largest first); ranks on the axes count from 1 for the
largest. The module imports numpy, matplotlib and :mod:`gn_theory.results` only
(no torch), so figures are made from saved results on a machine without torch.

Examples
--------
>>> import numpy as np
>>> from gn_theory.results import SpectralDensity
>>> from gn_theory.plots import plot_density
>>> d = SpectralDensity.from_eigenvalues(np.r_[np.linspace(0.5, 1.5, 50), 8.0])
>>> fig = plot_density({"G": d}, observed_outliers=[8.0])
>>> fig.axes[0].get_xlabel()
'eigenvalue $\\lambda$'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import _checks
from .exceptions import InvalidInputError, ShapeError
from .results.spectra import Outliers, SpectralDensity, Spectrum, spectral_measure
from .results.structure import PARTS
from .rmt import additive_outliers, iid_noise_outliers

if TYPE_CHECKING:  # annotations only: the fits and predictions live in gn_theory.rmt / explain
    from .results import ClassStructure, FortGanguli, TrainingLog
    from .rmt import MarchenkoPasturFit, ScalingFit

__all__ = [
    # spectrum
    "plot_density",
    "plot_spectrum_overview",
    # predicted versus observed
    "plot_predicted_vs_observed",
    "plot_relative_errors",
    "plot_outlier_counts",
    # structure
    "plot_gram",
    "plot_overlaps",
    "plot_dense_hessian",
    # scaling
    "plot_scaling",
    # training
    "plot_training",
    # colours
    "OPERATOR_COLOURS",
]

#: One colour per operator, the same in every figure (others take the default cycle).
OPERATOR_COLOURS: dict[str, str] = {
    "H": "#1f77b4",
    "G": "#d62728",
    "R": "#2ca02c",
    "G_w": "#9467bd",
    "G_cm": "#ff7f0e",
    "G_0": "#8c564b",
    "G_1": "#e377c2",
    "G_2": "#7f7f7f",
}
#: Operator kinds (``settings["kind"]`` of a measured result) -> the names used in figures.
_KIND_NAMES = {"hessian": "H", "ggn": "G", "residual": "R", "ggn_within": "G_w"}
_CYCLE = ("#17becf", "#bcbd22", "#8c564b", "#e377c2", "#7f7f7f", "#1f77b4", "#ff7f0e")
_MARKERS = ("o", "s", "^", "D", "P", "X", "v", "<", ">", "*")
#: Floor of a log density axis, relative to the highest curve (Gaussian tails go to 0).
_LOG_FLOOR = 1e-6
_OBSERVED_COLOUR = "black"


# =============================================================================== plumbing
def _figure_of(ax: Axes) -> Figure:
    """The root figure an Axes belongs to (not a SubFigure)."""
    fig = ax.figure
    while not isinstance(fig, Figure):  # a SubFigure: its .figure is the parent
        fig = fig.figure
    return fig


def _new_figure(figsize: tuple[float, float]) -> Figure:
    return Figure(figsize=figsize, layout="constrained")


def _check_axes(ax: Any, name: str = "ax") -> Axes:
    if not isinstance(ax, Axes):
        raise InvalidInputError(f"{name} must be a matplotlib Axes; got {type(ax).__name__}")
    return ax


def _check_axes_seq(axes: Any, n: int, name: str = "axes") -> list[Axes]:
    seq = list(np.ravel(np.asarray(axes, dtype=object))) if not isinstance(axes, Axes) else [axes]
    if len(seq) != n:
        raise InvalidInputError(f"{name} must hold {n} Axes; got {len(seq)}")
    return [_check_axes(a, name) for a in seq]


def _colour(name: str, index: int) -> str:
    return OPERATOR_COLOURS.get(name, _CYCLE[index % len(_CYCLE)])


def _as_named(obj: Any, kind: str, default: str) -> dict[str, Any]:
    """A mapping name -> object; a single object gets the name ``default``."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{kind}: keys must be names (str); got {key!r}")
            out[key] = value
        return out
    return {default: obj}


def _positions(values: Any, name: str) -> np.ndarray:
    """Outlier positions (an array, a Spectrum, an Outliers result), descending; may be empty."""
    if isinstance(values, Outliers):
        values = values.values
    elif isinstance(values, Spectrum):
        values = values.eigenvalues
    arr = _checks.check_real_array(values, name, scalar=True, allow_empty=True)
    return np.sort(arr)[::-1]


def _predictions(predicted: Any) -> dict[str, np.ndarray]:
    """Predicted outlier positions per predictor, from a mapping or a prediction result."""
    if predicted is None:
        return {}
    if hasattr(predicted, "methods") and hasattr(predicted, "predicted"):
        rows = np.atleast_2d(np.asarray(predicted.predicted, dtype=float))
        above = getattr(predicted, "above", None)
        keep = np.isfinite(rows) if above is None else (
            np.isfinite(rows) & np.atleast_2d(np.asarray(above, dtype=bool)))
        return {
            str(m): _positions(r[k], f"predicted_outliers[{m!r}]")
            for m, r, k in zip(predicted.methods, rows, keep)
        }
    if not isinstance(predicted, Mapping):
        raise InvalidInputError(
            "predicted_outliers must map a predictor's name to its predicted positions "
            f"(or be an outlier prediction result); got {type(predicted).__name__}"
        )
    return {str(k): _positions(v, f"predicted_outliers[{k!r}]") for k, v in predicted.items()}


def _is_full_spectrum(spectrum: Any) -> bool:
    """Whether eigenvalues describe the whole spectrum (a histogram), not only its top."""
    if isinstance(spectrum, Spectrum):
        return spectrum.which == "all" or len(spectrum) == spectrum.num_params
    return True


def _hist_edges(values: np.ndarray, bins: int | None) -> np.ndarray:
    if bins is not None:
        return np.histogram_bin_edges(values, _checks.check_positive_int("bins", bins))
    edges = np.histogram_bin_edges(values, "auto")
    if edges.size > 201:
        edges = np.histogram_bin_edges(values, 200)
    elif edges.size < 31 and values.size >= 150:  # "auto" is coarse for a bulk plus outliers
        edges = np.histogram_bin_edges(values, min(100, max(30, values.size // 8)))
    return edges


def _log_floor(ax: Axes, peak: float) -> None:
    if peak > 0 and math.isfinite(peak):
        ax.set_ylim(bottom=peak * _LOG_FLOOR, top=peak * 3.0)


def _mark_positions(ax: Axes, x: np.ndarray, *, y: float, marker: str, colour: str,
                    label: str, filled: bool) -> None:
    """Markers at data x and axes-fraction y (outliers above the curves), and a tick line."""
    if x.size == 0:
        return
    trans = ax.get_xaxis_transform()
    ax.plot(x, np.full(x.size, y), linestyle="none", marker=marker, markersize=7,
            markerfacecolor=colour if filled else "none", markeredgecolor=colour,
            markeredgewidth=1.4, color=colour, transform=trans, label=label, clip_on=False,
            zorder=5)
    ax.vlines(x, 0.0, y, transform=trans, colors=colour, linestyles=":", linewidth=0.8,
              alpha=0.6, zorder=1)


def _outlier_rows(observed: Any, predicted: Any) -> list[tuple[str, np.ndarray, str, str, bool]]:
    """(label, positions, marker, colour, filled) for the observed and each predictor."""
    rows = []
    for i, (name, vals) in enumerate(_as_named(observed, "observed_outliers", "").items()):
        pos = _positions(vals, "observed_outliers")
        label = "observed outliers" + (f" ({name})" if name else "")
        rows.append((label, pos, "v", _OBSERVED_COLOUR if i == 0 else _CYCLE[i], True))
    for j, (name, pos) in enumerate(_predictions(predicted).items()):
        rows.append((f"predicted: {name}", pos, _MARKERS[j % len(_MARKERS)],
                     _CYCLE[j % len(_CYCLE)], False))
    return rows


def _handles(*axes: Axes) -> tuple[list, list[str]]:
    """Legend handles and labels of several axes, each label once."""
    seen: dict[str, Any] = {}
    for a in dict.fromkeys(axes):
        for h, label in zip(*a.get_legend_handles_labels()):
            if label and not label.startswith("_") and label not in seen:
                seen[label] = h
    return list(seen.values()), list(seen)


def _outside_legend(ax: Axes, *others: Axes) -> None:
    """One legend to the right of ``ax`` holding the entries of ``ax`` and ``others``."""
    handles, labels = _handles(ax, *others)
    if handles:
        ax.legend(handles, labels, fontsize="small", loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, framealpha=0.9)


def _mp_fits(mp_fit: Any) -> dict[str, Any]:
    fits = _as_named(mp_fit, "mp_fit", "")
    for name, fit in fits.items():
        if not (hasattr(fit, "predict") and hasattr(fit, "upper_edge")):
            raise InvalidInputError(
                "mp_fit must be a MarchenkoPasturFit (gn_theory.rmt.fit_marchenko_pastur) or a "
                f"mapping of them; got {type(fit).__name__}"
            )
    return fits


def _mp_label(name: str, fit: Any) -> str:
    head = f"MP fit ({name})" if name else "MP fit"
    return f"{head}: $\\sigma^2$={fit.scale:.3g}, $\\gamma$={fit.ratio:.3g}"


def _mp_curve(fit: Any, num: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """The fitted continuous density on its support, in fractions of the whole spectrum.

    ``fit.predict`` integrates to the law's continuous mass; the curve is rescaled to
    the mass of the bulk the fit kept (``data_weights``: fractions of the whole
    spectrum, without the outliers, negatives and zeros it set aside), so that it sits
    on the density or histogram of that bulk.
    """
    lo, hi = float(fit.lower_edge), float(fit.upper_edge)
    x = np.linspace(lo, hi, num)[1:-1]  # the edges of an MP law can be singular
    y = np.asarray(fit.predict(x), dtype=float)
    return x, y * _mp_mass_factor(fit)


def _mp_mass_factor(fit: Any) -> float:
    """Bulk mass kept by the fit over the continuous mass of the fitted law (1 if unknown)."""
    weights = getattr(fit, "data_weights", None)
    distribution = getattr(fit, "distribution", None)
    if weights is None or not callable(distribution) or np.size(weights) == 0:
        return 1.0
    continuous = 1.0 - float(distribution().atom)
    bulk = float(np.sum(weights))
    return bulk / continuous if continuous > 0 and bulk > 0 else 1.0


# =============================================================================== spectrum
def plot_density(
    densities: Mapping[str, SpectralDensity] | SpectralDensity | None,
    *,
    eigenvalues: Mapping[str, Any] | None = None,
    mp_fit: MarchenkoPasturFit | Mapping[str, MarchenkoPasturFit] | None = None,
    observed_outliers: Any = None,
    predicted_outliers: Mapping[str, Any] | Any = None,
    scale: Literal["linear", "log"] = "linear",
    yscale: Literal["linear", "log"] = "log",
    sigma: float | None = None,
    num: int = 1024,
    bins: int | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> Figure:
    r"""Spectral densities of H, G, R, G_w (whatever is passed) on a linear or a log-|lambda| scale.

    ``scale="linear"`` draws the Gaussian-broadened SLQ density
    (:meth:`SpectralDensity.density`, Papyan's kernel width) against
    :math:`\lambda`. ``scale="log"`` draws the densities of
    :math:`\log_{10}|\lambda|` (:meth:`SpectralDensity.log_density` on
    :meth:`SpectralDensity.log_grid`) against :math:`|\lambda|` on a log axis,
    the positive eigenvalues and the negative ones on separate panels (Papyan's
    style; eigenvalues spanning many decades). Exact eigenvalues, where known,
    are drawn as a histogram normalised the same way (fraction of the spectrum
    per unit :math:`\lambda`, or per decade); partial spectra (the top-k of a
    Lanczos run) as ticks at the bottom. A fitted Marchenko-Pastur law is
    overlaid on the bulk (:meth:`MarchenkoPasturFit.predict`, the density of its
    continuous part, in the same units, scaled to the share of the spectrum the
    fit kept as bulk). Observed outliers are marked by filled triangles above
    the curves, each predictor's positions by its own hollow marker.

    Parameters
    ----------
    densities : mapping of str to SpectralDensity, or SpectralDensity, or None
        The densities to draw, by operator name (``"H"``, ``"G"``, ``"R"``,
        ``"G_w"``, ...; the name picks the colour, see
        :data:`OPERATOR_COLOURS`); a single density is named after its
        operator's kind (``settings["kind"]``). May be None or empty when
        ``eigenvalues`` is given.
    eigenvalues : mapping of str to (Spectrum or array_like), optional
        Exact eigenvalues by operator name (any order), drawn as histograms
        in the colour of the density of that name.
    mp_fit : MarchenkoPasturFit or mapping of str to MarchenkoPasturFit, optional
        Fitted bulk(s) to overlay (on the positive panel for ``scale="log"``).
    observed_outliers : array_like, Spectrum, Outliers or mapping of them, optional
        Observed outlier positions.
    predicted_outliers : mapping of str to array_like, or an outlier prediction, optional
        Predicted positions per predictor (a result with ``methods`` and
        ``predicted`` rows, such as :func:`gn_theory.explain.predict_outliers`'
        output, is read row by row, keeping the positions each predictor calls
        outliers, its ``above`` flags).
    scale : {"linear", "log"}, default "linear"
        The eigenvalue axis.
    yscale : {"linear", "log"}, default "log"
        The density axis; on a log axis the outliers' small masses show and
        the axis is cut at ``1e-6`` times the highest curve.
    sigma : float, optional
        Kernel width: eigenvalue units for ``"linear"``, decades for ``"log"``;
        default Papyan's rule (:meth:`SpectralDensity.default_sigma`).
    num : int, default 1024
        Grid points per curve.
    bins : int, optional
        Histogram bins (default numpy's ``"auto"``, at most 200).
    ax : Axes or (Axes, Axes), optional
        Where to draw. For ``"log"`` a pair puts the positive side on the first
        and the negative side on the second; a single Axes gets both, the
        negative side dashed. By default a new figure (two stacked panels for
        ``"log"``).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidInputError
        Nothing to draw, an unknown ``scale``/``yscale``, a non-density in
        ``densities``, an ``mp_fit`` that is not a fit, or bad axes.
    ShapeError, NonFiniteError
        Eigenvalues or outlier positions that are not finite 1-d arrays.
    """
    _checks.check_choice("scale", scale, ("linear", "log"))
    _checks.check_choice("yscale", yscale, ("linear", "log"))
    num = _checks.check_positive_int("num", num, minimum=8)
    dens = _as_named(densities, "densities", "")
    if len(dens) == 1 and "" in dens:
        d = dens.pop("")
        kind = str(getattr(d, "settings", {}).get("kind", "") or "density")
        dens[_KIND_NAMES.get(kind, kind)] = d
    for name, d in dens.items():
        if not isinstance(d, SpectralDensity):
            raise InvalidInputError(
                f"densities[{name!r}] must be a SpectralDensity (gn_theory.slq); got "
                f"{type(d).__name__}"
            )
    exact = _as_named(eigenvalues, "eigenvalues", "eigenvalues")
    if not dens and not exact:
        raise InvalidInputError("nothing to draw: pass densities or eigenvalues")
    if sigma is not None and not (isinstance(sigma, (int, float)) and sigma > 0):
        raise InvalidInputError(f"sigma must be a positive number; got {sigma!r}")
    fits = _mp_fits(mp_fit)
    marks = _outlier_rows(observed_outliers, predicted_outliers)
    names = list(dict.fromkeys([*dens, *exact]))
    colours = {n: _colour(n, i) for i, n in enumerate(names)}
    if scale == "linear":
        if ax is None:
            fig = _new_figure((8.6, 4.6))
            axis = fig.add_subplot()
        else:
            axis = _check_axes(ax)
            fig = _figure_of(axis)
        _density_linear(axis, dens, exact, fits, marks, colours, yscale, sigma, num, bins)
        return fig
    if ax is None:
        fig = _new_figure((8.6, 6.0))
        pos_ax, neg_ax = fig.subplots(2, 1, sharex=True)
    elif isinstance(ax, Axes):
        pos_ax = neg_ax = ax
        fig = _figure_of(ax)
    else:
        pos_ax, neg_ax = _check_axes_seq(ax, 2, "ax")
        fig = _figure_of(pos_ax)
    _density_log(pos_ax, neg_ax, dens, exact, fits, marks, colours, yscale, sigma, num, bins)
    return fig


def _density_linear(ax: Axes, dens: dict, exact: dict, fits: dict, marks: list,
                    colours: dict, yscale: str, sigma: float | None, num: int,
                    bins: int | None) -> None:
    peak = 0.0
    for name, d in dens.items():
        t = d.grid(num)
        y = d.density(t, sigma)
        peak = max(peak, float(y.max()))
        how = "exact, broadened" if d.settings.get("method") == "exact" else "SLQ"
        ax.plot(t, y, color=colours[name], linewidth=1.6, label=f"{name} ({how})")
    for name, ev in exact.items():
        values = spectral_measure(ev, name=f"eigenvalues[{name!r}]").values
        if _is_full_spectrum(ev):
            edges = _hist_edges(values, bins)
            h, _ = np.histogram(values, edges, density=True)
            peak = max(peak, float(h.max()))
            ax.stairs(h, edges, fill=True, alpha=0.3, color=colours[name],
                      label=f"{name} (exact eigenvalues, histogram)")
        else:
            ax.plot(values, np.zeros(values.size), linestyle="none", marker="|", markersize=12,
                    color=colours[name], transform=ax.get_xaxis_transform(),
                    label=f"{name} (top {values.size} eigenvalues)")
    for name, fit in fits.items():
        x, y = _mp_curve(fit)
        finite = y[np.isfinite(y)]
        if finite.size:
            peak = max(peak, float(finite.max()))
        ax.plot(x, y, color="black", linestyle="--", linewidth=1.3, label=_mp_label(name, fit))
    for k, (label, pos, marker, colour, filled) in enumerate(marks):
        _mark_positions(ax, pos, y=0.97 - 0.055 * k, marker=marker, colour=colour, label=label,
                        filled=filled)
    ax.set_yscale(yscale)
    if yscale == "log":
        _log_floor(ax, peak)
    else:
        ax.set_ylim(bottom=0.0)
    ax.set_xlabel("eigenvalue $\\lambda$")
    ax.set_ylabel("density (fraction of eigenvalues per unit $\\lambda$)")
    ax.set_title("Spectral density")
    _outside_legend(ax)


def _log_hist(values: np.ndarray, n_total: int,
              bins: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of log10 of positive ``values``: fraction of all n_total per decade."""
    u = np.log10(values)
    edges = _hist_edges(u, bins)
    if edges[-1] - edges[0] <= 0:
        edges = np.array([u[0] - 0.05, u[0] + 0.05])
    h, _ = np.histogram(u, edges)
    return h / (n_total * np.diff(edges)), edges


def _density_log(pos_ax: Axes, neg_ax: Axes, dens: dict, exact: dict, fits: dict,
                 marks: list, colours: dict, yscale: str, sigma: float | None, num: int,
                 bins: int | None) -> None:
    same = pos_ax is neg_ax
    peaks = {"pos": 0.0, "neg": 0.0}
    neg_drawn = False
    for name, d in dens.items():
        u = d.log_grid(max(num // 2, 8))
        pos, neg = d.log_density(u, sigma)
        x = 10.0**u
        how = "exact, broadened" if d.settings.get("method") == "exact" else "SLQ"
        pos_ax.plot(x, pos, color=colours[name], linewidth=1.6,
                    label=f"{name} ({how})" + (", $\\lambda>0$" if same else ""))
        peaks["pos"] = max(peaks["pos"], float(pos.max()))
        if neg.max() > 0:
            neg_drawn = True
            neg_ax.plot(x, neg, color=colours[name], linewidth=1.4,
                        linestyle="--" if same else "-",
                        label=f"{name} ({how})" + (", $\\lambda<0$" if same else ""))
            peaks["neg"] = max(peaks["neg"], float(neg.max()))
    for name, ev in exact.items():
        m = spectral_measure(ev, name=f"eigenvalues[{name!r}]")
        values = m.values
        if not _is_full_spectrum(ev):
            for side_ax, sel in ((pos_ax, values > 0), (neg_ax, values < 0)):
                if np.any(sel):
                    side_ax.plot(np.abs(values[sel]), np.zeros(int(sel.sum())), linestyle="none",
                                 marker="|", markersize=12, color=colours[name],
                                 transform=side_ax.get_xaxis_transform(),
                                 label=f"{name} (top {values.size} eigenvalues)")
            continue
        scale_ref = float(np.max(np.abs(values))) if values.size else 0.0
        nonzero = np.abs(values) > 1e-12 * scale_ref
        for key, side_ax, sel in (("pos", pos_ax, nonzero & (values > 0)),
                                  ("neg", neg_ax, nonzero & (values < 0))):
            if not np.any(sel):
                continue
            h, edges = _log_hist(np.abs(values[sel]), values.size, bins)
            side = "$\\lambda>0$" if key == "pos" else "$\\lambda<0$"
            side_ax.stairs(h, 10.0**edges, fill=True, alpha=0.3, color=colours[name],
                           label=f"{name} (exact eigenvalues, histogram"
                           + (f", {side})" if same else ")"))
            peaks[key] = max(peaks[key], float(h.max()))
            neg_drawn = neg_drawn or key == "neg"
    for name, fit in fits.items():
        x, y = _mp_curve(fit)
        keep = x > 0
        per_decade = y[keep] * x[keep] * math.log(10.0)
        pos_ax.plot(x[keep], per_decade, color="black", linestyle="--", linewidth=1.3,
                    label=_mp_label(name, fit))
        finite = per_decade[np.isfinite(per_decade)]
        if finite.size:
            peaks["pos"] = max(peaks["pos"], float(finite.max()))
    for k, (label, pos, marker, colour, filled) in enumerate(marks):
        y = 0.97 - 0.055 * k
        _mark_positions(pos_ax, pos[pos > 0], y=y, marker=marker, colour=colour, label=label,
                        filled=filled)
        negatives = -pos[pos < 0]
        if negatives.size:
            _mark_positions(neg_ax, negatives, y=y, marker=marker, colour=colour,
                            label=None if same else label, filled=filled)
    axes = [("pos", pos_ax)] if same else [("pos", pos_ax), ("neg", neg_ax)]
    for key, a in axes:
        a.set_xscale("log")
        a.set_yscale(yscale)
        peak = max(peaks.values()) if same else peaks[key]
        if yscale == "log":
            _log_floor(a, peak)
        else:
            a.set_ylim(bottom=0.0)
    if same:
        pos_ax.set_ylabel("density per decade of $|\\lambda|$")
        pos_ax.set_xlabel("$|\\lambda|$ (dashed: negative eigenvalues)")
        pos_ax.set_title("Spectral density, log scale")
        _outside_legend(pos_ax)
        return
    pos_ax.set_ylabel("density per decade, $\\lambda > 0$")
    neg_ax.set_ylabel("density per decade, $\\lambda < 0$")
    neg_ax.set_xlabel("$|\\lambda|$")
    pos_ax.set_title("Spectral density, log $|\\lambda|$ (positive above, negative below)")
    _outside_legend(pos_ax, neg_ax)
    if not neg_drawn:
        neg_ax.text(0.5, 0.5, "no negative eigenvalues", transform=neg_ax.transAxes,
                    ha="center", va="center", color="0.4")
        neg_ax.set_yticks([])
        neg_ax.set_yticks([], minor=True)


def plot_spectrum_overview(
    densities: Mapping[str, SpectralDensity] | SpectralDensity | None,
    *,
    eigenvalues: Mapping[str, Any] | None = None,
    mp_fit: MarchenkoPasturFit | Mapping[str, MarchenkoPasturFit] | None = None,
    observed_outliers: Any = None,
    predicted_outliers: Mapping[str, Any] | Any = None,
    yscale: Literal["linear", "log"] = "log",
    num: int = 1024,
    bins: int | None = None,
    title: str | None = None,
) -> Figure:
    """The linear and the log-|lambda| views of :func:`plot_density` side by side.

    The left panel is ``scale="linear"``; the right column is ``scale="log"``
    with the positive side above and the negative side below. Parameters as
    :func:`plot_density` (each panel uses its default kernel width).

    Parameters
    ----------
    densities, eigenvalues, mp_fit, observed_outliers, predicted_outliers, yscale, num, bins
        As :func:`plot_density`.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Three axes: linear, log positive, log negative.

    Raises
    ------
    InvalidInputError, ShapeError, NonFiniteError
        As :func:`plot_density`.
    """
    fig = _new_figure((14.0, 6.0))
    grid = fig.add_gridspec(2, 2)
    lin = fig.add_subplot(grid[:, 0])
    pos = fig.add_subplot(grid[0, 1])
    neg = fig.add_subplot(grid[1, 1], sharex=pos)
    common = dict(eigenvalues=eigenvalues, mp_fit=mp_fit, observed_outliers=observed_outliers,
                  predicted_outliers=predicted_outliers, yscale=yscale, num=num, bins=bins)
    plot_density(densities, scale="linear", ax=lin, **common)
    plot_density(densities, scale="log", ax=(pos, neg), **common)
    pos.set_title("log $|\\lambda|$ (positive above, negative below)")
    handles, labels = _handles(lin, pos, neg)
    for a in (lin, pos, neg):
        if a.get_legend() is not None:
            a.get_legend().remove()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize="small")
    if title is not None:
        fig.suptitle(str(title))
    return fig


# ======================================================================= predicted vs observed
def _observed_of(prediction: Any) -> np.ndarray:
    observed = getattr(prediction, "observed", None)
    if observed is None:
        raise InvalidInputError(
            "the prediction holds no observed eigenvalues: pass the observed top of G to "
            "predict_outliers (observed=...) to compare"
        )
    if isinstance(observed, Spectrum):
        observed = observed.eigenvalues
    return np.sort(_checks.check_real_array(observed, "prediction.observed"))[::-1]


def _prediction_rows(prediction: Any, methods: Sequence[str] | None) -> list[tuple[int, str]]:
    if not (hasattr(prediction, "methods") and hasattr(prediction, "predicted")):
        raise InvalidInputError(
            "prediction must be an outlier prediction result (methods, predicted, observed); "
            f"got {type(prediction).__name__}"
        )
    all_methods = [str(m) for m in prediction.methods]
    if methods is None:
        return list(enumerate(all_methods))
    rows = []
    for m in methods:
        _checks.check_choice("methods", m, tuple(all_methods))
        rows.append((all_methods.index(m), m))
    return rows


def _intervals(prediction: Any, row: int, method: str, n: int) -> np.ndarray | None:
    """(n, 2) lower/upper bounds of one predictor's first n positions, where the result gives them.

    A result's own ``predicted_conf_int`` ((M, k, 2) array, or a callable taking the
    method) comes first. The ``"subspace"`` row gets the Ritz residual bound
    ``theta -+ ||r||``. The closed-form rows (``"iid"``, ``"additive"``) get the
    bulk fit's uncertainty: its bootstrap replicates of ``(scale, ratio)`` pushed
    through the predictor's formula, percentile interval at the fit's alpha.
    """
    own = getattr(prediction, "predicted_conf_int", None)
    if callable(own):
        own = own(method)
    if own is not None:
        arr = np.asarray(own, dtype=float)
        arr = arr[row] if arr.ndim == 3 else arr
        if arr.ndim == 2 and arr.shape[1] == 2 and arr.shape[0] >= n:
            return arr[:n]
        return None
    residuals = getattr(prediction, "ritz_residual_norms", None)
    if method == "subspace" and residuals is not None and np.size(residuals) >= n:
        p = np.atleast_2d(np.asarray(prediction.predicted, dtype=float))[row, :n]
        r = np.asarray(residuals, dtype=float)[:n]
        return np.column_stack([p - r, p + r])
    formula = {"iid": iid_noise_outliers, "additive": additive_outliers}.get(method)
    bulk = getattr(prediction, "bulk", None)
    spikes = getattr(prediction, "class_mean_eigenvalues", None)
    replicates = getattr(bulk, "bootstrap_params", None)
    if formula is None or spikes is None or replicates is None:
        return None
    reps = np.asarray(replicates, dtype=float)
    if reps.ndim != 2 or reps.shape[1] != 2:
        return None
    reps = reps[np.all(np.isfinite(reps), axis=1) & np.all(reps > 0, axis=1)]
    spikes = np.asarray(spikes, dtype=float)[:n]
    if reps.shape[0] < 2 or spikes.size < n:
        return None
    draws = np.array([formula(spikes, ratio, scale).predicted for scale, ratio in reps])
    level = float(getattr(bulk, "alpha", 0.05) or 0.05)
    return np.column_stack([np.quantile(draws, level / 2, axis=0),
                            np.quantile(draws, 1 - level / 2, axis=0)])


def plot_predicted_vs_observed(
    prediction: Any,
    *,
    methods: Sequence[str] | None = None,
    log: bool | None = None,
    ax: Axes | None = None,
) -> Figure:
    r"""Predicted outlier positions per predictor against the observed ones, with y = x.

    Rank j of each predictor (descending) is set against the observed j-th
    largest eigenvalue. Hollow markers are positions the predictor does not
    call outliers (below its threshold: it predicts the bulk edge there), where
    the result says so (``above``). Error bars, where the result allows them:
    for ``"iid"`` and ``"additive"`` the uncertainty of the bulk fit (its
    bootstrap replicates of ``(scale, ratio)`` pushed through the predictor's
    formula; percentile interval at the fit's ``alpha``); for ``"subspace"``
    the Ritz residual bound :math:`\theta_k \pm \|r_k\|` (an eigenvalue of G
    lies within it); a result's own ``predicted_conf_int`` takes precedence.

    Parameters
    ----------
    prediction : OutlierPrediction
        The result of :func:`gn_theory.explain.predict_outliers` (any object
        with ``methods``, ``predicted`` rows and ``observed``).
    methods : sequence of str, optional
        The predictors to draw (default all).
    log : bool, optional
        Log axes; by default when the positive values span more than a decade.
    ax : Axes, optional
        Where to draw (default a new figure).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidInputError
        No observed values, a method that was not run, or not a prediction.
    """
    rows = _prediction_rows(prediction, methods)
    observed = _observed_of(prediction)
    predicted = np.atleast_2d(np.asarray(prediction.predicted, dtype=float))
    above = getattr(prediction, "above", None)
    above = None if above is None else np.atleast_2d(np.asarray(above, dtype=bool))
    if ax is None:
        fig = _new_figure((5.4, 5.0))
        ax = fig.add_subplot()
    else:
        fig = _figure_of(_check_axes(ax))
    everything = [observed]
    hollow = False
    for j, (row, method) in enumerate(rows):
        n = min(observed.size, predicted.shape[1])
        p = predicted[row, :n]
        o = observed[:n]
        ok = np.isfinite(p)
        colour, marker = _CYCLE[j % len(_CYCLE)], _MARKERS[j % len(_MARKERS)]
        ci = _intervals(prediction, row, method, n)
        if ci is not None:
            yerr = np.vstack([np.clip(p - ci[:, 0], 0, None), np.clip(ci[:, 1] - p, 0, None)])
            ax.errorbar(o[ok], p[ok], yerr=yerr[:, ok], fmt="none", ecolor=colour, alpha=0.7,
                        capsize=2)
        is_out = above[row, :n] if above is not None and above.shape[1] >= n else np.ones(n, bool)
        ax.plot(o[ok & is_out], p[ok & is_out], linestyle="none", marker=marker, color=colour,
                markersize=7, label=method)
        if np.any(ok & ~is_out):
            hollow = True
            ax.plot(o[ok & ~is_out], p[ok & ~is_out], linestyle="none", marker=marker,
                    color=colour, markerfacecolor="none", markeredgecolor=colour, markersize=7,
                    label="_below threshold")
        everything.append(p[ok])
    values = np.concatenate(everything)
    positive = values[values > 0]
    if log is None:
        log = positive.size == values.size and positive.size > 0 and (
            positive.max() / positive.min() > 10.0)
    lo, hi = float(values.min()), float(values.max())
    if log:
        if positive.size != values.size:
            raise InvalidInputError("log axes need positive positions; pass log=False")
        lo, hi = lo / 1.5, hi * 1.5
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:
        pad = 0.08 * (hi - lo if hi > lo else max(abs(hi), 1.0))
        lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], color="0.3", linestyle="--", linewidth=1.0, label="y = x")
    if hollow:
        ax.plot([], [], linestyle="none", marker="o", markerfacecolor="none",
                markeredgecolor="0.3", label="hollow: below the threshold (no outlier predicted)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("observed eigenvalue")
    ax.set_ylabel("predicted eigenvalue")
    ax.set_title("Predicted vs observed outliers")
    ax.legend(fontsize="small", framealpha=0.8)
    return fig


def plot_relative_errors(
    prediction: Any,
    *,
    methods: Sequence[str] | None = None,
    absolute: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """Relative error of each predictor per rank: (predicted - observed) / observed.

    Parameters
    ----------
    prediction : OutlierPrediction
        As :func:`plot_predicted_vs_observed`; its ``relative_errors`` (M, n)
        are used when present, else they are computed from ``predicted`` and
        ``observed``.
    methods : sequence of str, optional
        The predictors to draw (default all).
    absolute : bool, default False
        Plot ``|error|`` on a log axis instead of the signed error.
    ax : Axes, optional
        Where to draw (default a new figure).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidInputError
        No observed values, a method that was not run, or not a prediction.
    """
    rows = _prediction_rows(prediction, methods)
    errors = getattr(prediction, "relative_errors", None)
    if errors is None:
        observed = _observed_of(prediction)
        predicted = np.atleast_2d(np.asarray(prediction.predicted, dtype=float))
        n = min(observed.size, predicted.shape[1])
        errors = (predicted[:, :n] - observed[:n]) / np.abs(observed[:n])
    errors = np.atleast_2d(np.asarray(errors, dtype=float))
    if ax is None:
        fig = _new_figure((6.0, 4.0))
        ax = fig.add_subplot()
    else:
        fig = _figure_of(_check_axes(ax))
    ranks = np.arange(1, errors.shape[1] + 1)
    for j, (row, method) in enumerate(rows):
        e = errors[row]
        y = np.abs(e) if absolute else 100.0 * e
        ax.plot(ranks, y, marker=_MARKERS[j % len(_MARKERS)], color=_CYCLE[j % len(_CYCLE)],
                label=method)
    if absolute:
        ax.set_yscale("log")
        ax.set_ylabel("|relative error| = |predicted - observed| / observed")
    else:
        ax.axhline(0.0, color="0.3", linewidth=0.9)
        ax.set_ylabel("relative error (%) = (predicted - observed) / observed")
    ax.set_xlabel("outlier rank (1 = largest)")
    if ranks.size <= 20:
        ax.set_xticks(ranks)
    ax.set_title("Relative error of the predicted outliers")
    ax.legend(fontsize="small", framealpha=0.8)
    return fig


def plot_outlier_counts(
    counts: Sequence[float] | Mapping[str, Sequence[float]],
    num_classes: Sequence[int],
    *,
    ax: Axes | None = None,
) -> Figure:
    """Number of outliers against the number of classes C, with the lines C and C - 1.

    Parameters
    ----------
    counts : sequence of numbers, or mapping of str to them
        Outlier counts, one per entry of ``num_classes`` (a mapping draws one
        series per name, e.g. ``{"H": ..., "G": ...}``).
    num_classes : sequence of int
        The number of classes of each run.
    ax : Axes, optional
        Where to draw (default a new figure).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ShapeError
        A series whose length differs from ``num_classes``.
    InvalidInputError
        Empty or non-finite input.
    """
    C = _checks.check_real_array(num_classes, "num_classes")
    series = _as_named(counts, "counts", "observed")
    if not series:
        raise InvalidInputError("counts is empty")
    if ax is None:
        fig = _new_figure((5.4, 4.2))
        ax = fig.add_subplot()
    else:
        fig = _figure_of(_check_axes(ax))
    order = np.argsort(C, kind="stable")
    for j, (name, values) in enumerate(series.items()):
        v = _checks.check_real_array(values, f"counts[{name!r}]" if name else "counts")
        if v.size != C.size:
            raise ShapeError(
                f"counts{'' if name == 'observed' else f'[{name!r}]'} holds {v.size} values for "
                f"{C.size} entries of num_classes"
            )
        ax.plot(C[order], v[order], marker=_MARKERS[j % len(_MARKERS)], linestyle="-",
                color=_colour(name, j) if name in OPERATOR_COLOURS else _CYCLE[j % len(_CYCLE)],
                label=name)
    span = np.array([C.min(), C.max()])
    ax.plot(span, span, color="0.3", linestyle="--", linewidth=1.0, label="C")
    ax.plot(span, span - 1, color="0.5", linestyle=":", linewidth=1.0, label="C - 1")
    ax.set_xlabel("number of classes C")
    ax.set_ylabel("number of outliers")
    ax.set_title("Outlier count against the number of classes")
    ax.legend(fontsize="small", framealpha=0.8)
    return fig


# =============================================================================== structure
def _heatmap(ax: Axes, M: np.ndarray, *, symmetric: bool, vmin: float | None = None,
             vmax: float | None = None, cmap: str | None = None, label: str = "") -> Any:
    if symmetric:
        top = float(np.max(np.abs(M))) if vmax is None else float(vmax)
        top = top if top > 0 else 1.0
        vmin, vmax = -top, top
        cmap = cmap or "RdBu_r"
    image = ax.imshow(M, cmap=cmap or "viridis", vmin=vmin, vmax=vmax, interpolation="nearest",
                      aspect="equal")
    colourbar = _figure_of(ax).colorbar(image, ax=ax, shrink=0.85)
    if label:
        colourbar.set_label(label)
    return image


def plot_gram(
    structure: ClassStructure,
    part: Literal["G_cm", "G_0", "G_1", "G_2"] = "G_cm",
    *,
    normalize: bool = False,
    ax: Axes | None = None,
) -> Figure:
    r"""Heatmap of the class / cross-class Gram matrix of a part of G.

    ``"G_cm"``: the :math:`C^2 \times C^2` cross-class Gram
    :math:`K_{(c,c'),(d,d')} = \sqrt{\pi_c\pi_d}\langle\delta_{c,c'},\delta_{d,d'}\rangle`,
    rows ``c * C + c'`` in blocks of the true class c (lines between blocks);
    ``"G_0"``, ``"G_1"``: the C x C class Grams; ``"G_2"``: pairs
    ``(c, c')``, ``c' != c``, in blocks of C - 1. The colour scale is
    symmetric about 0.

    Parameters
    ----------
    structure : ClassStructure
        From :func:`gn_theory.decomposition.class_structure` (or loaded).
    part : {"G_cm", "G_0", "G_1", "G_2"}, default "G_cm"
        Which Gram (:meth:`ClassStructure.gram`).
    normalize : bool, default False
        Show cosines :math:`K_{ij}/\sqrt{K_{ii}K_{jj}}` instead of the entries.
    ax : Axes, optional
        Where to draw (default a new figure).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidInputError
        An unknown part, or one the memory guard skipped.
    """
    _checks.check_choice("part", part, PARTS)
    K = np.asarray(structure.gram(part), dtype=float)
    C = int(structure.num_classes)
    if normalize:
        d = np.sqrt(np.clip(np.diag(K), 0.0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            K = np.where(np.outer(d, d) > 0, K / np.outer(d, d), 0.0)
    if ax is None:
        fig = _new_figure((5.6, 4.8))
        ax = fig.add_subplot()
    else:
        fig = _figure_of(_check_axes(ax))
    _heatmap(ax, K, symmetric=True, vmax=1.0 if normalize else None,
             label="cosine" if normalize else "inner product")
    n = K.shape[0]
    block = {"G_cm": C, "G_2": C - 1}.get(part)
    if block and n == C * block and block > 1:
        for b in range(1, C):
            ax.axhline(b * block - 0.5, color="black", linewidth=0.6)
            ax.axvline(b * block - 0.5, color="black", linewidth=0.6)
        centres = np.arange(C) * block + (block - 1) / 2.0
        ax.set_xticks(centres, [str(c) for c in range(C)])
        ax.set_yticks(centres, [str(c) for c in range(C)])
        inner = "logit c'" if part == "G_cm" else "logit c' != c"
        ax.set_xlabel(f"true class c (blocks), {inner} within")
        ax.set_ylabel(f"true class c (blocks), {inner} within")
    else:
        ax.set_xticks(np.arange(n), [str(c) for c in range(n)])
        ax.set_yticks(np.arange(n), [str(c) for c in range(n)])
        ax.set_xlabel("class c")
        ax.set_ylabel("class c")
    names = {"G_cm": "class / cross-class Gram of $G_{cm}$", "G_0": "Gram of $G_0$",
             "G_1": "Gram of $G_1$ (class-level means)", "G_2": "Gram of $G_2$ (cross-class)"}
    ax.set_title(names[part] + (" (cosines)" if normalize else ""))
    return fig


def plot_overlaps(
    fort_ganguli: FortGanguli,
    *,
    squared: bool = True,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    r"""The eigenvector overlap matrices of H, G and :math:`G_{\rm cm}` (Fort & Ganguli 2019).

    Three heatmaps of :math:`U^\top V` between the top-C eigenvectors:
    H against G (``overlap_H_G``), H against :math:`G_{\rm cm}`
    (``overlap_H_cm``), G against :math:`G_{\rm cm}` (``overlap_G_cm``); rows
    are the first operator's eigenvectors, columns the second's, rank 1 the
    largest. A diagonal of ones means the same eigenvectors.

    Parameters
    ----------
    fort_ganguli : FortGanguli
        From :func:`gn_theory.decomposition.fort_ganguli` (or loaded).
    squared : bool, default True
        Squared cosines on [0, 1]; False shows the signed cosines on [-1, 1].
    axes : sequence of three Axes, optional
        Where to draw (default a new figure with a row of three).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidInputError
        Bad axes.
    """
    pairs = (("H", "G", fort_ganguli.overlap_H_G),
             ("H", "$G_{cm}$", fort_ganguli.overlap_H_cm),
             ("G", "$G_{cm}$", fort_ganguli.overlap_G_cm))
    if axes is None:
        fig = _new_figure((13.0, 4.2))
        axs = list(fig.subplots(1, 3))
    else:
        axs = _check_axes_seq(axes, 3)
        fig = _figure_of(axs[0])
    for a, (row_name, col_name, M) in zip(axs, pairs):
        M = np.atleast_2d(np.asarray(M, dtype=float))
        if squared:
            _heatmap(a, M**2, symmetric=False, vmin=0.0, vmax=1.0, cmap="viridis",
                     label="squared cosine")
        else:
            _heatmap(a, M, symmetric=True, vmax=1.0, label="cosine")
        r, c = M.shape
        if r <= 10 and c <= 10:
            shown = M**2 if squared else M
            for (i, jj), v in np.ndenumerate(shown):
                a.text(jj, i, f"{v:.2f}", ha="center", va="center", fontsize="x-small",
                       color="white" if (squared and v < 0.5) else "black")
        if r <= 20:
            a.set_yticks(np.arange(r), [str(i + 1) for i in range(r)])
        if c <= 20:
            a.set_xticks(np.arange(c), [str(i + 1) for i in range(c)])
        a.set_ylabel(f"eigenvector of {row_name} (rank)")
        a.set_xlabel(f"eigenvector of {col_name} (rank)")
        a.set_title(f"{row_name} vs {col_name}")
    return fig


def plot_dense_hessian(
    matrix: Any,
    *,
    blocks: Sequence[int] | Mapping[str, int] | None = None,
    vmax: float | None = None,
    title: str = "Hessian",
    ax: Axes | None = None,
) -> Figure:
    """Heatmap of a small dense curvature matrix, colours symmetric about 0 (Sagun 2016, Fig. 5).

    Parameters
    ----------
    matrix : array_like
        A square (P, P) matrix: ``op.to_dense()`` of a small model's H, G or R
        (a CPU tensor is read without importing torch).
    blocks : sequence of int or mapping of str to int, optional
        Sizes of consecutive parameter blocks (e.g. per layer), summing to P:
        lines are drawn between them; a mapping also labels them.
    vmax : float, optional
        Colour scale ``[-vmax, vmax]`` (default the largest ``|entry|``; a
        smaller one saturates the large entries and shows the structure).
    title : str, default "Hessian"
        Axes title.
    ax : Axes, optional
        Where to draw (default a new figure).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ShapeError
        Not a square 2-d matrix, or blocks that do not sum to P.
    InvalidInputError
        Non-finite entries or a non-positive ``vmax``.
    """
    M = _checks.check_real_array(matrix, "matrix", ndim=2)
    if M.shape[0] != M.shape[1]:
        raise ShapeError(f"matrix must be square; got shape {M.shape}")
    if vmax is not None and not (isinstance(vmax, (int, float)) and vmax > 0):
        raise InvalidInputError(f"vmax must be a positive number; got {vmax!r}")
    P = M.shape[0]
    names: list[str] | None = None
    sizes: list[int] | None = None
    if blocks is not None:
        if isinstance(blocks, Mapping):
            names = [str(k) for k in blocks]
            sizes = [_checks.check_positive_int(f"blocks[{k!r}]", v) for k, v in blocks.items()]
        else:
            sizes = [_checks.check_positive_int("blocks", v) for v in blocks]
        if sum(sizes) != P:
            raise ShapeError(f"blocks sum to {sum(sizes)}; the matrix has P = {P}")
    if ax is None:
        fig = _new_figure((5.8, 5.0))
        ax = fig.add_subplot()
    else:
        fig = _figure_of(_check_axes(ax))
    _heatmap(ax, M, symmetric=True, vmax=vmax, label="entry")
    if sizes is not None:
        edges = np.cumsum(sizes)[:-1]
        for e in edges:
            ax.axhline(e - 0.5, color="black", linewidth=0.6)
            ax.axvline(e - 0.5, color="black", linewidth=0.6)
        if names is not None:
            centres = np.cumsum(sizes) - np.asarray(sizes) / 2.0 - 0.5
            ax.set_xticks(centres, names, rotation=45, ha="right", fontsize="small")
            ax.set_yticks(centres, names, fontsize="small")
    ax.set_xlabel("parameter index")
    ax.set_ylabel("parameter index")
    ax.set_title(f"{title} (P = {P})")
    return fig


# =============================================================================== scaling
_SCALING_FORMULA = {"both": "y = a\\,x^b", "x": "y = a + b\\,\\log x", "y": "y = a\\,e^{bx}",
                    "none": "y = a + b\\,x"}


def plot_scaling(
    fit: ScalingFit,
    *,
    alpha: float | None = None,
    num: int = 200,
    ax: Axes | None = None,
) -> Figure:
    """A scaling regression (:func:`gn_theory.rmt.scaling_fit`): data, fitted line, confidence band.

    The axes follow the fit (log-log for ``log="both"``, semi-log, linear);
    the band is the ``1 - alpha`` confidence band of the fitted line
    (:meth:`ScalingFit.predict` with ``interval=True``).

    Parameters
    ----------
    fit : ScalingFit
        The fitted law.
    alpha : float, optional
        Band level (default the fit's ``alpha``).
    num : int, default 200
        Points on the fitted line.
    ax : Axes, optional
        Where to draw (default a new figure).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidInputError
        ``alpha`` outside (0, 1), or not a scaling fit.
    """
    if not all(hasattr(fit, a) for a in ("x", "y", "log", "predict", "conf_int")):
        raise InvalidInputError(
            f"fit must be a ScalingFit (gn_theory.rmt.scaling_fit); got {type(fit).__name__}"
        )
    level = float(fit.alpha) if alpha is None else _checks.check_alpha(alpha)
    num = _checks.check_positive_int("num", num, minimum=2)
    x, y = np.asarray(fit.x, dtype=float), np.asarray(fit.y, dtype=float)
    logx, logy = fit.log in ("both", "x"), fit.log in ("both", "y")
    if ax is None:
        fig = _new_figure((5.6, 4.4))
        ax = fig.add_subplot()
    else:
        fig = _figure_of(_check_axes(ax))
    lo, hi = float(x.min()), float(x.max())
    xs = np.geomspace(lo, hi, num) if logx else np.linspace(lo, hi, num)
    pred, band_lo, band_hi = fit.predict(xs, interval=True, alpha=level)
    slope_lo, slope_hi = np.asarray(fit.conf_int(level))[1]
    pct = f"{100 * (1 - level):.0f}%"
    ax.fill_between(xs, band_lo, band_hi, color="#1f77b4", alpha=0.2,
                    label=f"{pct} confidence band")
    ax.plot(xs, pred, color="#1f77b4", linewidth=1.6,
            label=f"fit ${_SCALING_FORMULA.get(fit.log, 'y = f(x)')}$, b = {fit.slope:.3g} "
                  f"[{slope_lo:.3g}, {slope_hi:.3g}]")
    ax.plot(x, y, linestyle="none", marker="o", color="black", markersize=5, label="data")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(str(fit.x_name))
    ax.set_ylabel(str(fit.y_name))
    ax.set_title(f"Scaling fit ($R^2$ = {float(fit.rsquared):.3f}, n = {int(fit.nobs)})")
    ax.legend(fontsize="small", framealpha=0.8)
    return fig


# =============================================================================== training
def _top_eigenvalue_series(log: Any, top: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Name -> (steps, values) of the top eigenvalue over training, where recorded."""
    if top is None:
        for attr in ("top_eigenvalue", "top_eigenvalues"):
            recorded = getattr(log, attr, None)
            if recorded is not None and np.size(recorded):
                top = recorded
                break
    if top is None:
        return {}
    step = np.asarray(log.step, dtype=float)
    if isinstance(top, Mapping):
        items = list(top.items())
    else:
        items = [("top eigenvalue", top)]
    out = {}
    for name, value in items:
        if isinstance(value, tuple) and len(value) == 2:
            s = _checks.check_real_array(value[0], f"top_eigenvalues[{name!r}] steps")
            v = np.asarray(value[1], dtype=float)
        else:
            s, v = step, np.asarray(value, dtype=float)
        if v.ndim != 1 or v.shape != s.shape:
            raise ShapeError(
                f"top_eigenvalues[{name!r}] must hold one value per step ({s.size}); got shape "
                f"{v.shape}"
            )
        keep = np.isfinite(v)
        out[str(name)] = (s[keep], v[keep])
    return out


def plot_training(
    log: TrainingLog,
    *,
    top_eigenvalues: Any = None,
    x: Literal["step", "epoch"] = "step",
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Loss, accuracy, gradient norm and (where recorded) the top eigenvalue over training.

    One panel each: training (and evaluation) loss on a log axis with the
    mini-batch losses faint behind it; training (and evaluation) accuracy; the
    full-batch gradient norm (where the log has one); the top eigenvalue (where
    recorded).

    Parameters
    ----------
    log : TrainingLog
        From :func:`gn_theory.training.train` (or loaded; any object with
        ``step``, ``loss`` and ``accuracy`` arrays, optionally ``epoch``,
        ``grad_norm``, ``eval_loss``, ``eval_accuracy``, ``batch_loss``).
    top_eigenvalues : array_like, (steps, values), or mapping of str to them, optional
        The top eigenvalue over training: one value per logged step (NaN
        where not measured), or ``(steps, values)`` pairs, per operator name
        for a mapping (e.g. ``{"H": ..., "G": ...}``). Default the log's
        ``top_eigenvalue`` attribute, if any.
    x : {"step", "epoch"}, default "step"
        The horizontal axis.
    axes : sequence of Axes, optional
        One per panel drawn (default a new figure with a row of them).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidInputError
        An unknown ``x``, a log without ``step``/``loss``/``accuracy``, or
        the wrong number of axes.
    ShapeError
        Arrays that do not match ``step``.
    """
    _checks.check_choice("x", x, ("step", "epoch"))
    for attr in ("step", "loss", "accuracy"):
        if not hasattr(log, attr):
            raise InvalidInputError(
                f"log must be a TrainingLog (step, loss, accuracy arrays); it has no {attr!r}"
            )
    step = _checks.check_real_array(log.step, "log.step")

    def series(attr: str) -> np.ndarray | None:
        v = getattr(log, attr, None)
        if v is None or np.size(v) == 0:
            return None
        arr = np.asarray(v, dtype=float)
        if arr.shape != step.shape:
            raise ShapeError(f"log.{attr} has shape {arr.shape}; step has {step.shape}")
        return arr

    epoch = series("epoch")
    if x == "epoch" and epoch is None:
        raise InvalidInputError("x='epoch' needs a log with epochs")
    t = step if x == "step" else epoch
    loss, acc = series("loss"), series("accuracy")
    grad = series("grad_norm")
    tops = _top_eigenvalue_series(log, top_eigenvalues)
    panels = ["loss", "accuracy"] + (["grad_norm"] if grad is not None else []) + (
        ["top"] if tops else [])
    if axes is None:
        fig = _new_figure((4.0 * len(panels), 3.4))
        axs = list(np.atleast_1d(fig.subplots(1, len(panels))))
    else:
        axs = _check_axes_seq(axes, len(panels))
        fig = _figure_of(axs[0])
    xlabel = "optimiser step" if x == "step" else "epoch"
    for a, panel in zip(axs, panels):
        a.set_xlabel(xlabel)
        if panel == "loss":
            batch = getattr(log, "batch_loss", None)
            if batch is not None and np.size(batch) and x == "step":
                b = np.asarray(batch, dtype=float)
                a.plot(np.arange(1, b.size + 1), b, color="0.7", linewidth=0.7,
                       label="mini-batch loss")
            a.plot(t, loss, color="#1f77b4", marker="." if t.size < 50 else None,
                   label="train loss")
            eval_loss = series("eval_loss")
            if eval_loss is not None:
                a.plot(t, eval_loss, color="#ff7f0e", label="eval loss")
            if np.all(loss > 0):
                a.set_yscale("log")
            a.set_ylabel("loss")
            a.set_title("Loss")
        elif panel == "accuracy":
            a.plot(t, acc, color="#1f77b4", marker="." if t.size < 50 else None,
                   label="train accuracy")
            eval_acc = series("eval_accuracy")
            if eval_acc is not None:
                a.plot(t, eval_acc, color="#ff7f0e", label="eval accuracy")
            a.set_ylim(-0.02, 1.02)
            a.set_ylabel("accuracy")
            a.set_title("Accuracy")
        elif panel == "grad_norm":
            a.plot(t, grad, color="#2ca02c", label="full-batch gradient norm")
            if np.all(grad > 0):
                a.set_yscale("log")
            a.set_ylabel("gradient norm")
            a.set_title("Gradient norm")
        else:
            for j, (name, (s, v)) in enumerate(tops.items()):
                tx = s if x == "step" else np.interp(s, step, epoch)
                a.plot(tx, v, marker="o", markersize=4, color=_colour(name, j),
                       label=name if name != "top eigenvalue" else "top eigenvalue")
            a.set_ylabel("top eigenvalue")
            a.set_title("Top eigenvalue")
        a.legend(fontsize="small", framealpha=0.8)
    return fig
