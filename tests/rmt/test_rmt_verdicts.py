"""The verdicts of the MP fit and the outlier count against by-hand computations (issue 12).

* the third-moment ratio, computed by hand on MP, log-normal and atom-bearing data;
* the KS fit identifies its ratio on an MP bulk, and says when it does not;
* outlier nodes repeated across SLQ probes are listed once;
* count_outliers: planted counts, the rule it used, and every summary sentence
  against the numbers beside it.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from gn_theory.exceptions import ConvergenceWarning, InvalidInputError
from gn_theory.rmt import (
    MarchenkoPasturFit,
    OutlierCount,
    count_outliers,
    fit_marchenko_pastur,
    mp_moment,
    sample_covariance_eigenvalues,
)


def _quiet_fit(values, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_marchenko_pastur(values, **kw)


def _by_hand_full(x: np.ndarray) -> float:
    """m3 / MP moment 3 of the moments fit (scale m1, ratio m2/m1^2 - 1), zeros included."""
    m1, m2, m3 = np.mean(x), np.mean(x**2), np.mean(x**3)
    g = m2 / m1**2 - 1
    return m3 / (m1**3 * (1 + 3 * g + g * g))


# ============================================================================ third moment
def test_third_moment_ratio_on_mp_is_one():
    ev = sample_covariance_eigenvalues(800, 1600, 1.3, seed=0)
    fit = fit_marchenko_pastur(ev, exclude_outliers=False, num_bootstrap=0)
    assert fit.third_moment_ratio == pytest.approx(_by_hand_full(ev), rel=1e-12)
    assert abs(fit.third_moment_ratio - 1) < 0.02


def test_third_moment_ratio_on_lognormal_by_hand():
    # no zeros, spread large enough that the moments ratio exceeds 1 (the fitted law has an atom)
    x = np.random.default_rng(0).lognormal(0.0, 1.33, 3000)
    fit = _quiet_fit(x, exclude_outliers=False, num_bootstrap=0)
    assert fit.ratio > 1 and fit.n_zero == 0
    assert fit.third_moment_ratio == pytest.approx(_by_hand_full(x), rel=1e-10)
    # the old definition (nonzero bulk over the law's nonzero part) is off by exactly the ratio
    nonzero_part = np.mean(x**3) / (mp_moment(3, fit.ratio, fit.scale) * fit.ratio)
    assert fit.third_moment_ratio == pytest.approx(nonzero_part * fit.ratio, rel=1e-10)
    assert fit.third_moment_ratio > 1.5 and "heavier-tailed" in str(fit.summary())
    assert "kept values with zeros vs the full law" in str(fit.summary())


@pytest.mark.parametrize("case", ["mp_atom", "lognormal_half_zeros"])
def test_third_moment_ratio_with_an_atom_by_hand(case):
    rng = np.random.default_rng(1)
    if case == "mp_atom":
        x = sample_covariance_eigenvalues(1200, 400, 0.8, seed=1)  # 800 exact zeros
    else:
        x = np.concatenate([np.zeros(1500), rng.lognormal(0.0, 0.8, 1500)])
    fit = _quiet_fit(x, exclude_outliers=False, num_bootstrap=0)
    assert fit.n_zero == (800 if case == "mp_atom" else 1500)
    kept = np.where(np.abs(x) <= fit.zero_threshold, 0.0, x)
    assert fit.third_moment_ratio == pytest.approx(_by_hand_full(kept), rel=1e-9)
    if case == "mp_atom":
        assert abs(fit.third_moment_ratio - 1) < 0.02


def test_third_moment_ratio_of_a_nonzero_fit_by_hand():
    # KS and a given ratio fit the nonzero bulk: compared with the law's nonzero part
    x = np.random.default_rng(2).lognormal(0.0, 0.4, 2000)
    fit = fit_marchenko_pastur(x, ratio=0.3, exclude_outliers=False, num_bootstrap=0)
    s, g = fit.scale, 0.3
    assert fit.third_moment_ratio == pytest.approx(
        np.mean(x**3) / (s**3 * (1 + 3 * g + g * g)), rel=1e-10)
    assert "nonzero bulk" in fit.third_moment_frame


# ============================================================================ identification
def test_ks_identifies_the_ratio_of_an_mp_bulk():
    ev = sample_covariance_eigenvalues(600, 1500, 2.3, seed=0)
    fit = fit_marchenko_pastur(ev, method="ks", num_bootstrap=20)
    assert fit.identified and fit.identification == ""
    lo, hi = fit.conf_int()[1]
    assert lo <= fit.ratio <= hi
    assert dict(fit.summary().rows)["ratio identified"] == "yes"


def test_ks_on_the_fold_says_the_ratio_is_not_identified():
    # a bulk more spread than any MP shape (relative variance > 1): the KS optimum is gamma = 1
    x = np.random.default_rng(3).lognormal(0.0, 1.5, 2000)
    with pytest.warns(ConvergenceWarning, match="not identified"):
        fit = fit_marchenko_pastur(x, method="ks", exclude_outliers=False, num_bootstrap=20)
    assert fit.converged  # the optimiser converged ...
    assert not fit.identified  # ... on a parameter the data do not determine
    assert abs(math.log(fit.ratio)) < 1e-3
    rel_var = np.mean(x**2) / np.mean(x) ** 2 - 1
    assert "fold gamma = 1" in fit.identification and f"{rel_var:.3g}" in fit.identification
    text = str(fit.summary())
    assert "RATIO NOT IDENTIFIED" in text
    assert dict(fit.summary().rows)["ratio identified"] == "NO (see notes)"
    assert "identified=False" in repr(fit)
    back = MarchenkoPasturFit.from_dict(fit.to_dict())
    assert not back.identified and back.identification == fit.identification


def test_ks_on_an_atom_branch_the_zeros_contradict():
    # most values zero but the rest narrowly spread: the shape says a huge ratio, the zeros ~2.5
    rng = np.random.default_rng(4)
    x = np.concatenate([np.zeros(600), 1.0 + 0.01 * rng.standard_normal(400)])
    fit = _quiet_fit(x, method="ks", exclude_outliers=False, num_bootstrap=0)
    assert fit.ratio > 10 and fit.atom_ratio == pytest.approx(2.5)
    assert not fit.identified and "contradict" in fit.identification


def test_a_given_ratio_needs_no_identification():
    x = np.random.default_rng(5).lognormal(0.0, 1.5, 500)
    fit = fit_marchenko_pastur(x, ratio=1.0, method="ks", exclude_outliers=False, num_bootstrap=0)
    assert fit.identified


# ============================================================================ distinct outlier nodes
def test_outlier_nodes_repeated_across_probes_are_listed_once():
    bulk = sample_covariance_eigenvalues(300, 900, 1.0, seed=0)
    probes = 6
    nodes = np.vstack([np.r_[bulk[:59], 25.0 * (1 + 1e-9 * j), 12.0] for j in range(probes)])
    weights = np.full(nodes.shape, 1.0 / nodes.shape[1])
    fit = fit_marchenko_pastur(SimpleNamespace(nodes=nodes, weights=weights), num_bootstrap=0)
    assert fit.outliers.size == 2 * probes  # every probe holds both
    np.testing.assert_allclose(fit.distinct_outliers, [25.0, 12.0], rtol=1e-8)
    assert fit.distinct_outlier_counts.tolist() == [probes, probes]
    assert dict(fit.summary().rows)["outlier nodes (distinct across probes)"] == "25 (x6), 12 (x6)"
    # eigenvalue arrays keep true multiplicities
    plain = fit_marchenko_pastur(np.r_[bulk, 25.0, 25.0], num_bootstrap=0)
    assert plain.distinct_outliers.tolist().count(25.0) == 2


# ============================================================================ count_outliers
def _check_sentences(res: OutlierCount) -> None:
    """Every sentence of the summary says what the numbers beside it say."""
    text = str(res.summary())
    assert dict(res.summary().rows)["count"] == f"{res.count} (rule: {res.rule})"
    if res.rule == "mp_edge":
        assert res.bulk_credible and "credible Marchenko-Pastur fit" in text
    else:
        assert "gap ratio" in text
        if res.count == 0:
            assert f"{res.gap_ratio:.3g}, is below" in text and "no separated outliers" in text
        else:
            assert f"({res.gap_ratio:.3g} after rank {res.count})" in text
    if "mp_edge" in res.counts:
        assert ("The rules disagree" in text) == (res.counts["mp_edge"] != res.counts["gap"])
        assert ("NOT credible" in text) == (not res.bulk_credible)
    if res.num_classes:
        m = res.matches_classes
        word = "equals C" if m["C"] else "equals C - 1" if m["C-1"] else "is neither"
        assert f"The count {res.count} ({res.rule}) {word}" in text


def test_count_planted_spikes_by_the_mp_edge():
    ev = sample_covariance_eigenvalues(600, 1500, 1.0, spikes=[9.0, 6.0, 4.0], seed=0)
    res = count_outliers(ev[:20], ev, num_classes=3)
    assert res.rule == "mp_edge" and res.bulk_credible and res.count == 3
    np.testing.assert_array_equal(res.values, ev[:3])
    assert res.matches_classes == {"C": True, "C-1": False}
    assert np.all(np.diff(res.candidates) <= 0)
    _check_sentences(res)
    back = OutlierCount.from_dict(res.to_dict())
    assert back.count == 3 and str(back.summary()) == str(res.summary())


def test_count_falls_back_to_the_gap_rule_on_a_heavy_tail():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 900)) * np.sqrt(rng.lognormal(0.0, 1.0, 300))[:, None]
    ev = np.sort(np.linalg.eigvalsh(x @ x.T / 900))[::-1]
    ev[:2] *= [30.0, 15.0]  # two well-separated outliers on a heavy-tailed bulk
    res = count_outliers(ev[:30], ev, num_classes=3)
    assert not res.bulk_credible and res.rule == "gap"
    assert res.counts["gap"] == res.count
    assert "heavy tail" in res.bulk_reason or "not MP" in res.bulk_reason
    _check_sentences(res)


def test_count_without_a_gap_is_zero_and_says_so():
    ev = np.geomspace(1.0, 0.01, 60)  # a smooth decay, no separation
    res = count_outliers(ev)
    assert res.count == 0 and res.rule == "gap" and res.gap_ratio < 2
    _check_sentences(res)


def test_mp_edge_count_of_a_bulk_below_every_candidate_is_a_lower_bound():
    ev = sample_covariance_eigenvalues(400, 1200, 1.0, spikes=[30.0, 25.0, 20.0, 15.0], seed=1)
    res = count_outliers(ev[:3], ev)
    assert res.mp_edge_lower_bound and res.counts["mp_edge"] == 3 and res.mp_outlier_mass == 4
    assert ">= 3 (every candidate is above the cut" in str(res.summary())


def test_count_reads_a_density_and_refuses_bad_input():
    ev = sample_covariance_eigenvalues(300, 900, 1.0, spikes=[9.0, 6.0], seed=2)
    dens = SimpleNamespace(nodes=np.vstack([ev[:80], ev[:80]]), weights=np.full((2, 80), 1 / 80))
    assert count_outliers(dens, ev).count == 2
    with pytest.raises(InvalidInputError, match="min_ratio"):
        count_outliers(ev, min_ratio=1.0)
    with pytest.raises(InvalidInputError, match="positive"):
        count_outliers(-np.abs(ev))
