"""Tests of gn_theory.spectra.slq: quadratures, moments, Wasserstein bounds, masses, batching."""

from __future__ import annotations

import math

import numpy as np
import pytest
from spectra_matrices import hessian_like, rotate

import gn_theory as gt
from gn_theory.operators import DenseOperator
from gn_theory.results import SpectralDensity
from gn_theory.spectra import eigh, slq


def test_slq_on_tiny_model_matches_moments(tiny_model):
    model, data = tiny_model
    op = gt.hessian_operator(model, data)
    exact = eigh(op).eigenvalues
    d = slq(op, num_probes=20, num_steps=op.num_params, seed=0)
    # a full-length Lanczos run per probe: the moments are exact per probe, so
    # only the probe variance remains; <= 4 standard errors of Hutchinson
    P = op.num_params
    m2 = np.mean(exact**2)
    assert abs(d.moment(1) - exact.mean()) <= 4 * math.sqrt(2 * m2 / (20 * P))
    assert d.wasserstein(exact) < 0.1 * (exact.max() - exact.min())


def test_slq_rows_are_quadratures():
    A, eigs = hessian_like(300)
    d = slq(A, num_probes=5, num_steps=40, seed=0)
    assert d.nodes.shape == d.weights.shape == (5, 40)
    np.testing.assert_allclose(d.weights.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(d.weights >= 0)
    assert np.all(d.nodes >= eigs.min() - 1e-8) and np.all(d.nodes <= eigs.max() + 1e-8)
    assert np.all(np.diff(d.nodes, axis=1) <= 0)  # each probe's nodes descending


def test_slq_moments_exact_on_diagonal_with_rademacher_probes():
    """v_i^2 = 1 for Rademacher v, so v^T A^j v / v^T v = tr(A^j)/P for diagonal A."""
    e = np.linspace(-1.0, 3.0, 250)
    d = slq(np.diag(e), num_probes=3, num_steps=20, seed=0)
    for j in range(0, 8):  # exact up to degree 2m - 1
        assert d.moment(j) == pytest.approx(np.mean(e**j), rel=1e-10, abs=1e-12)
    assert d.trace_estimate == pytest.approx(e.sum(), rel=1e-10)


def test_slq_full_length_nodes_are_eigenvalues():
    e = np.arange(1.0, 41.0)
    d = slq(rotate(e, 1), num_probes=2, num_steps=40, seed=0)
    for row in d.nodes:
        np.testing.assert_allclose(np.sort(row), e, atol=1e-8)
        np.testing.assert_allclose(row, e[::-1], atol=1e-8)  # descending


def test_slq_early_stop_pads_with_the_smallest_node():
    """A recurrence stopped by an invariant subspace pads with its smallest node, weight 0."""
    d = slq(np.diag([3.0, 2.0, 1.0]), num_probes=1, num_steps=3, seed=0)
    np.testing.assert_allclose(d.nodes[0], [3.0, 2.0, 1.0], atol=1e-12)
    e = np.diag(np.r_[np.full(10, 2.0), np.full(10, 1.0)])  # two distinct eigenvalues
    d = slq(e, num_probes=2, num_steps=6, seed=0)
    assert d.settings["lengths"] == [2, 2]
    for row, w in zip(d.nodes, d.weights):
        np.testing.assert_allclose(row[:2], [2.0, 1.0], atol=1e-10)
        np.testing.assert_allclose(row[2:], 1.0, atol=1e-10)
        assert np.all(w[2:] == 0.0)


def w1_bound(P: int, num_steps: int, num_probes: int, spread: float) -> float:
    """(b - a) (pi / (4 m) + 3 / sqrt(2 n_v P)).

    Gauss quadrature with m nodes matches 2m - 1 moments, so by Jackson's theorem its W1
    distance to the probe's weighted spectral measure is at most pi (b - a) / (4 m); the
    probe's measure differs from the eigenvalue distribution by a CDF error of standard
    deviation <= 1/sqrt(2 P) per probe, averaged over n_v probes (3 standard deviations).
    """
    return spread * (math.pi / (4 * num_steps) + 3.0 / math.sqrt(2.0 * num_probes * P))


def test_slq_wasserstein_below_a_bound_that_shrinks_with_probes():
    A, eigs = hessian_like(900, seed=1)
    spread = eigs.max() - eigs.min()
    m = 60
    bounds, dists = [], []
    for n_v in (1, 4, 16):
        ws = [slq(A, num_probes=n_v, num_steps=m, seed=s).wasserstein(eigs) for s in range(3)]
        bound = w1_bound(900, m, n_v, spread)
        assert max(ws) <= bound, (n_v, ws, bound)
        bounds.append(bound)
        dists.append(np.mean(ws))
    assert bounds[0] > bounds[1] > bounds[2]
    assert dists[2] < dists[0]  # more probes, closer on average


def test_slq_range_and_masses():
    A, eigs = hessian_like(900, seed=2)
    d = slq(A, num_probes=16, num_steps=60, seed=0)
    lb, ub = d.spectral_range
    spread = eigs.max() - eigs.min()
    assert ub == pytest.approx(eigs.max(), rel=1e-8)  # the top outlier converges
    assert lb == pytest.approx(eigs.min(), rel=1e-6)
    true_zero = np.mean(np.abs(eigs) < 1e-6 * spread)
    assert d.mass_near_zero() == pytest.approx(true_zero, abs=0.06)
    assert d.negative_mass() == pytest.approx(np.mean(eigs < 0), abs=0.02)
    assert d.negative_mass() > 0


def test_density_integrates_to_one_and_log_density_splits_sides():
    A, eigs = hessian_like(600)
    d = slq(A, num_probes=8, num_steps=50, seed=0)
    lb, ub = d.spectral_range
    t = np.linspace(lb - 5, ub + 5, 20001)
    assert np.trapezoid(d.density(t), t) == pytest.approx(1.0, abs=1e-3)
    assert d.density().shape == (1024,)
    assert d.default_sigma() > 0
    u = np.linspace(-12, 4, 4001)
    pos, neg = d.log_density(u, sigma=0.05)
    x, w = d.nodes.ravel(), d.weights.ravel() / d.num_probes
    assert np.trapezoid(pos, u) == pytest.approx(w[x > 1e-12].sum(), abs=1e-3)
    assert np.trapezoid(neg, u) == pytest.approx(w[x < -1e-12].sum(), abs=1e-3)
    # the negative outliers sit between 1.5 and 3: the negative side peaks there
    assert 0.1 < u[np.argmax(neg)] < 0.5


def test_density_with_unit_gaussians_of_the_exact_spectrum():
    e = np.array([0.0, 1.0])
    d = SpectralDensity.from_eigenvalues(e)
    t = np.array([0.0, 1.0])
    ref = 0.5 * (1 + math.exp(-0.5)) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(d.density(t, sigma=1.0), [ref, ref])
    assert d.nodes.tolist() == [[1.0, 0.0]] and d.spectral_range == (0.0, 1.0)


def test_slq_reproducible_and_seed_dependent():
    A, _ = hessian_like(300)
    a, b, c = (slq(A, num_probes=3, num_steps=20, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.nodes, b.nodes)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)


def test_slq_batches_probes_into_one_product_per_step():
    A, _ = hessian_like(200)
    calls = []

    class Spy(DenseOperator):
        def _matmat_torch(self, V):
            calls.append(V.shape[1])
            return super()._matmat_torch(V)

    d = slq(Spy(A), num_probes=7, num_steps=15, seed=0)
    assert calls == [7] * 15 and d.num_matvecs == 105


def test_slq_without_reorthogonalisation_still_estimates_the_moments():
    e = np.linspace(0.0, 1.0, 300)
    d = slq(rotate(e, 3), num_probes=10, num_steps=30, seed=0, reorthogonalize=False)
    assert d.moment(1) == pytest.approx(0.5, abs=0.03)
