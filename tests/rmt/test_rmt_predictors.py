"""The outlier predictors of gn_theory.rmt against simulations with planted truth, and Rayleigh-Ritz."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import aslinearoperator

from gn_theory.exceptions import InvalidInputError, ShapeError
from gn_theory.results import SpectralDensity, load_result
from gn_theory.rmt import (
    MarchenkoPastur,
    OutlierFormula,
    RitzResult,
    additive_outliers,
    bbp_outlier,
    bgn_outliers,
    iid_noise_outliers,
    subspace_ritz,
)


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
    """docs/theory.md 5 numeric check (there P=N=600; here 400 to keep it fast), C=3, c = P/(NC) = 1/3,
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


def test_results_save_load_summarise_and_unpack(tmp_path):
    """The former named tuples are results: they save, load, summarise and still unpack."""
    f = iid_noise_outliers([4.0, 0.3], 1 / 3, 1.0)
    predicted, above, overlap, threshold, edge = f
    np.testing.assert_array_equal(predicted, f.predicted)
    assert threshold == f.threshold and edge == f.edge and above.tolist() == [True, False]
    back = OutlierFormula.load(f.save(tmp_path / "formula"))
    np.testing.assert_array_equal(back.predicted, f.predicted)
    assert back.settings == {"predictor": "iid", "ratio": 1 / 3, "scale": 1.0}
    assert "threshold" in str(f.summary())
    G = np.diag([5.0, 3.0, 1.0, 0.5])
    res = subspace_ritz(G, np.eye(4)[:, :2])
    values, residual_norms, corrected, vectors, basis = res
    assert res.num_matvecs == 2 and values.tolist() == [5.0, 3.0]
    back = load_result(res.save(tmp_path / "ritz"))
    assert isinstance(back, RitzResult)
    for name in ("values", "residual_norms", "corrected", "vectors", "basis"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name))
    assert "Ritz values" in str(back.summary())
