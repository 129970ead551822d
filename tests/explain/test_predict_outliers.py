"""gn_theory.explain.predict_outliers: measure (decomposition.measure_outlier_inputs), then compare."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch

from gn_theory.data import gaussian_mixture
from gn_theory.decomposition import class_structure, measure_outlier_inputs
from gn_theory.exceptions import InvalidInputError, ShapeError
from gn_theory.explain import OutlierPrediction, predict_outliers
from gn_theory.models import mlp, train
from gn_theory.operators import ggn_operator
from gn_theory.results import ClassStructure, OutlierInputs
from gn_theory.rmt import MarchenkoPasturFit, fit_marchenko_pastur, iid_noise_outliers
from gn_theory.spectra import eigh


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny products: one torch thread is several times faster on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def trained():
    C = 3
    X, y = gaussian_mixture(120, 5, C, seed=1, separation=5.0, noise=0.7, dtype=torch.float64)
    model = mlp([5, 10, C], seed=1, activation="tanh").double()
    train(model, (X, y), steps=20, lr=0.2, seed=0)
    cs = class_structure(model, (X, y))
    G = ggn_operator(model, (X, y))
    dense = eigh(G).eigenvalues  # descending
    assert np.all(np.diff(dense) <= 0)
    return cs, dense, G


@pytest.fixture(scope="module")
def inputs(trained):
    """The measurements, made once, apart from the prediction (products with G)."""
    cs, _, G = trained
    return measure_outlier_inputs(G, cs, num_probes=3, num_steps=40, seed=0)


@pytest.fixture(scope="module")
def prediction(trained, inputs):
    cs, dense, _ = trained
    # the measured inputs without their top of G, completed by the observed keyword
    return predict_outliers(cs, inputs=dataclasses.replace(inputs, observed=None), observed=dense[:20])


def test_end_to_end_runs_all_predictors(trained, prediction):
    cs, dense, _ = trained
    res = prediction
    r = cs.eigenvalues("G_cm").size
    assert res.methods == ["iid", "additive", "bgn", "subspace", "subspace_corrected"]
    assert res.predicted.shape == (5, r) and res.relative_errors.shape == (5, r)
    assert res.bulk_source.startswith("moments") and res.ratio > 0 and res.scale > 0
    assert 0.0 <= res.diagnostics["ks_statistic"] <= 1.0  # the default bulk is a real fit, with its KS
    # subspace: within a loose tolerance of the dense top eigenvalues of G on the clear outliers
    top = 3
    np.testing.assert_allclose(res.prediction("subspace")[:top], dense[:top], rtol=0.1)
    np.testing.assert_allclose(res.prediction("subspace_corrected")[:top], dense[:top], rtol=0.05)
    # interlacing: Ritz values never exceed the true eigenvalues
    assert np.all(res.prediction("subspace") <= dense[:r] * (1 + 1e-10))
    d = res.diagnostics
    for key in ("within_energy_in_span", "random_baseline", "class_mean_trace_share"):
        assert 0.0 <= d[key] <= 1.0, key
    assert d["random_baseline"] == pytest.approx(d["span_dim"] / cs.num_params)
    assert d["span_dim"] == r and d["num_within_vectors"] == r
    assert d["third_moment_ratio"] > 0
    # tr G = tr G_cm + tr G_w (SLQ estimate of the latter): compare with the dense trace
    assert d["trace_G_cm"] + d["trace_G_w"] == pytest.approx(dense.sum(), rel=0.25)
    assert res.best_method in res.methods
    assert res.best_method.startswith("subspace")
    text = str(res.summary())
    assert "not an independent prediction" in text
    assert "isotropic" in text and "of tr G" in text and "third moment" in text
    rows = [line for line in res.table().splitlines() if not line.startswith("(")]
    assert "observed" in res.table() and len(rows) == r + 1  # header + one row per outlier


def test_end_to_end_with_a_duck_typed_bulk_fit_and_measured_inputs(trained):
    cs, dense, G = trained
    fit = types.SimpleNamespace(ratio=2.0, scale=0.01, ks_statistic=0.6, third_moment_ratio=2.3)
    # observed="compute" is gone: predict_outliers never measures, and says where to measure
    with pytest.raises(InvalidInputError, match="measure_outlier_inputs"):
        predict_outliers(cs, fit, method=["iid", "subspace"], observed="compute", k=4)
    measured = measure_outlier_inputs(G, cs, k=4, num_probes=2, num_steps=30)
    res = predict_outliers(cs, fit, method=["iid", "subspace"], inputs=measured, k=4)
    assert res.methods == ["iid", "subspace", "subspace_corrected"]
    np.testing.assert_allclose(res.observed, dense[:4], rtol=1e-6)
    np.testing.assert_allclose(
        res.prediction("iid"), iid_noise_outliers(cs.eigenvalues("G_cm")[:4], 2.0, 0.01).predicted
    )
    assert res.diagnostics["ks_statistic"] == 0.6
    text = str(res.summary())
    assert "G_w's spectrum is not MP: third moment 2.30x MP, KS 0.60" in text
    res2 = predict_outliers(cs, (2.0, 0.01), method="additive", k=2)
    assert res2.methods == ["additive"] and res2.observed is None and res2.best_method is None
    assert res2.num_predicted_outliers == {"additive": int(res2.above.sum())}
    # a Spectrum-like observed (ascending eigenvalues) is sorted descending
    spec = types.SimpleNamespace(eigenvalues=dense[:5][::-1].copy())
    res3 = predict_outliers(cs, (2.0, 0.01), method="iid", k=3, observed=spec)
    np.testing.assert_array_equal(res3.observed, dense[:5])
    assert res3.relative_errors.shape == (1, 3)


def test_save_load_round_trip(prediction, tmp_path):
    res = prediction
    res.save(tmp_path / "pred")
    back = OutlierPrediction.load(tmp_path / "pred.npz")
    assert back.methods == res.methods and back.diagnostics.keys() == res.diagnostics.keys()
    for key, value in res.diagnostics.items():
        other = back.diagnostics[key]
        assert value == other or (value != value and other != other), key
    for name in ("predicted", "above", "overlaps", "thresholds", "edges", "observed",
                 "relative_errors", "within_nodes", "within_weights", "class_mean_eigenvalues"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name))
    assert str(back.summary()) == str(res.summary())
    assert back.best_method == res.best_method
    # predict() with the stored bulk reproduces the stored rows
    ell = res.class_mean_eigenvalues
    for m in ("iid", "additive", "bgn"):
        np.testing.assert_allclose(back.predict(ell, m), res.prediction(m), rtol=1e-12)


def test_loaded_structure_runs_formulas_and_refuses_products(trained, tmp_path):
    cs, _, _ = trained
    cs.save(tmp_path / "cs")
    loaded = ClassStructure.load(tmp_path / "cs")
    res = predict_outliers(loaded, (2.0, 0.01))
    assert res.methods == ["iid", "additive"]
    assert any("subspace" in s for s in res.skipped) and "Skipped" in str(res.summary())
    with pytest.raises(InvalidInputError, match="products with G"):
        predict_outliers(loaded, (2.0, 0.01), method="subspace")
    with pytest.raises(InvalidInputError, match="bulk_fit"):
        predict_outliers(loaded, method="iid")


# ----------------------------------------------------------------------------- bad input
def test_bad_input(trained):
    cs, _, _ = trained
    with pytest.raises(InvalidInputError, match="ClassStructure"):
        predict_outliers(np.eye(3))
    with pytest.raises(InvalidInputError, match=r"\.ratio and \.scale"):
        predict_outliers(cs, types.SimpleNamespace(scale=1.0))
    with pytest.raises(InvalidInputError, match="ratio"):
        predict_outliers(cs, (-1.0, 1.0))
    with pytest.raises(InvalidInputError, match="scale"):
        predict_outliers(cs, (1.0, float("nan")))
    with pytest.raises(InvalidInputError, match="\\(ratio, scale\\)"):
        predict_outliers(cs, (1.0, 2.0, 3.0))
    with pytest.raises(InvalidInputError, match="method"):
        predict_outliers(cs, (1.0, 1.0), method="bbp")
    with pytest.raises(InvalidInputError, match="method"):
        predict_outliers(cs, (1.0, 1.0), method=["iid", "nope"])
    with pytest.raises(InvalidInputError, match="k=99"):
        predict_outliers(cs, (1.0, 1.0), method="iid", k=99)
    with pytest.raises(InvalidInputError, match="k must be"):
        predict_outliers(cs, (1.0, 1.0), method="iid", k=0)
    with pytest.raises(InvalidInputError, match="non-finite"):
        predict_outliers(cs, (1.0, 1.0), method="iid", observed=[1.0, float("nan")])
    with pytest.raises(InvalidInputError, match=">= 0"):
        predict_outliers(cs, (1.0, 1.0), method="iid", observed=[1.0, -0.5])
    with pytest.raises(InvalidInputError, match="observed"):
        predict_outliers(cs, (1.0, 1.0), method="iid", observed="dense")
    with pytest.raises(InvalidInputError, match="within_density"):
        predict_outliers(cs, (1.0, 1.0), method="bgn", within_density=np.ones(3))


def test_loaded_structure_and_inputs_reproduce_the_prediction(trained, inputs, prediction, tmp_path):
    """Measure on one machine, save; load and predict on another (no operator needed)."""
    cs, dense, _ = trained
    cs.save(tmp_path / "cs")
    inputs.save(tmp_path / "inputs")
    loaded = ClassStructure.load(tmp_path / "cs")
    back = OutlierInputs.load(tmp_path / "inputs")
    res = predict_outliers(loaded, inputs=dataclasses.replace(back, observed=None), observed=dense[:20])
    assert res.methods == prediction.methods and res.skipped == prediction.skipped == []
    np.testing.assert_array_equal(res.predicted, prediction.predicted)
    np.testing.assert_array_equal(res.relative_errors, prediction.relative_errors)
    assert str(res.summary()) == str(prediction.summary())
    # the default bulk is the moments fit to the quadrature, kept with the prediction
    assert isinstance(res.bulk, MarchenkoPasturFit) and res.bulk.method == "moments"
    direct = fit_marchenko_pastur(back.within_density, exclude_outliers="auto", num_bootstrap=0)
    assert res.ratio == direct.ratio and res.scale == direct.scale
    assert res.settings["measurement"] == inputs.settings
    assert res.settings["inputs_given"] == ["observed", "within_density", "within_spectrum", "ritz",
                                            "trace"]  # measure_outlier_inputs: tr G exactly


def test_missing_inputs_are_skipped_or_refused(trained, inputs):
    cs, _, _ = trained
    only_density = OutlierInputs(within_density=inputs.within_density)
    res = predict_outliers(cs, inputs=only_density)
    assert res.methods == ["iid", "additive", "bgn"]
    assert any(s.startswith("subspace") for s in res.skipped)
    assert any(s.startswith("isotropy") for s in res.skipped)
    text = str(res.summary())
    assert "Isotropy of G_w" in text and "not measured" in text
    with pytest.raises(InvalidInputError, match="method 'bgn' needs within_density"):
        predict_outliers(cs, (1.0, 1.0), method="bgn")
    with pytest.raises(InvalidInputError, match="given twice"):
        predict_outliers(cs, inputs=inputs, observed=[1.0, 2.0])
    with pytest.raises(InvalidInputError, match="OutlierInputs"):
        predict_outliers(cs, inputs={"observed": [1.0]})
    short = dataclasses.replace(inputs.ritz, values=inputs.ritz.values[:2])
    with pytest.raises(InvalidInputError, match="2 Ritz values; k = 3"):
        predict_outliers(cs, method="subspace", ritz=short, k=3)
    wrong = dataclasses.replace(inputs.within_spectrum, eigenvectors=np.ones((5, 2)))
    with pytest.raises(ShapeError, match="rows"):
        predict_outliers(cs, (1.0, 1.0), within_spectrum=wrong)
