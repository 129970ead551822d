"""Issue 13's numerical cases in the random-matrix layer: clear errors or right answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gn_theory.exceptions import InvalidInputError
from gn_theory.rmt import MarchenkoPastur, fit_marchenko_pastur, sample_covariance_eigenvalues, scaling_fit


def test_rvs_negative_size_is_a_clear_error():
    mp = MarchenkoPastur(0.5)
    for bad in (-1, (3, -2), 2.5, "3", True):
        with pytest.raises(InvalidInputError, match="size"):
            mp.rvs(size=bad)
    assert mp.rvs(size=(2, 3), random_state=0).shape == (2, 3)
    assert mp.rvs(size=0, random_state=0).shape == (0,)


@pytest.mark.parametrize("ratio, scale", [(0.5, 1.0), (0.2, 2.5), (0.9, 0.3)])
def test_stieltjes_at_zero_is_minus_mean_inverse(ratio, scale):
    mp = MarchenkoPastur(ratio, scale)
    g0 = complex(mp.stieltjes(0.0))
    assert g0.imag == 0.0
    assert g0.real == pytest.approx(-1.0 / (scale * (1.0 - ratio)), rel=1e-12)
    # continuity with nearby real points left of the support
    assert complex(mp.stieltjes(-1e-9)).real == pytest.approx(g0.real, rel=1e-6)
    # the case
    assert complex(MarchenkoPastur(0.5).stieltjes(0)) == pytest.approx(-2.0)


def test_stieltjes_at_zero_with_an_atom():
    assert np.isnan(complex(MarchenkoPastur(2.0).stieltjes(0.0)).real)
    nz = MarchenkoPastur(2.0, 1.5, nonzero=True)
    # nonzero part of MP(g, s) is MP(1/g, s g): G(0) = -1 / (s (g - 1))
    assert complex(nz.stieltjes(0.0)).real == pytest.approx(-1.0 / (1.5 * 1.0), rel=1e-12)
    assert complex(nz.stieltjes(-1e-9)).real == pytest.approx(-1.0 / 1.5, rel=1e-6)
    # far from zero the closed form still behaves like 1/z
    z = 1e6
    assert complex(MarchenkoPastur(2.0).stieltjes(z)).real == pytest.approx(1.0 / z, rel=1e-5)


@pytest.mark.parametrize("factor", [1e105, 1e-112, 1e200])
@pytest.mark.parametrize("method", ["moments", "ks"])
def test_mp_fit_of_extreme_scales_is_the_rescaled_fit(factor, method):
    ev = sample_covariance_eigenvalues(200, 500, scale=2.0, seed=0)
    base = fit_marchenko_pastur(ev, method=method, num_bootstrap=5)
    fit = fit_marchenko_pastur(ev * factor, method=method, num_bootstrap=5)
    assert fit.ratio == pytest.approx(base.ratio, rel=1e-6)
    assert fit.scale == pytest.approx(base.scale * factor, rel=1e-6)
    assert fit.upper_edge == pytest.approx(base.upper_edge * factor, rel=1e-6)
    assert np.all(np.isfinite(fit.conf_int()))
    assert fit.conf_int()[0, 0] == pytest.approx(base.conf_int()[0, 0] * factor, rel=1e-3)
    assert "rescaled" in fit.message or "divided by 2**" in fit.message
    assert math.isfinite(fit.third_moment_ratio)
    str(fit.summary())


def test_scaling_fit_constant_y_and_bad_cov_type():
    fit = scaling_fit([1, 2, 3, 4], [5, 5, 5, 5])
    assert math.isnan(fit.rsquared) and math.isnan(fit.rsquared_adj)
    assert abs(fit.exponent) < 1e-12
    assert "y is constant" in str(fit.summary())
    with pytest.raises(InvalidInputError, match="cov_type"):
        scaling_fit([1, 2, 3, 4], [1, 2, 3.5, 4], cov_type="bogus")
    assert scaling_fit([1, 2, 3, 4, 5], [1, 2, 3.5, 4, 5.2], cov_type="HC3").cov_type == "HC3"
