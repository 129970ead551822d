"""BBP outliers against simulation (the rmt simulators), docs/theory.md sections 5 and 8."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gn_theory.exceptions import InvalidInputError
from gn_theory.rmt import (
    MarchenkoPastur,
    additive_spiked_mp_eigenvalues,
    bbp_outlier,
    bbp_overlap,
    bbp_spike,
    bbp_threshold,
    bbp_upper_edge,
    bgn_outlier,
    empirical_stieltjes,
    information_plus_noise_eigenvalues,
    sample_covariance_eigenvalues,
    spiked_wigner_eigenvalues,
)

# simulations on one BLAS thread (see conftest.single_blas_thread)
pytestmark = pytest.mark.usefixtures("single_blas_thread")


MODELS = ["multiplicative", "additive", "information_plus_noise", "wigner"]
SEEDS = range(5)


def _ratio(model, r):
    return None if model == "wigner" else r


# ----------------------------------------------------------------------------- simulation
def _simulate(model, size, ratio, scale, spikes, seed):
    """(top eigenvalue matched to each spike by rank, left overlaps, right overlaps or None), one draw."""
    spikes = np.asarray(spikes, float)
    k = spikes.size
    if model == "multiplicative":
        eigs, ov = sample_covariance_eigenvalues(
            size, int(round(size / ratio)), scale, spikes, seed=seed, return_vectors=True
        )
        right = None
    elif model == "additive":
        eigs, ov = additive_spiked_mp_eigenvalues(
            size, int(round(size / ratio)), spikes, scale, seed=seed, return_vectors=True
        )
        right = None
    elif model == "information_plus_noise":
        eigs, ov, right = information_plus_noise_eigenvalues(
            size, int(round(size / ratio)), spikes, scale, seed=seed, return_vectors=True
        )
    else:
        eigs, ov = spiked_wigner_eigenvalues(size, spikes, scale, seed=seed, return_vectors=True)
        right = None
    # the j-th largest eigenvalue goes with the j-th largest spike (as the overlaps do);
    # the simulators return eigenvalues descending
    assert np.all(np.diff(eigs) <= 0)
    top = np.empty(k)
    top[np.argsort(-spikes, kind="stable")] = eigs[:k]
    return top, np.atleast_1d(ov), (None if right is None else np.atleast_1d(right))


def _averaged(model, size, ratio, scale, spikes, seeds=SEEDS):
    runs = [_simulate(model, size, ratio, scale, spikes, s) for s in seeds]
    top = np.mean([r[0] for r in runs], axis=0)
    left = np.mean([r[1] for r in runs], axis=0)
    right = None if runs[0][2] is None else np.mean([r[2] for r in runs], axis=0)
    return top, left, right


# (model, size p (n for info-plus-noise), ratio, scale, spikes above 1.5x threshold, one spike below)
CASES = [
    ("multiplicative", 600, 0.5, 1.0, [1.2, 2.0, 5.0], 0.3),
    ("additive", 600, 0.5, 2.3, [2.0 * 2.3, 4.0 * 2.3], 0.8 * 2.3),
    ("information_plus_noise", 600, 0.5, 0.37, [1.5 * 0.6083, 2.5 * 0.6083], 0.5 * 0.6083),
    ("wigner", 700, None, 1.0, [1.5, 3.0], 0.5),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_simulated_outliers_match_closed_forms(case):
    """docs/theory.md 5: |lambda_hat/lambda_pred - 1| < 0.03 and overlap error < 0.05 (5 draws, p ~ 600-800)."""
    model, size, ratio, scale, above, below = case
    thr = bbp_threshold(ratio, scale, model=model)
    assert min(above) >= 1.5 * thr and below < thr
    spikes = list(above) + [below]
    top, left, right = _averaged(model, size, ratio, scale, spikes)
    th = np.asarray(above)
    k = th.size
    pred = bbp_outlier(th, ratio, scale, model=model)
    np.testing.assert_array_less(np.abs(top[:k] / pred - 1), 0.03)
    np.testing.assert_array_less(np.abs(left[:k] - bbp_overlap(th, ratio, scale, model=model)), 0.05)
    if right is not None:
        pred_r = bbp_overlap(th, ratio, scale, model=model, side="right")
        np.testing.assert_array_less(np.abs(right[:k] - pred_r), 0.05)
    # the sub-threshold spike leaves no outlier: the next eigenvalue sits at the bulk edge
    edge = bbp_upper_edge(ratio, scale, model=model)
    assert bbp_outlier(below, ratio, scale, model=model) == edge
    assert abs(top[k] / edge - 1) < 0.03
    assert left[k] < 0.15 and bbp_overlap(below, ratio, scale, model=model) == 0.0


@pytest.mark.parametrize("model", MODELS)
def test_subthreshold_spike_alone_gives_no_outlier(model):
    ratio, scale = _ratio(model, 0.5), 1.0
    thr = bbp_threshold(ratio, scale, model=model)
    edge = bbp_upper_edge(ratio, scale, model=model)
    top, left, _ = _averaged(model, 400, ratio, scale, [0.6 * thr], seeds=range(2))
    assert abs(top[0] / edge - 1) < 0.04
    assert left[0] < 0.2
    # and a supercritical spike does separate from the edge
    top_above, _, _ = _averaged(model, 400, ratio, scale, [2.0 * thr], seeds=range(2))
    assert top_above[0] > edge * 1.05


def test_error_shrinks_with_size():
    """Same seeds, p = 100 vs p = 800: the mean error of outliers and overlaps drops (loosely)."""
    model, ratio, spikes = "multiplicative", 0.5, np.array([1.2, 2.0])

    def err(size):
        top, left, _ = _averaged(model, size, ratio, 1.0, spikes, seeds=range(4))
        e_lam = np.abs(top / bbp_outlier(spikes, ratio) - 1)
        e_ov = np.abs(left - bbp_overlap(spikes, ratio))
        return float(np.mean(e_lam) + np.mean(e_ov))

    small, large = err(100), err(800)
    assert large < small
    assert large < 0.05


def test_theory_section8_numbers():
    """Regression: the predictions quoted in docs/theory.md section 8."""
    # multiplicative, gamma = 0.5, population eigenvalues 2, 3, 6 (theta = ell - 1); 1.3, 1.6 below
    np.testing.assert_allclose(bbp_outlier([1.0, 2.0, 5.0], 0.5), [3.0, 3.75, 6.6], rtol=1e-14)
    np.testing.assert_allclose(bbp_overlap([1.0, 2.0, 5.0], 0.5), [1 / 3, 0.7, 0.8909], atol=1e-4)
    np.testing.assert_allclose(bbp_outlier([0.3, 0.6], 0.5), [2.9142, 2.9142], atol=1e-4)
    # additive on MP
    assert bbp_outlier(3.0, 0.5, model="additive") == pytest.approx(4.2, rel=1e-14)
    assert bbp_overlap(3.0, 0.5, model="additive") == pytest.approx(0.92, rel=1e-14)
    assert bbp_outlier(6.0, 2.0, model="additive") == pytest.approx(7.5, rel=1e-14)
    assert bbp_overlap(6.0, 2.0, model="additive") == pytest.approx(0.875, rel=1e-14)
    assert bbp_threshold(2.0, model="additive") == pytest.approx(3.4142, abs=1e-4)
    assert bbp_outlier(3.0, 2.0, model="additive") == bbp_upper_edge(2.0)
    # information-plus-noise, c = n/m = 0.5
    assert bbp_outlier(2.0, 0.5, model="information_plus_noise") == pytest.approx(5.625, rel=1e-14)
    assert bbp_overlap(2.0, 0.5, model="information_plus_noise") == pytest.approx(0.8611, abs=1e-4)
    assert bbp_overlap(2.0, 0.5, model="information_plus_noise", side="right") == pytest.approx(0.775, abs=1e-4)
    assert bbp_outlier(4.0, 0.5, model="information_plus_noise") == pytest.approx(17.53, abs=0.01)
    # Wigner
    assert bbp_outlier(1.5, None, model="wigner") == pytest.approx(2.1667, abs=1e-4)
    assert bbp_overlap(1.5, None, model="wigner") == pytest.approx(0.5556, abs=1e-4)


def test_theory_section8_simulation_multiplicative_ell3():
    """p = 800, n = 1600, gamma = 0.5, ell = 3: docs/theory.md 8 measured 3.757 vs 3.750 (overlap .700 vs .700)."""
    top, left, _ = _averaged("multiplicative", 800, 0.5, 1.0, [2.0], seeds=range(3))
    assert bbp_outlier(2.0, 0.5) == pytest.approx(3.75, rel=1e-14)
    assert abs(top[0] / 3.75 - 1) < 0.03
    assert abs(left[0] - 0.70) < 0.05


# ----------------------------------------------------------------------------- inverses and thresholds
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("ratio", [0.1, 0.5, 1.0, 4.0])
@pytest.mark.parametrize("scale", [1.0, 0.37, 2.3])
def test_spike_inverts_outlier(model, ratio, scale):
    r = _ratio(model, ratio)
    thr = bbp_threshold(r, scale, model=model)
    th = thr * np.array([1.001, 1.1, 1.5, 3.0, 20.0])
    lam = bbp_outlier(th, r, scale, model=model)
    assert np.all(lam > bbp_upper_edge(r, scale, model=model))
    assert np.all(np.diff(lam) > 0)  # increasing above threshold
    np.testing.assert_allclose(bbp_spike(lam, r, scale, model=model), th, rtol=1e-9)
    assert isinstance(bbp_spike(float(lam[2]), r, scale, model=model), float)
    ov = bbp_overlap(th, r, scale, model=model)
    assert np.all((ov > 0) & (ov < 1)) and np.all(np.diff(ov) > 0)
    # continuity at the threshold: outlier -> edge, overlap -> 0
    edge = bbp_upper_edge(r, scale, model=model)
    assert bbp_outlier(thr * (1 + 1e-9), r, scale, model=model) == pytest.approx(edge, rel=1e-6)
    assert bbp_overlap(thr * (1 + 1e-9), r, scale, model=model) < 1e-3


@pytest.mark.parametrize("model", MODELS)
def test_below_threshold_behaviour(model):
    r, s = _ratio(model, 0.5), 1.3
    edge = bbp_upper_edge(r, s, model=model)
    thr = bbp_threshold(r, s, model=model)
    below = np.array([0.5 * thr, 0.99 * thr, thr])
    np.testing.assert_array_equal(bbp_outlier(below, r, s, model=model), edge)
    np.testing.assert_array_equal(bbp_overlap(below, r, s, model=model), 0.0)
    with pytest.raises(InvalidInputError, match="below the upper edge"):
        bbp_spike([edge * 0.9, edge * 1.5], r, s, model=model)
    with pytest.raises(InvalidInputError):
        bbp_spike(edge, r, s, model=model)
    out = bbp_spike([edge * 0.9, edge], r, s, model=model, below="threshold")
    np.testing.assert_allclose(out, thr, rtol=1e-15)
    mixed = bbp_spike([edge * 0.5, bbp_outlier(2 * thr, r, s, model=model)], r, s, model=model,
                      below="threshold")
    np.testing.assert_allclose(mixed, [thr, 2 * thr], rtol=1e-10)


def test_vectorised_shapes():
    th = np.linspace(0.1, 5.0, 12).reshape(3, 4)
    for model in MODELS:
        r = _ratio(model, 0.5)
        assert bbp_outlier(th, r, model=model).shape == (3, 4)
        assert bbp_overlap(th, r, model=model).shape == (3, 4)
        assert isinstance(bbp_outlier(2.0, r, model=model), float)
        lam = bbp_outlier(th + 3.0, r, model=model)
        assert bbp_spike(lam, r, model=model).shape == (3, 4)


# ----------------------------------------------------------------------------- general BGN rule
@pytest.mark.parametrize("ratio,scale", [(0.5, 1.0), (2.0, 0.37), (0.1, 2.3), (4.0, 1.0)])
def test_bgn_with_mp_law_equals_additive_closed_form(ratio, scale):
    thr = bbp_threshold(ratio, scale, model="additive")
    th = thr * np.array([0.5, 1.01, 1.5, 3.0, 10.0])
    res = bgn_outlier(th, MarchenkoPastur(ratio, scale))
    np.testing.assert_allclose(res.outlier, bbp_outlier(th, ratio, scale, model="additive"), rtol=1e-10)
    np.testing.assert_allclose(res.overlap, bbp_overlap(th, ratio, scale, model="additive"), atol=1e-9)
    np.testing.assert_array_equal(res.above, th > thr)
    out, ov, above = bgn_outlier(float(th[3]), MarchenkoPastur(ratio, scale))
    assert isinstance(out, float) and isinstance(above, bool) and above
    # a generic object with .stieltjes and .upper_edge (finite-difference G') agrees too
    res2 = bgn_outlier(th[2:], _StieltjesOnly(MarchenkoPastur(ratio, scale)))
    np.testing.assert_allclose(res2.outlier, res.outlier[2:], rtol=1e-9)
    np.testing.assert_allclose(res2.overlap, res.overlap[2:], rtol=1e-5)


class _StieltjesOnly:
    def __init__(self, law):
        self.law = law
        self.upper_edge = law.upper_edge

    def stieltjes(self, z):
        return self.law.stieltjes(z)


def test_bgn_with_empirical_stieltjes_of_eigenvalues():
    ratio, scale = 0.5, 1.0
    eigs = sample_covariance_eigenvalues(800, 1600, scale, seed=3)
    G = empirical_stieltjes(eigs)
    assert G.upper_edge == eigs.max() and G.lower_edge == eigs.min()
    assert G.mean() == pytest.approx(eigs.mean(), rel=1e-14)
    th = np.array([3.0, 5.0])
    res = bgn_outlier(th, G)
    pred = bbp_outlier(th, ratio, scale, model="additive")
    np.testing.assert_allclose(res.outlier, pred, rtol=0.02)
    np.testing.assert_allclose(res.overlap, bbp_overlap(th, ratio, scale, model="additive"), atol=0.03)
    # and the simulated additive spike agrees with both
    top, _, _ = _averaged("additive", 800, ratio, scale, th, seeds=range(2))
    np.testing.assert_allclose(top, res.outlier, rtol=0.03)


def _lanczos_nodes_weights(diag, steps, rng):
    """Gauss quadrature (Ritz values, squared first components) of diag(d) for a random probe."""
    n = diag.size
    v = rng.standard_normal(n)
    v /= np.linalg.norm(v)
    V = np.zeros((steps, n))
    alpha, beta = np.zeros(steps), np.zeros(steps - 1)
    V[0] = v
    for j in range(steps):
        w = diag * V[j]
        alpha[j] = w @ V[j]
        w -= alpha[j] * V[j] + (beta[j - 1] * V[j - 1] if j else 0.0)
        w -= V[: j + 1].T @ (V[: j + 1] @ w)  # full reorthogonalisation
        if j < steps - 1:
            beta[j] = np.linalg.norm(w)
            V[j + 1] = w / beta[j]
    T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    nodes, vecs = np.linalg.eigh(T)
    return nodes, vecs[0] ** 2


def test_bgn_with_slq_nodes_and_weights():
    ratio, scale = 0.5, 1.0
    eigs = sample_covariance_eigenvalues(800, 1600, scale, seed=4)
    rng = np.random.default_rng(0)
    # the probes are drawn against the ascending diagonal (the seeded numbers of this test)
    pairs = [_lanczos_nodes_weights(eigs[::-1], 40, rng) for _ in range(4)]
    nodes = np.array([p[0] for p in pairs])
    weights = np.array([p[1] for p in pairs])
    G = empirical_stieltjes(nodes, weights)
    th = np.array([3.0, 5.0])
    exact = bgn_outlier(th, empirical_stieltjes(eigs))
    slq = bgn_outlier(th, G)
    np.testing.assert_allclose(slq.outlier, exact.outlier, rtol=0.01)
    np.testing.assert_allclose(slq.outlier, bbp_outlier(th, ratio, scale, model="additive"), rtol=0.03)
    np.testing.assert_allclose(slq.overlap, exact.overlap, atol=0.03)
    # G itself matches the exact empirical transform away from the spectrum
    z = np.array([eigs.max() + 0.5, eigs.max() + 2.0, -1.0, 1.0 + 1.0j])
    np.testing.assert_allclose(G(z), empirical_stieltjes(eigs)(z), rtol=0.02)


def test_empirical_stieltjes_values():
    G = empirical_stieltjes([1.0, 2.0, 4.0])
    assert float(G(5.0)) == pytest.approx((1 / 4 + 1 / 3 + 1) / 3, rel=1e-15)
    assert float(G.derivative(5.0)) == pytest.approx(-(1 / 16 + 1 / 9 + 1) / 3, rel=1e-15)
    assert complex(G(1j)) == pytest.approx(np.mean(1 / (1j - np.array([1.0, 2.0, 4.0]))), rel=1e-15)
    assert G(np.ones((2, 3)) * 6.0).shape == (2, 3)
    Gw = empirical_stieltjes([[1.0, 3.0], [2.0, 4.0]], [[0.25, 0.75], [0.5, 0.5]])
    assert float(Gw(5.0)) == pytest.approx((0.25 / 4 + 0.75 / 2 + 0.5 / 3 + 0.5 / 1) / 2, rel=1e-15)
    # 2-D without weights: pooled draws
    Gp = empirical_stieltjes([[1.0, 2.0], [3.0, 4.0]])
    assert float(Gp(5.0)) == pytest.approx(np.mean(1 / (5.0 - np.arange(1.0, 5.0))), rel=1e-15)


def test_bgn_upper_edge_option():
    mp = MarchenkoPastur(0.5)
    res = bgn_outlier(3.0, mp, upper_edge=mp.upper_edge + 0.5)
    assert res.outlier == pytest.approx(4.2, rel=1e-10)
    with pytest.raises(InvalidInputError, match="below the support"):
        bgn_outlier(3.0, mp, upper_edge=mp.upper_edge - 0.1)
    # a bare callable needs an edge
    G = mp.stieltjes
    with pytest.raises(InvalidInputError):
        bgn_outlier(3.0, lambda z: G(z))
    res2 = bgn_outlier(3.0, lambda z: G(z), upper_edge=mp.upper_edge)
    assert res2.outlier == pytest.approx(4.2, rel=1e-9)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("fn", [bbp_threshold, bbp_upper_edge])
def test_bad_parameters_threshold_edge(fn):
    for r, s in [(0.0, 1.0), (-1.0, 1.0), (float("nan"), 1.0), (0.5, 0.0), (0.5, -1.0), (0.5, float("inf"))]:
        with pytest.raises(InvalidInputError):
            fn(r, s)
    with pytest.raises(InvalidInputError):
        fn(0.5, 1.0, model="spiked")
    with pytest.raises(InvalidInputError):
        fn(None, 1.0)  # ratio required outside Wigner
    assert fn(None, 1.0, model="wigner") == fn(0.3, 1.0, model="wigner")


@pytest.mark.parametrize("fn", [bbp_outlier, bbp_overlap])
def test_bad_theta(fn):
    with pytest.raises(InvalidInputError):
        fn(-1.0, 0.5)  # multiplicative needs theta > -1
    with pytest.raises(InvalidInputError):
        fn(-0.1, 0.5, model="information_plus_noise")
    for th in (float("nan"), [1.0, float("inf")], "abc"):
        with pytest.raises(InvalidInputError):
            fn(th, 0.5)
    with pytest.raises(InvalidInputError):
        fn(1.0, 0.0)
    with pytest.raises(InvalidInputError):
        fn(1.0, 0.5, model="unknown")
    # negative spikes are valid (below threshold) for additive and Wigner, and > -1 for multiplicative
    assert fn(-0.5, 0.5) == (bbp_upper_edge(0.5) if fn is bbp_outlier else 0.0)
    assert fn(-2.0, None, model="wigner") == (2.0 if fn is bbp_outlier else 0.0)


def test_bad_side_and_below():
    with pytest.raises(InvalidInputError):
        bbp_overlap(2.0, 0.5, side="right")
    with pytest.raises(InvalidInputError):
        bbp_overlap(2.0, 0.5, model="information_plus_noise", side="up")
    with pytest.raises(InvalidInputError):
        bbp_spike(5.0, 0.5, below="clip")
    with pytest.raises(InvalidInputError):
        bbp_spike(float("nan"), 0.5)
    with pytest.raises(InvalidInputError):
        bbp_spike(5.0, -0.5)


def test_bad_empirical_stieltjes_and_bgn():
    for bad in ([], [[[1.0]]], [1.0, float("nan")]):
        with pytest.raises(InvalidInputError):
            empirical_stieltjes(bad)
    with pytest.raises(InvalidInputError):
        empirical_stieltjes([1.0, 2.0], [0.5])  # shape
    with pytest.raises(InvalidInputError):
        empirical_stieltjes([1.0, 2.0], [1.5, -0.5])  # negative
    with pytest.raises(InvalidInputError):
        empirical_stieltjes([1.0, 2.0], [0.3, 0.3])  # does not sum to one
    with pytest.raises(InvalidInputError):
        bgn_outlier(1.0, "not a transform")
    with pytest.raises(InvalidInputError):
        bgn_outlier(float("nan"), MarchenkoPastur(0.5))
    with pytest.raises(InvalidInputError):
        bgn_outlier(1.0, lambda z: -1.0 / z, upper_edge=1.0)  # not positive right of the edge
