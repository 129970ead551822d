"""MP and spiked-model fits (gn_theory.rmt) against simulated truth.

Tolerances reflect the sampling error measured when the tests were written
(float64, fixed seeds): the planted docs/theory.md 4.5 bulks are recovered to
<= 0.5% (scale) and <= 0.7% (ratio) over seeds 0-4, the atom case to <= 0.9%;
the spike strengths scatter by up to 8% per draw (the outlier's own
O(n^-1/2) fluctuation) and by < 1% averaged over draws.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from gn_theory.exceptions import ConvergenceWarning, InvalidInputError
from gn_theory.rmt import (
    MarchenkoPastur,
    MarchenkoPasturFit,
    SpikedModelFit,
    bbp_outlier,
    bbp_overlap,
    bbp_threshold,
    fit_marchenko_pastur,
    fit_spiked_model,
    sample_covariance_eigenvalues,
)


@pytest.fixture(scope="module")
def planted():
    """docs/theory.md 4.5: spikes 9, 4, 0.3 at p=600, n=1500, sigma^2=2.3 (ratio 0.4)."""
    return sample_covariance_eigenvalues(600, 1500, 2.3, spikes=[9.0, 4.0, 0.3], seed=0)


@pytest.fixture(scope="module")
def planted_atom():
    """docs/theory.md 4.5: p=1200, n=400, sigma^2=0.8 (ratio 3, atom 2/3) plus 1e-9 noise."""
    ev = sample_covariance_eigenvalues(1200, 400, 0.8, seed=1)
    return ev + 1e-9 * np.random.default_rng(0).standard_normal(ev.size)


# ============================================================================ planted truth
@pytest.mark.parametrize("method", ["moments", "ks"])
def test_planted_spiked_bulk(planted, method):
    fit = fit_marchenko_pastur(planted, method=method, num_bootstrap=0)
    assert fit.converged and fit.message == ""
    assert abs(fit.scale / 2.3 - 1) < 0.015
    assert abs(fit.ratio / 0.4 - 1) < 0.02
    # the two spikes above threshold are outliers; 0.3 < sqrt(0.4) hides in the bulk
    assert fit.n_outliers == 2 and fit.n_bulk == 598
    assert fit.n_total == 600 and fit.n_zero == 0 and fit.n_negative == 0
    assert np.all(fit.outliers > fit.outlier_cut) and np.all(fit.data <= fit.outlier_cut)
    assert fit.outlier_cut == pytest.approx(1.05 * fit.upper_edge)
    # goodness of fit of a true MP bulk (docs/theory.md 4.5: KS 0.003-0.008 at these sizes)
    assert fit.ks_statistic < 0.02
    assert abs(fit.third_moment_ratio - 1) < 0.05
    assert math.isnan(fit.atom_ratio)


@pytest.mark.parametrize("method", ["moments", "ks"])
def test_planted_atom(planted_atom, method):
    fit = fit_marchenko_pastur(planted_atom, method=method, num_bootstrap=0)
    assert fit.converged
    assert abs(fit.scale / 0.8 - 1) < 0.015
    assert abs(fit.ratio / 3.0 - 1) < 0.015
    # the 1e-9 noise (either sign) is round-off: 800 zeros, no negatives
    assert fit.n_zero == 800 and fit.n_negative == 0 and fit.n_bulk == 400
    assert fit.zero_fraction == pytest.approx(2 / 3)
    assert fit.atom_ratio == pytest.approx(3.0, abs=1e-9)


def test_known_atom_fixes_ratio(planted_atom):
    fit = fit_marchenko_pastur(planted_atom, atom=2 / 3, num_bootstrap=20)
    assert fit.ratio_source == "atom"
    assert fit.ratio == pytest.approx(3.0)
    assert abs(fit.scale / 0.8 - 1) < 0.015
    assert fit.bse[1] == 0.0 and np.allclose(fit.conf_int()[1], [3.0, 3.0])
    assert "fixed: atom" in str(fit.summary())


def test_known_ratio_fits_scale_only(planted):
    fit = fit_marchenko_pastur(planted, ratio=0.4, num_bootstrap=20)
    assert fit.ratio == 0.4 and fit.ratio_source == "given"
    assert abs(fit.scale / 2.3 - 1) < 0.015
    assert fit.bse[1] == 0.0 and fit.bse[0] > 0
    ks = fit_marchenko_pastur(planted, ratio=0.4, method="ks", num_bootstrap=0)
    assert ks.ratio == 0.4 and abs(ks.scale / 2.3 - 1) < 0.015


def test_error_shrinks_with_size():
    errs = {}
    for p in (150, 1200):
        e = []
        for seed in range(3):
            ev = sample_covariance_eigenvalues(p, 2 * p, 1.0, seed=seed)
            for method in ("moments", "ks"):
                f = fit_marchenko_pastur(ev, method=method, num_bootstrap=0)
                e.append([abs(f.scale - 1.0), abs(f.ratio - 0.5)])
        errs[p] = np.mean(e, axis=0)
    # measured: ~5e-3 at p=150 and ~5e-4 at p=1200 (the moments are O(1/p)-accurate)
    assert np.all(errs[1200] < errs[150] / 3)
    assert np.all(errs[1200] < 2e-3)


# ============================================================================ uncertainty
def _coverage(kind, num_bootstrap, seeds=30):
    hits, bse = [], []
    for seed in range(seeds):
        ev = sample_covariance_eigenvalues(100, 250, 1.5, seed=seed)
        f = fit_marchenko_pastur(ev, num_bootstrap=num_bootstrap, bootstrap=kind, seed=seed)
        ci = f.conf_int(0.05)
        hits.append([ci[0, 0] <= 1.5 <= ci[0, 1], ci[1, 0] <= 0.4 <= ci[1, 1]])
        bse.append(f.bse)
    return np.mean(hits, axis=0), np.mean(bse, axis=0)


def test_confidence_interval_coverage():
    # iid draws ignore eigenvalue repulsion: conservative (measured coverage 1.0)
    cov_iid, bse_iid = _coverage("iid", 100)
    assert np.all(cov_iid >= 0.8)
    # Wishart replicates: near nominal (measured 0.93 / 0.92 over 60 seeds)
    cov_w, bse_w = _coverage("wishart", 40)
    assert np.all(cov_w >= 0.8)
    assert np.all(bse_iid > 3 * bse_w)


def test_bootstrap_reproducible_and_intervals(planted):
    a = fit_marchenko_pastur(planted, num_bootstrap=50, seed=3)
    b = fit_marchenko_pastur(planted, num_bootstrap=50, seed=3)
    np.testing.assert_array_equal(a.bootstrap_params, b.bootstrap_params)
    assert a.bootstrap_params.shape == (50, 2)
    np.testing.assert_allclose(a.bse, a.bootstrap_params.std(axis=0, ddof=1))
    ci90, ci99 = a.conf_int(0.10), a.conf_int(0.01)
    assert np.all(ci99[:, 0] <= ci90[:, 0]) and np.all(ci99[:, 1] >= ci90[:, 1])
    assert np.all(ci90[:, 0] < a.params) and np.all(a.params < ci90[:, 1])
    none = fit_marchenko_pastur(planted, num_bootstrap=0)
    assert np.all(np.isnan(none.bse)) and np.all(np.isnan(none.conf_int()))
    assert "No bootstrap" in str(none.summary())


def test_default_bootstrap_is_fast(planted):
    import time

    t = time.perf_counter()
    fit = fit_marchenko_pastur(planted)
    assert fit.num_bootstrap == 200
    assert time.perf_counter() - t < 2.0  # ~0.15 s measured


# ============================================================================ zeros, negatives
def test_negatives_and_zeros_set_aside():
    rng = np.random.default_rng(5)
    ev = sample_covariance_eigenvalues(600, 400, 1.2, seed=2)  # 200 exact zeros, ratio 1.5
    assert np.all(ev[-200:] == 0)  # descending: the zeros come last
    ev[-200:] = 1e-13 * rng.standard_normal(200)  # round-off of both signs
    negatives = -rng.uniform(0.01, 0.5, size=37)  # a Hessian's negative part
    data = rng.permutation(np.concatenate([ev, negatives]))
    fit = fit_marchenko_pastur(data, num_bootstrap=0)
    assert fit.n_total == 637
    assert fit.n_negative == 37 and fit.n_zero == 200 and fit.n_bulk == 400
    assert fit.n_zero + fit.n_negative + fit.n_outliers + fit.n_bulk == fit.n_total
    assert np.all(fit.data > 0)
    assert abs(fit.scale / 1.2 - 1) < 0.02 and abs(fit.ratio / 1.5 - 1) < 0.02
    text = str(fit.summary())
    assert "37 negative eigenvalues" in text and "200 eigenvalues within" in text


def test_exclude_outliers_options(planted):
    top2 = fit_marchenko_pastur(planted, exclude_outliers=2, num_bootstrap=0)
    auto = fit_marchenko_pastur(planted, num_bootstrap=0)
    np.testing.assert_allclose(top2.params, auto.params)
    assert top2.n_outliers == 2 and top2.outlier_rule == "top 2"
    above = fit_marchenko_pastur(planted, exclude_outliers=15.0, num_bootstrap=0)
    assert above.n_outliers == 1 and above.outliers[0] > 15.0
    none = fit_marchenko_pastur(planted, exclude_outliers=False, num_bootstrap=0)
    assert none.n_outliers == 0 and math.isinf(none.outlier_cut)
    assert none.ratio > 0.5  # the spikes inflate m2
    zero = fit_marchenko_pastur(planted, exclude_outliers=0, num_bootstrap=0)
    assert zero.n_outliers == 0


def test_third_moment_ratio_flags_heavy_tails():
    rng = np.random.default_rng(0)
    # sample covariance of a population with log-normal variances: not an MP bulk
    x = rng.standard_normal((300, 900)) * np.sqrt(rng.lognormal(0.0, 1.0, 300))[:, None]
    ev = np.linalg.eigvalsh(x @ x.T / 900)
    fit = fit_marchenko_pastur(ev, method="ks", exclude_outliers=False, num_bootstrap=0)
    assert fit.third_moment_ratio > 1.5  # 6.9 measured
    assert "heavier-tailed" in str(fit.summary())
    # the auto exclusion eats the tail; the summary says so
    auto = fit_marchenko_pastur(ev, method="ks", num_bootstrap=0)
    assert auto.n_outliers > 20 and "heavy tail" in str(auto.summary())


# ============================================================================ densities
def test_density_from_eigenvalues_matches_array(planted):
    from gn_theory.spectra import SpectralDensity

    d = SpectralDensity.from_eigenvalues(planted)
    for method in ("moments", "ks"):
        a = fit_marchenko_pastur(planted, method=method, num_bootstrap=0)
        b = fit_marchenko_pastur(d, method=method, num_bootstrap=0)
        np.testing.assert_allclose(b.params, a.params, rtol=1e-10)
        assert b.weighted and not a.weighted
        assert (b.n_total, b.n_bulk, b.n_outliers) == (a.n_total, a.n_bulk, a.n_outliers)
        assert b.ks_statistic == pytest.approx(a.ks_statistic, rel=1e-9)


def test_duck_typed_density():
    ev = sample_covariance_eigenvalues(300, 600, 1.0, seed=4)
    # two "probes", each the exact measure (rows sum to one)
    dens = SimpleNamespace(nodes=np.vstack([ev, ev]), weights=np.full((2, 300), 1 / 300))
    a = fit_marchenko_pastur(ev, num_bootstrap=0)
    b = fit_marchenko_pastur(dens, num_bootstrap=0)
    np.testing.assert_allclose(b.params, a.params, rtol=1e-10)
    assert b.n_total == 600  # no num_params: counted as nodes


@pytest.mark.parametrize("method", ["moments", "ks"])
def test_slq_density_agrees_with_exact(method):
    from gn_theory.spectra import slq

    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 1000)) * math.sqrt(1.7)
    S = x @ x.T / 1000
    exact = fit_marchenko_pastur(np.linalg.eigvalsh(S), method=method, num_bootstrap=0)
    dens = slq(S, num_probes=20, num_steps=60, seed=0)
    fit = fit_marchenko_pastur(dens, method=method, num_bootstrap=10)
    assert fit.weighted and fit.n_total == 400 and fit.converged
    # measured: within 2.2% (probe noise of the quadrature weights)
    np.testing.assert_allclose(fit.params, exact.params, rtol=0.05)
    assert fit.ks_statistic < 0.05
    assert "quadrature nodes and weights" in str(fit.summary())


# ============================================================================ result object
def test_result_api_and_save_load(planted, tmp_path):
    fit = fit_marchenko_pastur(planted, method="ks", num_bootstrap=10)
    assert fit.param_names == ("scale", "ratio")
    law = fit.distribution()
    assert isinstance(law, MarchenkoPastur)
    assert law.upper_edge == pytest.approx(fit.upper_edge)
    assert fit.lower_edge == pytest.approx(fit.scale * (1 - math.sqrt(fit.ratio)) ** 2)
    grid = np.linspace(0.0, 8.0, 9)
    np.testing.assert_allclose(fit.predict(grid), law.pdf(grid))
    np.testing.assert_allclose(fit.predict(grid, kind="cdf"), law.cdf(grid))
    with pytest.raises(InvalidInputError, match="kind"):
        fit.predict(grid, kind="sf")
    assert "MarchenkoPasturFit(method='ks'" in repr(fit)
    text = fit.summary().as_text()
    assert "optimistic" in text and "scale sigma^2" in text
    assert "<table>" in fit.summary().as_html()

    fit.save(tmp_path / "mp")
    back = MarchenkoPasturFit.load(tmp_path / "mp")
    for name in ("params", "bse", "bootstrap_params", "data", "data_weights", "outliers"):
        np.testing.assert_array_equal(getattr(back, name), getattr(fit, name))
    for name in ("method", "n_total", "n_bulk", "n_outliers", "ks_statistic", "converged",
                 "outlier_cut", "ratio_source"):
        assert getattr(back, name) == getattr(fit, name)
    assert math.isnan(back.atom_ratio)
    np.testing.assert_array_equal(back.conf_int(), fit.conf_int())
    assert str(back.summary()) == str(fit.summary())


# ============================================================================ non-convergence
def test_nonconvergence_is_reported(planted):
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        fit = fit_marchenko_pastur(planted, method="ks", maxiter=2, num_bootstrap=0)
    assert fit.converged is False
    assert "Nelder-Mead" in fit.message
    text = str(fit.summary())
    assert "NOT CONVERGED" in text and fit.message in text
    assert "converged=False" in repr(fit)


def test_degenerate_data_is_reported():
    with pytest.warns(ConvergenceWarning, match="degenerate"):
        fit = fit_marchenko_pastur(np.full(50, 2.0), num_bootstrap=0)
    assert not fit.converged and "not identifiable" in fit.message
    assert "NOT CONVERGED" in str(fit.summary())


# ============================================================================ spiked model
def test_spiked_model_recovers_spikes():
    thetas = np.array([9.0, 4.0])
    est, ovl = [], []
    for seed in range(4):
        ev = sample_covariance_eigenvalues(600, 1500, 2.3, spikes=[9.0, 4.0, 0.3], seed=seed)
        fit = fit_spiked_model(ev, num_bootstrap=0)
        assert fit.num_spikes == 2 and np.all(fit.above_threshold)
        assert np.all(np.abs(fit.spikes / thetas - 1) < 0.10)  # per draw: <= 7.6% measured
        np.testing.assert_allclose(fit.predict(), fit.outliers, rtol=1e-9)  # round trip
        est.append(fit.spikes)
        ovl.append(fit.overlaps)
    np.testing.assert_allclose(np.mean(est, axis=0), thetas, rtol=0.04)
    np.testing.assert_allclose(np.mean(ovl, axis=0), bbp_overlap(thetas, 0.4), atol=0.02)
    assert fit.threshold == pytest.approx(bbp_threshold(fit.bulk.ratio))
    np.testing.assert_allclose(fit.predict(thetas), bbp_outlier(thetas, fit.bulk.ratio,
                                                                fit.bulk.scale))


def test_spiked_model_flags_subthreshold(planted):
    fit = fit_spiked_model(planted, num_outliers=3, num_bootstrap=20)
    # the third "outlier" is the bulk's top eigenvalue: spike 0.3 < sqrt(0.4) is invisible
    np.testing.assert_array_equal(fit.above_threshold, [True, True, False])
    assert np.isnan(fit.spikes[2]) and np.isnan(fit.overlaps[2])
    assert np.isnan(fit.predict()[2])
    assert np.all(np.isfinite(fit.spikes[:2])) and np.all(fit.spikes_bse[:2] > 0)
    assert fit.outliers[2] <= fit.separation
    text = str(fit.summary())
    assert "not separated from the bulk" in text and "not identifiable" in text


def test_spiked_model_other_models_and_save_load(planted, tmp_path):
    fit = fit_spiked_model(planted, model="additive", method="ks", num_bootstrap=10)
    assert fit.model == "additive" and fit.num_spikes == 2
    np.testing.assert_allclose(fit.predict(), fit.outliers, rtol=1e-9)
    fit.save(tmp_path / "spiked")
    back = SpikedModelFit.load(tmp_path / "spiked")
    assert isinstance(back.bulk, MarchenkoPasturFit)
    for name in ("outliers", "spikes", "spikes_bse", "above_threshold", "overlaps"):
        np.testing.assert_array_equal(getattr(back, name), getattr(fit, name))
    for name in ("params", "bse", "bootstrap_params", "data", "data_weights", "outliers"):
        np.testing.assert_array_equal(getattr(back.bulk, name), getattr(fit.bulk, name))
    assert back.bulk.bootstrap_params.shape == (10, 2)
    assert str(back.summary()) == str(fit.summary())
    assert "SpikedModelFit(model='additive'" in repr(back)
    assert fit.to_dict()["fields"]["bulk"]["__result__"] == "MarchenkoPasturFit"


# ============================================================================ bad input
@pytest.mark.parametrize(
    "data, kwargs, match",
    [
        ([], {}, "empty"),
        ([1.0, np.nan, 2.0, 3.0], {}, "non-finite"),
        ([1.0, np.inf, 2.0, 3.0], {}, "non-finite"),
        (np.zeros(10), {}, "every eigenvalue is zero"),
        (np.ones((3, 3)), {}, "1-d"),
        ("abc", {}, "real numbers"),
        ([0.0, 0.0, 1.0, 2.0], {}, "at least 3"),
        ([-1.0, -2.0, 1.0, 2.0], {}, "at least 3"),
        (np.arange(1.0, 11.0), {"ratio": 0.0}, "ratio"),
        (np.arange(1.0, 11.0), {"ratio": -1.0}, "ratio"),
        (np.arange(1.0, 11.0), {"method": "histogram"}, "method must be one of"),
        (np.arange(1.0, 11.0), {"method": "mle"}, "non-regular"),
        (np.arange(1.0, 11.0), {"atom": 1.0}, "atom"),
        (np.arange(1.0, 11.0), {"exclude_outliers": "some"}, "exclude_outliers"),
        (np.arange(1.0, 11.0), {"exclude_outliers": -1}, "exclude_outliers"),
        (np.arange(1.0, 11.0), {"exclude_outliers": 8}, "at least 3"),
        (np.arange(1.0, 11.0), {"zero_tol": -1.0}, "zero_tol"),
        (np.arange(1.0, 11.0), {"alpha": 1.5}, "alpha"),
        (np.arange(1.0, 11.0), {"num_bootstrap": -1}, "num_bootstrap"),
        (np.arange(1.0, 11.0), {"bootstrap": "jackknife"}, "bootstrap"),
    ],
)
def test_bad_input_raises(data, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        fit_marchenko_pastur(data, **kwargs)


def test_wishart_bootstrap_refuses_huge_matrices():
    ev = np.random.default_rng(0).uniform(1.0, 2.0, 5000)
    with pytest.raises(InvalidInputError, match="too slow"):
        fit_marchenko_pastur(ev, bootstrap="wishart", num_bootstrap=2)


def test_bad_density_raises():
    with pytest.raises(InvalidInputError, match="same shape"):
        fit_marchenko_pastur(SimpleNamespace(nodes=np.ones((2, 3)), weights=np.ones((2, 2))))
    with pytest.raises(InvalidInputError, match=">= 0"):
        fit_marchenko_pastur(SimpleNamespace(nodes=np.ones(3), weights=-np.ones(3)))
    with pytest.raises(InvalidInputError, match="non-finite"):
        fit_marchenko_pastur(SimpleNamespace(nodes=np.array([1.0, np.nan]), weights=np.ones(2)))


def test_bad_spiked_input_raises(planted):
    with pytest.raises(InvalidInputError, match="semicircle"):
        fit_spiked_model(planted, model="wigner")
    with pytest.raises(InvalidInputError, match="model must be"):
        fit_spiked_model(planted, model="cubic")
    with pytest.raises(InvalidInputError, match="num_outliers"):
        fit_spiked_model(planted, num_outliers=1.5)
    with pytest.raises(InvalidInputError, match="num_outliers"):
        fit_spiked_model(planted, num_outliers=-2)
    with pytest.raises(InvalidInputError, match="non-regular"):
        fit_spiked_model(planted, method="mle")


def test_no_warning_on_clean_fit(planted):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_marchenko_pastur(planted, num_bootstrap=5)
        fit_spiked_model(planted, num_bootstrap=5)


def test_bootstrap_is_consistent_when_the_fitted_atom_exceeds_the_zero_count():
    # a heavy-tailed spectrum without zeros: moments give ratio > 1 (an atom the data lack);
    # replicates drawn from the whole fitted law must refit near the estimate, not to 1 / ratio
    x = np.random.default_rng(0).lognormal(0.0, 1.0, size=500)
    fit = fit_marchenko_pastur(x, exclude_outliers=False)
    assert fit.ratio > 1.0 and fit.n_zero == 0
    ci = fit.conf_int()
    assert np.all(ci[:, 0] <= fit.params) and np.all(fit.params <= ci[:, 1])
    assert fit.bse[1] < 0.5 * fit.ratio
    assert "not a rank deficit" in str(fit.summary())


# ============================================================================ one option set
def test_spiked_model_takes_the_mp_fit_options_as_one_keyword_set(planted):
    import inspect
    import typing

    from gn_theory.rmt import MarchenkoPasturOptions

    sig = inspect.signature(fit_marchenko_pastur)
    options = [n for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY]
    assert sorted(typing.get_type_hints(MarchenkoPasturOptions)) == sorted(options)
    a = fit_spiked_model(planted, method="ks", num_bootstrap=0, zero_tol=1e-8)
    b = fit_marchenko_pastur(planted, method="ks", num_bootstrap=0, zero_tol=1e-8)
    np.testing.assert_array_equal(a.bulk.params, b.params)
    assert a.settings["method"] == "ks" and a.settings["zero_tol"] == 1e-8
    with pytest.raises(InvalidInputError, match="num_outliers"):
        fit_spiked_model(planted, exclude_outliers=2)
    with pytest.raises(TypeError):
        fit_spiked_model(planted, smoothing=3)


def test_spiked_model_vocabulary(planted):
    fit = fit_spiked_model(planted, num_bootstrap=20, seed=1)
    assert fit.param_names == ("scale", "ratio", "theta_1", "theta_2")
    np.testing.assert_array_equal(fit.params, np.r_[fit.bulk.params, fit.spikes])
    np.testing.assert_array_equal(fit.bse, np.r_[fit.bulk.bse, fit.spikes_bse])
    ci = fit.conf_int(0.1)
    assert ci.shape == (4, 2)
    np.testing.assert_array_equal(ci[:2], fit.bulk.conf_int(0.1))
    assert np.all(ci[2:, 0] <= fit.spikes) and np.all(fit.spikes <= ci[2:, 1])
    assert fit.bootstrap_spikes.shape == (20, 2)
    np.testing.assert_allclose(fit.spikes_bse, fit.bootstrap_spikes.std(axis=0, ddof=1))
    fit0 = fit_marchenko_pastur(planted, num_bootstrap=0, seed=None)
    assert isinstance(fit0.seed, int) and fit0.settings["seed"] == fit0.seed  # recorded
