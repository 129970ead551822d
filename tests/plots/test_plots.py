"""gn_theory.plots: every figure renders headless, is non-empty and carries its labels.

The results drawn are real: a dense matrix with a known spectrum (a Marchenko-Pastur
bulk, three outliers, a few negative eigenvalues) measured by ``eigh``, ``slq`` and
``lanczos`` and fitted by ``fit_marchenko_pastur``; the class structure, Fort & Ganguli
measurements and outlier prediction of a tiny MLP on a Gaussian mixture; a scaling fit;
a training log.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # the tests' choice; gn_theory.plots never sets a backend

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

import gn_theory
from gn_theory import data, decomposition, models, plots, rmt
from gn_theory.exceptions import InvalidInputError, ShapeError
from gn_theory.explain import predict_outliers
from gn_theory.results import SpectralDensity, TrainingLog

OUTLIERS = np.array([12.0, 9.0, 7.0])


# ----------------------------------------------------------------------------- helpers
def ink(fig: Figure) -> float:
    """Fraction of the pixels that are not white once the figure is drawn with Agg."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    return float(np.mean(np.any(rgb < 250, axis=-1)))


def legend_texts(fig_or_ax) -> list[str]:
    legends = [fig_or_ax.get_legend()] if isinstance(fig_or_ax, Axes) else (
        [a.get_legend() for a in fig_or_ax.axes] + list(fig_or_ax.legends))
    return [t.get_text() for lg in legends if lg is not None for t in lg.get_texts()]


def line(ax: Axes, label: str):
    found = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert found, f"no line labelled {label!r}: {[ln.get_label() for ln in ax.get_lines()]}"
    return found[0]


def check_rendered(fig: Figure, minimum: float = 0.03) -> None:
    assert isinstance(fig, Figure)
    assert fig.axes
    assert ink(fig) > minimum


# ----------------------------------------------------------------------------- results
@pytest.fixture(scope="module")
def spectrum_results():
    """A symmetric matrix with a known spectrum and the spectra measured on it."""
    rng = np.random.default_rng(0)
    bulk = rmt.sample_covariance_eigenvalues(110, 300, seed=1)
    negative = -np.array([0.01, 0.02, 0.04, 0.05])
    ev = np.concatenate([OUTLIERS, bulk, negative])
    Q, _ = np.linalg.qr(rng.standard_normal((ev.size, ev.size)))
    A = (Q * ev) @ Q.T
    A = 0.5 * (A + A.T)
    exact = gn_theory.eigh(A)
    density = gn_theory.slq(A, num_probes=4, num_steps=40, seed=0)
    top = gn_theory.lanczos(A, 3, seed=0)
    fit = rmt.fit_marchenko_pastur(exact)
    psd = gn_theory.slq(np.diag(np.abs(ev)), num_probes=2, num_steps=30, seed=0)
    return SimpleNamespace(A=A, ev=ev, exact=exact, density=density, top=top, fit=fit, psd=psd)


@pytest.fixture(scope="module")
def model_results():
    """Class structure, Fort & Ganguli, outlier inputs and prediction of a tiny MLP."""
    torch.set_num_threads(1)
    X, y = data.gaussian_mixture(60, 5, 3, separation=4.0, seed=0, dtype=torch.float64)
    model = models.mlp([5, 6, 3], seed=0).double()
    structure = decomposition.class_structure(model, (X, y))
    H = gn_theory.hessian_operator(model, (X, y))
    G = gn_theory.ggn_operator(model, (X, y))
    fg = decomposition.fort_ganguli(model, (X, y), H, G, structure, ks=[1, 3], max_samples=8,
                                    seed=0)
    inputs = decomposition.measure_outlier_inputs(G, structure, num_probes=4, num_steps=40)
    prediction = predict_outliers(structure, inputs=inputs)
    bulk = rmt.fit_marchenko_pastur(inputs.within_density, num_bootstrap=40, seed=0)
    bootstrapped = predict_outliers(structure, bulk, inputs=inputs)
    return SimpleNamespace(model=model, structure=structure, fg=fg, inputs=inputs,
                           prediction=prediction, bootstrapped=bootstrapped,
                           hessian=H.to_dense())


# ============================================================================= spectrum
def test_density_linear_draws_every_layer(spectrum_results):
    r = spectrum_results
    fig = plots.plot_density(
        {"H": r.density}, eigenvalues={"H": r.exact}, mp_fit=r.fit,
        observed_outliers=OUTLIERS, predicted_outliers={"iid": [11.0, 9.5], "bgn": [12.5]},
    )
    check_rendered(fig)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "eigenvalue $\\lambda$"
    assert ax.get_ylabel().startswith("density")
    assert ax.get_title() == "Spectral density"
    assert ax.get_yscale() == "log"
    texts = legend_texts(ax)
    for expected in ("H (SLQ)", "H (exact eigenvalues, histogram)", "observed outliers",
                     "predicted: iid", "predicted: bgn"):
        assert expected in texts
    assert any(t.startswith("MP fit") for t in texts)
    # the curve is the density on Papyan's grid; it integrates to about 1
    slq_line = line(ax, "H (SLQ)")
    t, y = slq_line.get_data()
    np.testing.assert_allclose(y, r.density.density(t))
    assert abs(np.trapezoid(y, t) - 1.0) < 0.02
    # markers sit at the given positions (descending), the MP curve is the fit's pdf
    np.testing.assert_allclose(line(ax, "observed outliers").get_xdata(), OUTLIERS)
    np.testing.assert_allclose(line(ax, "predicted: iid").get_xdata(), [11.0, 9.5])
    mp = next(ln for ln in ax.get_lines() if ln.get_label().startswith("MP fit"))
    x, y = mp.get_data()
    assert x.min() >= r.fit.lower_edge and x.max() <= r.fit.upper_edge
    # the fitted law, scaled to the share of the spectrum it kept as bulk (110 of 117 here:
    # the fit set the 3 outliers and 4 negatives aside), so it sits on that bulk's histogram
    kept = r.fit.n_bulk / r.fit.n_total
    assert r.fit.n_bulk == 110 and r.fit.ratio < 1  # no atom: the law's own mass is 1
    np.testing.assert_allclose(y, r.fit.predict(x) * kept)
    assert abs(np.trapezoid(y, x) - kept) < 0.01


def test_density_linear_scale_on_linear_axis(spectrum_results):
    fig = plots.plot_density({"H": spectrum_results.density}, yscale="linear")
    (ax,) = fig.axes
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0.0
    check_rendered(fig)


def test_density_log_has_separate_negative_panel(spectrum_results):
    r = spectrum_results
    fig = plots.plot_density(
        {"H": r.density}, eigenvalues={"H": r.exact}, mp_fit={"H": r.fit},
        observed_outliers=r.top, predicted_outliers={"iid": OUTLIERS * 1.1}, scale="log",
    )
    check_rendered(fig)
    pos, neg = fig.axes[:2]
    assert pos.get_xscale() == neg.get_xscale() == "log"
    assert "\\lambda > 0" in pos.get_ylabel() and "\\lambda < 0" in neg.get_ylabel()
    assert neg.get_xlabel() == "$|\\lambda|$"
    texts = legend_texts(pos)
    assert "H (SLQ)" in texts and "predicted: iid" in texts
    assert any(t.startswith("MP fit (H)") for t in texts)
    # the log density is per decade: its integral over log10|lambda| is each side's mass
    x, y = line(pos, "H (SLQ)").get_data()
    u = np.log10(x)
    assert abs(np.trapezoid(y, u) - (1.0 - r.density.negative_mass())) < 0.03
    xn, yn = line(neg, "H (SLQ)").get_data()
    assert abs(np.trapezoid(yn, np.log10(xn)) - r.density.negative_mass()) < 0.01
    # the negative panel draws the exact negative eigenvalues' histogram
    assert any(isinstance(p, matplotlib.patches.StepPatch) for p in neg.patches)


def test_density_log_on_one_axes_dashes_the_negative_side(spectrum_results):
    fig = Figure()
    ax = fig.add_subplot()
    out = plots.plot_density({"H": spectrum_results.density}, scale="log", ax=ax)
    assert out is fig and fig.axes == [ax]
    neg = line(ax, "H (SLQ), $\\lambda<0$")
    assert neg.get_linestyle() == "--"
    assert ax.get_xlabel().startswith("$|\\lambda|$")
    check_rendered(fig)


def test_density_log_says_when_there_is_no_negative_side(spectrum_results):
    fig = plots.plot_density({"G": spectrum_results.psd}, scale="log")
    neg = fig.axes[1]
    assert "no negative eigenvalues" in [t.get_text() for t in neg.texts]


def test_density_partial_spectrum_is_a_rug_and_a_single_density_is_named(spectrum_results):
    r = spectrum_results
    fig = plots.plot_density(r.density, eigenvalues={"H": r.top})
    (ax,) = fig.axes
    texts = legend_texts(ax)
    assert "H (top 3 eigenvalues)" in texts
    assert "dense (SLQ)" in texts  # a bare SpectralDensity, named after its operator's kind
    np.testing.assert_allclose(np.sort(line(ax, "H (top 3 eigenvalues)").get_xdata()),
                               np.sort(r.top.eigenvalues))


def test_density_exact_only_and_from_eigenvalues(spectrum_results):
    ev = spectrum_results.ev
    fig = plots.plot_density(None, eigenvalues={"G": ev}, bins=25)
    (ax,) = fig.axes
    (stairs,) = ax.patches
    assert len(stairs.get_data().values) == 25
    check_rendered(fig)
    exact = SpectralDensity.from_eigenvalues(ev)
    fig = plots.plot_density({"G": exact})
    assert "G (exact, broadened)" in legend_texts(fig.axes[0])


def test_density_takes_predictions_from_a_prediction_result(spectrum_results, model_results):
    pred = model_results.prediction
    fig = plots.plot_density(model_results.inputs.within_density,
                             observed_outliers=model_results.inputs.observed,
                             predicted_outliers=pred)
    (ax,) = fig.axes
    texts = legend_texts(ax)
    assert "G_w (SLQ)" in texts  # the kind of the within-class operator
    for method in pred.methods:
        assert f"predicted: {method}" in texts
    iid = pred.prediction("iid")[pred.above[pred.methods.index("iid")]]
    assert 0 < iid.size < pred.k  # only the positions the predictor calls outliers
    np.testing.assert_allclose(line(ax, "predicted: iid").get_xdata(), iid)
    check_rendered(fig)


def test_spectrum_overview_side_by_side(spectrum_results):
    r = spectrum_results
    fig = plots.plot_spectrum_overview(
        {"H": r.density, "G": r.psd}, eigenvalues={"H": r.exact}, mp_fit=r.fit,
        observed_outliers=OUTLIERS, title="known spectrum",
    )
    check_rendered(fig)
    lin, pos, neg = fig.axes[:3]
    assert lin.get_xscale() == "linear" and pos.get_xscale() == "log"
    assert fig.get_suptitle() == "known spectrum"
    assert all(a.get_legend() is None for a in (lin, pos, neg))
    texts = legend_texts(fig)
    assert {"H (SLQ)", "G (SLQ)", "observed outliers"} <= set(texts)
    assert len(texts) == len(set(texts))  # each entry once


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(densities={"H": np.ones(3)}), "SpectralDensity"),
        (dict(densities=None), "nothing to draw"),
        (dict(scale="cubic"), "scale"),
        (dict(yscale="symlog"), "yscale"),
        (dict(mp_fit=(1.0, 2.0)), "MarchenkoPasturFit"),
        (dict(predicted_outliers=[1.0, 2.0]), "predicted_outliers"),
        (dict(sigma=-1.0), "sigma"),
        (dict(ax="axes"), "Axes"),
        (dict(scale="log", ax=[None]), "2 Axes"),
    ],
)
def test_density_rejects_bad_input(spectrum_results, kwargs, match):
    kwargs = {"densities": {"H": spectrum_results.density}, **kwargs}
    densities = kwargs.pop("densities")
    with pytest.raises(InvalidInputError, match=match):
        plots.plot_density(densities, **kwargs)


def test_density_rejects_non_finite_outliers(spectrum_results):
    with pytest.raises(InvalidInputError, match="non-finite"):
        plots.plot_density({"H": spectrum_results.density}, observed_outliers=[1.0, np.nan])


# ===================================================================== predicted vs observed
def test_predicted_vs_observed_scatter(model_results):
    pred = model_results.prediction
    fig = plots.plot_predicted_vs_observed(pred)
    check_rendered(fig)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "observed eigenvalue"
    assert ax.get_ylabel() == "predicted eigenvalue"
    assert ax.get_title() == "Predicted vs observed outliers"
    texts = legend_texts(ax)
    assert set(pred.methods) <= set(texts) and "y = x" in texts
    n = min(pred.observed.size, pred.k)
    for m in pred.methods:
        row = pred.methods.index(m)
        xs, ys = [], []
        colour = line(ax, m).get_color()
        for ln in ax.get_lines():
            if ln.get_label() in (m, "_below threshold") and ln.get_color() == colour:
                xs.append(ln.get_xdata())
                ys.append(ln.get_ydata())
        got = sorted(zip(np.concatenate(xs), np.concatenate(ys)))
        want = sorted(zip(pred.observed[:n], pred.predicted[row, :n]))
        np.testing.assert_allclose(got, want)
    x, y = line(ax, "y = x").get_data()
    np.testing.assert_allclose(x, y)
    # the subspace row carries the Ritz residual bounds as error bars
    assert len(ax.containers) >= 1


def test_predicted_vs_observed_error_bars_from_the_bulk_bootstrap(model_results):
    pred = model_results.bootstrapped
    assert pred.bulk is not None and pred.bulk.bootstrap_params.shape[0] >= 2
    fig = plots.plot_predicted_vs_observed(pred, methods=["iid", "additive"], log=False)
    (ax,) = fig.axes
    assert ax.get_xscale() == "linear"
    assert len(ax.containers) == 2  # one error bar set per closed-form predictor
    segments = ax.containers[0].lines[2][0].get_segments()
    lows = np.array([s[0][1] for s in segments])
    highs = np.array([s[1][1] for s in segments])
    assert np.all(highs >= lows)
    texts = legend_texts(ax)
    assert "iid" in texts and "bgn" not in texts


def test_predicted_vs_observed_needs_observed_and_known_methods(model_results):
    pred = model_results.prediction
    no_obs = SimpleNamespace(methods=pred.methods, predicted=pred.predicted, observed=None)
    with pytest.raises(InvalidInputError, match="observed"):
        plots.plot_predicted_vs_observed(no_obs)
    with pytest.raises(InvalidInputError, match="methods"):
        plots.plot_predicted_vs_observed(pred, methods=["magic"])
    with pytest.raises(InvalidInputError, match="prediction"):
        plots.plot_predicted_vs_observed({"iid": [1.0]})


def test_relative_errors_per_rank(model_results):
    pred = model_results.prediction
    fig = plots.plot_relative_errors(pred)
    check_rendered(fig)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "outlier rank (1 = largest)"
    assert ax.get_ylabel().startswith("relative error (%)")
    for row, m in enumerate(pred.methods):
        x, y = line(ax, m).get_data()
        np.testing.assert_array_equal(x, np.arange(1, pred.relative_errors.shape[1] + 1))
        np.testing.assert_allclose(y, 100 * pred.relative_errors[row])
    fig = plots.plot_relative_errors(pred, methods=["bgn"], absolute=True)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log" and legend_texts(ax) == ["bgn"]


def test_relative_errors_computed_when_the_result_has_none():
    fake = SimpleNamespace(methods=["a"], predicted=np.array([[11.0, 4.0, 1.0]]),
                           observed=np.array([10.0, 5.0]), relative_errors=None)
    fig = plots.plot_relative_errors(fake)
    np.testing.assert_allclose(line(fig.axes[0], "a").get_ydata(), [10.0, -20.0])


def test_outlier_counts_against_classes():
    fig = plots.plot_outlier_counts({"H": [2, 4, 9], "G": [2, 5, 10]}, [2, 5, 10])
    check_rendered(fig)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "number of classes C"
    assert ax.get_ylabel() == "number of outliers"
    assert {"H", "G", "C", "C - 1"} <= set(legend_texts(ax))
    np.testing.assert_array_equal(line(ax, "G").get_ydata(), [2, 5, 10])
    np.testing.assert_array_equal(line(ax, "C - 1").get_ydata(), [1, 9])
    fig = plots.plot_outlier_counts([3, 1], [4, 2])  # plain sequences, unsorted
    np.testing.assert_array_equal(line(fig.axes[0], "observed").get_data(), [[2, 4], [1, 3]])
    with pytest.raises(ShapeError, match="num_classes"):
        plots.plot_outlier_counts([1, 2, 3], [2, 3])
    with pytest.raises(InvalidInputError, match="empty"):
        plots.plot_outlier_counts({}, [2, 3])


# ============================================================================= structure
@pytest.mark.parametrize("part", ["G_cm", "G_0", "G_1", "G_2"])
def test_gram_heatmap(model_results, part):
    cs = model_results.structure
    fig = plots.plot_gram(cs, part)
    check_rendered(fig)
    ax = fig.axes[0]
    (image,) = ax.get_images()
    np.testing.assert_array_equal(image.get_array(), cs.gram(part))
    lo, hi = image.get_clim()
    assert lo == -hi == -np.abs(cs.gram(part)).max()
    titles = {"G_cm": "class / cross-class Gram of $G_{cm}$", "G_0": "Gram of $G_0$",
              "G_1": "Gram of $G_1$ (class-level means)", "G_2": "Gram of $G_2$ (cross-class)"}
    assert ax.get_title() == titles[part]
    assert "class" in ax.get_xlabel() and "class" in ax.get_ylabel()
    assert fig.axes[1].get_ylabel() == "inner product"  # the colour bar


def test_gram_cosines_and_block_ticks(model_results):
    cs = model_results.structure
    fig = plots.plot_gram(cs, "G_cm", normalize=True)
    ax = fig.axes[0]
    K = ax.get_images()[0].get_array()
    np.testing.assert_allclose(np.diag(K), 1.0)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    assert "(cosines)" in ax.get_title()
    with pytest.raises(InvalidInputError, match="part"):
        plots.plot_gram(cs, "G_w")


def test_overlap_matrices(model_results):
    fg = model_results.fg
    fig = plots.plot_overlaps(fg)
    check_rendered(fig)
    heatmaps = [a for a in fig.axes if a.get_images()]
    assert [a.get_title() for a in heatmaps] == ["H vs G", "H vs $G_{cm}$", "G vs $G_{cm}$"]
    for a, M in zip(heatmaps, (fg.overlap_H_G, fg.overlap_H_cm, fg.overlap_G_cm)):
        np.testing.assert_allclose(a.get_images()[0].get_array(), M**2)
        assert a.get_images()[0].get_clim() == (0.0, 1.0)
        assert a.get_xlabel().startswith("eigenvector of") and a.get_ylabel().endswith("(rank)")
    fig = Figure()
    axes = fig.subplots(1, 3)
    assert plots.plot_overlaps(fg, squared=False, axes=axes) is fig
    np.testing.assert_allclose(axes[0].get_images()[0].get_array(), fg.overlap_H_G)
    with pytest.raises(InvalidInputError, match="3 Axes"):
        plots.plot_overlaps(fg, axes=axes[:2])


def test_dense_hessian_heatmap(model_results):
    H = model_results.hessian  # a torch tensor: read without importing torch in plots
    sizes = {n: p.numel() for n, p in model_results.model.named_parameters()}
    fig = plots.plot_dense_hessian(H, blocks=sizes)
    check_rendered(fig)
    ax = fig.axes[0]
    (image,) = ax.get_images()
    np.testing.assert_allclose(image.get_array(), H.numpy())
    top = float(H.abs().max())
    assert image.get_clim() == (-top, top)
    assert ax.get_xlabel() == ax.get_ylabel() == "parameter index"
    assert ax.get_title() == f"Hessian (P = {H.shape[0]})"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(sizes)
    fig = plots.plot_dense_hessian(H.numpy(), vmax=0.1, title="G")
    assert fig.axes[0].get_images()[0].get_clim() == (-0.1, 0.1)
    with pytest.raises(ShapeError, match="square"):
        plots.plot_dense_hessian(np.ones((3, 4)))
    with pytest.raises(ShapeError, match="blocks"):
        plots.plot_dense_hessian(np.eye(4), blocks=[1, 2])
    with pytest.raises(InvalidInputError, match="vmax"):
        plots.plot_dense_hessian(np.eye(4), vmax=0)


# ============================================================================= scaling
def test_scaling_fit_with_band():
    rng = np.random.default_rng(3)
    x = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
    y = 2.0 * x**1.5 * np.exp(rng.normal(0.0, 0.05, x.size))
    fit = rmt.scaling_fit(x, y, x_name="data std", y_name="top eigenvalue")
    fig = plots.plot_scaling(fit)
    check_rendered(fig)
    (ax,) = fig.axes
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_xlabel() == "data std" and ax.get_ylabel() == "top eigenvalue"
    texts = legend_texts(ax)
    assert "data" in texts and "95% confidence band" in texts
    fitted = next(ln for ln in ax.get_lines() if ln.get_label().startswith("fit"))
    xs, ys = fitted.get_data()
    np.testing.assert_allclose(ys, fit.predict(xs))
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    np.testing.assert_allclose(line(ax, "data").get_ydata(), y)
    lin = rmt.scaling_fit(x, y, log=False)
    fig = plots.plot_scaling(lin, alpha=0.1)
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and "90% confidence band" in legend_texts(ax)
    with pytest.raises(InvalidInputError, match="alpha"):
        plots.plot_scaling(fit, alpha=2.0)
    with pytest.raises(InvalidInputError, match="ScalingFit"):
        plots.plot_scaling(object())


# ============================================================================= training
def _training_log(eval_split: bool = True) -> TrainingLog:
    steps = np.array([0, 10, 20, 40, 80])
    n = steps.size
    return TrainingLog(
        step=steps, epoch=steps / 10.0, loss=np.geomspace(1.1, 0.01, n),
        accuracy=np.linspace(0.3, 1.0, n), grad_norm=np.geomspace(2.0, 0.05, n),
        lr=np.full(n, 0.1), eval_loss=np.geomspace(1.2, 0.2, n) if eval_split else np.empty(0),
        eval_accuracy=np.linspace(0.3, 0.9, n) if eval_split else np.empty(0),
        batch_loss=np.geomspace(1.2, 0.01, 80), num_steps=80, stop_reason="steps",
        num_params=51, num_samples=60, num_eval=20 if eval_split else 0,
    )


def test_training_curves():
    log = _training_log()
    fig = plots.plot_training(log)
    check_rendered(fig)
    loss, acc, grad = fig.axes
    assert [a.get_title() for a in fig.axes] == ["Loss", "Accuracy", "Gradient norm"]
    assert loss.get_ylabel() == "loss" and acc.get_ylabel() == "accuracy"
    assert all(a.get_xlabel() == "optimiser step" for a in fig.axes)
    assert {"train loss", "eval loss", "mini-batch loss"} <= set(legend_texts(loss))
    assert loss.get_yscale() == "log"
    np.testing.assert_allclose(line(acc, "train accuracy").get_data(), [log.step, log.accuracy])
    np.testing.assert_allclose(line(grad, "full-batch gradient norm").get_ydata(), log.grad_norm)


def test_training_with_top_eigenvalue_over_epochs():
    log = _training_log(eval_split=False)
    top = {"H": (np.array([0, 40, 80]), np.array([1.0, 3.0, 4.0])),
           "G": np.array([0.9, np.nan, 2.5, np.nan, 3.8])}
    fig = plots.plot_training(log, top_eigenvalues=top, x="epoch")
    assert len(fig.axes) == 4
    ax = fig.axes[3]
    assert ax.get_title() == "Top eigenvalue" and ax.get_xlabel() == "epoch"
    np.testing.assert_allclose(line(ax, "H").get_data(), [[0.0, 4.0, 8.0], [1.0, 3.0, 4.0]])
    np.testing.assert_allclose(line(ax, "G").get_data(), [[0.0, 2.0, 8.0], [0.9, 2.5, 3.8]])
    assert "eval loss" not in legend_texts(fig.axes[0])
    check_rendered(fig)


def test_training_accepts_any_log_with_the_arrays():
    plain = SimpleNamespace(step=np.arange(5), loss=np.linspace(1, 0.1, 5),
                            accuracy=np.linspace(0.5, 1, 5))
    fig = plots.plot_training(plain)
    assert [a.get_title() for a in fig.axes] == ["Loss", "Accuracy"]
    with pytest.raises(InvalidInputError, match="epoch"):
        plots.plot_training(plain, x="epoch")
    with pytest.raises(InvalidInputError, match="accuracy"):
        plots.plot_training(SimpleNamespace(step=[0], loss=[1.0]))
    with pytest.raises(ShapeError, match="top_eigenvalues"):
        plots.plot_training(plain, top_eigenvalues=[1.0, 2.0])


# ============================================================================= no shared state
def test_figures_are_independent_and_drawn_into_given_axes(spectrum_results):
    a = plots.plot_density({"H": spectrum_results.density})
    b = plots.plot_density({"H": spectrum_results.density})
    assert a is not b and len(a.axes) == len(b.axes) == 1
    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    assert plots.plot_outlier_counts([1, 2], [2, 3], ax=ax1) is fig
    assert plots.plot_relative_errors(
        SimpleNamespace(methods=["a"], predicted=np.array([[2.0]]), observed=np.array([1.0]),
                        relative_errors=None), ax=ax2) is fig
    sub = Figure().subfigures(1, 2)[0]
    assert plots.plot_outlier_counts([1, 2], [2, 3], ax=sub.add_subplot()) is sub.figure
    for name in plots.__all__:
        assert hasattr(plots, name)


def test_plots_import_and_render_without_torch(spectrum_results, model_results, tmp_path):
    density = spectrum_results.density.save(tmp_path / "density")
    fit = spectrum_results.fit.save(tmp_path / "fit")
    prediction = model_results.prediction.save(tmp_path / "prediction")
    png = tmp_path / "overview.png"
    script = textwrap.dedent(
        f"""
        import sys

        class BlockTorch:  # any import of torch now fails
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked")

        sys.meta_path.insert(0, BlockTorch())
        import gn_theory.plots as plots
        from gn_theory.results import load_result
        density = load_result({str(density)!r})
        fit = load_result({str(fit)!r})
        prediction = load_result({str(prediction)!r})
        fig = plots.plot_spectrum_overview({{"H": density}}, mp_fit=fit,
                                           predicted_outliers=prediction)
        fig.savefig({str(png)!r}, dpi=60)
        plots.plot_predicted_vs_observed(prediction)
        assert "torch" not in sys.modules
        assert "matplotlib.pyplot" not in sys.modules
        print(len(fig.axes))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout.split()[-1]) == 3
    assert png.stat().st_size > 5_000
