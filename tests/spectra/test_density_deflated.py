"""Tests of gn_theory.spectra.spectral_density (deflated SLQ) and deflated_operator.

Against exact spectra (``numpy.linalg.eigvalsh``): Wasserstein-1 bounds that shrink with the
number of probes and steps, exact outliers with weight 1/P, mass conservation, reload, and that
the quadrature feeds the MP fit and the BGN transform like the exact eigenvalues do.

The W1 bound used below (``w1_bound``): with k eigenpairs deflated exactly, only the rest
(mass (P - k)/P, range [a, b]) is estimated. Gauss quadrature with m nodes integrates
polynomials of degree 2m - 1 exactly, so by Jackson's theorem a 1-Lipschitz test function is
integrated to within pi (b - a) / (4 m) per probe; the probes' average differs from the
spectrum by the sampling error of the probe weights, whose CDF has standard deviation at most
sqrt(1 / (2 n_v (P - k))) (Gaussian probes; Rademacher ones do better). Three standard
deviations give the bound.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from spectra_matrices import hessian_like, rotate

import gn_theory as gt
from gn_theory.exceptions import InvalidInputError, NotSymmetricError, ShapeError
from gn_theory.operators import DenseOperator
from gn_theory.results import SpectralDensity, load_result
from gn_theory.rmt import bgn_outlier, empirical_stieltjes, fit_marchenko_pastur
from gn_theory.spectra import (
    DeflatedOperator,
    deflated_operator,
    eigh,
    lanczos,
    slq,
    spectral_density,
)


def w1_bound(P: int, k: int, lo: float, hi: float, num_probes: int, num_steps: int) -> float:
    """Jackson (steps) plus three standard deviations of the probe weights (probes)."""
    share = (P - k) / P
    width = hi - lo
    return share * width * (
        math.pi / (4 * num_steps) + 3.0 / math.sqrt(2.0 * num_probes * (P - k))
    )


@pytest.fixture(scope="module")
def outlier_matrix():
    """hessian_like(600): 10 outliers in [5, 50] above a bulk in [-3, 1] (3 negative outliers)."""
    A, eigs = hessian_like(600, seed=0)
    return A, np.sort(eigs)[::-1]


def test_exact_outliers_with_weight_one_over_p(outlier_matrix):
    A, ev = outlier_matrix
    P = ev.size
    d = spectral_density(A, deflate=10, num_probes=3, num_steps=30, seed=0, tol=1e-10)
    np.testing.assert_allclose(d.deflated_eigenvalues, ev[:10], rtol=1e-9)
    assert d.num_deflated == 10
    assert d.nodes.shape == d.weights.shape == (3, 40)
    for row_x, row_w in zip(d.nodes, d.weights):
        # the 10 largest nodes of every row are the outliers, weight exactly 1/P
        np.testing.assert_allclose(row_x[:10], ev[:10], rtol=1e-9)
        np.testing.assert_allclose(row_w[:10], 1.0 / P, rtol=1e-12)
        assert np.all(np.diff(row_x) <= 0)  # descending
        assert row_x[10] <= ev[10] + 1e-8  # the rest lies in the deflated operator's range
    # Papyan's residual-widened Ritz extremes of the deflated operator: its range, nearly
    width = ev[10] - ev[-1]
    np.testing.assert_allclose(d.bulk_bounds, [ev[-1], ev[10]], atol=0.02 * width)
    np.testing.assert_allclose(d.spectral_range, (d.bulk_bounds[0], ev[0]), rtol=1e-9)


def test_mass_is_conserved(outlier_matrix):
    A, ev = outlier_matrix
    d = spectral_density(A, deflate=7, num_probes=5, num_steps=25, seed=1)
    assert np.all(d.weights >= 0)
    np.testing.assert_allclose(d.weights.sum(axis=1), 1.0, atol=1e-12)
    assert d.moment(0) == pytest.approx(1.0, abs=1e-12)
    # the bulk share of every row is exactly (P - k) / P
    P = ev.size
    bulk_w = np.where(np.isin(d.nodes, d.deflated_eigenvalues), 0.0, d.weights).sum(axis=1)
    np.testing.assert_allclose(bulk_w, (P - 7) / P, atol=1e-12)
    # the first moment: tr(A) / P, the deflated share exact (3 outliers are left in the rest)
    assert d.trace_estimate == pytest.approx(ev.sum(), rel=0.1)


def test_w1_within_bound_that_shrinks_with_steps(outlier_matrix):
    A, ev = outlier_matrix
    P = ev.size
    lo, hi = ev[-1], ev[10]
    means, bounds = [], []
    for m in (8, 16, 32, 64):
        w = [spectral_density(A, deflate=10, num_probes=4, num_steps=m, seed=s).wasserstein(ev)
             for s in range(3)]
        b = w1_bound(P, 10, lo, hi, 4, m)
        assert max(w) <= b, (m, w, b)
        means.append(np.mean(w))
        bounds.append(b)
    assert np.all(np.diff(bounds) < 0)
    assert means[-1] < means[0] / 2  # steps are what this spectrum needs


def test_w1_within_bound_that_shrinks_with_probes():
    """A flat bulk (uniform spectrum) where the probe weights, not the steps, limit W1."""
    ev = np.r_[[30.0, 20.0], np.linspace(0.0, 1.0, 798)][::-1]
    ev = np.sort(ev)[::-1]
    A = rotate(ev, 2)
    P = ev.size
    means, bounds = [], []
    for nv in (1, 4, 16):
        w = [spectral_density(A, deflate=2, num_probes=nv, num_steps=60, seed=s).wasserstein(ev)
             for s in range(4)]
        b = w1_bound(P, 2, 0.0, 1.0, nv, 60)
        assert max(w) <= b, (nv, w, b)
        means.append(np.mean(w))
        bounds.append(b)
    assert np.all(np.diff(bounds) < 0)
    assert means[-1] < means[0] / 2


def test_deflation_beats_plain_slq_on_outliers(outlier_matrix):
    """Same probes x steps: exact outliers remove the random outlier weights of plain SLQ."""
    A, ev = outlier_matrix
    plain = [slq(A, num_probes=4, num_steps=40, seed=s).wasserstein(ev) for s in range(3)]
    defl = [spectral_density(A, deflate=10, num_probes=4, num_steps=40, seed=s).wasserstein(ev)
            for s in range(3)]
    assert np.mean(defl) < 0.5 * np.mean(plain)


def test_given_spectrum_spends_no_deflation_products(outlier_matrix):
    A, ev = outlier_matrix
    top = lanczos(A, 10, seed=3, tol=1e-10)
    op = DenseOperator(torch.as_tensor(A))
    d = spectral_density(op, deflate=top, num_probes=2, num_steps=20, seed=0,
                         check_symmetric=False)
    assert d.num_matvecs == op.num_matvecs == 2 * 20
    assert d.settings["deflation_source"] == "given"
    assert d.settings["deflation_num_matvecs"] == 0
    np.testing.assert_allclose(d.deflated_eigenvalues, ev[:10], rtol=1e-9)
    # computed inside: the products of lanczos count too
    op2 = DenseOperator(torch.as_tensor(A))
    d2 = spectral_density(op2, deflate=10, num_probes=2, num_steps=20, seed=0)
    assert d2.num_matvecs == op2.num_matvecs == d2.settings["deflation_num_matvecs"] + 40
    assert d2.settings["deflation_source"] == "lanczos"


def test_symmetry_checked_for_free(outlier_matrix):
    A, _ = outlier_matrix
    top = lanczos(A, 4, seed=0)
    op = DenseOperator(torch.as_tensor(A))
    d = spectral_density(op, deflate=top, num_probes=2, num_steps=10, seed=0)
    assert d.num_matvecs == 20 and d.settings["asymmetry"] < 1e-10  # two probes: free
    op1 = DenseOperator(torch.as_tensor(A))
    d1 = spectral_density(op1, deflate=top, num_probes=1, num_steps=10, seed=0)
    assert d1.num_matvecs == 11  # one probe: one more product
    B = A.copy()
    B[0, 1] += 1.0
    with pytest.raises(NotSymmetricError):
        spectral_density(B, deflate=0, num_probes=2, num_steps=5, seed=0)
    with pytest.raises(NotSymmetricError):
        spectral_density(B, deflate=3, num_probes=2, num_steps=5, seed=0)


def test_deflate_zero_is_plain_slq(outlier_matrix):
    A, _ = outlier_matrix
    d = spectral_density(A, deflate=0, num_probes=3, num_steps=15, seed=4, check_symmetric=False,
                         exact_converged=False)
    s = slq(A, num_probes=3, num_steps=15, seed=4, check_symmetric=False)
    np.testing.assert_allclose(d.nodes, s.nodes, atol=1e-12)
    np.testing.assert_allclose(d.weights, s.weights, atol=1e-12)
    assert d.num_deflated == 0 and d.deflated_eigenvalues is None and d.bulk_bounds is None
    assert d.settings["method"] == "slq"
    assert d.default_sigma() == pytest.approx(s.default_sigma())


def test_converged_ritz_values_get_exact_weights(outlier_matrix):
    """Deflate 4 of the 10 outliers: the other 6 converge in the deflated run, weight 1/P."""
    A, ev = outlier_matrix
    P = ev.size
    d = spectral_density(A, deflate=4, num_probes=3, num_steps=40, seed=0)
    assert d.settings["exact_converged"] is True
    assert min(d.settings["converged_ritz"]) >= 6
    for row_x, row_w in zip(d.nodes, d.weights):
        np.testing.assert_allclose(row_x[:10], ev[:10], rtol=1e-8)
        np.testing.assert_allclose(row_w[:10], 1.0 / P, rtol=1e-12)
        assert row_w.sum() == pytest.approx(1.0, abs=1e-12)
    off = spectral_density(A, deflate=4, num_probes=3, num_steps=40, seed=0,
                           exact_converged=False)
    assert off.settings["converged_ritz"] == []
    assert not np.allclose(off.weights[:, 4:10], 1.0 / P)  # random Gauss weights
    np.testing.assert_allclose(off.nodes, d.nodes)  # same nodes, only the weights differ
    # exact outliers beat their random weights
    w_on = [spectral_density(A, deflate=4, num_probes=3, num_steps=40, seed=s).wasserstein(ev)
            for s in range(3)]
    w_off = [spectral_density(A, deflate=4, num_probes=3, num_steps=40, seed=s,
                              exact_converged=False).wasserstein(ev) for s in range(3)]
    assert np.mean(w_on) < 0.5 * np.mean(w_off)


def test_converged_atoms_and_invariant_rows_keep_their_weights():
    """A converged value with many copies (an atom) keeps its Gauss weight; so does every
    value of a probe whose recurrence stopped in an invariant subspace."""
    ev = np.sort(np.r_[[9.0], np.full(60, 5.0), np.linspace(0.0, 1.0, 239)])[::-1]
    A = rotate(ev, 5)
    d = spectral_density(A, deflate=1, num_probes=4, num_steps=30, seed=0)
    assert d.settings["converged_ritz"] == [0, 0, 0, 0]  # the top of the rest is the atom
    at5 = np.isclose(d.nodes, 5.0, atol=1e-8) & (d.weights > 1e-12)
    assert at5.sum(axis=1).tolist() == [1, 1, 1, 1]
    # the atom's mass is about 60 / 300, not 1 / 300
    assert d.weights[at5].mean() * 300 > 30
    assert d.cdf(5.5) - d.cdf(4.5) == pytest.approx(0.2, abs=0.05)
    few = np.diag(np.r_[[4.0], np.repeat([3.0, 2.0, 1.0], 10)])
    e = spectral_density(few, deflate=1, num_probes=2, num_steps=10, seed=0)
    assert e.settings["converged_ritz"] == [0, 0]
    assert e.cdf(2.5) - e.cdf(1.5) == pytest.approx(10 / 31, abs=0.15)


def test_round_trip_records_how_it_was_made(tmp_path, outlier_matrix):
    A, _ = outlier_matrix
    d = spectral_density(A, deflate=5, num_probes=2, num_steps=12, seed=0)
    back = load_result(d.save(tmp_path / "dens"))
    assert isinstance(back, SpectralDensity)
    np.testing.assert_array_equal(back.nodes, d.nodes)
    np.testing.assert_array_equal(back.weights, d.weights)
    np.testing.assert_array_equal(back.deflated_eigenvalues, d.deflated_eigenvalues)
    np.testing.assert_array_equal(back.bulk_bounds, d.bulk_bounds)
    assert back.num_matvecs == d.num_matvecs and back.num_deflated == 5
    assert (back.num_probes, back.num_steps) == (2, 12)
    assert back.settings["method"] == "deflated_slq" and back.settings["deflate"] == 5
    assert back.default_sigma() == d.default_sigma()
    assert SpectralDensity.from_dict(d.to_dict()).num_deflated == 5
    text = str(d.summary())
    assert "deflated" in text


def test_kernel_width_follows_the_deflated_range(outlier_matrix):
    A, ev = outlier_matrix
    d = spectral_density(A, deflate=10, num_probes=2, num_steps=30, seed=0)
    plain = slq(A, num_probes=2, num_steps=30, seed=0)
    # Papyan's width on the range the Ritz nodes span: about (ev[10] - ev[-1]) / (ev[0] - ev[-1])
    ratio = d.default_sigma() / plain.default_sigma()
    assert ratio == pytest.approx((ev[10] - ev[-1]) / (ev[0] - ev[-1]), rel=0.1)
    # the broadened density still integrates to 1 over the full grid
    t = np.linspace(ev[-1] - 1.0, ev[0] + 1.0, 200_001)
    assert np.trapezoid(d.density(t), t) == pytest.approx(1.0, abs=1e-3)


def _mp_with_outliers(P: int = 500, n: int = 1000, seed: int = 0):
    """A Wishart bulk (MP with ratio P/n = 0.5, scale 1) and 4 outliers; eigenvalues descending."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, n))
    bulk = np.linalg.eigvalsh(X @ X.T / n)
    ev = np.sort(np.r_[bulk[4:], [12.0, 9.0, 7.0, 6.0]])[::-1]
    return rotate(ev, seed + 1), ev


def test_quadrature_feeds_the_mp_fit():
    A, ev = _mp_with_outliers()
    exact = fit_marchenko_pastur(ev, method="moments", num_bootstrap=0)
    d = spectral_density(A, deflate=4, num_probes=4, num_steps=40, seed=0)
    fit = fit_marchenko_pastur(d, method="moments", num_bootstrap=0)
    np.testing.assert_allclose(fit.params, exact.params, rtol=0.05)
    assert fit.upper_edge == pytest.approx(exact.upper_edge, rel=0.05)
    ks = fit_marchenko_pastur(d, method="ks", num_bootstrap=0)
    assert ks.upper_edge == pytest.approx(exact.upper_edge, rel=0.1)
    # the outliers are found above the fitted edge
    assert gt.outliers(d, method="edge", edge=fit.upper_edge).count == 4


def test_quadrature_feeds_the_bgn_transform():
    A, ev = _mp_with_outliers()
    d = spectral_density(A, deflate=4, num_probes=4, num_steps=40, seed=0)
    G = empirical_stieltjes(d.nodes, d.weights)
    G_exact = empirical_stieltjes(ev)
    assert G.upper_edge == pytest.approx(ev[0], rel=1e-9)  # the top node is the exact outlier
    z = np.array([13.0, 20.0, 40.0])
    # beyond every node G is a series in the moments: exact for the outliers, probe noise
    # of the bulk's moments otherwise
    np.testing.assert_allclose(G(z), G_exact(z), rtol=5e-3)
    # the bulk alone (deflated nodes removed), as the BGN rule needs it
    keep = ~np.isin(d.nodes, d.deflated_eigenvalues)
    bulk_x = d.nodes[keep].reshape(d.num_probes, -1)
    bulk_w = d.weights[keep].reshape(d.num_probes, -1)
    Gb = empirical_stieltjes(bulk_x, bulk_w / bulk_w.sum(axis=1, keepdims=True))
    Gb_exact = empirical_stieltjes(ev[4:])
    for theta in (3.0, 6.0):
        got, want = bgn_outlier(theta, Gb), bgn_outlier(theta, Gb_exact)
        assert got.outlier == pytest.approx(want.outlier, rel=0.02)
        assert got.overlap == pytest.approx(want.overlap, abs=0.03)


def test_deflated_operator_spectrum(outlier_matrix):
    A, ev = outlier_matrix
    top = lanczos(A, 10, seed=0, tol=1e-10)
    D = deflated_operator(A, top, shift=float(top.eigenvalues.min()))
    assert isinstance(D, DeflatedOperator) and D.kind == "deflated"
    got = eigh(D.to_dense()).eigenvalues
    want = np.sort(np.r_[np.full(10, ev[9]), ev[10:]])[::-1]
    np.testing.assert_allclose(got, want, atol=1e-8)
    zero = eigh(deflated_operator(A, top).to_dense()).eigenvalues
    np.testing.assert_allclose(np.sort(zero), np.sort(np.r_[np.zeros(10), ev[10:]]), atol=1e-8)
    # the smallest eigenvalues of the rest, by lanczos on the deflated operator
    low = lanczos(D, 3, "smallest", seed=0)
    np.testing.assert_allclose(low.eigenvalues, ev[-3:], rtol=1e-7)


def test_errors(outlier_matrix):
    A, _ = outlier_matrix
    no_vec = lanczos(A, 3, seed=0, return_eigenvectors=False)
    with pytest.raises(InvalidInputError, match="no eigenvectors"):
        spectral_density(A, deflate=no_vec)
    with pytest.raises(InvalidInputError, match="no eigenvectors"):
        deflated_operator(A, no_vec)
    with pytest.raises(InvalidInputError, match="below the dimension"):
        spectral_density(np.eye(4), deflate=4)
    with pytest.raises(InvalidInputError, match="deflate must be"):
        spectral_density(A, deflate=2.5)
    with pytest.raises(InvalidInputError, match="deflate must be"):
        spectral_density(A, deflate=True)
    with pytest.raises(InvalidInputError):
        spectral_density(A, deflate=-1)
    with pytest.raises(InvalidInputError):
        spectral_density(A, num_probes=0)
    with pytest.raises(InvalidInputError):
        spectral_density(A, num_steps=0)
    with pytest.raises(InvalidInputError):
        spectral_density(A, probes="uniform")
    with pytest.raises(InvalidInputError, match="must be a Spectrum"):
        deflated_operator(A, np.ones(3))
    with pytest.raises(InvalidInputError, match="finite"):
        deflated_operator(A, lanczos(A, 2, seed=0), shift=float("nan"))
    small = lanczos(np.diag([3.0, 2.0, 1.0]), 2, seed=0)
    with pytest.raises(ShapeError):
        spectral_density(A, deflate=small)


def test_on_a_model_hessian(tiny_model):
    model, data = tiny_model
    H = gt.hessian_operator(model, data)
    exact = eigh(H).eigenvalues
    P = H.num_params
    d = spectral_density(H, deflate=3, num_probes=4, num_steps=20, seed=0)
    np.testing.assert_allclose(d.deflated_eigenvalues, exact[:3], rtol=1e-7)
    assert d.settings["kind"] == "hessian" and d.settings["num_params"] == P
    assert d.wasserstein(exact) <= w1_bound(P, 3, exact[-1], exact[3], 4, d.num_steps)
