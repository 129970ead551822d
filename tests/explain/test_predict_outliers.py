"""gn_theory.rmt._predict: outlier predictors against simulations with planted truth, and end to end."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch

from gn_theory.exceptions import InvalidInputError, ShapeError
from gn_theory.rmt._bbp import bbp_outlier
from gn_theory.rmt._mp import MarchenkoPastur
from gn_theory.rmt._predict import (
    OutlierPrediction,
    additive_outliers,
    bgn_outliers,
    iid_noise_outliers,
    predict_outliers,
    subspace_ritz,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny products: one torch thread is several times faster on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _orthonormal(rng, P, k):
    return np.linalg.qr(rng.standard_normal((P, k)))[0]


# ----------------------------------------------------------------------------- formulas
def test_iid_formula_is_information_plus_noise_and_continuous_at_threshold():
    c, s = 0.4, 1.7
    ell = np.array([5.0, 2.0, s * math.sqrt(c) * (1 + 1e-12), 0.1, 0.0])
    res = iid_noise_outliers(ell, c, s)
    direct = ell[:2] + s * (1 + c) + c * s**2 / ell[:2]
    np.testing.assert_allclose(res.predicted[:2], direct, rtol=1e-13)
    edge = s * (1 + math.sqrt(c)) ** 2
    np.testing.assert_allclose(res.predicted[2:], edge, rtol=1e-9)
    assert res.above.tolist() == [True, True, True, False, False]
    assert res.threshold == pytest.approx(s * math.sqrt(c)) and res.edge == pytest.approx(edge)
    np.testing.assert_allclose(
        res.predicted, bbp_outlier(np.sqrt(ell), c, s, model="information_plus_noise"), rtol=1e-13
    )


def test_iid_mapping_predicts_simulated_means_plus_iid_noise():
    """THEORY 5 numeric check (there P=N=600; here 400 to keep it fast), C=3, c = P/(NC) = 1/3,
    G = (M + E)(M + E)^T / N.

    The mean part M M^T / N has eigenvalues ell_k; E has iid entries of variance v, so the bulk
    is MP(c, C v). Measured ratios 0.99-1.01 above threshold; sub-threshold spikes at the edge."""
    P, C, N = 400, 3, 400
    m = N * C
    v = 1.0 / C  # scale sigma^2 = C v = 1
    rho = np.array([4.0, 2.0, 1.2, 0.3])  # sqrt(c) = 0.577: the last is below threshold
    tops = []
    for seed in range(5):  # average 5 draws (one draw fluctuates by ~2 % at the top)
        rng = np.random.default_rng(seed)
        U, W = _orthonormal(rng, P, 4), _orthonormal(rng, m, 4)
        M = U @ np.diag(np.sqrt(rho * N)) @ W.T
        D = M + math.sqrt(v) * rng.standard_normal((P, m))
        tops.append(np.linalg.eigvalsh(D @ D.T / N)[::-1][:4])
    top = np.mean(tops, axis=0)
    pred = iid_noise_outliers(rho, P / m, C * v)
    np.testing.assert_allclose(top[:3], pred.predicted[:3], rtol=0.03)
    assert not pred.above[3]
    assert top[3] == pytest.approx(pred.edge, rel=0.03)


def test_additive_and_bgn_agree_with_simulated_mp_plus_spikes():
    """W = Z Z^T / n ~ MP(0.5, 1), p = 600, n = 1200, plus spikes 3 and 6 (threshold 1.207):
    the additive rule predicts the simulated top eigenvalues, and BGN on the empirical Stieltjes
    transform of W's exact eigenvalues reproduces the additive closed form."""
    rng = np.random.default_rng(1)
    p, n = 600, 1200
    Z = rng.standard_normal((p, n))
    Wm = Z @ Z.T / n
    theta = np.array([6.0, 3.0])
    U = _orthonormal(rng, p, 2)
    top = np.linalg.eigvalsh(Wm + U @ np.diag(theta) @ U.T)[::-1][:2]
    add = additive_outliers(theta, 0.5, 1.0)
    # theta + s theta / (theta - g s)
    np.testing.assert_allclose(add.predicted, [6 + 6 / 5.5, 3 + 3 / 2.5], rtol=1e-12)
    np.testing.assert_allclose(top, add.predicted, rtol=0.03)
    bgn = bgn_outliers(theta, np.linalg.eigvalsh(Wm))
    np.testing.assert_allclose(bgn.predicted, add.predicted, rtol=0.02)
    np.testing.assert_allclose(bgn.overlap, add.overlap, atol=0.03)
    # on the exact MP law BGN is the closed form
    law = bgn_outliers(theta, MarchenkoPastur(0.5))
    np.testing.assert_allclose(law.predicted, add.predicted, rtol=1e-9)
    assert law.threshold == pytest.approx(add.threshold, rel=1e-9)
    # below threshold: at the edge, flagged absent
    below = additive_outliers([1.0], 0.5, 1.0)
    assert not below.above[0] and below.predicted[0] == pytest.approx(below.edge)


def test_bgn_accepts_a_spectral_density():
    from gn_theory.spectra import SpectralDensity

    ev = MarchenkoPastur(0.5).rvs(400, random_state=0)
    dens = SpectralDensity.from_eigenvalues(ev)
    a = bgn_outliers([4.0], dens)
    b = bgn_outliers([4.0], ev)
    np.testing.assert_allclose(a.predicted, b.predicted, rtol=1e-12)


# ----------------------------------------------------------------------------- Rayleigh-Ritz
def test_subspace_ritz_exact_when_the_top_eigenspace_is_the_span():
    rng = np.random.default_rng(3)
    P, r = 80, 4
    Q = _orthonormal(rng, P, r)
    spikes = np.array([9.0, 7.0, 5.0, 4.0])
    Pperp = np.eye(P) - Q @ Q.T
    B = rng.standard_normal((P, P))
    G = Q @ np.diag(spikes) @ Q.T + Pperp @ (B @ B.T / (3 * P)) @ Pperp
    basis = Q @ rng.standard_normal((r, r))  # not orthonormal, same span
    basis = np.hstack([basis, basis[:, :1] * 2.0])  # and a dependent column
    res = subspace_ritz(G, basis)
    np.testing.assert_allclose(res.values, spikes, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.eigvalsh(G)[::-1][:r], spikes, rtol=1e-12)
    assert np.all(res.residual_norms < 1e-12)
    np.testing.assert_allclose(res.corrected, res.values, rtol=1e-12)
    assert res.basis.shape == (P, r)


def test_subspace_ritz_values_are_eigenvalues_of_the_projection_on_every_input_type():
    rng = np.random.default_rng(4)
    P, r = 50, 5
    A = rng.standard_normal((P, P))
    G = A @ A.T / P
    Q = _orthonormal(rng, P, r)
    ref = np.linalg.eigvalsh(Q.T @ G @ Q)[::-1]
    Gt = torch.as_tensor(G)
    from scipy.sparse.linalg import aslinearoperator

    for apply_G, basis in [
        (G, Q),
        (Gt, torch.as_tensor(Q)),
        (lambda V: G @ V, Q),
        (lambda V: Gt @ torch.as_tensor(V), Q),
        (aslinearoperator(G), Q),
    ]:
        res = subspace_ritz(apply_G, basis)
        np.testing.assert_allclose(res.values, ref, rtol=1e-12, atol=1e-14)
        # residuals: ||G y - theta y|| computed densely
        R = G @ res.vectors - res.vectors * res.values
        np.testing.assert_allclose(res.residual_norms, np.linalg.norm(R, axis=0), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(subspace_ritz(G, Q, orthonormalize=False).values, ref, rtol=1e-12)


def test_residual_correction_reduces_the_error_for_a_tilted_eigenspace():
    """Spikes whose eigenvectors lean out of the span by 0.3 rad, small bulk: the Ritz values
    underestimate (interlacing) and + ||r||^2 / theta moves them most of the way back."""
    rng = np.random.default_rng(5)
    P, r = 120, 3
    Q = _orthonormal(rng, P, 2 * r)
    q, z = Q[:, :r], Q[:, r:]
    phi = 0.3
    Uspike = math.cos(phi) * q + math.sin(phi) * z
    spikes = np.array([10.0, 6.0, 3.0])
    B = rng.standard_normal((P, P)) * 0.05
    Pperp = np.eye(P) - Uspike @ Uspike.T
    G = Uspike @ np.diag(spikes) @ Uspike.T + Pperp @ (B @ B.T / P) @ Pperp
    true = np.linalg.eigvalsh(G)[::-1][:r]
    res = subspace_ritz(G, q)
    err_ritz = np.abs(res.values - true) / true
    err_corr = np.abs(res.corrected - true) / true
    assert np.all(res.values <= true + 1e-12)
    assert np.all(err_ritz > 0.05)  # cos^2(0.3) = 0.913
    assert np.all(err_corr < 0.5 * err_ritz)


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def trained():
    from gn_theory.data import gaussian_mixture
    from gn_theory.decomposition import class_structure
    from gn_theory.models import mlp, train
    from gn_theory.spectra import eigh

    C = 3
    X, y = gaussian_mixture(120, 5, C, seed=1, separation=5.0, noise=0.7, dtype=torch.float64)
    model = mlp([5, 10, C], seed=1, activation="tanh").double()
    train(model, (X, y), steps=20, lr=0.2, seed=0)
    cs = class_structure(model, (X, y))
    dense = eigh(cs.ggn_operator()).eigenvalues[::-1]
    return cs, dense


@pytest.fixture(scope="module")
def prediction(trained):
    cs, dense = trained
    return predict_outliers(cs, observed=dense[:20], slq_probes=3, slq_steps=40, seed=0)


def test_end_to_end_runs_all_predictors(trained, prediction):
    cs, dense = trained
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
    assert "observed" in res.table() and res.table().count("\n") == r + 1


def test_end_to_end_with_a_duck_typed_bulk_fit_and_compute(trained):
    cs, dense = trained
    fit = types.SimpleNamespace(ratio=2.0, scale=0.01, ks_statistic=0.6, third_moment_ratio=2.3)
    res = predict_outliers(cs, fit, method=["iid", "subspace"], observed="compute", k=4,
                           slq_probes=2, slq_steps=30)
    assert res.methods == ["iid", "subspace", "subspace_corrected"]
    np.testing.assert_allclose(res.observed, dense[:4], rtol=1e-6)
    np.testing.assert_allclose(
        res.prediction("iid"), iid_noise_outliers(cs.eigenvalues("G_cm")[:4], 2.0, 0.01).predicted
    )
    assert res.diagnostics["ks_statistic"] == 0.6
    text = str(res.summary())
    assert "Bulk not MP: third moment 2.30x MP, KS 0.60" in text
    res2 = predict_outliers(cs, (2.0, 0.01), method="additive", k=2, slq_probes=2, slq_steps=20)
    assert res2.methods == ["additive"] and res2.observed is None and res2.best_method is None
    assert res2.num_predicted_outliers == {"additive": int(res2.above.sum())}
    # a Spectrum-like observed (ascending eigenvalues) is sorted descending
    spec = types.SimpleNamespace(eigenvalues=dense[:5][::-1].copy())
    res3 = predict_outliers(cs, (2.0, 0.01), method="iid", k=3, observed=spec, slq_probes=2, slq_steps=20)
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
    from gn_theory.decomposition import ClassStructure

    cs, _ = trained
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
    cs, _ = trained
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


def test_bad_input_to_formulas():
    with pytest.raises(InvalidInputError, match=">= 0"):
        iid_noise_outliers([1.0, -2.0], 0.5, 1.0)
    with pytest.raises(InvalidInputError, match="non-finite"):
        additive_outliers([float("nan")], 0.5, 1.0)
    with pytest.raises(InvalidInputError, match="ratio"):
        iid_noise_outliers([1.0], 0.0, 1.0)
    with pytest.raises(InvalidInputError, match="real numbers"):
        iid_noise_outliers("abc", 0.5, 1.0)
    with pytest.raises(ShapeError):
        iid_noise_outliers(np.ones((2, 2)), 0.5, 1.0)
    with pytest.raises(ShapeError):
        subspace_ritz(np.eye(4), np.ones((2, 2, 2)))
    with pytest.raises(ShapeError):
        subspace_ritz(np.eye(4), np.ones((5, 2)))
    with pytest.raises(ShapeError):
        subspace_ritz(lambda V: V[:2], np.eye(4)[:, :2])
    with pytest.raises(InvalidInputError, match="zero vector"):
        subspace_ritz(np.eye(4), np.zeros((4, 2)))
    with pytest.raises(InvalidInputError, match="not orthonormal"):
        subspace_ritz(np.eye(4), np.ones((4, 2)), orthonormalize=False)
    with pytest.raises(InvalidInputError, match="apply_G"):
        subspace_ritz("G", np.eye(4)[:, :2])
    with pytest.raises(InvalidInputError, match="non-finite"):
        subspace_ritz(lambda V: V * np.nan, np.eye(4)[:, :2])
